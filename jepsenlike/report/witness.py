"""The first screen of a report: the minimal witness, drawn, with its context.

Theory of operation
-------------------
``results.json``'s ``witness`` (see :mod:`jepsenlike.checkers.witness`) names
the few ops that prove a violation. This module turns it into what a person
reads first, shared by ``report.html`` and ``jepsenlike show``:

* :func:`witness_svg`: a small timeline, one lane per process, each op a bar
  from invocation to completion labelled with what it did and the node that
  served it, and every fault in force at that time shaded, with a sentence
  per fault saying what it was (:func:`jepsenlike.report.model.describe_fault`:
  who was cut off from whom, whose clock moved by how much);
* :func:`faults_during`: those faults, and the nearest one when none was;
* :func:`node_log_excerpts`: each involved node's log lines
  (``nodes/<id>.log``) around the witness. History times are nanoseconds since
  the history began; ``results.json``'s ``clock.history_start_unix_ns`` (or
  ``test.json``'s) is that instant on the wall clock, so a history time maps
  onto the nodes' log timestamps (``YYYY-MM-DD HH:MM:SS,mmm``, local time).
  A node whose clock a fault moved logs in its own skewed time; the excerpt
  says so.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from jepsenlike.checkers.witness import duration
from jepsenlike.report.model import FaultInterval, RunData

LOG_WINDOW_S = 1.0
MAX_LOG_LINES = 16
_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})")
_COLORS = {"ok": "#81c784", "fail": "#ef9a9a", "info": "#ffcc80", "pending": "#cfcfcf"}


def witness_of(run: RunData) -> dict[str, Any] | None:
    w = run.results.get("witness")
    if isinstance(w, dict) and isinstance(w.get("details"), list) and w["details"]:
        return w
    return None


def span_ns(w: dict[str, Any]) -> tuple[int, int]:
    """From the first invocation to the last completion of the witness, in history ns."""
    t0 = min(int(d["invoke_s"] * 1e9) for d in w["details"])
    ends = [int(d["complete_s"] * 1e9) for d in w["details"] if d.get("complete_s") is not None]
    t1 = max(ends) if ends else t0
    return t0, max(t1, t0 + 1)


def op_label(d: dict[str, Any]) -> str:
    f = d.get("f")
    v = d.get("value")
    if f == "read":
        text = f"read -> {_j(d.get('result'))}" if d.get("type") == "ok" else "read -> ?"
    elif f == "cas" and isinstance(v, list) and len(v) == 2:
        text = f"cas {_j(v[0])}->{_j(v[1])}"
    else:
        text = f"{f} {_j(v)}"
    if d.get("type") not in ("ok", None):
        text += f" ({d.get('type')})"
    return text


def _j(v: Any) -> str:
    import json

    t = json.dumps(v, default=str)
    return t if len(t) <= 24 else t[:21] + "..."


@dataclass
class FaultNote:
    interval: FaultInterval
    during: bool  # in force during the witness (else: the nearest one)

    def sentence(self) -> str:
        iv = self.interval
        end = "not healed" if iv.open else f"until {duration(iv.end_ns)}"
        return f"{iv.text or iv.label}, from {duration(iv.start_ns)} {end}"


def faults_during(w: dict[str, Any], faults: list[FaultInterval]) -> list[FaultNote]:
    """Faults in force during the witness; when none, the nearest one before or after."""
    t0, t1 = span_ns(w)
    hit = [FaultNote(iv, True) for iv in faults if iv.start_ns <= t1 and iv.end_ns >= t0]
    if hit or not faults:
        return hit
    nearest = min(faults, key=lambda iv: min(abs(iv.start_ns - t1), abs(t0 - iv.end_ns)))
    return [FaultNote(nearest, False)]


def faults_sentence(notes: list[FaultNote], w: dict[str, Any]) -> str:
    if not notes:
        return "No fault is recorded in this history: the anomaly happened without one."
    if notes[0].during:
        return "Fault in force during these ops: " + "; ".join(n.sentence() for n in notes) + "."
    t0, t1 = span_ns(w)
    iv = notes[0].interval
    when = (f"{duration(t0 - iv.end_ns)} after it ended" if iv.end_ns < t0
            else f"{duration(iv.start_ns - t1)} before it began")
    return f"No fault was in force during these ops (the nearest: {notes[0].sentence()}; the witness came {when})."


def witness_svg(w: dict[str, Any], notes: list[FaultNote], width: int = 900) -> str:
    """The witness as an inline SVG timeline (no script needed)."""
    details = sorted(w["details"], key=lambda d: d["invoke_s"])
    procs: list[Any] = []
    for d in details:
        if d["process"] not in procs:
            procs.append(d["process"])
    t0, t1 = span_ns(w)
    pad = max((t1 - t0) // 8, 1)
    lo, hi = max(0, t0 - pad), t1 + pad
    n_bands = sum(1 for n in notes if n.during)
    left, right, top, lane_h = 110, 20, 22 + 13 * max(1, n_bands), 60
    plot_w = width - left - right
    height = top + lane_h * len(procs) + 34

    def x(t: float) -> float:
        return left + (min(max(t, lo), hi) - lo) / (hi - lo) * plot_w

    out = [f'<svg class="witness-svg" id="witness-svg" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="the witness ops on a timeline">']
    for i, p in enumerate(procs):
        y = top + i * lane_h
        out.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{lane_h - 4}" fill="#f7f7f7"/>')
        out.append(f'<text class="witness-lane" x="6" y="{y + lane_h / 2 + 2:.0f}" font-size="12" '
                   f'fill="#333">process {escape(str(p))}</text>')
    for k, n in enumerate(x for x in notes if x.during):
        iv = n.interval
        xa, xb = x(iv.start_ns), x(iv.end_ns)
        ly = top - 3 - 13 * k  # one label row per band
        out.append(f'<rect class="witness-fault" x="{xa:.1f}" y="{ly - 11}" width="{max(2.0, xb - xa):.1f}" '
                   f'height="{top - ly + 11 + lane_h * len(procs)}" fill="#d50000" fill-opacity="0.12">'
                   f"<title>{escape(n.sentence())}</title></rect>")
        out.append(f'<text class="witness-fault-label" x="{xa + 3:.1f}" y="{ly}" font-size="11" '
                   f'fill="#8b0000">{escape(iv.text or iv.label)}</text>')
    label_end: dict[Any, float] = {}  # per lane: where the last label above the bars ends
    for d in details:
        y = top + procs.index(d["process"]) * lane_h
        a = x(d["invoke_s"] * 1e9)
        done = d.get("complete_s")
        b = x(done * 1e9) if done is not None else left + plot_w
        color = _COLORS.get(d.get("type") or "pending", "#cfcfcf")
        node = f" @ {d['node']}" if d.get("node") else ""
        tip = (f"op {d['index']}: {op_label(d)}{node}, invoked {duration(d['invoke_s'] * 1e9)}, "
               + (f"completed {duration(done * 1e9)}" if done is not None else "never completed"))
        out.append(f'<rect class="witness-op" data-index="{d["index"]}" x="{a:.1f}" y="{y + 16}" '
                   f'width="{max(3.0, b - a):.1f}" height="{lane_h - 36}" fill="{color}" stroke="#d50000" '
                   f'stroke-width="1.5" rx="2"><title>{escape(tip)}</title></rect>')
        text = op_label(d) + node
        # a label that would run into the previous one of its lane goes under the bar
        below = label_end.get(d["process"], -1.0) > a
        if not below:
            label_end[d["process"]] = a + 7.0 * len(text)
        ty = y + lane_h - 8 if below else y + 12
        # a label that would run off the right edge ends at its bar's end instead
        anchor, tx = ("end", max(b, a + 3.0)) if a + 7.0 * len(text) > width - 4 else ("start", a)
        out.append(f'<text class="witness-op-label" x="{tx:.1f}" y="{ty}" font-size="12" fill="#111" '
                   f'text-anchor="{anchor}">{escape(text)}</text>')
    # axis: a few ticks, in seconds since the history began
    y_axis = top + lane_h * len(procs) + 4
    out.append(f'<line x1="{left}" y1="{y_axis}" x2="{left + plot_w}" y2="{y_axis}" stroke="#999"/>')
    for k in range(5):
        t = lo + (hi - lo) * k / 4
        xt = x(t)
        out.append(f'<line x1="{xt:.1f}" y1="{y_axis}" x2="{xt:.1f}" y2="{y_axis + 4}" stroke="#999"/>')
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text x="{xt:.1f}" y="{y_axis + 16}" font-size="10" fill="#555" text-anchor="{anchor}">'
                   f"{duration(t)}</text>")
    out.append("</svg>")
    return "".join(out)


# -- node logs --------------------------------------------------------------------------


def wall_start_ns(run: RunData) -> int | None:
    for doc in (run.results, run.test):
        c = doc.get("clock") if isinstance(doc, dict) else None
        if isinstance(c, dict) and isinstance(c.get("history_start_unix_ns"), int):
            return c["history_start_unix_ns"]
    return None


def _log_time_ns(line: str) -> int | None:
    m = _LOG_TS.match(line)
    if not m:
        return None
    try:
        dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return int(dt.timestamp()) * 1_000_000_000 + int(m.group(2)) * 1_000_000  # naive = local time


@dataclass
class LogExcerpt:
    node: str
    path: Path
    lines: list[str]
    more: int  # lines in the window not shown
    skewed: bool  # a clock fault moved this node's clock during the run


def node_log_excerpts(run: RunData, w: dict[str, Any], faults: list[FaultInterval],
                      window_s: float = LOG_WINDOW_S, max_lines: int = MAX_LOG_LINES) -> list[LogExcerpt]:
    """Each involved node's log lines from ``window_s`` before the witness to ``window_s`` after."""
    start = wall_start_ns(run)
    logs = run.run_dir / "nodes"
    if start is None or not logs.is_dir():
        return []
    t0, t1 = span_ns(w)
    lo, hi = start + t0 - int(window_s * 1e9), start + t1 + int(window_s * 1e9)
    nodes = [d["node"] for d in w["details"] if d.get("node")]
    skewed = {n for iv in faults if "clock" in iv.kind for n in iv.nodes}
    out = []
    for node in dict.fromkeys(nodes):
        path = logs / f"{node}.log"
        if not path.is_file():
            continue
        picked: list[str] = []
        more = 0
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    ts = _log_time_ns(line)
                    if ts is None or not lo <= ts <= hi:
                        continue
                    if len(picked) < max_lines:
                        picked.append(line.rstrip("\n"))
                    else:
                        more += 1
        except OSError:
            continue
        out.append(LogExcerpt(node, path, picked, more, node in skewed))
    return out


