"""Linearizability checking: the Wing-Gong-Lowe search, per key.

Theory of operation
-------------------
A history is linearizable when every operation can be given a single instant
(its *linearization point*) between its invocation and its completion such that
the operations, run one at a time in the order of their points, are a legal
sequential execution of the spec.

Preparation. Each client invocation becomes one *op* with a call time (the
index of its invocation) and a return time (the index of its completion):

* ``ok`` -- the op happened, exactly once, inside its interval: *required*.
* ``fail`` -- it never happened: dropped.
* ``info`` or never completed -- it may have happened at any time after its
  invocation, or never: *optional*, with return time +infinity and an unknown
  result (``MISSING``). An optional op that cannot change the state (a read)
  constrains nothing and is dropped.

P-compositionality. Linearizability is local: a history over independent
objects is linearizable iff each object's sub-history is. The spec's
``partition`` splits the history (by key, or by connected sets of keys for txn
specs) and each part is searched on its own, which turns one exponential search
into many small ones.

The search (Wing & Gong, with Lowe's just-in-time linearization, as in
porcupine). The call and return events of one part sit in a doubly linked list
in time order. The ops whose call comes before the first remaining return are
exactly those that may be linearized next (an op cannot be placed after an op
that returned before it was called). The search walks the list from its head,
tries to step the spec with each such op, and on success *lifts* the op (its
call and its return leave the list) and starts again from the head; when it
reaches a return event, the op that returns there can no longer be linearized
in time, so it backtracks: it restores the last lifted op and tries the next
candidate after it. The history is linearizable as soon as every required op
is lifted; it is not when the search backtracks past the first op.

Memoisation and pruning. Where the search goes from a configuration depends
only on the set of ops already linearized and the spec state, so each
(set, state) is explored once: the set is an int used as a bitset, the state is hashable, and
the cache is a set of (bitset, state). Optional ops are kept in a second
bitset: a configuration that has linearized a *subset* of another's optional
ops (same required set, same state) can do everything the other can, since an
optional op still pending may always be used later or never; so the cache maps
(required bitset, state) to the optional bitsets seen, and a configuration is
skipped when a seen one is a subset of it. For the same reason an optional op
whose step leaves the state unchanged is never linearized. Three more rules
cut the search without changing its verdict (the brute-force oracle in the
tests checks each of them):

* a required pure read that can go next goes next, and its siblings are not
  tried: moving a read that changes nothing earlier never breaks anything
  (likewise a write of a value nobody reads, when the state already is such a
  value: the spec's ``absorbing`` hint); a read the spec *pins* to one state
  (``pinned_state``: a register read goes exactly where the value is what it
  read) is compared with the state instead of stepped;
* of two interchangeable ops (same f, arg and result, the second called no
  earlier and returning no earlier), the second is only tried once the first
  is linearized;
* the spec may drop ops of unknown outcome that no linearization needs, and
  fold values that no op ever observes into one (the ``simplify`` hint), so that
  states differing only in such values are one state. Witnesses are replayed
  with the real values.

A spec may also give an ``order`` hint (the queue does: enqueue first what is
dequeued first); each configuration then tries its candidates in that order,
which changes only the speed. One loop serves both orders: without the hint it
walks the entry list, with it each configuration sorts its candidates once.
The hints are named fields of :class:`~jepsenlike.checkers.specs.SearchHints`.

Cost. The loop works on precompiled per-entry lists (f, arg, result, bit,
kind, forced, pin); the memo key is (required bitset as a Python int, state).
Interning states to ints and caching transitions per (state, entry) were
measured and dropped: they made the kv benchmark slower, since a state is
hashed once per step either way.

Parts. Parts are checked in order and the check stops at the first part that
is not linearizable (``all_keys=True`` goes on, for a report of every bad
key). With several parts, at least :data:`PARALLEL_MIN_OPS` ops and idle
cores, forked worker processes take the parts; the pool is terminated as soon
as every part up to the first bad one is done, and the result keeps exactly
what the serial order would have computed, so it does not depend on the
number of workers.

Witness. When the search fails, it reports the deepest dead ends it reached:
the ops linearized so far (with the spec state before each), the op whose
return came before it could be linearized, and the spec's reason why it (and
every other candidate) could not go next from the final state.

Budget. ``timeout`` (seconds, whole check) and ``max_memory_states`` (cached
configurations per part) bound the search; when either runs out the verdict is
``"unknown"`` with the part's key, its size, its concurrency and its number of
info ops.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from jepsenlike.checkers.result import Result, Verdict
from jepsenlike.checkers.specs import (
    DROP,
    MISSING,
    PartOp,
    Replace,
    Spec,
    freeze,
    key_arg,
    show,
    thaw,
)
from jepsenlike.errors import ConfigError
from jepsenlike.history import History

__all__ = [
    "DEFAULT_MAX_MEMORY_BYTES",
    "DEFAULT_MAX_MEMORY_STATES",
    "LinOp",
    "PARALLEL_MIN_OPS",
    "check_linearizable",
    "prepare",
]

DEFAULT_MAX_MEMORY_STATES = 4_000_000
"""Cached configurations per part before giving up (~200-400 bytes each for
parts of a few hundred ops). The default is lowered for big parts, whose
bitsets are big, so that the cache stays under :data:`DEFAULT_MAX_MEMORY_BYTES`."""

DEFAULT_MAX_MEMORY_BYTES = 3 << 29
"""1.5 GiB: the cache size the default state budget aims to stay under."""


def _default_max_states(n_ops: int) -> int:
    # per cached state: tuple + set/dict slot + state object + an n_ops-bit int
    per_state = 250 + n_ops // 8
    return min(DEFAULT_MAX_MEMORY_STATES, DEFAULT_MAX_MEMORY_BYTES // per_state)

_INF = math.inf
_MAX_PATH = 200  # steps of a partial linearization kept in the details
_MAX_RECORDS = 3  # partial linearizations of maximal length kept
_TIME_SPENT = "time budget spent"


@dataclass(slots=True)
class LinOp:
    """One operation as the search sees it."""

    index: int  # history index of the invocation
    completion: int | None  # history index of the completion, if any
    call: int
    ret: float  # +inf for optional ops
    f: str
    arg: Any
    result: Any  # MISSING when unknown
    required: bool
    process: int | str
    outcome: str  # "ok", "info" or "never completed"
    orig_arg: Any = MISSING  # the arg as in the history, when the spec simplified it
    orig_result: Any = MISSING

    def view(self) -> PartOp:
        """The op as search hints see it."""
        return PartOp(self.f, self.arg, self.result, self.required, self.call, self.ret)


def prepare(history: History, spec: Spec) -> dict[Any, list[LinOp]]:
    """Split a history into parts and turn each client invocation into a :class:`LinOp`.

    ``fail`` ops are dropped, and so are optional ops that cannot change the
    state (the ``read_only`` hint); then the spec may drop or simplify more
    (the ``simplify`` hint, see :class:`~jepsenlike.checkers.specs.SearchHints`).

    Raises:
        ConfigError: an op the spec does not understand, or an ok completion
            that contradicts its invocation (names the op).
    """
    for inv, comp in history.pairs():
        problem = spec.check_op(inv)
        if problem is None and comp is not None and comp.type == "ok":
            problem = spec.check_completion(inv, comp)
        if problem is not None:
            raise ConfigError(f"{history.source}: op {inv.index}: {problem}")
    hints = spec.hints()
    read_only = hints.read_only
    parts: dict[Any, list[LinOp]] = {}
    for key, pairs in spec.partition(history).items():
        ops: list[LinOp] = []
        for inv, comp in pairs:
            if comp is not None and comp.type == "fail":
                continue
            arg = key_arg(spec, inv, inv.value)
            f = spec.canonical_f(inv.f)
            if comp is not None and comp.type == "ok":
                ops.append(
                    LinOp(
                        inv.index, comp.index, inv.index, comp.index, f, arg,
                        freeze(comp.value), True, inv.process, "ok",
                    )
                )
            else:
                if read_only is not None and read_only(f, arg):
                    continue
                ops.append(
                    LinOp(
                        inv.index, None if comp is None else comp.index, inv.index, _INF,
                        f, arg, MISSING, False, inv.process,
                        "never completed" if comp is None else "info",
                    )
                )
        pruned = hints.simplify([o.view() for o in ops]) if hints.simplify is not None else None
        if pruned:
            for i, how in pruned.items():
                if isinstance(how, Replace):
                    op = ops[i]
                    op.orig_arg, op.orig_result = op.arg, op.result
                    op.arg = how.arg
                    if not how.keeps_result:
                        op.result = how.ret
            ops = [o for i, o in enumerate(ops) if pruned.get(i) is not DROP]
        if ops:
            parts[key] = ops
    return parts


def _arg(op: LinOp) -> Any:
    return op.arg if op.orig_arg is MISSING else op.orig_arg


def _res(op: LinOp) -> Any:
    return op.result if op.orig_arg is MISSING else op.orig_result


def describe(spec: Spec, op: LinOp) -> str:
    """``#12 process 3 cas [1, 2]`` (plus the outcome when it is not ok)."""
    s = f"#{op.index} process {op.process} {spec.describe_op(op.f, _arg(op), _res(op))}"
    return s if op.outcome == "ok" else f"{s} ({op.outcome})"


