"""``jepsenlike show [RUN_DIR|latest]``: a stored run, summarised in the terminal.

Theory of operation
-------------------
``RUN_DIR`` is a run directory, a test directory (its newest run), a path
relative to ``--store`` (``memory-register/20261126T063640.735``, a test
name), or ``latest`` (the default: the store's newest run). The run is read
with :func:`jepsenlike.report.load_run`, without the cluster, and printed with
rich: the config and the verdict, the minimal witness when the results have
one (its sentence, its ops with the node that served each, the faults in
force, the dependency cycle, the involved nodes' log lines around it), the
checker's explanation, the first
anomaly in detail (the op that could not be linearized and the longest
partial linearization with model states, or the cycle with a ``why`` per
edge), fault coverage when the results have it, the faults fired,
statistics, and the paths of the report, the plots and the raw files.

``--report`` (re)writes ``report.html`` and the plots first. Exit code 0
when the run could be shown, 255 when there is no run there; the verdict is
displayed, not returned (``jepsenlike analyze`` returns it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from jepsenlike.errors import ConfigError

VERDICT_STYLE = {"VALID": "bold green", "INVALID": "bold red", "UNKNOWN": "bold yellow"}
MAX_EXPLANATION_LINES = 12
MAX_STEPS = 12


def register(sub: Any) -> None:
    p = sub.add_parser("show", help="summarise a stored run in the terminal",
                       description=__doc__.split("\n\n")[2] if __doc__ else None)
    p.add_argument("run_dir", nargs="?", default="latest", metavar="RUN_DIR",
                   help="a run directory, a test directory, a path under --store, or 'latest' (default)")
    p.add_argument("--store", default="store", metavar="DIR", help="store directory (default: store)")
    p.add_argument("--report", action="store_true", help="(re)write report.html and the plots first")
    p.add_argument("--full", action="store_true", help="the whole explanation and every anomaly")
    p.set_defaults(func=show_command)


def find_run_dir(arg: str, store: str | Path) -> Path:
    """Resolve ``RUN_DIR`` (see the module docstring).

    Raises:
        ConfigError: no run there, naming where it looked.
    """
    from jepsenlike.store import resolve_run_dir

    candidates = []
    if arg != "latest" or Path(arg).exists():
        candidates.append(Path(arg))
    candidates.append(Path(store) / arg)
    for c in candidates:
        if c.exists():
            return resolve_run_dir(c)
    raise ConfigError(
        f"RUN_DIR: no run at {arg!r} (looked at {', '.join(str(c) for c in candidates)}); "
        "give a run directory or --store DIR"
    )


def _json(v: Any, limit: int = 120) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    run_dir = find_run_dir(args.run_dir, args.store)
    if args.report:
        from jepsenlike.report import write_run_report

        files = write_run_report(run_dir)
        for p in files.problems:
            print(f"jepsenlike: note: {p}")
    render(run_dir, Console(highlight=False, soft_wrap=False), full=args.full)
    return 0


def _add_row(table: Any, *cells: Any, style: str | None = None) -> None:
    """A table row of literal text: a cell like ``cas [null, 41]`` is not rich markup."""
    from rich.text import Text

    table.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in cells), style=style)


def render(run_dir: Path, console: Any, full: bool = False) -> None:
    """Print the summary of one run to a rich console."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    from jepsenlike.report.model import (
        PLOTS_DIR,
        REPORT_FILE,
        coverage_rows,
        fault_coverage,
        find_witnesses,
        fired_faults,
        load_run,
        verdict_word,
    )

    def say(*objects: Any, **kw: Any) -> None:
        # no rich markup: history values and explanations contain brackets ("[wr]", "[0, 1]")
        console.print(*objects, markup=False, highlight=False, **kw)

    run = load_run(run_dir)
    cfg = run.config
    word = verdict_word(run.valid)
    title = Text.assemble((f"{run.name}  ", "bold"), (word, VERDICT_STYLE[word]))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    rows = [
        ("system", f"{cfg.get('system', '?')} x{cfg.get('nodes', '?')} ({cfg.get('backend', '?')} backend)"),
        ("workload", str(cfg.get("workload", "?"))),
        ("nemesis", ", ".join(cfg.get("nemesis") or []) or "none"),
        ("seed", str(run.seed)),
        ("time limit", f"{cfg.get('time_limit', '?')} s, rate {cfg.get('rate', '?')}/s, "
                       f"concurrency {cfg.get('concurrency', '?')}"),
        ("started", str(run.test.get("started_at", "?"))),
    ]
    if cfg.get("bug"):
        rows.insert(3, ("seeded bug", str(cfg["bug"])))
    if cfg.get("source"):  # a directory of jepsenlike check --report
        rows = [("history", str(cfg["source"])), ("model", str(cfg.get("model", "?"))),
                ("checker", str(cfg.get("checker", "?"))), ("checked", str(run.test.get("checked_at", "?")))]
    for k, v in rows:
        _add_row(grid, k, v)
    say(Panel(grid, title=title, title_align="left"))
    from jepsenlike.report.witness import witness_text

    wlines = witness_text(run, full=full)
    if wlines:
        say(Text(wlines[0], style="bold red"))
        say(Text(wlines[1], style="bold"))
        for line in wlines[2:]:
            say(Text(line), soft_wrap=True)
    for note in run.notes:
        say(Text(f"note: {note}", style="yellow"))
    if run.results.get("interrupted"):
        say(Text("the run was interrupted: the history is partial", style="yellow"))
    if run.results.get("crashed"):
        say(Text(f"the run crashed: {run.results['crashed']}", style="red"))

    expl = str(run.results.get("explanation") or "").strip()
    if expl:
        lines = expl.splitlines()
        limit = len(lines) if full else MAX_EXPLANATION_LINES
        body = "\n".join(lines[:limit])
        if len(lines) > limit:
            body += f"\n... {len(lines) - limit} more line(s): --full, or results.json"
        say(Panel(Text(body), title="explanation", title_align="left",
                            border_style=VERDICT_STYLE[word].split()[-1]))

    witnesses = find_witnesses(run.results)
    for n, w in enumerate(witnesses if full else witnesses[:1]):
        say(Text(f"anomaly {n + 1} of {len(witnesses)}: {w.title}", style="bold red"))
        rec = w.record
        if w.kind == "linearizability":
            say(f"  reason: {w.explanation}")
            for pl in (rec.get("partial_linearizations") or [])[:1]:
                steps = pl.get("steps") or []
                t = Table(title=f"longest partial linearization: {pl.get('length', len(steps))} op(s)",
                          title_justify="left", show_edge=False)
                t.add_column("step", justify="right")
                t.add_column("op")
                t.add_column("model state before")
                shown = steps[-MAX_STEPS:]
                length = pl.get("length") if isinstance(pl.get("length"), int) else len(steps)
                first = max(0, length - len(shown))
                if first:
                    _add_row(t, "...", f"{first} earlier step(s)", "")
                for j, s in enumerate(shown, start=first + 1):
                    _add_row(t, str(j), str(s.get("op")), _json(s.get("state_before")))
                blocked = pl.get("blocked_op") or rec.get("op") or {}
                _add_row(t, "x", Text(f"{blocked.get('description')} cannot follow", style="red"),
                          Text(f"{_json(pl.get('final_state'))}: {w.explanation}", style="red"))
                say(t)
        else:
            for s in rec.get("steps") or []:
                say(f"  op {s.get('from')} -> op {s.get('to')} [{s.get('rel')}]: {s.get('why')}")
            if not rec.get("steps"):
                say(f"  {w.explanation}")
    if len(witnesses) > 1 and not full:
        say(Text(f"... {len(witnesses) - 1} more anomal{'y' if len(witnesses) == 2 else 'ies'} "
                           "(--full, or the report)", style="dim"))

    cov = fault_coverage(run.results)
    if cov:
        cols, rows = coverage_rows(cov)
        t = Table(title="fault coverage", title_justify="left", show_edge=False)
        for c in cols:
            t.add_column(c, overflow="fold")
        for row in rows:
            style = "yellow" if len(row) > 1 and row[1] in ("refused", "never-fired", "unconfirmed") else None
            _add_row(t, *(str(v) for v in row), style=style)
        say(t)
    fired = fired_faults(run.results)
    say("faults: " + (", ".join(f"{f} x{n}" for f, n in fired.items()) if fired else "none fired"))

    stats = run.results.get("stats") or {}
    counts = stats.get("counts") or {}
    if counts:
        lat = stats.get("latency_ms") or {}
        t = Table(title="ops", title_justify="left", show_edge=False)
        for col in ("f", "ok", "fail", "info", "p50 ms", "p99 ms", "max ms"):
            t.add_column(col, justify="left" if col == "f" else "right")
        for f, c in counts.items():
            q = lat.get(f) or {}
            _add_row(t, f, str(c.get("ok", 0)), str(c.get("fail", 0)), str(c.get("info", 0) + c.get("pending", 0)),
                      str(q.get("p50", "")), str(q.get("p99", "")), str(q.get("max", "")))
        say(t)
    avail = stats.get("availability") or {}
    if avail:
        say("availability: " + ", ".join(
            f"{ph} {a.get('ok_fraction', 0):.0%}" for ph, a in avail.items() if ph != "all"))

    d = run.run_dir
    report = d / REPORT_FILE
    plots = sorted((d / PLOTS_DIR).glob("*.png")) if (d / PLOTS_DIR).is_dir() else []
    # Paths are printed whole (soft wrap) so they can be copied from any terminal width.
    rows = [("run dir", str(d)),
            ("report", str(report) if report.exists() else f"(not written yet: jepsenlike show --report {d})")]
    rows += [("plot", str(p)) for p in plots]
    rows += [(name.split(".")[0], str(d / name))
             for name in ("history.jsonl", "results.json", "test.json", "nemesis.log") if (d / name).exists()]
    reproduce = run.results.get("reproduce") or run.test.get("reproduce")
    if reproduce:
        rows.append(("reproduce", str(reproduce)))
    for label, value in rows:
        say(Text.assemble((f"{label:<10} ", "dim"), value), soft_wrap=True)
