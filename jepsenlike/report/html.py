"""``report.html``: one self-contained page per run.

Theory of operation
-------------------
The page needs no network: the stylesheet, the script and the data are
inlined, the anomaly cycles are inline SVG, the plots are PNG ``data:`` URIs.
It is built in two parts:

* **Server side (here)**, everything that is static text: the header
  (test, verdict, seed, system), the checker's explanation, the witnesses
  (for the linearizability search: each failing key, the op that could not be
  linearized, the reason, the longest partial linearizations step by step
  with the model state before each step; for graph anomalies: the cycle drawn
  by :func:`jepsenlike.checkers.graph.render.to_svg` and one row per edge
  with its ``why``), statistics, faults fired, config and reproduce command.
  Every op an explanation names is a link (``data-op``) that focuses the
  timeline on it.
* **Client side** (``assets/report.js``), the timeline: one lane per
  process, a bar per client op from invocation to completion coloured by
  outcome, fault intervals as shaded bands, the anomaly's ops outlined, a
  tooltip per bar (f, key, value, node, error, latency, index), zoom (wheel,
  buttons, drag to pan) and filters (processes, key, anomaly only). The data
  is one JSON document in a ``<script type="application/json">`` tag, with
  ``<`` escaped so no value can close the tag.

Size cap: the page must stay openable. When the history has more client ops
than ``max_ops``, or the page would exceed ``max_bytes`` (~20 MB), the
timeline is windowed: the ``max_ops`` consecutive ops (by invocation) centred
on the first anomaly op, or the first ones when there is no anomaly; the cap
is halved until the page fits. A note at the top of the page says so and
names the window. The explanation, statistics and fault list always cover the
whole run.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from jepsenlike.report.model import (
    OpPair,
    RunData,
    Witness,
    coverage_rows,
    fault_coverage,
    fault_intervals,
    find_witnesses,
    fired_faults,
    invocation_index,
    merge_same_span,
    op_pairs,
    verdict_word,
)

MAX_BYTES = 20 * 1024 * 1024
MAX_OPS = 50_000
MAX_VALUE_CHARS = 400
MAX_WITNESSES_SHOWN = 12
MAX_STEPS_SHOWN = 60


def _asset(name: str) -> str:
    return resources.files("jepsenlike.report").joinpath("assets", name).read_text(encoding="utf-8")


def _short(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    """The value itself when small, else its JSON text cut to ``limit`` chars."""
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= limit:
        return value
    return text[: limit - 3] + "..."


def _key_id(key: Any) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _keys_of(p: OpPair) -> list[str]:
    if p.inv.key is not None:
        return [_key_id(p.inv.key)]
    value = p.inv.value
    if p.inv.f == "txn" and isinstance(value, list):
        keys = []
        for m in value:
            if isinstance(m, list | tuple) and len(m) >= 2:
                k = _key_id(m[1])
                if k not in keys:
                    keys.append(k)
        return keys
    return []


def _window(pairs: list[OpPair], focus: list[int], max_ops: int) -> tuple[int, int]:
    """[lo, hi) of the pairs shown: ``max_ops`` centred on the first focus op."""
    n = len(pairs)
    if n <= max_ops:
        return 0, n
    if not focus:
        return 0, max_ops
    pos = {p.inv.index: i for i, p in enumerate(pairs)}
    at = [pos[f] for f in focus if f in pos]
    if not at:
        return 0, max_ops
    centre = min(at)
    span = max(at) - centre
    if span < max_ops:
        centre += span // 2
    lo = max(0, min(n - max_ops, centre - max_ops // 2))
    return lo, lo + max_ops


def pack_lanes(pairs: list[OpPair], end_ns: int) -> dict[Any, int]:
    """Lane per process such that processes sharing a lane never overlap in time.

    A process whose op ended ``info`` is retired and a fresh one takes its
    worker's place, so a long run has many processes but only about as many
    at a time as there are workers; greedy packing by first invocation gives
    that many lanes.
    """
    span: dict[Any, list[int]] = {}
    for p in pairs:
        t1 = p.comp.time if p.comp is not None else end_ns
        s = span.setdefault(p.inv.process, [p.inv.time, t1])
        s[0], s[1] = min(s[0], p.inv.time), max(s[1], t1)
    lane_end: list[int] = []
    out: dict[Any, int] = {}
    for proc, (t0, t1) in sorted(span.items(), key=lambda kv: (kv[1][0], str(kv[0]))):
        for i, e in enumerate(lane_end):
            if e < t0:
                lane_end[i] = t1
                out[proc] = i
                break
        else:
            out[proc] = len(lane_end)
            lane_end.append(t1)
    return out


def build_timeline_data(run: RunData, witnesses: list[Witness], max_ops: int = MAX_OPS) -> dict[str, Any]:
    """The JSON the page's script draws (see ``assets/report.js`` for the field order)."""
    pairs = op_pairs(run.ops)
    inv_of = invocation_index(run.ops)
    blocked = sorted({inv_of.get(i, i) for w in witnesses for i in w.blocked})
    related = sorted({inv_of.get(i, i) for w in witnesses for i in w.related} - set(blocked))
    lo, hi = _window(pairs, blocked or related, max_ops)
    shown = pairs[lo:hi]
    end = run.end_ns
    ops = []
    keys: dict[str, Any] = {}
    procs: set[Any] = set()
    for p in shown:
        c = p.comp
        ks = _keys_of(p)
        for k in ks:
            keys.setdefault(k, None)
        procs.add(p.inv.process)
        ops.append([
            p.inv.index, p.inv.process, p.inv.f, _short(p.inv.key), _short(p.inv.value),
            _short(c.value) if c is not None else None, p.outcome,
            (c.node if c is not None and c.node else p.inv.node), _short(c.error) if c is not None else None,
            p.inv.time, c.time if c is not None else -1, c.index if c is not None else -1, ks,
        ])
    faults, instants = fault_intervals(run.ops, end)
    faults = merge_same_span(faults)
    lane_of = pack_lanes(shown, end)
    witness_groups = []
    for n, w in enumerate(witnesses):
        witness_groups.append({
            "id": n, "title": w.title,
            "key": _key_id(w.record.get("key")) if w.kind == "linearizability" and w.record.get("key") is not None else None,
            "blocked": sorted({inv_of.get(i, i) for i in w.blocked}),
            "related": sorted({inv_of.get(i, i) for i in w.related}),
            # where "show on timeline" zooms: the anomaly's ops and the last steps before it
            # (a partial linearization may reach back over the whole key's history)
            "focus": sorted({inv_of.get(i, i) for i in [*w.blocked, *w.related[-3:]]}),
        })
    note = None
    if (lo, hi) != (0, len(pairs)):
        where = "around the anomaly" if (blocked or related) else "the first ones"
        note = (f"This history has {len(pairs):,} client ops; to keep the page under its size cap the "
                f"timeline shows {hi - lo:,} of them ({where}: ops {lo + 1:,} to {hi:,} in invocation "
                f"order, history indices {shown[0].inv.index} to "
                f"{(shown[-1].comp or shown[-1].inv).index}). The explanation, statistics and faults "
                "cover the whole run; history.jsonl has every op.")
    return {
        "ops": ops,
        "processes": sorted(procs, key=lambda x: (isinstance(x, str), x)),
        "keys": sorted(keys),
        "faults": [iv.to_dict() for iv in faults],
        "instants": [{"index": e.index, "t": e.time_ns, "f": e.f, "value": _short(e.value), "error": e.error}
                     for e in instants],
        "t_end": end,
        "lane_of": {str(p): lane for p, lane in lane_of.items()},
        "n_lanes": max(lane_of.values(), default=-1) + 1,
        "blocked": blocked,
        "related": related,
        "witnesses": witness_groups,
        "window": {"lo": lo, "hi": hi, "total": len(pairs), "note": note},
    }


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- static parts -----------------------------------------------------------------