def logs_html(excerpts: list[LogExcerpt], run: RunData, window_s: float = LOG_WINDOW_S) -> str:
    if not excerpts:
        if wall_start_ns(run) is None:
            return ('<p class="muted">Node logs: this history does not record its wall-clock start, so its '
                    "times cannot be matched to node log lines.</p>")
        return ""
    parts = [f'<div id="witness-logs"><h3>Node logs around the witness (&plusmn;{window_s:g} s)</h3>']
    for ex in excerpts:
        note = " (its clock was moved by a fault: its timestamps are skewed)" if ex.skewed else ""
        body = "\n".join(ex.lines) or "(no log line in this window)"
        if ex.more:
            body += f"\n... {ex.more} more line(s) in this window: nodes/{ex.node}.log"
        parts.append(f'<details class="node-log" open><summary><a href="nodes/{escape(ex.node)}.log">'
                     f"{escape(ex.node)}</a>{escape(note)}: {len(ex.lines) + ex.more} line(s)</summary>"
                     f"<pre>{escape(body)}</pre></details>")
    parts.append("</div>")
    return "\n".join(parts)


def cycle_labels(cycle: dict[str, Any], details: list[dict[str, Any]]) -> dict[Any, str]:
    """Cycle op (a completion index) -> "T1 (read -> 19 @ n2)"."""
    by_inv = {d.get("index"): d for d in details}
    out = {}
    for t in cycle.get("txns") or []:
        d = by_inv.get(t.get("invoke_index"))
        what = f"{op_label(d)}" + (f" @ {d['node']}" if d.get("node") else "") if d else f"op {t.get('index')}"
        out[t.get("index")] = f"{t.get('name')} ({what})"
    return out


