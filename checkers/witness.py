"""A minimal witness: the few ops of a non-linearizable history that show why.

Theory of operation
-------------------
Linearizability is local (P-compositional), so a violation lives inside one
key's sub-history (one part of :meth:`Spec.partition`). :func:`minimal_witness`
takes that part and deletes operations while what is left stays
non-linearizable, until no single deletion keeps it so (*1-minimal*). An
operation is deleted whole: its invocation and its completion go together,
and the remaining events keep their order and their times. ``fail`` ops are
dropped first (they never happened, so they change no verdict).

Closure (registers). Deleting the write of ``v`` while keeping a read of ``v``
would leave a read of a value nobody wrote: non-linearizable, but for a reason
the real history does not have. So for read/write/cas histories a deletion
also deletes every op that *observed* a value no remaining op writes (a read
of it, a cas expecting it), transitively; a value no op of the whole part
writes (a garbage read, or the initial value) is never such a reason. The
witness is 1-minimal with respect to these closed deletions: removing any one
op, together with the ops that observed only its value, makes it
linearizable.

Search. A long part is first cut to a window: the ops just before the op the
search could not linearize (8, then 32, 128, ...), with the writers of every
value they observed, as soon as such a window is non-linearizable on its own.
Then delta debugging: try to delete chunks (halves, quarters, ... of the
remaining ops), keep any deletion after which the search
(:func:`~jepsenlike.checkers.linearizable.check_linearizable`) still says
*not linearizable*, and end with single-op deletions. Each check runs on a few
dozen ops, so it costs about a millisecond; the whole shrink is bounded by
``time_budget`` seconds, and a witness cut short by the budget says
``"minimal": false``. Typical register witnesses are 2-4 ops (a stale read:
the write that was read, the later write that completed, the read).

Naming. :func:`describe` turns the witness into one sentence that names the
anomaly (stale read, lost update, read of a value never written, ...), the
node that served each op when the history records it, and the times in
seconds since the history began.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from jepsenlike.checkers.specs import Spec, freeze, show, thaw
from jepsenlike.history import History, Op

__all__ = ["WitnessOp", "describe", "duration", "is_register_like", "minimal_witness", "observed", "written"]

DEFAULT_TIME_BUDGET = 2.0
REGISTER_FS = frozenset(("read", "write", "cas"))


@dataclass(frozen=True)
class WitnessOp:
    """One op of a witness: its invocation and (if any) completion."""

    inv: Op
    comp: Op | None

    @property
    def outcome(self) -> str:
        return "pending" if self.comp is None else self.comp.type

    @property
    def node(self) -> str | None:
        return (self.comp.node if self.comp is not None and self.comp.node else None) or self.inv.node

    def to_dict(self) -> dict[str, Any]:
        c = self.comp
        return {
            "index": self.inv.index,
            "completion": None if c is None else c.index,
            "process": self.inv.process,
            "f": self.inv.f,
            "key": self.inv.key,
            "value": self.inv.value,
            "result": None if c is None else c.value,
            "type": self.outcome,
            "node": self.node,
            "invoke_s": self.inv.time / 1e9,
            "complete_s": None if c is None else c.time / 1e9,
            "error": None if c is None else c.error,
        }


def is_register_like(pairs: list[tuple[Op, Op | None]]) -> bool:
    return all(inv.f in REGISTER_FS for inv, _ in pairs)


def written(inv: Op) -> Any:
    """The (frozen) value a write or cas would leave, else a sentinel."""
    if inv.f == "write":
        return freeze(inv.value)
    if inv.f == "cas" and isinstance(inv.value, (list, tuple)) and len(inv.value) == 2:
        return freeze(inv.value[1])
    return _NOTHING


def observed(inv: Op, comp: Op | None) -> Any:
    """The (frozen) value an op saw: an ok read's result, a cas's expected value."""
    if inv.f == "read":
        return freeze(comp.value) if comp is not None and comp.type == "ok" else _NOTHING
    if inv.f == "cas" and isinstance(inv.value, (list, tuple)) and len(inv.value) == 2:
        return freeze(inv.value[0])
    return _NOTHING


class _Nothing:
    def __repr__(self) -> str:
        return "<nothing>"


_NOTHING = _Nothing()


class _Shrinker:
    def __init__(self, pairs: list[tuple[Op, Op | None]], spec: Spec, deadline: float) -> None:
        self.pairs = pairs
        self.spec = spec
        self.deadline = deadline
        self.checks = 0
        self.blocked: int | None = None  # the pair the search could not linearize
        self.closure = is_register_like(pairs)
        self.written_anywhere = {written(inv) for inv, _ in pairs} - {_NOTHING}

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def close(self, sel: list[int]) -> list[int]:
        """Drop, transitively, the ops that observed a value only deleted ops wrote."""
        if not self.closure:
            return sel
        cur = list(sel)
        while True:
            present = {written(self.pairs[i][0]) for i in cur}
            keep = []
            for i in cur:
                v = observed(*self.pairs[i])
                if v is not _NOTHING and v in self.written_anywhere and v not in present:
                    continue
                keep.append(i)
            if len(keep) == len(cur):
                return keep
            cur = keep

    def history(self, sel: list[int]) -> History:
        events: list[Op] = []
        for i in sel:
            inv, comp = self.pairs[i]
            events.append(inv)
            if comp is not None:
                events.append(comp)
        events.sort(key=lambda op: op.index)
        ops = [Op(n, e.time, e.process, e.type, e.f, e.key, e.value, e.node, e.error)
               for n, e in enumerate(events)]
        return History.from_ops(ops, source="<witness>")

    def bad(self, sel: list[int]) -> bool:
        from jepsenlike.checkers.linearizable import check_linearizable

        if not sel:
            return False
        self.checks += 1
        left = self.deadline - time.monotonic()
        if left <= 0:
            return False
        res = check_linearizable(self.history(sel), self.spec, timeout=max(0.05, left), workers=1)
        if res.valid is False and self.blocked is None:
            # the op the search could not linearize: where the violation is
            at = (res.details.get("op") or {}).get("index")
            events = sorted(e for i in sel for e in (self.pairs[i][0].index, getattr(self.pairs[i][1], "index", None))
                            if e is not None)
            if isinstance(at, int) and 0 <= at < len(events):
                inv_of = {p[0].index: i for i, p in enumerate(self.pairs)}
                self.blocked = inv_of.get(events[at])
        return res.valid is False

    def with_writers(self, sel: list[int]) -> list[int]:
        """``sel`` plus, transitively, the writers of every value its ops observed."""
        if not self.closure:
            return sel
        writers: dict[Any, list[int]] = {}
        for i, (inv, _) in enumerate(self.pairs):
            v = written(inv)
            if v is not _NOTHING:
                writers.setdefault(v, []).append(i)
        out = set(sel)
        todo = list(sel)
        while todo:
            i = todo.pop()
            for j in writers.get(observed(*self.pairs[i]), ()):
                if j not in out:
                    out.add(j)
                    todo.append(j)
        return sorted(out)

    def window(self, sel: list[int]) -> list[int]:
        """A small non-linearizable start around the op the search blocked on, if one is found:
        the ops just before it (8, 32, 128, ...), with the writers of what they read. Checks
        on a few dozen ops are cheap; on the whole part of a long history they are not."""
        if self.blocked is None or self.blocked not in sel:
            return sel
        p = sel.index(self.blocked)
        size = 8
        while size < len(sel) // 2 and not self.out_of_time():
            cand = self.with_writers(sel[max(0, p - size):p + 1 + size // 4])
            if len(cand) < len(sel) and self.bad(cand):
                return cand
            size *= 4
        return sel

    def shrink(self, sel: list[int]) -> tuple[list[int], bool]:
        """Delta debugging down to 1-minimal; returns (ops, minimal)."""
        n = 2
        while len(sel) >= 2:
            chunk = math.ceil(len(sel) / n)
            progress = False
            # later chunks first: ops after the violation are the likeliest to be irrelevant
            starts = list(range(0, len(sel), chunk))[::-1]
            for s in starts:
                if self.out_of_time():
                    return sel, False
                cand = self.close(sel[:s] + sel[s + chunk:])
                if len(cand) < len(sel) and self.bad(cand):
                    sel = cand
                    n = max(n - 1, 2)
                    progress = True
                    break
            if not progress:
                if chunk <= 1:
                    break
                n = min(len(sel), n * 2)
        if len(sel) == 1:
            return sel, not self.out_of_time()
        return sel, not self.out_of_time()


def minimal_witness(
    history: History,
    spec: Spec,
    key: Any = None,
    *,
    blocked: int | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
) -> dict[str, Any] | None:
    """Shrink the first non-linearizable part of ``history`` (or the part of ``key``).

    ``blocked``: the history index of the op the search could not linearize in
    that part, when the caller already ran the search; the shrink then starts
    from a window around it without checking the whole part again.

    Returns None when that part is linearizable (or could not be decided within
    the budget), else ``{"key", "ops": [invocation indices], "events": [every
    event index], "minimal", "anomaly", "reason", "details": [per op], "checks",
    "time_s"}``.
    """
    t0 = time.monotonic()
    deadline = t0 + time_budget
    groups = spec.partition(history)
    if key is not None:
        fk = freeze(key)
        order = [k for k in groups if k == fk or thaw(k) == key] or list(groups)
    else:
        order = list(groups)
    for k in order:
        pairs = [(inv, comp) for inv, comp in groups[k] if comp is None or comp.type != "fail"]
        sh = _Shrinker(pairs, spec, deadline)
        start = sh.close(list(range(len(pairs))))
        windowed = False  # a window around the hinted op was found bad on its own
        hinted = [i for i, (inv, _) in enumerate(pairs) if inv.index == blocked]
        if hinted and hinted[0] in start:
            sh.blocked = hinted[0]
            cut = sh.window(start)
            windowed, start = cut is not start, cut
        if not windowed and not sh.bad(start):
            if sh.out_of_time():
                return None
            continue
        sel, minimal = sh.shrink(start if windowed else sh.window(start))
        ops = [WitnessOp(*pairs[i]) for i in sel]
        ops.sort(key=lambda w: w.inv.index)
        events = sorted([w.inv.index for w in ops] + [w.comp.index for w in ops if w.comp is not None])
        anomaly, reason = describe(ops, spec)
        return {
            "key": thaw(k),
            "ops": [w.inv.index for w in ops],
            "events": events,
            "minimal": minimal,
            "anomaly": anomaly,
            "reason": reason,
            "details": [w.to_dict() for w in ops],
            "part_ops": len(pairs),
            "checks": sh.checks,
            "time_s": round(time.monotonic() - t0, 6),
        }
    return None


# -- naming ------------------------------------------------------------------------------


def duration(ns: float) -> str:
    """A time or gap in the unit that keeps it readable (histories count ns)."""
    a = abs(ns)
    if a >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if a >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if a >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


_s = duration
_gap = duration


def _who(w: WitnessOp) -> str:
    return w.node or f"process {w.inv.process}"


def _on(w: WitnessOp) -> str:
    return f" on {w.node}" if w.node else ""


def _what(w: WitnessOp) -> str:
    if w.inv.f == "write":
        return f"write {show(w.inv.value)}"
    if w.inv.f == "cas" and isinstance(w.inv.value, (list, tuple)) and len(w.inv.value) == 2:
        return f"cas {show(w.inv.value[0])}->{show(w.inv.value[1])}"
    if w.inv.f == "read" and w.comp is not None and w.comp.type == "ok":
        return f"read {show(w.comp.value)}"
    return f"{w.inv.f} {show(w.inv.value)}"


def describe(ops: list[WitnessOp], spec: Spec) -> tuple[str, str]:
    """The anomaly's name and one sentence about it (nodes and times included)."""
    if ops and all(w.inv.f in REGISTER_FS for w in ops):
        named = _describe_register(ops, spec)
        if named is not None:
            return named
    n = len(ops)
    served = sorted({w.node for w in ops if w.node})
    on = f" (served by {', '.join(served)})" if served else ""
    return ("not linearizable",
            f"not linearizable: these {n} op(s){on} have no order that respects real time and "
            f"the {spec.name} model, and removing any one of them leaves a linearizable history")