def _op_link(index: Any, text: str | None = None) -> str:
    label = escape(text if text is not None else f"#{index}")
    if isinstance(index, int):
        return f'<a href="#timeline" class="op-link" data-op="{index}">{label}</a>'
    return label


def _state(v: Any) -> str:
    return f"<code>{escape(json.dumps(_short(v, 200), default=str))}</code>"


def _lin_html(w: Witness, n: int) -> str:
    rec = w.record
    op = rec.get("op") or {}
    parts = [
        f'<div class="witness lin" id="witness-{n}" data-witness="{n}">',
        f"<h3>{escape(w.title)}</h3>",
        f'<p class="reason">Reason: <strong>{escape(w.explanation or "no reason given")}</strong>. '
        f'Op: {_op_link(op.get("index"), op.get("description"))}. '
        f'<button type="button" class="focus-witness" data-witness="{n}">show on timeline</button></p>',
    ]
    pls = rec.get("partial_linearizations") or []
    for k, pl in enumerate(pls[:3]):
        steps = pl.get("steps") or []
        total = rec.get("ops")
        parts.append(
            f"<h4>Longest partial linearization{f' {k + 1}' if len(pls) > 1 else ''}: "
            f"{pl.get('length', len(steps))} op(s)"
            + (f" of {total}" if isinstance(total, int) else "") + "</h4>"
        )
        parts.append('<table class="steps"><thead><tr><th>step</th><th>op</th><th>model state before</th>'
                     "</tr></thead><tbody>")
        shown = steps[-MAX_STEPS_SHOWN:]
        # the checker may keep only the last steps of a long linearization; number them from its length
        length = pl.get("length") if isinstance(pl.get("length"), int) else len(steps)
        first = max(0, length - len(shown))
        if first:
            parts.append(f'<tr><td colspan="3" class="muted">... {first} earlier step(s) not shown '
                         "(results.json has the steps the checker kept)</td></tr>")
        for j, s in enumerate(shown):
            parts.append(f"<tr><td>{first + j + 1}</td><td>{_op_link(s.get('index'), s.get('op'))}</td>"
                         f"<td>{_state(s.get('state_before'))}</td></tr>")
        blocked = pl.get("blocked_op") or op
        parts.append(
            f'<tr class="blocked-row"><td>&#x2715;</td><td>{_op_link(blocked.get("index"), blocked.get("description"))}'
            f' <em>cannot follow</em></td><td>{_state(pl.get("final_state", rec.get("final_state")))}'
            f" &rarr; {escape(str(w.explanation))}</td></tr>"
        )
        parts.append("</tbody></table>")
    cands = [c for c in rec.get("candidates") or [] if c.get("index") != op.get("index")]
    if cands:
        parts.append("<p>Other ops that could not follow either:</p><ul>")
        for c in cands[:10]:
            parts.append(f"<li>{_op_link(c.get('index'), c.get('description'))}: {escape(str(c.get('reason')))}</li>")
        parts.append("</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def _cycle_svg(rec: dict[str, Any]) -> str:
    try:
        from jepsenlike.checkers.graph.render import to_svg
        from jepsenlike.checkers.result import Result
    except ImportError:
        return ""
    try:
        return to_svg(Result(False, {"anomalies": {str(rec.get("type")): [rec]}}))
    except (KeyError, TypeError, ValueError):
        return ""


def _graph_html(w: Witness, n: int) -> str:
    rec = w.record
    parts = [
        f'<div class="witness graph" id="witness-{n}" data-witness="{n}">',
        f"<h3>{escape(w.title)}</h3>",
        f'<p>{escape(w.explanation)} <button type="button" class="focus-witness" data-witness="{n}">'
        "show on timeline</button></p>",
    ]
    if rec.get("steps"):
        names = {t.get("index"): t.get("name") for t in rec.get("txns") or []}
        parts.append(_cycle_drawing_and_edges(rec, lambda a: _op_link(a, f"{names.get(a, a)} (op {a})")))
    if rec.get("txns"):
        parts.append('<table class="txns"><thead><tr><th>txn</th><th>op</th><th>process</th><th>type</th>'
                     "<th>value</th></tr></thead><tbody>")
        for t in rec["txns"]:
            parts.append(
                f"<tr><td>{escape(str(t.get('name', '')))}</td><td>{_op_link(t.get('index'))}</td>"
                f"<td>{escape(str(t.get('process')))}</td><td>{escape(str(t.get('type')))}</td>"
                f"<td>{_state(t.get('value'))}</td></tr>"
            )
        parts.append("</tbody></table>")
    elif w.blocked:
        parts.append("<p>Ops: " + ", ".join(_op_link(i) for i in w.blocked) + "</p>")
    parts.append("</div>")
    return "\n".join(parts)


def _group_of(w: Witness) -> str:
    key = w.record.get("key") if w.kind == "linearizability" else None
    return f"key {json.dumps(key, default=str)}" if key is not None else (
        "graph anomalies" if w.kind == "graph" else "anomalies")


def witnesses_html(witnesses: list[Witness], open_key: Any = None) -> str:
    """Every anomaly, grouped by key; one group (the witness's key, else the first) is
    expanded, the others folded under a count."""
    if not witnesses:
        return ""
    shown = list(enumerate(witnesses[:MAX_WITNESSES_SHOWN]))
    groups: dict[str, list[tuple[int, Witness]]] = {}
    for n, w in shown:
        groups.setdefault(_group_of(w), []).append((n, w))
    want = f"key {json.dumps(open_key, default=str)}" if open_key is not None else None
    first = want if want in groups else next(iter(groups))
    order = [first] + [g for g in groups if g != first]
    out = []
    others = len(order) - 1
    if others:
        out.append(f'<p class="group-count" id="group-count">{escape(first)} is expanded; {others} other '
                   f"{'group' if others == 1 else 'groups'} folded below "
                   f"({', '.join(escape(g) for g in order[1:6])}{', ...' if others > 5 else ''}).</p>")
    for g in order:
        items = groups[g]
        body = "\n".join(_lin_html(w, n) if w.kind == "linearizability" else _graph_html(w, n) for n, w in items)
        out.append(f'<details class="anomaly-group"{" open" if g == first else ""}><summary>{escape(g)}: '
                   f"{len(items)} {'anomaly' if len(items) == 1 else 'anomalies'}</summary>\n{body}</details>")
    if len(witnesses) > MAX_WITNESSES_SHOWN:
        out.append(f'<p class="muted">... and {len(witnesses) - MAX_WITNESSES_SHOWN} more; results.json has '
                   "every one.</p>")
    return "\n".join(out)


def _cycle_drawing_and_edges(rec: dict[str, Any], endpoint: Callable[[Any], str]) -> str:
    """A cycle's drawing and its edge table, one row per edge; ``endpoint(index)`` is the
    HTML naming an op at either end (a link in the anomaly list, a node-aware label in the
    witness)."""
    parts = []
    svg = _cycle_svg(rec)
    if svg:
        parts.append(f'<div class="cycle-svg">{svg}</div>')
    parts.append('<table class="edges"><thead><tr><th>edge</th><th>relation</th><th>why</th></tr>'
                 "</thead><tbody>")
    for s in rec["steps"]:
        rel = escape(str(s.get("rel")))
        parts.append(f"<tr><td>{endpoint(s.get('from'))} &rarr; {endpoint(s.get('to'))}</td>"
                     f'<td class="rel rel-{rel}">{rel}</td><td>{escape(str(s.get("why")))}</td></tr>')
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _cycle_html(rec: dict[str, Any], details: list[dict[str, Any]] | None = None) -> str:
    """The graph checker's cycle over the witness: the drawing and one sentence per edge."""
    from jepsenlike.report.witness import cycle_labels

    labels = {k: v.split(" (", 1)[1][:-1] for k, v in cycle_labels(rec, details or []).items() if " (" in v}
    parts = [f'<div class="witness-cycle" id="witness-cycle"><h3>The dependency cycle ({escape(str(rec.get("type")))})'
             "</h3>"]
    if rec.get("steps"):
        names = {t.get("index"): t.get("name") for t in rec.get("txns") or []}
        parts.append(_cycle_drawing_and_edges(
            rec, lambda a: f"{escape(str(names.get(a, a)))} ({escape(labels.get(a, f'op {a}'))})"))
    if rec.get("explanation"):
        parts.append(f'<p class="muted">{escape(str(rec["explanation"]))}</p>')
    parts.append("</div>")
    return "\n".join(parts)


def witness_first_html(run: RunData) -> str:
    """The first screen: the minimal witness drawn, its faults, its cycle, the nodes' logs."""
    from jepsenlike.report.witness import (
        faults_during,
        faults_sentence,
        logs_html,
        node_log_excerpts,
        witness_of,
        witness_svg,
    )

    w = witness_of(run)
    if w is None:
        return ""
    faults = merge_same_span(fault_intervals(run.ops, run.end_ns)[0])
    notes = faults_during(w, faults)
    n = len(w["details"])
    total = w.get("part_ops")
    of = f" of the key's {total}" if isinstance(total, int) else ""
    minimal = ("Removing any one of them (with the ops that read only its value) leaves a linearizable "
               "history." if w.get("minimal") else
               "Shrinking stopped at its time limit: a smaller set may exist.")
    parts = [
        f'<h2 id="witness-title">Witness: {escape(str(w.get("anomaly", "not linearizable")))}'
        + (f" on key {escape(json.dumps(w.get('key'), default=str))}" if w.get("key") is not None else "")
        + f", {n} ops{of}</h2>",
        f'<p class="witness-reason" id="witness-reason">{escape(str(w.get("reason", "")))}</p>',
        f'<div class="witness-figure">{witness_svg(w, notes)}</div>',
        f'<p class="witness-faults" id="witness-faults">{escape(faults_sentence(notes, w))}</p>',
        f'<p class="muted">These {n} ops (history indices '
        + ", ".join(_op_link(i) for i in w.get("ops") or []) + f") are not linearizable on their own. {minimal}</p>",
    ]
    if isinstance(w.get("cycle"), dict):
        parts.append(_cycle_html(w["cycle"], w["details"]))
    parts.append(logs_html(node_log_excerpts(run, w, faults), run))
    return "\n".join(parts)


def _kv_table(rows: list[tuple[str, Any]], cls: str = "kv") -> str:
    body = "".join(
        f"<tr><th>{escape(k)}</th><td>{v if isinstance(v, _Html) else escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f'<table class="{cls}"><tbody>{body}</tbody></table>'


class _Html(str):
    """A string that is already HTML."""


def _stats_html(results: dict[str, Any]) -> str:
    stats = results.get("stats") or {}
    parts = []
    counts = stats.get("counts") or {}
    lat = stats.get("latency_ms") or {}
    if counts:
        parts.append('<table class="stats"><thead><tr><th>f</th><th>ok</th><th>fail</th><th>info</th>'
                     "<th>pending</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>"
                     "</thead><tbody>")
        for f, c in counts.items():
            q = lat.get(f) or {}
            parts.append(
                f"<tr><td>{escape(f)}</td>" + "".join(f"<td>{c.get(t, 0)}</td>" for t in ("ok", "fail", "info", "pending"))
                + "".join(f"<td>{q.get(k, '')}</td>" for k in ("p50", "p90", "p99", "max")) + "</tr>"
            )
        parts.append("</tbody></table>")
    avail = stats.get("availability") or {}
    if avail:
        parts.append("<p>Availability (share of ops invoked in the phase that completed ok): "
                     + ", ".join(f"{escape(ph)} {a.get('ok_fraction', 0):.0%} of {a.get('ops')}"
                                 for ph, a in avail.items()) + "</p>")
    return "\n".join(parts)


def _faults_html(run: RunData) -> str:
    fired = (run.results.get("nemesis") or {}).get("fired") or []
    parts = []
    counts = fired_faults(run.results)
    if counts:
        parts.append("<p>Faults that touched something: "
                     + ", ".join(f"{escape(f)} &times;{n}" for f, n in counts.items()) + "</p>")
    if fired:
        from jepsenlike.report.model import _nodes_of, describe_fault

        parts.append('<table class="faults"><thead><tr><th>at (s)</th><th>f</th><th>what</th><th>asked</th>'
                     "<th>result</th><th>error</th></tr></thead><tbody>")
        for f in fired[:500]:
            what = describe_fault(str(f.get("f")), f.get("value"), _nodes_of(f.get("value")))
            parts.append(
                f"<tr><td>{escape(str(f.get('done_s', f.get('time_s', ''))))}</td><td>{escape(str(f.get('f')))}</td>"
                f"<td>{escape(what)}</td>"
                f"<td>{_state(f.get('asked'))}</td><td>{_state(f.get('value'))}</td>"
                f"<td>{escape(str(f.get('error') or ''))}</td></tr>"
            )
        parts.append("</tbody></table>")
    cov = fault_coverage(run.results)
    if cov:
        cols, rows = coverage_rows(cov)
        summary = (run.results.get("nemesis") or {}).get("summary")
        parts.append('<h3>Fault coverage</h3>' + (f"<p>{escape(str(summary))}</p>" if summary else "")
                     + '<table class="coverage"><thead><tr>'
                     + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr></thead><tbody>")
        for row in rows:
            status = str(row[1]) if len(row) > 1 else ""
            parts.append(f'<tr class="cov-{escape(status)}">'
                         + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>")
        parts.append("</tbody></table>")
    return "\n".join(parts) or "<p>No faults.</p>"


def _plots_html(plots: list[Path]) -> str:
    out = []
    for p in plots:
        try:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
        except OSError:
            continue
        out.append(f'<figure><img alt="{escape(p.stem)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{escape(p.name)}</figcaption></figure>")
    return "\n".join(out)


def _no_witness_html(run: RunData) -> str:
    """A valid run has nothing to show; an invalid one whose checker names no ops shows its details."""
    if run.valid is True:
        return '<p id="no-anomaly">No anomaly: nothing to highlight.</p>'
    details = run.results.get("workload") or {k: v for k, v in run.results.items() if k not in ("stats", "nemesis")}
    text = json.dumps(details, indent=2, default=str)
    if len(text) > 20_000:
        text = text[:20_000] + "\n... (truncated; results.json has all of it)"
    return ('<p id="no-anomaly">The checker names no ops this page can highlight; its details:</p>'
            f"<pre>{escape(text)}</pre>")


def _run_state_html(run: RunData) -> str:
    """Notes for a run that was interrupted or crashed (with the traceback, folded)."""
    out = ""
    if run.results.get("interrupted") or run.test.get("interrupted"):
        out += '<p class="note">The run was interrupted: the history is partial.</p>'
    if run.results.get("crashed"):
        out += f'<p class="note">The run crashed: {escape(str(run.results["crashed"]))}</p>'
        if run.results.get("traceback"):
            out += f"<details><summary>traceback</summary><pre>{escape(str(run.results['traceback']))}</pre></details>"
    return out


def _files_html(run_dir: Path) -> str:
    """Relative links to the run's raw files (they work from the run directory and under serve)."""
    names = [n for n in ("history.jsonl", "results.json", "test.json", "nemesis.log") if (run_dir / n).exists()]
    nodes = run_dir / "nodes"
    if nodes.is_dir():
        names += [f"nodes/{p.name}" for p in sorted(nodes.glob("*.log"))]
    return " · ".join(f'<a href="{escape(n)}">{escape(n)}</a>' for n in names)


def _summary_line(run: RunData) -> str:
    cfg = run.config
    if cfg.get("source"):
        return f"history {cfg['source']} checked against {cfg.get('model', '?')}"
    bits = [f"{cfg.get('system', '?')} x{cfg.get('nodes', '?')}", f"workload {cfg.get('workload', '?')}",
            f"nemesis {', '.join(cfg.get('nemesis') or []) or 'none'}", f"seed {run.seed}"]
    if cfg.get("bug"):
        bits.insert(1, f"bug {cfg['bug']}")
    return " · ".join(bits)


def render_report(
    run: RunData,
    *,
    plots: list[Path] | None = None,
    max_bytes: int = MAX_BYTES,
    max_ops: int = MAX_OPS,
) -> str:
    """The whole page as a string; windowed so it stays under ``max_bytes``."""
    witnesses = find_witnesses(run.results)
    cfg = run.config
    valid = run.valid
    word = verdict_word(valid)
    explanation = str(run.results.get("explanation") or "")
    header_rows: list[tuple[str, Any]] = [
        ("verdict", _Html(f'<span class="verdict verdict-{word.lower()}">{word}</span>')),
        ("system", f"{cfg.get('system', '?')} ({cfg.get('nodes', '?')} nodes, backend {cfg.get('backend', '?')})"),
        ("workload", cfg.get("workload", "?")),
        ("nemesis", ", ".join(cfg.get("nemesis") or []) or "none"),
        ("seed", run.seed),
        ("started", run.test.get("started_at", "?")),
        ("run dir", str(run.run_dir)),
        ("files", _Html(_files_html(run.run_dir))),
    ]
    if cfg.get("bug"):
        header_rows.insert(2, ("seeded bug", cfg["bug"]))
    reproduce = run.results.get("reproduce") or run.test.get("reproduce")
    static = {
        "TITLE": escape(f"{run.name} {word}"),
        "NAME": escape(run.name),
        "CSS": _asset("report.css"),
        "HEADER": _kv_table(header_rows),
        "VERDICT": f'<span class="verdict verdict-{word.lower()}" id="verdict">{word}</span>',
        "NOTES": "".join(f'<p class="note">{escape(n)}</p>' for n in run.notes) + _run_state_html(run),
        "EXPLANATION": (f'<pre class="explanation">{escape(explanation)}</pre>' if explanation else ""),
        "NOTE": (f'<p class="note">{escape(str(run.results["checker_note"]))}</p>'
                 if run.results.get("checker_note") else ""),
        "WITNESS": witness_first_html(run),
        "SUMMARY": escape(_summary_line(run)),
        "WITNESSES": witnesses_html(witnesses, (run.results.get("witness") or {}).get("key"))
        or _no_witness_html(run),
        "STATS": _stats_html(run.results),
        "FAULTS": _faults_html(run),
        "PLOTS": _plots_html(plots or []) or '<p class="muted">No plots (see the notes above).</p>',
        "CONFIG": f"<pre>{escape(json.dumps(cfg, indent=2, default=str))}</pre>",
        "REPRODUCE": f"<pre>{escape(str(reproduce))}</pre>" if reproduce else "",
        "JS": _asset("report.js"),
    }
    template = _asset("report.html")
    page_wo_data = template
    for k, v in static.items():
        page_wo_data = page_wo_data.replace("{{" + k + "}}", v)
    cap = max_ops
    while True:
        data = build_timeline_data(run, witnesses, cap)
        note = data["window"]["note"]
        page = page_wo_data.replace(
            "{{WINDOW_NOTE}}", f'<p class="note window-note" id="window-note">{escape(note)}</p>' if note else ""
        ).replace("{{DATA}}", _json_for_script(data))
        if len(page.encode("utf-8")) <= max_bytes or cap <= 100:
            return page
        cap = max(100, min(cap, len(data["ops"])) // 2)


def write_report(run: RunData, plots: list[Path] | None = None, **kw: Any) -> Path:
    """Write ``report.html`` into the run directory (atomically) and return its path."""
    out = run.run_dir / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text(render_report(run, plots=plots, **kw), encoding="utf-8")
    tmp.replace(out)
    return out