class _Budget(Exception):
    def __init__(self, why: str, states: int) -> None:
        super().__init__(why)
        self.why = why
        self.states = states


@dataclass
class _DeadEnd:
    path: list[tuple[int, Any]]  # (position in ops, state before)
    state: Any
    blocked: int  # position in ops of the op whose return came first
    candidates: list[tuple[int, str | None]]  # (position, reason or None if it could step)


@dataclass
class _PartResult:
    """What the search found on one part (picklable: it may come from a worker)."""

    verdict: Verdict
    states: int
    dead_ends: list[_DeadEnd]
    why: str = ""  # the budget that ran out, for Verdict.UNKNOWN


def _search(ops: list[LinOp], spec: Spec, deadline: float, max_states: int) -> _PartResult:
    """Run the search on one part (see the module docstring).

    The loop works on precompiled entries (parallel lists indexed by entry:
    f, arg, result, bit, kind, forced, pin, same) and memoises configurations
    as (required bitset, state), with the optional bitsets seen for each.
    Measured on the kv benchmark's bad key, interning states (an int id per
    state) and caching transitions per (state id, entry) made the search
    slower (0.95 s CPU with both, 0.75 s without the transition cache, 0.65 s
    without either): a state is hashed once per step either way (strings
    cache their hash), so both only added dict work.
    """
    hints = spec.hints()
    # Entries: one call per op, one return per required op, in time order.
    events: list[tuple[float, int]] = []
    for pos, op in enumerate(ops):
        events.append((op.call, pos))
        if op.required:
            events.append((op.ret, ~pos))
    events.sort()
    m = len(events)
    head, tail = m, m + 1
    nxt = list(range(1, m + 1)) + [0 if m else tail, tail]
    if m:
        nxt[m - 1] = tail
    prv = [i - 1 for i in range(m)] + [head, m - 1]
    if m:
        prv[0] = head
    kind = [2] * (m + 2)  # 0 call, 2 return (and the tail)
    match = [0] * m  # call entry of a required op -> its return entry
    epos = [0] * m
    ef: list[Any] = [None] * m
    earg: list[Any] = [None] * m
    eret: list[Any] = [None] * m
    ebit = [0] * m
    req = [False] * m
    call_entry: dict[int, int] = {}
    n_req = n_opt = 0
    for e, (_, p) in enumerate(events):
        if p >= 0:
            op = ops[p]
            epos[e], ef[e], earg[e], eret[e] = p, op.f, op.arg, op.result
            call_entry[p] = e
            kind[e] = 0
            if op.required:
                ebit[e], req[e] = 1 << n_req, True
                n_req += 1
            else:
                ebit[e] = 1 << n_opt
                n_opt += 1
        else:
            epos[e] = ~p
            match[call_entry[~p]] = e
    if n_req == 0:
        return _PartResult(Verdict.VALID, 0, [])
    has_opt = n_opt > 0
    # forced[e]: 1 for a required read-only op, 2 for a required absorbing op,
    # else 0. A read that can go now goes now: it changes nothing and moving it
    # earlier breaks no real-time order, so its siblings need not be tried; the
    # same for an absorbing op where it leaves the state unchanged.
    read_only, absorbing = hints.read_only, hints.absorbing
    forced = [0] * m
    for e in range(m):
        if req[e]:
            if read_only is not None and read_only(ef[e], earg[e]):
                forced[e] = 1
            elif absorbing is not None and absorbing(ef[e], earg[e]):
                forced[e] = 2
    # A read that goes exactly where the state is one value is compared, not stepped.
    epin: list[Any] = [MISSING] * (m + 2)
    pinned = hints.pinned_state
    if pinned is not None:
        for e in range(m):
            if req[e] and forced[e] == 1:
                epin[e] = pinned(ef[e], earg[e], eret[e])
    # Interchangeable ops: of two ops with the same (f, arg, result), the later-
    # called one (whose return is no earlier) is only tried once the earlier one
    # is linearized; any linearization could swap them.
    same = [-1] * m
    last: dict[Any, int] = {}
    for e in range(m):
        if kind[e] == 2:
            continue
        try:
            cls = (req[e], ef[e], earg[e], eret[e])
            prev = last.get(cls)
        except TypeError:  # an unhashable value: no symmetry for this op
            continue
        if prev is not None and (not req[e] or events[match[prev]][0] <= events[match[e]][0]):
            same[e] = prev
        last[cls] = e

    # Candidate order: call order (walk the list) unless the spec gives an order.
    hinted = hints.order is not None
    erank: list[float] = [0.0] * (m + 2)
    if hints.order is not None:
        rank = hints.order([o.view() for o in ops])
        for e in range(m):
            if kind[e] == 0:
                erank[e] = rank[epos[e]]

    def candidates() -> list[int]:
        # the calls before the first return, by rank, then that return (a sentinel)
        out = []
        c = nxt[head]
        while kind[c] != 2:
            out.append(c)
            c = nxt[c]
        out.sort(key=erank.__getitem__)
        out.append(c)
        return out

    step = spec.step
    state = spec.init()
    lin_req = lin_opt = 0
    left = n_req
    stack: list[tuple[int, Any, bool, list[int] | None, int]] = []
    push, pop = stack.append, stack.pop
    seen: set[tuple[int, Any]] = set()
    seen_add = seen.add
    # with optional ops: (required bitset, state) -> the optional bitsets seen;
    # a configuration whose optional set contains one seen is no news (whatever
    # could follow it could follow the smaller one too)
    seen_opt: dict[tuple[int, Any], list[int]] = {}
    seen_opt_get = seen_opt.get
    n_states = 0
    best = -(1 << 62)
    dead_ends: list[_DeadEnd] = []
    done = False  # this configuration needs no more tries: backtrack
    cands: list[int] | None = None
    ci = 0
    if hinted:
        cands = candidates()
        e = cands[0]
    else:
        e = nxt[head]
    while True:
        if kind[e] == 2 or done:
            # Rank dead ends by required ops linearized, then by fewest optional ones
            # (a witness that leans on ops that may never have happened explains less).
            if not done:
                score = (n_req - left) * 4096 - (len(stack) - n_req + left)
                if score >= best and (score > best or len(dead_ends) < _MAX_RECORDS):
                    if score > best:
                        best = score
                        dead_ends.clear()
                    dead_ends.append(
                        _dead_end(stack, epos, state, nxt, head, kind, step, ef, earg, eret)
                    )
            done = False
            while True:
                if not stack:
                    return _PartResult(Verdict.INVALID, n_states, dead_ends)
                e, state, forced_frame, cands, ci = pop()
                if req[e]:
                    lin_req ^= ebit[e]
                    left += 1
                    r = match[e]
                    nxt[prv[r]] = r
                    prv[nxt[r]] = r
                else:
                    lin_opt ^= ebit[e]
                nxt[prv[e]] = e
                prv[nxt[e]] = e
                if not forced_frame:
                    break
            if hinted:
                ci += 1
                e = cands[ci]  # type: ignore[index]
            else:
                e = nxt[e]
            continue
        ps = same[e]
        if ps >= 0 and not ((lin_req if req[e] else lin_opt) & ebit[ps]):
            if hinted:
                ci += 1
                e = cands[ci]  # type: ignore[index]
            else:
                e = nxt[e]
            continue
        pv = epin[e]
        if pv is MISSING:
            ok, new = step(state, ef[e], earg[e], eret[e])
        else:
            ok = pv == state
            new = state
        if ok:
            fe = forced[e]
            f_now = fe == 1 or (fe == 2 and new == state)
            if req[e]:
                nreq = lin_req | ebit[e]
                nopt = lin_opt
            elif new == state:
                e = nxt[e] if not hinted else cands[ci + 1]  # type: ignore[index]
                ci += 1
                continue
            else:
                nreq = lin_req
                nopt = lin_opt | ebit[e]
            # memo: is this configuration (or one that dominates it) known?
            if has_opt:
                ck = (nreq, new)
                masks = seen_opt_get(ck)
                if masks is None:
                    seen_opt[ck] = [nopt]
                    fresh = True
                else:
                    fresh = True
                    for mk in masks:
                        if mk & ~nopt == 0:
                            fresh = False
                            break
                    if fresh:
                        masks.append(nopt)
            else:
                n_seen = len(seen)
                seen_add((nreq, new))
                fresh = len(seen) != n_seen
            if fresh:
                n_states += 1
                push((e, state, f_now, cands, ci))
                state, lin_req, lin_opt = new, nreq, nopt
                nxt[prv[e]] = nxt[e]
                prv[nxt[e]] = prv[e]
                if req[e]:
                    left -= 1
                    if left == 0:
                        return _PartResult(Verdict.VALID, n_states, [])
                    r = match[e]
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                if hinted:
                    cands = candidates()
                    ci = 0
                    e = cands[0]
                else:
                    e = nxt[head]
                if n_states & 1023 == 0:
                    if n_states > max_states:
                        raise _Budget(f"memory budget of {max_states} cached states spent", n_states)
                    if time.monotonic() > deadline:
                        raise _Budget(_TIME_SPENT, n_states)
                continue
            if f_now:
                done = True
                continue
        if hinted:
            ci += 1
            e = cands[ci]  # type: ignore[index]
        else:
            e = nxt[e]