def _describe_register(ops: list[WitnessOp], spec: Spec) -> tuple[str, str] | None:
    init = freeze(spec.init())
    writers: dict[Any, WitnessOp] = {}
    for w in ops:
        v = written(w.inv)
        if v is not _NOTHING and (w.comp is None or w.comp.type != "fail"):
            writers.setdefault(v, w)
    done = [w for w in ops if w.comp is not None and w.comp.type == "ok"]
    # garbage read: a value no op wrote (and not the initial value)
    for r in done:
        v = observed(r.inv, r.comp)
        if r.inv.f == "read" and v is not _NOTHING and v not in writers and v != init:
            return ("garbage read", f"garbage read: {_who(r)} returned {show(thaw(v))} at "
                    f"{_s(r.comp.time)}, a value no operation wrote")
    # stale read: a read saw v although another write, begun after v was written,
    # completed before the read began
    best: tuple[int, WitnessOp, WitnessOp] | None = None
    for r in done:
        if r.inv.f != "read":
            continue
        v = observed(r.inv, r.comp)
        wv = writers.get(v)
        for w in done:
            u = written(w.inv)
            if w is r or u is _NOTHING or u == v or w.comp.time >= r.inv.time:
                continue
            if wv is None or (wv.comp is not None and wv.comp.time < w.inv.time) or _cas_after(w, v):
                gap = r.inv.time - w.comp.time
                if best is None or gap > best[0]:
                    best = (gap, r, w)
    if best is not None:
        gap, r, w = best
        shown = show(r.comp.value)
        own = (f" (by the same process {r.inv.process}: it did not read its own write)"
               if r.inv.process == w.inv.process else "")
        return ("stale read", f"stale read: {_who(r)} returned {shown} at {_s(r.comp.time)} "
                f"for a read begun {_gap(gap)} after {_what(w)} completed{_on(w)}{own}")
    # lost update: two successful cas ops replaced the same value
    cas = [w for w in done if w.inv.f == "cas"]
    for i, a in enumerate(cas):
        for b in cas[i + 1:]:
            if observed(a.inv, a.comp) == observed(b.inv, b.comp):
                return ("lost update", f"lost update: {_what(a)}{_on(a)} and {_what(b)}{_on(b)} both "
                        f"succeeded (at {_s(a.comp.time)} and {_s(b.comp.time)}), but only one can "
                        f"replace {show(thaw(observed(a.inv, a.comp)))}")
    # a read that saw a value back after a newer one was read
    reads = sorted((w for w in done if w.inv.f == "read"), key=lambda w: w.inv.time)
    for a in reads:
        for b in reads:
            if a.comp.time < b.inv.time and observed(a.inv, a.comp) != observed(b.inv, b.comp):
                wa = writers.get(observed(a.inv, a.comp))
                wb = writers.get(observed(b.inv, b.comp))
                if wa is not None and wb is not None and wb.comp is not None and wb.comp.time < wa.inv.time:
                    return ("stale read", f"stale read: {_who(b)} returned {show(b.comp.value)} "
                            f"at {_s(b.comp.time)}, after {_who(a)} had returned the newer "
                            f"{show(a.comp.value)} at {_s(a.comp.time)}")
    return None


def _cas_after(w: WitnessOp, v: Any) -> bool:
    """A cas that replaced ``v`` itself proves ``v`` was overwritten."""
    return w.inv.f == "cas" and observed(w.inv, w.comp) == v
