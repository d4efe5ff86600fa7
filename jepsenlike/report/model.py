"""What a report shows, read from a run directory.

Theory of operation
-------------------
A report is built from the files of one run directory and nothing else:
``test.json`` (config, seed, phases), ``results.json`` (verdict, the
checker's witness, statistics) and ``history.jsonl`` (every event). This
module turns them into plain data that :mod:`.html`, :mod:`.plots`,
``jepsenlike show`` and the CI writers all share:

* :func:`load_run` reads the three files. A run that was interrupted or
  crashed may have a torn last history line or no ``results.json``; the
  report is still drawn from what is there, with a note saying what was
  missing (a report is most needed for a run that went wrong).
* :func:`op_pairs` pairs each client invocation with its completion.
* :func:`fault_intervals` turns the nemesis events (instantaneous
  invoke + ``info`` pairs) into intervals: a ``kill`` of n5 is open until a
  ``start`` names n5; ``pause`` until ``resume``; ``start-X`` until
  ``stop-X``; a partition until a heal. A fault still open at the end of the
  history runs to the end. A nemesis ``f`` that is neither an opener nor a
  closer is an instant event.
* :func:`find_witnesses` walks the checker's details (nested results of
  composed checkers too) and returns every witness in one shape:
  the linearizability search's failures (key, the op that could not be
  linearized, the reason, the longest partial linearizations with model
  states) and the graph checker's anomalies (type, ops, the cycle's steps with
  a ``why`` per edge, the explanation). Ops are referred to by history index;
  :func:`invocation_index` maps a completion index to its invocation, which is
  how the timeline names a bar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jepsenlike.errors import JepsenlikeError
from jepsenlike.history import NEMESIS, Op
from jepsenlike.history_io import read_history_prefix

TEST_FILE = "test.json"
HISTORY_FILE = "history.jsonl"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"


@dataclass
class RunData:
    """The files of one run, loaded; ``notes`` says what was missing or torn."""

    run_dir: Path
    test: dict[str, Any]
    results: dict[str, Any]
    ops: list[Op]
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.test.get("config") or {}

    @property
    def name(self) -> str:
        return str(self.test.get("name") or self.config.get("name") or self.run_dir.parent.name)

    @property
    def valid(self) -> Any:
        return self.results.get("valid", "unknown") if self.results else "unknown"

    @property
    def seed(self) -> Any:
        return self.test.get("seed", self.results.get("seed"))

    @property
    def end_ns(self) -> int:
        return self.ops[-1].time if self.ops else 0


def verdict_word(valid: Any) -> str:
    """VALID, INVALID or UNKNOWN."""
    if valid is True:
        return "VALID"
    if valid is False:
        return "INVALID"
    return "UNKNOWN"


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.exists():
        notes.append(f"{path.name} is missing")
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as e:
        notes.append(f"{path.name} could not be read: {e}")
        return {}
    if not isinstance(doc, dict):
        notes.append(f"{path.name} is not a JSON object")
        return {}
    return doc


def read_ops(path: Path, notes: list[str]) -> list[Op]:
    """The history's events, up to the first bad line (which is noted, not raised)."""
    if not path.exists():
        notes.append(f"{path.name} is missing")
        return []
    hist, error = read_history_prefix(path)
    notes.extend(hist.notes)
    if error is not None:
        notes.append(f"{error}; the report shows the {len(hist.ops)} events before it")
    return hist.ops


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory (no cluster needed). Missing files become notes.

    Raises:
        JepsenlikeError: ``run_dir`` is not a directory.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise JepsenlikeError(f"RUN_DIR: no such directory: {d}")
    notes: list[str] = []
    test = _read_json(d / TEST_FILE, notes)
    results = _read_json(d / RESULTS_FILE, notes)
    ops = read_ops(d / HISTORY_FILE, notes)
    return RunData(d.resolve(), test, results, ops, notes)


# -- client ops -----------------------------------------------------------------


