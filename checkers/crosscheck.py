"""Register histories checked twice: the dependency graph explains, the search decides.

Theory of operation
-------------------
A register history (read/write/cas with unique written values) goes to both
checkers: the linearizability search (:mod:`.linearizable`, the verdict of
record) and the graph checker (:mod:`.graph.registers`), whose cycles of 2-4
ops with a ``why`` per edge explain a violation the way a person reasons
about it. The graph checker is sound but incomplete on its own (non-unique
values, writes of unknown outcome nobody observed, concurrent blind writes):
those keys it hands to the search itself.

Both are complete decision procedures for what they decide, so they must
agree. :func:`reconcile` merges the two verdicts: a decided verdict beats an
undecided one (a graph cycle proves a violation even when the search ran out
of time), and two decided verdicts that differ are a *checker bug*: the
merged verdict is then ``unknown`` (never one of the two picked silently),
and the disagreement is returned so the caller can report it loudly.

:func:`witness_doc` builds ``results.json``'s ``witness`` for a
non-linearizable history: the minimal witness of :mod:`.witness`, and, for
registers, the graph checker's cycle over exactly the witness's ops (indices
mapped back to the history's).
"""

from __future__ import annotations

import re
from typing import Any

from jepsenlike.checkers.result import UNKNOWN, Result, Validity, check_safe
from jepsenlike.checkers.specs import Spec
from jepsenlike.history import History, Op

__all__ = ["GRAPH_MODELS", "blocked_op", "explain_violation", "graph_doc", "graph_check", "reconcile", "witness_doc",
           "witness_key", "witness_where"]

GRAPH_MODELS = ("register", "cas-register")


def graph_check(history: History, model_name: str, spec: Spec | None = None,
                timeout: float | None = 60.0) -> Result:
    """The graph checker on a register history (a crash is ``unknown``, never raised)."""
    from jepsenlike.checkers.graph.registers import check_registers

    return check_safe(check_registers, history, model_name=model_name, spec=spec, timeout=timeout)


KEEP_PER_TYPE = 3


def graph_doc(graph: Result, keep: int = KEEP_PER_TYPE) -> dict[str, Any]:
    """The graph checker's result for ``results.json``: every count, but only the first
    ``keep`` anomalies of each type (a stale-read run has hundreds of cycles, each a
    paragraph; the witness has the one that matters)."""
    doc = graph.to_dict()
    anomalies = doc.get("anomalies")
    if isinstance(anomalies, dict) and any(len(v) > keep for v in anomalies.values()):
        doc["anomalies"] = {k: v[:keep] for k, v in anomalies.items()}
        doc["anomalies_kept"] = (f"the first {keep} of each type; anomaly_counts has how many the "
                                 "checker found")
    return doc


def reconcile(search: Validity, graph: Validity) -> tuple[Validity, dict[str, Any] | None]:
    """The merged verdict of the search and the graph checker, and the disagreement if any."""
    decided = {v for v in (search, graph) if v is True or v is False}
    if len(decided) == 2:
        return UNKNOWN, {
            "search": search, "graph": graph,
            "message": (
                f"CHECKER BUG: the linearizability search says {_word(search)} but the graph "
                f"checker says {_word(graph)}; one of them is wrong, so the verdict is unknown. "
                "Please report this history (history.jsonl) as a jepsenlike bug."
            ),
        }
    if decided:
        return decided.pop(), None
    return UNKNOWN, None


def _word(v: Validity) -> str:
    return {True: "linearizable", False: "not linearizable"}.get(v, "undecided")  # type: ignore[arg-type]


def witness_key(search: Result | None, graph: Result | None) -> Any:
    """The key to shrink: the search's first bad key, else the key of the graph's first anomaly."""
    if search is not None and search.valid is False and "key" in search.details:
        return search.details["key"]
    if graph is not None and graph.valid is False:
        for records in (graph.details.get("anomalies") or {}).values():
            for rec in records:
                if "key" in rec:
                    return rec["key"]
                for t in rec.get("txns") or []:
                    v = t.get("value")
                    if isinstance(v, dict) and "key" in v:
                        return v["key"]
    return None