def _dead_end(stack, epos, state, nxt, head, kind, step, ef, earg, eret) -> _DeadEnd:  # noqa: ANN001
    candidates: list[tuple[int, str | None]] = []
    e = nxt[head]
    while kind[e] != 2:
        e = nxt[e]
    c = nxt[head]
    while c != e and len(candidates) < 20:
        if kind[c] != 2:
            ok, why = step(state, ef[c], earg[c], eret[c])
            candidates.append((epos[c], None if ok else why))
        c = nxt[c]
    return _DeadEnd([(epos[x], s) for x, s, *_ in stack], state, epos[e], candidates)


def _concurrency(ops: list[LinOp]) -> int:
    events = sorted([(op.call, 1) for op in ops] + [(op.ret, -1) for op in ops if op.required])
    cur = top = 0
    for _, d in events:
        cur += d
        top = max(top, cur)
    return top


def _check_part(
    ops: list[LinOp], spec: Spec, deadline: float, max_memory_states: int | None
) -> _PartResult:
    max_states = _default_max_states(len(ops)) if max_memory_states is None else max_memory_states
    try:
        return _search(ops, spec, deadline, max_states)
    except _Budget as b:
        return _PartResult(Verdict.UNKNOWN, b.states, [], b.why)


# ----------------------------------------------------------------------------- parallel