@dataclass(frozen=True)
class OpPair:
    """A client invocation and its completion (None: it never completed)."""

    inv: Op
    comp: Op | None

    @property
    def outcome(self) -> str:
        return self.comp.type if self.comp is not None else "pending"

    @property
    def latency_ns(self) -> int | None:
        return None if self.comp is None else self.comp.time - self.inv.time


def op_pairs(ops: list[Op]) -> list[OpPair]:
    """Client invocations with their completions, in invocation order.

    Pairing is by process (a process runs one op at a time); a completion with
    no pending invocation is ignored here (``read_history`` reports those).
    """
    pending: dict[Any, int] = {}
    comps: dict[int, Op] = {}
    invs: list[Op] = []
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            pending[op.process] = len(invs)
            invs.append(op)
        else:
            i = pending.pop(op.process, None)
            if i is not None:
                comps[i] = op
    return [OpPair(inv, comps.get(i)) for i, inv in enumerate(invs)]


def invocation_index(ops: list[Op]) -> dict[int, int]:
    """Map every event index (invocation or completion) to its invocation's index."""
    out: dict[int, int] = {}
    pending: dict[Any, int] = {}
    for op in ops:
        if op.type == "invoke":
            pending[op.process] = op.index
            out[op.index] = op.index
        else:
            inv = pending.pop(op.process, None)
            out[op.index] = inv if inv is not None else op.index
    return out


# -- faults ---------------------------------------------------------------------

#: f that opens a fault -> the fs that close it.
OPENERS: dict[str, tuple[str, ...]] = {
    "kill": ("start", "restart"),
    "pause": ("resume",),
    "partition": ("heal", "stop-partition"),
    "bump-clock": ("reset-clock",),
    "strobe-clock": ("reset-clock",),
    "clock-rate": ("reset-clock",),
    "drift-clock": ("reset-clock",),
    "slow": ("fast", "stop-slow", "heal"),
    "flaky": ("stop-flaky", "heal"),
}


def _closers_to_openers() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for opener, closers in OPENERS.items():
        for c in closers:
            out.setdefault(c, set()).add(opener)
    return out


CLOSERS = _closers_to_openers()


@dataclass
class FaultInterval:
    """A fault in force from ``start_ns`` to ``end_ns`` (``open``: never healed)."""

    kind: str
    start_ns: int
    end_ns: int
    nodes: list[str]
    label: str
    open: bool = False
    error: Any = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start_ns, "end": self.end_ns, "nodes": self.nodes,
                "label": self.label, "open": self.open, "error": self.error, "text": self.text or self.label}


def _names(nodes: Any) -> str:
    return ", ".join(str(n) for n in nodes)


def describe_grudge(grudge: dict[str, Any]) -> str:
    """A grudge (node -> the nodes it hears nothing from) in words: who was cut off from whom."""
    g = {str(n): sorted(str(x) for x in (drops or [])) for n, drops in grudge.items()}
    nodes = sorted(set(g) | {x for d in g.values() for x in d})
    symmetric = all(n in g.get(x, []) for n, d in g.items() for x in d)
    if not any(g.values()):
        return "no link cut"
    if symmetric:
        # sides: nodes that still hear each other, when that is an equivalence (a clean split)
        reach = {n: {x for x in nodes if x != n and x not in g.get(n, [])} | {n} for n in nodes}
        sides = sorted({frozenset(r) for r in reach.values()}, key=lambda s: sorted(s))
        clean = all(reach[x] == r for r in sides for x in r)
        if clean and len(sides) > 1:
            cut = [s for s in sides if len(s) == 1]
            text = " | ".join("{" + _names(sorted(s)) + "}" for s in sides)
            if len(sides) == 2 and cut:
                lone = next(iter(cut[0]))
                return f"{lone} cut off from {_names(g[lone])} (sides {text})"
            return f"network split into {text}"
        return "; ".join(f"{n} cut off from {_names(d)}" for n, d in sorted(g.items()) if d)
    return "; ".join(f"{n} hears nothing from {_names(d)}" for n, d in sorted(g.items()) if d)