def witness_text(run: RunData, full: bool = False) -> list[str]:
    """The witness as plain text lines (``jepsenlike show`` prints them first)."""
    from jepsenlike.report.model import fault_intervals, merge_same_span

    w = witness_of(run)
    if w is None:
        return []
    faults = merge_same_span(fault_intervals(run.ops, run.end_ns)[0])
    notes = faults_during(w, faults)
    total = w.get("part_ops")
    of = f" of the key's {total}" if isinstance(total, int) else ""
    on_key = f" on key {_j(w.get('key'))}" if w.get("key") is not None else ""
    lines = [f"witness: {w.get('anomaly', 'not linearizable')}{on_key}, "
             f"{len(w['details'])} ops{of}" + ("" if w.get("minimal") else " (shrinking stopped at its time limit)"),
             f"  {w.get('reason', '')}"]
    lines.append(f"  {'op':>6}  {'process':>7}  {'node':<6} {'invoked':>10}  {'completed':>10}  what")
    for d in sorted(w["details"], key=lambda d: d["invoke_s"]):
        done = d.get("complete_s")
        lines.append(f"  {'#' + str(d['index']):>6}  {str(d['process']):>7}  {str(d.get('node') or '-'):<6} "
                     f"{duration(d['invoke_s'] * 1e9):>10}  "
                     f"{(duration(done * 1e9) if done is not None else 'never'):>10}  {op_label(d)}")
    lines.append(f"  {faults_sentence(notes, w)}")
    cycle = w.get("cycle")
    if isinstance(cycle, dict):
        lines.append(f"  dependency cycle ({cycle.get('type')}):")
        labels = cycle_labels(cycle, w["details"])
        for s in cycle.get("steps") or []:
            lines.append(f"    {labels.get(s.get('from'), s.get('from'))} -> {labels.get(s.get('to'), s.get('to'))} "
                         f"[{s.get('rel')}]: {s.get('why')}")
        if not cycle.get("steps") and cycle.get("explanation"):
            lines.append(f"    {cycle['explanation']}")
    for ex in node_log_excerpts(run, w, faults):
        shown = ex.lines if full else ex.lines[:6]
        skew = " (clock moved by a fault: skewed timestamps)" if ex.skewed else ""
        lines.append(f"  {ex.node} log around the witness{skew}: {len(ex.lines) + ex.more} line(s), {ex.path}")
        lines.extend(f"    {line}" for line in shown)
        if len(ex.lines) + ex.more > len(shown):
            lines.append(f"    ... {len(ex.lines) + ex.more - len(shown)} more")
    return lines