PARALLEL_MIN_OPS = 1_000
"""Below this many ops in all parts together the parts are checked one by one:
starting worker processes would cost more than it saves."""

_JOB: tuple[Spec, list[list[LinOp]], float, int | None] | None = None  # read by forked workers


def _run_job(i: int) -> tuple[int, _PartResult]:
    assert _JOB is not None
    spec, parts, deadline, max_memory_states = _JOB
    return i, _check_part(parts[i], spec, deadline, max_memory_states)


def _idle_cores() -> int:
    """Cores this process may use that are not already busy (1-minute load
    average, counting this process itself): on a machine whose cores are all
    taken, more processes only add start-up and contention (measured: slower)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return n
    return max(1, min(n, int(n - busy + 1)))


def _workers(workers: int | None, parts: list[list[LinOp]]) -> int:
    """How many processes to use: 1 (serial) unless parallel is possible and worth it."""
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"workers must be 1 or more, got {workers}")
        n = workers
    else:
        if sum(len(p) for p in parts) < PARALLEL_MIN_OPS:
            return 1
        n = _idle_cores()
    n = min(n, len(parts))
    if (
        n < 2
        or "fork" not in multiprocessing.get_all_start_methods()
        or multiprocessing.current_process().daemon  # a pool worker cannot start its own
        or threading.active_count() > 1  # forking a threaded process can deadlock the child
    ):
        return 1
    return n


def _run_parts(
    parts: list[list[LinOp]],
    spec: Spec,
    deadline: float,
    max_memory_states: int | None,
    all_keys: bool,
    workers: int,
) -> list[_PartResult | None]:
    """Each part's result, in part order; None for parts not needed for the verdict.

    Serial: parts in order, stopping at the first not linearizable one unless
    ``all_keys``, and at the first that ran out of time. Parallel (``workers``
    > 1): a pool of forked processes takes parts in order; as soon as every
    part up to the first not linearizable one is done, the pool is ended (its
    processes are terminated and joined). The parallel path then keeps exactly
    the results the serial path would have computed, so the outcome does not
    depend on the number of workers.
    """
    results: list[_PartResult | None] = [None] * len(parts)
    if workers <= 1:
        for i, ops in enumerate(parts):
            results[i] = r = _check_part(ops, spec, deadline, max_memory_states)
            if _stops(r, all_keys):
                break
        return results
    global _JOB
    _JOB = (spec, parts, deadline, max_memory_states)
    pool = multiprocessing.get_context("fork").Pool(workers)
    try:
        got: dict[int, _PartResult] = {}
        prefix = 0  # parts 0 .. prefix-1 are all done
        for i, r in pool.imap_unordered(_run_job, range(len(parts))):
            got[i] = r
            while prefix in got:
                if _stops(got[prefix], all_keys):
                    break
                prefix += 1
            if prefix < len(parts) and prefix in got:
                break  # every part the serial order would check is done
    finally:
        _JOB = None
        pool.terminate()
        pool.join()
    # keep what the serial path would have kept
    for i in range(len(parts)):
        r = got[i]
        results[i] = r
        if _stops(r, all_keys):
            break
    return results


def _stops(r: _PartResult, all_keys: bool) -> bool:
    """Whether the parts after this one are left unchecked."""
    if r.verdict is Verdict.INVALID:
        return not all_keys
    return r.verdict is Verdict.UNKNOWN and r.why == _TIME_SPENT


def check_linearizable(
    history: History,
    spec: Spec,
    *,
    timeout: float | None = None,
    max_memory_states: int | None = None,
    all_keys: bool = False,
    workers: int | None = None,
) -> Result:
    """Decide whether ``history`` is linearizable with respect to ``spec``.

    Args:
        history: a validated history (nemesis events are ignored).
        spec: the sequential specification, e.g. ``get_spec("cas-register")``.
        timeout: seconds for the whole check; None for no limit.
        max_memory_states: cached configurations allowed per part (default
            :data:`DEFAULT_MAX_MEMORY_STATES`, less for parts of thousands of ops
            so that the cache stays under about 1.5 GiB).
        all_keys: go on after the first part (key) that is not linearizable and
            report every bad key (for the report; the CLI's ``--all-keys``).
            Default: stop there, the verdict is already known.
        workers: processes checking parts in parallel; None picks the number of
            idle cores (usable cores less the load average) when there are
            several parts and at least :data:`PARALLEL_MIN_OPS` ops; 1 checks
            serially. Workers are forked, so a process running other threads
            (or a daemon process) always checks serially. The result does not
            depend on it; ``details["workers"]`` says how many were used.

    Returns:
        ``Result(True)``, ``Result(False)`` with the witness in ``details``
        (``key``, ``op``, ``reason``, ``partial_linearizations``, ``failures``
        for every bad key found, ``unchecked_keys`` when it stopped early), or
        ``Result("unknown")`` when the budget ran out (``details["unknown"]``
        says where). ``details["time_s"]`` is the time spent.

    Raises:
        ConfigError: the history has an op the spec does not understand, or an
            ok completion that contradicts its invocation; ``workers`` < 1.
    """
    t0 = time.monotonic()
    deadline = _INF if timeout is None else t0 + timeout
    parts = prepare(history, spec)
    keys = list(parts)
    part_ops = [parts[k] for k in keys]
    n_workers = _workers(workers, part_ops)
    results = _run_parts(part_ops, spec, deadline, max_memory_states, all_keys, n_workers)
    failures: list[dict[str, Any]] = []
    unknowns: list[dict[str, Any]] = []
    total_states = 0
    unchecked = 0
    for key, ops, res in zip(keys, part_ops, results, strict=True):
        if res is None:
            unchecked += 1
            continue
        total_states += res.states
        if res.verdict is Verdict.INVALID:
            failures.append(_failure(spec, key, ops, res.dead_ends))
        elif res.verdict is Verdict.UNKNOWN:
            unknowns.append(
                {
                    "key": thaw(key),
                    "reason": res.why,
                    "ops": len(ops),
                    "concurrency": _concurrency(ops),
                    "info_ops": sum(1 for op in ops if not op.required),
                    "states": res.states,
                }
            )
    if unchecked and not failures:
        # stopped because time ran out: every part after it is unknown too; say so once
        unknowns.append({"key": None, "reason": f"not checked: {unchecked} more keys"})
    details: dict[str, Any] = {
        "checker": "linearizable",
        "model": spec.name,
        "ops": sum(1 for _ in history.pairs()),
        "checked_ops": sum(len(ops) for ops, r in zip(part_ops, results, strict=True) if r),
        "keys": len(parts),
        "states": total_states,
        "workers": n_workers,
    }
    if failures:
        verdict = Verdict.INVALID
        first = failures[0]
        details.update(
            key=first["key"],
            op=first["op"],
            reason=first["reason"],
            partial_linearizations=first["partial_linearizations"],
            failures=failures,
        )
        if unchecked:
            details["unchecked_keys"] = unchecked
        if unknowns:
            details["unknown"] = unknowns
        explanation = "\n".join(_explain(f) for f in failures[:3])
        if len(failures) > 3:
            explanation += f"\n... and {len(failures) - 3} more keys are not linearizable"
        if unchecked:
            explanation += (
                f"\n({unchecked} more {'key' if unchecked == 1 else 'keys'} not checked: "
                "the first bad key decides; all_keys=True / --all-keys checks them all)"
            )
    elif unknowns:
        verdict = Verdict.UNKNOWN
        details["unknown"] = unknowns
        explanation = "\n".join(_explain_unknown(u) for u in unknowns)
    else:
        verdict = Verdict.VALID
        n_ops = details["checked_ops"]
        explanation = (
            f"linearizable: {details['ops']} ops ({n_ops} after dropping failed ops and "
            f"reads of unknown outcome) over {len(parts)} {'key' if len(parts) == 1 else 'keys'}"
        )
    details["time_s"] = round(time.monotonic() - t0, 6)
    return Result(verdict.validity, details, explanation)


def _explain_unknown(u: dict[str, Any]) -> str:
    if "ops" not in u:
        return u["reason"]
    where = "" if u["key"] is None else f"key {show(u['key'])}: "
    return (
        f"{where}undecided, {u['reason']} ({u['ops']} ops, at most {u['concurrency']} "
        f"concurrent, {u['info_ops']} info or never completed)"
    )


def _op_json(spec: Spec, op: LinOp) -> dict[str, Any]:
    return {"index": op.index, "description": describe(spec, op)}


def _replay(spec: Spec, ops: list[LinOp], path: list[int]) -> tuple[list[Any], Any]:
    """The states along a partial linearization, with the ops' args as in the history.

    The search may have run on simplified args (see ``Spec.simplify``), whose
    states are less telling; the same sequence is legal with the real args.
    """
    state = spec.init()
    before = []
    for p in path:
        before.append(state)
        ok, nxt = spec.step(state, ops[p].f, _arg(ops[p]), _res(ops[p]))
        if not ok:  # cannot happen for a sound simplify(); keep the witness anyway
            return before + [state] * (len(path) - len(before)), state
        state = nxt
    return before, state


def _failure(spec: Spec, key: Any, ops: list[LinOp], dead_ends: list[_DeadEnd]) -> dict[str, Any]:
    lins = []
    first: tuple[Any, int, list[tuple[int, str | None]]] | None = None
    for de in dead_ends:
        path = [p for p, _ in de.path]
        befores, final = _replay(spec, ops, path)
        blocked = ops[de.blocked]
        candidates = []
        for p, simplified_why in de.candidates:
            ok, why = spec.step(final, ops[p].f, _arg(ops[p]), _res(ops[p]))
            # with the real values it might step; then the search's own reason
            # (from the spec's simplified form) is the explanation
            candidates.append((p, simplified_why if ok else str(why)))
        if first is None:
            first = (final, de.blocked, candidates)
        steps = [
            {"index": ops[p].index, "op": describe(spec, ops[p]), "state_before": spec.describe_state(b)}
            for p, b in zip(path, befores, strict=True)
        ]
        entry: dict[str, Any] = {
            "length": len(steps),
            "steps": steps[-_MAX_PATH:],
            "final_state": spec.describe_state(final),
            "blocked_op": _op_json(spec, blocked),
        }
        if len(steps) > _MAX_PATH:
            entry["omitted"] = len(steps) - _MAX_PATH
        lins.append(entry)
    assert first is not None
    final, b, candidates = first
    blocked = ops[b]
    ok, why = spec.step(final, blocked.f, _arg(blocked), _res(blocked))
    if ok:
        ok, why = spec.step(dead_ends[0].state, blocked.f, blocked.arg, blocked.result)
    reason = str(why) if not ok else "it could go next, but every way on from there fails"
    return {
        "key": thaw(key),
        "op": _op_json(spec, blocked),
        "reason": reason,
        "final_state": spec.describe_state(final),
        "partial_linearizations": lins,
        "candidates": [
            {**_op_json(spec, ops[p]), "reason": str(why or "could go next (leads to a dead end)")}
            for p, why in candidates
        ],
        "ops": len(ops),
    }


def _explain(f: dict[str, Any]) -> str:
    where = "" if f["key"] is None else f"key {show(f['key'])}: "
    lines = [
        f"{where}not linearizable: {f['op']['description']} cannot be linearized: {f['reason']}",
    ]
    lin = f["partial_linearizations"][0]
    lines.append(
        f"  longest partial linearization: {lin['length']} of {f['ops']} ops"
        + (", last steps:" if lin["length"] else "")
    )
    for s in lin["steps"][-8:]:
        lines.append(f"    {s['op']:<50}  state before: {show(s['state_before'])}")
    lines.append(f"  state after it: {show(lin['final_state'])}")
    if len(f["candidates"]) > 1:
        lines.append("  ops that could have gone next, and why not:")
        for c in f["candidates"][:8]:
            lines.append(f"    {c['description']}: {c['reason']}")
    return "\n".join(lines)