def describe_fault(f: str, value: Any, nodes: list[str] | None = None) -> str:
    """One phrase saying what a fault did: the grudge, the clock offsets, the nodes killed."""
    v = value if isinstance(value, dict) else {}
    if isinstance(v.get("grudge"), dict):
        return f"partition: {describe_grudge(v['grudge'])}"
    if isinstance(v.get("offsets"), dict):
        return "clock bump: " + ", ".join(
            f"{n}'s clock moved {float(off):+.3f} s" for n, off in sorted(v["offsets"].items())
            if isinstance(off, (int, float)))
    if isinstance(v.get("strobe"), dict):
        return "clock strobe: " + ", ".join(
            f"{n}'s clock flips {s.get('delta', 0):+.3f} s every {s.get('period', '?')} s"
            for n, s in sorted(v["strobe"].items()) if isinstance(s, dict))
    if isinstance(v.get("rates"), dict):
        return "clock drift: " + ", ".join(
            f"{n}'s clock runs at {float(r):.2f}x" for n, r in sorted(v["rates"].items())
            if isinstance(r, (int, float)))
    who = _names(nodes) if nodes else ""
    words = {"kill": "killed", "pause": "paused (SIGSTOP)", "slow": "slowed", "flaky": "links made flaky"}
    if f in words and who:
        return f"{who} {words[f]}"
    return f"{f} {who}".strip()


