"""Registers with unique written values: infer version orders, else search.

Theory of operation
-------------------
Ops are ``read`` (value read), ``write`` (value) and ``cas`` (``[old, new]``)
on keys; every written value is unique per key, so a read names the write it
saw. Each key starts at the initial value (``None`` unless the spec says
otherwise). ``fail`` ops never happened; ``info`` writes and cas ops are
included only when observed (their value was read, or was a cas's ``old``);
an unobserved one can always be taken to have never happened, which removes
no linearization.

Version order. Under the hypothesis that the history is linearizable, these
*constraints* ``a << b`` between the versions (values) of a key hold:

* cas: ``old << new``, with nothing in between;
* real time between writes: a write that completed before another began
  comes first (kept small with a frontier of maximal completed writes);
* real time through a read: if write ``f`` completed before a read (or cas)
  began that saw value ``v`` written by another op, then ``f << v``; if the
  read saw the initial value, ``f`` contradicts it outright.

Dependency edges (see :mod:`.core`): ww for cas and read-derived constraints,
wr from a writer to each op that saw its value, rw from an op that saw ``v``
to the writers of ``v``'s direct successors in the constraint graph, plus
process and real-time edges. Every edge follows from linearizability, so a
cycle proves a violation.

Deciding. If there is no cycle and the constraints order each key's versions
totally (a unique topological order), the history is linearizable: a
topological order of the acyclic graph is a linearization in which every
read sees the latest write and every cas finds ``old`` just before it. A key
whose order stays partial (concurrent blind writes nobody disambiguated), or
whose written values repeat, is handed to the linearizability search
(:mod:`jepsenlike.checkers.linearizable`), and ``details["decided_by"]`` says
which keys each path decided.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from jepsenlike.checkers.result import Result
from jepsenlike.checkers.specs import thaw
from jepsenlike.errors import ConfigError, HistoryError
from jepsenlike.history import NEMESIS, History, Op

from .core import RW, WR, WW, DepGraph, Txn, add_order_edges, strongly_connected
from .cycles import find_cycles
from .explain import build_result, cycle_record

REGISTER_FS = ("read", "write", "cas")
_MAX_REPORTS = 50


class _Init:
    """The initial version of a key (a sentinel, distinct from any value)."""

    def __repr__(self) -> str:
        return "<initial value>"


INIT = _Init()


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


class RegisterAnalysis:
    """Version-order constraints and dependency edges of a register history."""

    def __init__(self, history: History, *, model_name: str, init: Any = None) -> None:
        self.history = history
        self.init_value = init
        self.txns: list[Txn] = []
        self.ignored: Counter[str] = Counter()
        self.anomalies: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.key_of: dict[int, Any] = {}
        # per key
        self.writers: dict[Any, dict[Any, Txn]] = {}
        self.failed_values: dict[Any, dict[Any, Txn]] = {}
        self.nonunique: set[Any] = set()
        self.keys: set[Any] = set()
        self.succ: dict[Any, dict[Any, dict[Any, tuple]]] = {}  # key -> a -> b -> reason
        self.ww_why: dict[tuple[int, int], tuple] = {}
        self.rw_why: dict[tuple[int, int], tuple] = {}
        self.wr_why: dict[tuple[int, int], tuple] = {}
        self._prepare(model_name)

    # ------------------------------------------------------------------ prepare

    def _prepare(self, model_name: str) -> None:
        src = self.history.source
        for inv, comp in self.history.pairs():
            f = inv.f
            if f not in REGISTER_FS:
                self.ignored[f] += 1
                continue
            where = f"{src}: op {inv.index}"
            if f == "cas":
                if model_name == "register":
                    raise ConfigError(
                        f"{where}: model 'register' has no cas; use model 'cas-register'"
                    )
                v = inv.value
                if not isinstance(v, (list, tuple)) or len(v) != 2:
                    raise HistoryError(f"{where}: a cas value must be [old, new], got {v!r}")
                value: Any = (_hashable(v[0]), _hashable(v[1]))
            elif f == "write":
                value = _hashable(inv.value)
            else:
                value = _hashable(comp.value) if comp is not None and comp.type == "ok" else None
            typ = "info" if comp is None else comp.type
            k = _hashable(inv.key)
            t = Txn(len(self.txns), inv.index, None if comp is None else comp.index,
                    inv.process, typ, f, [(f, k, value)])
            self.txns.append(t)
            self.keys.add(k)
        init = _hashable(self.init_value)
        for t in self.txns:
            f, k, v = t.mops[0]
            if f == "read":
                continue
            new = v if f == "write" else v[1]
            if t.type == "fail":
                self.failed_values.setdefault(k, {}).setdefault(new, t)
                continue
            w = self.writers.setdefault(k, {})
            if new in w or new == init:
                self.nonunique.add(k)
            w[new] = t
        # nodes: ok ops; info writes once observed (worklist over cas chains)
        pending: list[tuple[Any, Any]] = []
        for t in self.txns:
            f, k, v = t.mops[0]
            if t.type != "ok" or k in self.nonunique:
                t.node = False
                continue
            if f == "read":
                pending.append((k, v))
            elif f == "cas":
                pending.append((k, v[0]))
        seen: set[tuple[Any, Any]] = set()
        while pending:
            k, v = pending.pop()
            if (k, v) in seen:
                continue
            seen.add((k, v))
            w = self.writers.get(k, {}).get(v)
            if w is not None and not w.node:
                w.node = True
                if w.f == "cas":
                    pending.append((k, w.mops[0][2][0]))

    def _version_of_read(self, t: Txn) -> Any:
        """The version an op observed: a read's value, a cas's old value (INIT for init)."""
        f, k, v = t.mops[0]
        seen = v if f == "read" else v[0]
        if seen == _hashable(self.init_value) and seen not in self.writers.get(k, {}):
            return INIT
        return seen

    def _report(self, kind: str, rec: dict[str, Any]) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= _MAX_REPORTS:
            rec["type"] = kind
            self.anomalies.append(rec)

    # ------------------------------------------------------------------ edges

    def _constrain(self, k: Any, a: Any, b: Any, reason: tuple) -> None:
        if a == b:
            return
        s = self.succ.setdefault(k, {}).setdefault(a, {})
        s.setdefault(b, reason)

    def build(self, g: DepGraph) -> None:
        adj = self._adj = g.adj
        writers = self.writers
        # observations: wr edges, garbage / aborted reads
        for t in self.txns:
            if not t.node:
                continue
            f, k, v = t.mops[0]
            if f == "write":
                continue
            seen = self._version_of_read(t)
            if seen is INIT:
                if f == "cas":
                    self._constrain(k, INIT, v[1], ("cas", t.id))
                continue
            w = writers.get(k, {}).get(seen)
            if w is None or not w.node:
                failed = self.failed_values.get(k, {}).get(seen)
                what = "read" if f == "read" else "cas expected"
                if failed is not None:
                    self._report("G1a", {
                        "ops": [failed.index, t.index], "key": k, "value": seen,
                        "explanation": f"op {t.index} {what} {seen!r} on key {k!r}, a value "
                        f"only written by op {failed.index}, which failed (aborted read)",
                    })
                elif w is None:
                    self._report("garbage-read", {
                        "ops": [t.index], "key": k, "value": seen,
                        "explanation": f"op {t.index} {what} {seen!r} on key {k!r}, a value "
                        "no op ever wrote",
                    })
                continue
            if w is not t:
                adj[w.id][t.id] = adj[w.id].get(t.id, 0) | WR
                self.wr_why[(w.id, t.id)] = (k, seen)
            if f == "cas":
                self._constrain(k, seen, v[1], ("cas", t.id))
        self._realtime_constraints()
        # ww edges for cas and read-derived constraints; rw edges to successors
        for k, succ in self.succ.items():
            w = writers.get(k, {})
            for a, bs in succ.items():
                if a is INIT:
                    continue
                wa = w[a]
                for b, reason in bs.items():
                    if reason[0] in ("cas", "rt-read"):
                        wb = w[b]
                        adj[wa.id][wb.id] = adj[wa.id].get(wb.id, 0) | WW
                        self.ww_why.setdefault((wa.id, wb.id), (k, a, b, reason))
        firsts: dict[Any, list[Any]] = {}
        for k in self.keys:
            succ = self.succ.get(k, {})
            has_pred = {b for a, bs in succ.items() if a is not INIT for b in bs}
            firsts[k] = [
                v for v, t in self.writers.get(k, {}).items() if t.node and v not in has_pred
            ]
        for t in self.txns:
            if not t.node or t.f == "write":
                continue
            f, k, v = t.mops[0]
            seen = self._version_of_read(t)
            if seen is not INIT and (writers.get(k, {}).get(seen) is None
                                     or not writers[k][seen].node):
                continue
            nexts = list(self.succ.get(k, {}).get(seen, {}))
            if seen is INIT:
                nexts += firsts[k]
            for s in nexts:
                ws = writers[k][s]
                if ws is t:
                    continue
                adj[t.id][ws.id] = adj[t.id].get(ws.id, 0) | RW
                reason = self.succ.get(k, {}).get(seen, {}).get(s, ("first",))
                self.rw_why.setdefault((t.id, ws.id), (k, seen, s, reason))

    def _realtime_constraints(self) -> None:
        events: dict[Any, list[tuple[int, int, Txn]]] = {}
        for t in self.txns:
            if not t.node:
                continue
            k = t.mops[0][1]
            ev = events.setdefault(k, [])
            ev.append((t.invoke, 0, t))
            if t.type == "ok" and t.f != "read" and t.complete is not None:
                ev.append((t.complete, 1, t))
        for k, ev in events.items():
            ev.sort(key=lambda e: e[0])
            frontier: set[int] = set()
            preds: dict[int, frozenset[int]] = {}
            w = self.writers.get(k, {})
            for _, kind, t in ev:
                f, _, v = t.mops[0]
                if kind == 1:
                    frontier -= preds.get(t.id, frozenset())
                    frontier.add(t.id)
                    continue
                if f != "read":
                    new = v if f == "write" else v[1]
                    preds[t.id] = frozenset(frontier)
                    for fid in frontier:
                        fv = self._written(self.txns[fid])
                        self._constrain(k, fv, new, ("rt", fid, t.id))
                if f != "write":
                    seen = self._version_of_read(t)
                    sw = None if seen is INIT else w.get(seen)
                    if seen is not INIT and (sw is None or not sw.node):
                        continue
                    for fid in frontier:
                        if sw is not None and fid == sw.id:
                            continue
                        ft = self.txns[fid]
                        if seen is INIT:
                            # f completed before t began, yet t saw the initial value
                            self._adj[t.id][fid] = self._adj[t.id].get(fid, 0) | RW
                            self.rw_why.setdefault(
                                (t.id, fid), (k, INIT, self._written(ft), ("rt-init", fid, t.id))
                            )
                        else:
                            self._constrain(k, self._written(ft), seen, ("rt-read", fid, t.id))

    @staticmethod
    def _written(t: Txn) -> Any:
        f, _, v = t.mops[0]
        return v if f == "write" else v[1]

    # ------------------------------------------------------------------ totality

    def undetermined_keys(self) -> list[Any]:
        """Keys whose version order the constraints leave partial (or cyclic)."""
        out = []
        for k in self.keys:
            if k in self.nonunique:
                continue
            versions = [v for v, t in self.writers.get(k, {}).items() if t.node]
            if len(versions) <= 1:
                continue
            succ = self.succ.get(k, {})
            indeg: dict[Any, int] = dict.fromkeys(versions, 0)
            for a, bs in succ.items():
                for b in bs:
                    if b in indeg and a is not INIT:
                        indeg[b] += 1
            ready = [v for v, d in indeg.items() if d == 0]
            total = True
            done = 0
            while ready:
                if len(ready) > 1:
                    total = False
                    break
                v = ready.pop()
                done += 1
                for b in succ.get(v, {}):
                    indeg[b] -= 1
                    if indeg[b] == 0:
                        ready.append(b)
            if not total or done < len(versions):
                out.append(k)
        return out

    # ------------------------------------------------------------------ explanations

    def _name_op(self, tid: int, names: dict[int, str]) -> str:
        t = self.txns[tid]
        return names.get(tid, f"op {t.index}")

    def explain(self, a: Txn, b: Txn, rel: int, names: dict[int, str]) -> str:
        """Why ``a`` precedes ``b`` by data relation ``rel``; ``names`` names cycle members."""
        key = (a.id, b.id)
        na, nb = names[a.id], names[b.id]
        if rel == WR and key in self.wr_why:
            k, v = self.wr_why[key]
            verb = "read" if b.f == "read" else "cas found"
            return f"{nb} {verb} {v!r} on key {k!r}, the value {na} wrote"
        if rel == WW and key in self.ww_why:
            k, va, vb, reason = self.ww_why[key]
            return f"{va!r} precedes {vb!r} in the version order of key {k!r}: " + self._why(
                reason, k, va, vb, names
            )
        if rel == RW and key in self.rw_why:
            k, seen, s, reason = self.rw_why[key]
            if reason[0] == "rt-init":
                return (
                    f"{na} saw the initial value of key {k!r}, but {nb}'s write of {s!r} "
                    f"completed (op {b.complete}) before {na} began, so {na} should have "
                    "seen it or a later value"
                )
            shown = "the initial value" if seen is INIT else repr(seen)
            tail = (
                f"{s!r} is one of the first versions written"
                if reason[0] == "first"
                else self._why(reason, k, seen, s, names)
            )
            return (
                f"{na} saw {shown} on key {k!r}, and {nb}'s {s!r} is a later version "
                f"({tail})"
            )
        return f"{na} < {nb} by a {rel} dependency"

    def _why(self, reason: tuple, k: Any, va: Any, vb: Any, names: dict[int, str]) -> str:
        kind = reason[0]
        if kind == "cas":
            return f"{self._name_op(reason[1], names)}'s cas replaced {va!r} with {vb!r}"
        if kind == "rt":
            return (
                f"the write of {va!r} ({self._name_op(reason[1], names)}) completed before "
                f"the write of {vb!r} ({self._name_op(reason[2], names)}) began"
            )
        if kind == "rt-read":
            r = self.txns[reason[2]]
            return (
                f"the write of {va!r} ({self._name_op(reason[1], names)}) completed before "
                f"{self._name_op(reason[2], names)} began, and that op saw {vb!r}"
                + ("" if r.f == "read" else " as its cas's old value")
            )
        return str(reason)


def _subhistory(history: History, keys: set[Any]) -> tuple[History, list[int]]:
    ops: list[Op] = []
    original: list[int] = []
    for op in history.ops:
        if op.process == NEMESIS or op.f not in REGISTER_FS or _hashable(op.key) not in keys:
            continue
        original.append(op.index)
        ops.append(Op(len(ops), op.time, op.process, op.type, op.f, op.key, op.value, op.node,
                      op.error))
    return History.from_ops(ops, source=f"{history.source} (keys {sorted(map(repr, keys))})"), original


def check_registers(
    history: History,
    *,
    model_name: str = "cas-register",
    spec: Any = None,
    timeout: float | None = 60.0,
    cycle_search_timeout: float | None = 30.0,
) -> Result:
    """See :func:`jepsenlike.checkers.graph.check_registers`."""
    t0 = time.monotonic()
    init = thaw(spec.init()) if spec is not None else None
    an = RegisterAnalysis(history, model_name=model_name, init=init)
    g = DepGraph(len(an.txns))
    an.build(g)
    add_order_edges(g, an.txns, len(history))
    sccs = strongly_connected(g.adj)
    cycles, notes = find_cycles(g, sccs, timeout=cycle_search_timeout)
    anomalies = list(an.anomalies)
    counts = dict(an.counts)
    for name, steps in cycles:
        anomalies.append(cycle_record(name, steps, an.txns, an.explain))
        counts[name] = counts.get(name, 0) + 1
    all_keys = sorted(an.keys, key=repr)
    undetermined = an.undetermined_keys()
    search_keys = set(undetermined) | an.nonunique
    extra: dict[str, Any] = dict(notes)
    search: Result | None = None
    if counts or not search_keys:
        # A cycle (or an impossible read) decides the whole history; with no
        # cycle and every version order total, acyclicity decides it.
        decided = {"graph": all_keys}
    else:
        decided = {
            "graph": [k for k in all_keys if k not in search_keys],
            "linearizability-search": sorted(search_keys, key=repr),
        }
        search = _search(history, search_keys, model_name, spec, timeout)
        extra["search"] = search.to_dict()
    path = "+".join(p for p in ("graph", "linearizability-search") if decided.get(p))
    extra.update(decided_by=decided, path=path or "graph")
    if undetermined:
        extra["undetermined_version_order_keys"] = sorted(undetermined, key=repr)[:100]
    if an.nonunique:
        extra["nonunique_value_keys"] = sorted(an.nonunique, key=repr)[:100]
    if an.ignored:
        extra["ignored_fs"] = dict(an.ignored)
    stats = {
        "ops": len(an.txns),
        "nodes": sum(1 for t in an.txns if t.node),
        "edges": g.edge_count(),
        "keys": len(an.keys),
        "nontrivial_sccs": len(sccs),
        "time_s": round(time.monotonic() - t0, 6),
    }
    valid: Any = False if counts else (True if search is None else search.valid)
    if counts:
        headline = "not linearizable (decided by the dependency graph)"
    elif search is None:
        headline = (
            "linearizable (decided by the dependency graph: every key's version order was "
            f"inferred and the graph of {stats['ops']} ops is acyclic)"
        )
    else:
        verdict = {True: "linearizable", False: "not linearizable"}.get(valid, "undecided")
        headline = (
            f"{verdict} (the dependency graph decided {len(decided['graph'])} keys and found no "
            f"cycle; the linearizability search decided {len(search_keys)} keys whose version "
            f"order could not be inferred or whose values repeat)\n{search.explanation}"
        )
    # Version orders were inferred assuming linearizability, so a cycle proves
    # non-linearizability, not a violation of the weaker Adya models.
    return build_result(
        model_name, anomalies, counts, consistency_model="linearizable", linearizable=True,
        stats=stats, extra=extra, valid=valid, headline=headline,
        ruled_out=["linearizable"] if valid is False else [],
    )


def _search(history: History, keys: set[Any], model_name: str, spec: Any,
            timeout: float | None) -> Result:
    from jepsenlike.checkers.linearizable import check_linearizable
    from jepsenlike.checkers.specs import get_spec

    sub, original = _subhistory(history, keys)
    res = check_linearizable(sub, spec if spec is not None else get_spec(model_name),
                             timeout=timeout)
    res.details["original_indices"] = original if len(original) <= 10_000 else None
    res.details["note"] = "indices in this search refer to the sub-history of the undecided " \
        "keys; original_indices[i] is the history index of sub-history op i"
    return res