def blocked_op(search: Result | None, graph: Result | None = None) -> int | None:
    """Where to start shrinking: the history index of the op the search could not
    linearize, else the latest op of the graph checker's first cycle (None when neither)."""
    if search is not None and search.valid is False:
        at = (search.details.get("op") or {}).get("index")
        if isinstance(at, int):
            return at
    if graph is not None and graph.valid is False:
        for records in (graph.details.get("anomalies") or {}).values():
            for rec in records:
                invs = [t.get("invoke_index") for t in rec.get("txns") or []]
                invs = [i for i in invs if isinstance(i, int)]
                if invs:
                    return max(invs)
    return None


def witness_doc(history: History, spec: Spec, key: Any = None, *, blocked: int | None = None,
                time_budget: float = 2.0) -> dict[str, Any] | None:
    """``results.json``'s ``witness`` (None when no non-linearizable part was found in time)."""
    from jepsenlike.checkers.witness import minimal_witness

    w = minimal_witness(history, spec, key, blocked=blocked, time_budget=time_budget)
    if w is None:
        return None
    if spec.name in GRAPH_MODELS:
        cycle = witness_cycle(history, w["events"], spec)
        if cycle is not None:
            w["cycle"] = cycle
    return w


def explain_violation(history: History, spec: Spec, search: Result | None,
                      graph: Result | None) -> dict[str, Any] | None:
    """``results.json``'s ``witness`` for a violation the search or the graph found: the
    key and starting op taken from their results; a crash while shrinking is reported in
    the witness (``{"error": ...}``), never raised: the verdict stands without it."""
    try:
        return witness_doc(history, spec, witness_key(search, graph), blocked=blocked_op(search, graph))
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


_OP_REF = re.compile(r"\bop (\d+)\b")


def witness_cycle(history: History, events: list[int], spec: Spec) -> dict[str, Any] | None:
    """The graph checker's explanation of exactly these events: the shortest cycle
    (a realtime one first among equals), or a non-cycle anomaly, with the history's indices."""
    from jepsenlike.checkers.graph.registers import check_registers

    orig = sorted(events)
    sub = History.from_ops(
        [Op(n, history.ops[i].time, history.ops[i].process, history.ops[i].type, history.ops[i].f,
            history.ops[i].key, history.ops[i].value, history.ops[i].node, history.ops[i].error)
         for n, i in enumerate(orig)], source="<witness>")
    try:
        res = check_registers(sub, model_name=spec.name, spec=spec, timeout=5.0)
    except Exception:  # the witness stands without its picture
        return None
    records = [r for rs in (res.details.get("anomalies") or {}).values() for r in rs]
    if not records:
        return None

    def rank(r: dict[str, Any]) -> tuple[int, int, int, int]:
        # a cycle first; then the one through most of the witness's ops (a stale read's
        # cycle through the read explains more than one between the two writes), shortest
        steps = r.get("steps") or []
        covered = len({t.get("invoke_index") for t in r.get("txns") or []})
        return (0 if steps else 1, -covered, len(steps), 0 if "realtime" in str(r.get("type")) else 1)

    rec = min(records, key=rank)
    return _remap(rec, orig)


def _remap(obj: Any, orig: list[int], field: str = "") -> Any:
    if isinstance(obj, dict):
        return {k: _remap(v, orig, k) for k, v in obj.items()}
    if isinstance(obj, list):
        if field == "value":
            return obj
        return [_remap(v, orig, field) for v in obj]
    if isinstance(obj, str):
        return _OP_REF.sub(lambda m: f"op {orig[int(m.group(1))]}" if int(m.group(1)) < len(orig) else m.group(0), obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and field in ("ops", "index", "invoke_index", "from", "to"):
        return orig[obj] if 0 <= obj < len(orig) else obj
    return obj


def witness_where(w: dict[str, Any]) -> str:
    """``key 0, 3 ops [28, 40, 42]`` (no key for an unkeyed history)."""
    on = f"key {w['key']!r}, " if w.get("key") is not None else ""
    return f"{on}{len(w['ops'])} ops {w['ops']}"