def _nodes_of(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        nodes = value.get("nodes")
        if isinstance(nodes, list):
            return [str(n) for n in nodes]
        grudge = value.get("grudge")
        if isinstance(grudge, dict):
            return sorted(str(n) for n, drops in grudge.items() if drops)
    if isinstance(value, list) and all(isinstance(n, str) for n in value):
        return list(value)
    return None


def _label(kind: str, nodes: list[str] | None, value: Any) -> str:
    if nodes:
        return f"{kind} {','.join(nodes)}"
    if isinstance(value, dict) and "targets" in value:
        return f"{kind} ({value['targets']})"
    return kind


def _opener_of(f: str) -> str | None:
    if f in OPENERS:
        return f
    if f.startswith("start-"):
        return f
    return None


def _openers_closed_by(f: str) -> set[str]:
    out = set(CLOSERS.get(f, ()))
    if f.startswith("stop-"):
        out.add("start-" + f[len("stop-"):])
    return out


def merge_same_span(faults: list[FaultInterval]) -> list[FaultInterval]:
    """One interval per (kind, start, end): a pause of n3 and n4 that began and ended together."""
    out: dict[tuple[str, int, int, bool], FaultInterval] = {}
    for iv in faults:
        k = (iv.kind, iv.start_ns, iv.end_ns, iv.open)
        if k in out:
            out[k].nodes = sorted(set(out[k].nodes) | set(iv.nodes))
            out[k].label = _label(iv.kind, out[k].nodes, None)
            if iv.text and iv.text not in out[k].text:
                merged = out[k].text.split(": ", 1)
                extra = iv.text.split(": ", 1)
                same_kind = len(merged) == 2 and len(extra) == 2 and merged[0] == extra[0]
                out[k].text = f"{out[k].text}, {extra[1]}" if same_kind else f"{out[k].text}; {iv.text}"
        else:
            out[k] = FaultInterval(iv.kind, iv.start_ns, iv.end_ns, list(iv.nodes), iv.label, iv.open, iv.error,
                                   iv.text)
    return list(out.values())


@dataclass
class NemesisEvent:
    """One completed nemesis op: when it took effect and what it reported."""

    index: int
    time_ns: int
    f: str
    value: Any
    error: Any


def nemesis_events(ops: list[Op]) -> list[NemesisEvent]:
    """The completions of nemesis ops (the invocation's value if it never completed)."""
    out: list[NemesisEvent] = []
    pending: Op | None = None
    for op in ops:
        if op.process != NEMESIS:
            continue
        if op.type == "invoke":
            pending = op
        else:
            out.append(NemesisEvent(op.index, op.time, op.f, op.value, op.error))
            pending = None
    if pending is not None:
        out.append(NemesisEvent(pending.index, pending.time, pending.f, pending.value,
                                "never completed"))
    return out


def _one_node(value: Any, node: str) -> Any:
    """A clock fault's value narrowed to one node (its own offset, strobe or rate)."""
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for k in ("offsets", "strobe", "rates"):
        if isinstance(value.get(k), dict):
            out[k] = {node: value[k][node]} if node in value[k] else {}
    return out


def fault_intervals(ops: list[Op], end_ns: int | None = None) -> tuple[list[FaultInterval], list[NemesisEvent]]:
    """Fault intervals and the nemesis events that were neither opener nor closer.

    A closer that names nodes closes only those nodes' faults; one that names
    no nodes (``{"nodes": []}``) closes nothing; one without node information
    closes every open fault it can close. A failed opener (``error`` set and no
    nodes reported) opens nothing.
    """
    end = end_ns if end_ns is not None else (ops[-1].time if ops else 0)
    open_: list[FaultInterval] = []
    done: list[FaultInterval] = []
    instants: list[NemesisEvent] = []
    for ev in nemesis_events(ops):
        nodes = _nodes_of(ev.value)
        opener = _opener_of(ev.f)
        closes = _openers_closed_by(ev.f)
        if opener is not None and not (ev.error and not nodes):
            # a grudge is one fault over several nodes; a kill or pause of several nodes
            # is healed node by node, so it becomes one interval per node
            whole = isinstance(ev.value, dict) and "grudge" in ev.value
            if nodes and whole:
                open_.append(FaultInterval(opener, ev.time_ns, end, nodes, _label(opener, nodes, None),
                                           open=True, error=ev.error, text=describe_fault(ev.f, ev.value, nodes)))
            elif nodes:
                for n in nodes:
                    one = _one_node(ev.value, n)
                    open_.append(FaultInterval(opener, ev.time_ns, end, [n], _label(opener, [n], None),
                                               open=True, error=ev.error, text=describe_fault(ev.f, one, [n])))
            else:
                open_.append(FaultInterval(opener, ev.time_ns, end, [], _label(opener, None, ev.value),
                                           open=True, error=ev.error, text=describe_fault(ev.f, ev.value)))
        elif closes:
            keep = []
            for iv in open_:
                hit = iv.kind in closes and (nodes is None or not iv.nodes or set(iv.nodes) & set(nodes))
                if hit:
                    iv.end_ns, iv.open = ev.time_ns, False
                    done.append(iv)
                else:
                    keep.append(iv)
            open_ = keep
        else:
            instants.append(ev)
    done.extend(open_)
    done.sort(key=lambda iv: (iv.start_ns, iv.kind, iv.nodes))
    return done, instants


# -- witnesses ------------------------------------------------------------------


@dataclass
class Witness:
    """One reason a run is not valid, in a checker-independent shape.

    ``kind`` is ``linearizability`` (a failure of the search) or ``graph`` (a
    dependency-graph anomaly). ``blocked`` are the history indices of the ops
    the anomaly is about (the op that could not be linearized; every op of a
    cycle); ``related`` are the ops of the explanation (the partial
    linearization's steps). ``record`` is the checker's own dict, untouched.
    """

    kind: str
    title: str
    explanation: str
    blocked: list[int]
    related: list[int]
    record: dict[str, Any]
    source: str = ""


def _walk(obj: Any, path: str, depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    if depth > 6 or not isinstance(obj, dict):
        return
    yield path, obj
    for k, v in obj.items():
        if k in ("anomalies", "failures", "partial_linearizations", "stats", "nemesis", "traceback",
                 "graph", "witness"):
            continue
        if isinstance(v, dict):
            yield from _walk(v, f"{path}.{k}" if path else str(k), depth + 1)


def _lin_witness(fail: dict[str, Any], source: str) -> Witness:
    op = fail.get("op") or {}
    key = fail.get("key")
    related: list[int] = []
    for pl in fail.get("partial_linearizations") or []:
        for s in pl.get("steps") or []:
            if isinstance(s.get("index"), int):
                related.append(s["index"])
    blocked = [op["index"]] if isinstance(op.get("index"), int) else []
    for c in fail.get("candidates") or []:
        if isinstance(c.get("index"), int) and c["index"] not in blocked:
            blocked.append(c["index"])
    desc = op.get("description") or (f"op {op.get('index')}" if op else "an op")
    title = (f"key {key!r}: " if key is not None else "") + f"{desc} cannot be linearized"
    return Witness("linearizability", title, str(fail.get("reason") or ""), blocked, related, fail, source)


def _graph_witness(rec: dict[str, Any], source: str) -> Witness:
    ops = [i for i in rec.get("ops") or [] if isinstance(i, int)]
    for t in rec.get("txns") or []:
        if isinstance(t.get("index"), int) and t["index"] not in ops:
            ops.append(t["index"])
    return Witness("graph", str(rec.get("type", "anomaly")), str(rec.get("explanation") or ""), ops, [],
                   rec, source)


def find_witnesses(results: dict[str, Any], limit: int = 50) -> list[Witness]:
    """Every witness in a results document (at most ``limit``), first ones first."""
    out: list[Witness] = []
    seen: set[int] = set()
    for path, d in _walk(results, ""):
        fails = d.get("failures")
        if isinstance(fails, list) and fails and isinstance(fails[0], dict) and "op" in fails[0]:
            for f in fails:
                if isinstance(f, dict) and id(f) not in seen:
                    seen.add(id(f))
                    out.append(_lin_witness(f, path))
        elif "partial_linearizations" in d and isinstance(d.get("op"), dict) and d.get("valid") is False:
            out.append(_lin_witness(d, path))
        anomalies = d.get("anomalies")
        if isinstance(anomalies, dict):
            for records in anomalies.values():
                for rec in records if isinstance(records, list) else []:
                    if isinstance(rec, dict) and id(rec) not in seen:
                        seen.add(id(rec))
                        out.append(_graph_witness(rec, path))
    return out[:limit]


def fault_coverage(results: dict[str, Any]) -> dict[str, Any] | None:
    """The results' fault coverage section, under whichever name a version used."""
    for key in ("fault_coverage", "coverage"):
        v = results.get(key) or (results.get("nemesis") or {}).get(key)
        if v:
            return v if isinstance(v, dict) else {"coverage": v}
    return None


COVERAGE_COLUMNS = ("status", "fired", "seconds", "attempts", "reason")


def coverage_rows(cov: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Fault coverage as a table: the columns, then one row per fault (fault name first)."""
    cols: list[str] = []
    for v in cov.values():
        for k in v if isinstance(v, dict) else ["coverage"]:
            if k not in cols:
                cols.append(k)
    cols.sort(key=lambda c: (COVERAGE_COLUMNS.index(c) if c in COVERAGE_COLUMNS else len(COVERAGE_COLUMNS), c))
    rows = []
    for name, v in cov.items():
        d = v if isinstance(v, dict) else {"coverage": v}
        rows.append([name, *(d.get(c, "") for c in cols)])
    return ["fault", *cols], rows


def fired_faults(results: dict[str, Any]) -> dict[str, int]:
    """How many fault ops of each ``f`` touched something (empty heals left out)."""
    counts: dict[str, int] = {}
    for f in (results.get("nemesis") or {}).get("fired", []) or []:
        if not isinstance(f, dict):
            continue
        v = f.get("value")
        if isinstance(v, dict) and v.get("nodes") == []:
            continue
        counts[str(f.get("f"))] = counts.get(str(f.get("f")), 0) + 1
    return counts
