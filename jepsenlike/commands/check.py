"""``jepsenlike check``: check history files for linearizability.

Theory of operation
-------------------
Every file named on the command line is read by
:func:`jepsenlike.history_io.read_history` (JSON Lines, or Jepsen EDN, by
extension or by sniffing the first bytes), checked against one model, and reported on its own: one
verdict line on stdout (``FILE: linearizable``, ``FILE: not-linearizable`` or
``FILE: unknown``, with op count, key count and seconds), then, for the last
two, the checker's explanation indented below it. With ``--json`` each file
instead gives one JSON object per line (``file``, ``verdict``, ``valid``,
``time_s``, and the checker's details).

A file that cannot be read or checked (bad line, op the model does not know)
does not stop the others: it gets the verdict ``error`` (the message, which
starts with ``file:line:``, goes to stderr) and the command exits 255 at the
end. Otherwise the exit code is 1 if any file is not linearizable, 2 if any is
unknown, and 0 if all are linearizable. A bad ``--model``, ``--init``,
``--timeout`` (not a positive finite number) or ``--max-states`` (below 1) is
reported before any file is read. The reader's notes (time that went
backwards, a torn last line) go to stderr and, with ``--json``, appear as
``time_backwards`` and ``torn_tail``. When stdout is a pipe that closes
(``check ... | head``), the command stops quietly with exit status 141.

``--report DIR`` writes, per file, a directory ``jepsenlike show`` and a
browser can open: ``history.jsonl`` (the history as read, whatever its
format), ``results.json`` (the verdict, the checker's details, the minimal
witness of a violation), ``test.json`` and ``report.html``. For a register
model both checkers run there (the search and the graph checker, reconciled as
in ``jepsenlike run``: a contradiction is reported as a checker bug and makes
the verdict unknown), and the printed verdict is the reconciled one.

``--checker``: ``wgl`` is the linearizability search
(:mod:`jepsenlike.checkers.linearizable`); ``graph`` the dependency-graph
checker (:mod:`jepsenlike.checkers.graph`); ``auto`` (the default) uses the
graph checker for ``list-append`` and the search otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from jepsenlike.checkers.result import Result, check_safe, merge_valid
from jepsenlike.checkers.specs import SPECS, Spec, get_spec
from jepsenlike.errors import ConfigError, HistoryError, JepsenlikeError
from jepsenlike.history import History
from jepsenlike.history_io import read_history

VERDICTS = {True: "linearizable", False: "not-linearizable", "unknown": "unknown"}
#: exit status when stdout is a closed pipe: the shell's convention for SIGPIPE (128 + 13)
EXIT_BROKEN_PIPE = 141


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check history files for linearizability",
        description=(
            "Check one or more histories (.jsonl, or Jepsen .edn) against a model. "
            "One verdict line per file. Exit codes: 0 all linearizable, 1 any not "
            "linearizable, 2 any unknown (and none invalid), 255 any file could not be "
            "read or checked."
        ),
    )
    p.add_argument("histories", nargs="+", metavar="HISTORY", help="history files (.jsonl or .edn)")
    p.add_argument("--model", required=True, help=f"sequential model: {', '.join(SPECS)}")
    p.add_argument("--init", metavar="JSON", help="initial state as JSON (default: the model's)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per file before 'unknown'")
    p.add_argument(
        "--max-states", type=int, metavar="N",
        help="cached search states per key before 'unknown' (bounds memory)",
    )
    p.add_argument("--json", action="store_true", help="one JSON result per file instead of text")
    p.add_argument(
        "--all-keys", action="store_true",
        help="linearizability search: check every key, not only up to the first bad one "
        "(slower; lists every bad key)",
    )
    p.add_argument(
        "--checker", choices=("auto", "wgl", "graph"), default="auto",
        help="wgl: linearizability search; graph: dependency-graph checker; "
        "auto: graph for list-append, wgl otherwise",
    )
    p.add_argument("--graph-out", metavar="FILE", help="graph checker: write anomaly cycles here")
    p.add_argument(
        "--consistency-model", default="strict-serializable", metavar="MODEL",
        help="graph checker, list-append: the model the verdict is about (read-uncommitted, "
        "read-committed, repeatable-read, snapshot-isolation, serializable, "
        "strong-session-serializable, strict-serializable; default strict-serializable)",
    )
    p.add_argument(
        "--independent", choices=("auto", "yes", "no"), default="auto",
        help=".edn only: read Jepsen's [key value] op values as key + value "
        "(auto: when every read is invoked with [key nil])",
    )
    p.add_argument(
        "--report", metavar="DIR",
        help="also write report.html (witness first, timeline, cycle, tables), history.jsonl, "
        "results.json and test.json into DIR (a subdirectory per file when several are given); "
        "jepsenlike show DIR prints it",
    )
    p.set_defaults(func=run)


def _parse_init(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--init {text!r} is not valid JSON: {e.msg}") from None


def _graph_module() -> Any:
    # imported on demand: it pulls in networkx, which plain WGL checks do not need
    import jepsenlike.checkers.graph as graph

    return graph


def _read(path: str, independent: str) -> History:
    flag = {"auto": None, "yes": True, "no": False}[independent]
    try:
        return read_history(path, independent=flag)
    except JepsenlikeError:
        raise
    except (RecursionError, MemoryError, OSError, ValueError) as e:
        # the readers turn bad input into HistoryError; anything else still names the file
        raise HistoryError(f"{path}: cannot read: {type(e).__name__}: {e}") from None


def _check_limits(args: argparse.Namespace) -> None:
    """Refuse budgets that make no sense, before any file is read."""
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ConfigError(
            f"--timeout {args.timeout}: must be a positive, finite number of seconds"
        )
    if args.max_states is not None and args.max_states < 1:
        raise ConfigError(f"--max-states {args.max_states}: must be at least 1")


def _graph_out_for(graph_out: str | None, path: str, many: bool) -> str | None:
    if graph_out is None or not many:
        return graph_out
    out = Path(graph_out)
    return str(out.with_name(f"{out.stem}.{Path(path).stem}{out.suffix}"))


def check_file(
    path: str, spec: Spec, args: argparse.Namespace, graph: Any
) -> tuple[Result, str, History]:
    """Read and check one file; returns the result, the checker's name and the history.

    Raises:
        JepsenlikeError: the file cannot be read, or has ops the model does not know.
    """
    history = _read(path, args.independent)
    for note in history.notes:
        print(f"jepsenlike: note: {note}", file=sys.stderr)
    if graph is not None:
        out = _graph_out_for(args.graph_out, path, len(args.histories) > 1)
        result = _safely(lambda: graph.check_history(
            history, args.model, spec, out,
            consistency_model=getattr(args, "consistency_model", "strict-serializable"),
        ))
        return result, "graph", history
    from jepsenlike.checkers.linearizable import check_linearizable

    return _safely(
        lambda: check_linearizable(
            history, spec, timeout=args.timeout, max_memory_states=args.max_states,
            all_keys=getattr(args, "all_keys", False),
        )
    ), "wgl", history


def _safely(check: Any) -> Result:
    """A crashing checker gives "unknown" with its traceback; our own errors propagate."""
    try:
        return check()
    except JepsenlikeError:
        raise
    except Exception:
        return check_safe(_reraise, sys.exc_info()[1])


def _reraise(e: BaseException) -> Result:
    raise e


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:
        # the reader went away (`check ... | head`): stop quietly, as a killed writer would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    from jepsenlike.cli import EXIT_ERROR, exit_code_for

    _check_limits(args)
    spec = get_spec(args.model, _parse_init(args.init))
    graph = None
    if args.checker == "graph" or (args.checker == "auto" and args.model == "list-append"):
        graph = _graph_module()
    if graph is not None and args.model == "list-append":
        from jepsenlike.checkers.graph.explain import check_model_name

        check_model_name(args.consistency_model)
    verdicts: list[Any] = []
    errors = 0
    for path in args.histories:
        t0 = time.monotonic()
        try:
            result, checker, history = check_file(path, spec, args, graph)
        except JepsenlikeError as e:
            errors += 1
            print(f"jepsenlike: error: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": path, "verdict": "error", "error": str(e)}))
            else:
                print(f"{path}: error")
            sys.stdout.flush()
            continue
        elapsed = time.monotonic() - t0
        if args.report:
            out_dir = Path(args.report)
            if len(args.histories) > 1:
                out_dir = out_dir / Path(path).name.replace(".", "_")
            try:
                result = write_check_report(out_dir, path, history, result, checker, spec, args)
            except OSError as e:
                raise ConfigError(f"--report {args.report}: cannot write there: {e}") from None
            print(f"jepsenlike: report: {out_dir / 'report.html'}", file=sys.stderr)
        verdicts.append(result.valid)
        verdict = VERDICTS.get(result.valid, "unknown")
        if args.json:
            out = {
                "file": path,
                "verdict": verdict,
                **result.to_dict(),
                "checker": checker,
                "model": args.model,
                "check_time_s": result.details.get("time_s"),
                "time_s": round(elapsed, 6),
                "events": len(history),
                "time_backwards": history.time_backwards,
                "torn_tail": history.torn_tail,
            }
            print(json.dumps(out, default=str))
        else:
            stats = []
            if "ops" in result.details:
                stats.append(f"{result.details['ops']} ops")
            if "keys" in result.details:
                k = result.details["keys"]
                stats.append(f"{k} key" if k == 1 else f"{k} keys")
            stats.append(f"{elapsed:.3f} s")
            if checker != "wgl":
                stats.append(f"{checker} checker")
            if history.time_backwards:
                stats.append(f"time went backwards {history.time_backwards}x")
            if history.torn_tail:
                stats.append("torn last line dropped")
            print(f"{path}: {verdict} ({', '.join(stats)})")
            if result.valid is not True and result.explanation:
                for line in result.explanation.splitlines():
                    print(f"  {line}")
        sys.stdout.flush()
    if errors:
        return EXIT_ERROR
    return exit_code_for(merge_valid(verdicts))


def write_check_report(
    out_dir: Path, path: str, history: History, result: Result, checker: str, spec: Spec,
    args: argparse.Namespace,
) -> Result:
    """Write a run-shaped directory for one checked file; returns the (reconciled) result."""
    from jepsenlike.checkers.crosscheck import (
        GRAPH_MODELS,
        explain_violation,
        graph_check,
        graph_doc,
        reconcile,
        witness_where,
    )
    from jepsenlike.history_io import write_history
    from jepsenlike.report import write_run_report
    from jepsenlike.stats import compute_stats
    from jepsenlike.store import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    write_history(out_dir / "history.jsonl", history.ops)
    results: dict[str, Any] = {}
    search = result if checker == "wgl" else None
    graph = result if checker == "graph" else None
    valid = result.valid
    explanation = result.explanation
    if args.model in GRAPH_MODELS:
        from jepsenlike.checkers.linearizable import check_linearizable

        if graph is None:
            graph = graph_check(history, args.model, spec, timeout=args.timeout or 60.0)
        if search is None:
            search = _safely(lambda: check_linearizable(history, spec, timeout=args.timeout,
                                                        max_memory_states=args.max_states))
        valid, disagreement = reconcile(search.valid, graph.valid)
        results["graph"] = graph_doc(graph)
        if disagreement:
            results["checker_disagreement"] = disagreement
            explanation = disagreement["message"] + "\n" + explanation
            print(f"jepsenlike: {path}: {disagreement['message']}", file=sys.stderr)
    if valid is False:
        w = explain_violation(history, spec, search, graph)
        if w is not None:
            results["witness"] = w
            if w.get("reason"):
                explanation = (f"witness ({witness_where(w)}): "
                               f"{w['reason']}\n{explanation}")
    primary = search if search is not None else result
    doc = {
        "valid": valid,
        "explanation": explanation,
        "workload": {"name": f"check --model {args.model}", **primary.to_dict()},
        "stats": compute_stats(history, {}),
        "nemesis": {"fired": []},
        "source": path,
        **results,
    }
    write_json(out_dir / "results.json", doc)
    write_json(out_dir / "test.json", {
        "name": Path(path).name,
        "config": {"source": str(path), "model": args.model, "checker": checker},
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
    })
    files = write_run_report(out_dir)
    for p in files.problems:
        print(f"jepsenlike: note: {p}", file=sys.stderr)
    return Result(valid, primary.details, explanation)
