"""Synthetic histories whose verdict is known: for tests and benchmarks.

Theory of operation
-------------------
Each generator runs the datatype *sequentially*: operations take effect one at
a time at strictly increasing linearization points. Around each point it draws
a real-time interval (invocation before, completion after), on a process that
is free by then, so the recorded history is linearizable (strict
serializable) by construction: the linearization points are the witness.

Outcomes: ``fail`` ops do not take effect; ``info`` ops take effect with
probability 1/2 and their process is retired (a fresh process id replaces
it), and some of them never complete at all. Every random choice comes from
the ``random.Random`` passed in.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from jepsenlike.history import History, Op

__all__ = ["list_append_history", "register_history"]


class _Clock:
    """Processes, linearization points and intervals."""

    def __init__(self, rng: random.Random, n_processes: int, spread: int) -> None:
        self.rng = rng
        self.spread = spread
        self.t = 0
        self.next_pid = n_processes
        self.free: list[tuple[int, int]] = [(0, p) for p in range(n_processes)]
        heapq.heapify(self.free)
        self.events: list[tuple[int, int, dict[str, Any]]] = []
        self.seq = 0

    def slot(self) -> tuple[int, int, int, int]:
        """(process, invoke time, linearization point, completion time)."""
        free_at, pid = heapq.heappop(self.free)
        rng = self.rng
        self.t = max(self.t + rng.randint(1, 3), free_at + 1)
        lp = self.t
        invoke = rng.randint(max(free_at, lp - self.spread), lp)
        complete = lp + rng.randint(1, self.spread)
        return pid, invoke, lp, complete

    def record(self, pid: int, invoke: int, complete: int, f: str, key: Any,
               inv_value: Any, outcome: str, comp_value: Any, completes: bool = True) -> None:
        base = {"process": pid, "f": f}
        if key is not None:
            base["key"] = key
        self.events.append((invoke, self.seq, {**base, "type": "invoke", "value": inv_value}))
        self.seq += 1
        if completes:
            self.events.append((complete, self.seq, {**base, "type": outcome, "value": comp_value}))
            self.seq += 1
        if outcome == "info":
            pid = self.next_pid  # the process is retired
            self.next_pid += 1
        heapq.heappush(self.free, (complete + 1, pid))

    def history(self) -> History:
        self.events.sort(key=lambda e: (e[0], e[1]))
        ops = [
            Op(index=i, time=t * 1000, process=d["process"], type=d["type"], f=d["f"],
               key=d.get("key"), value=d["value"])
            for i, (t, _, d) in enumerate(self.events)
        ]
        return History.from_ops(ops, source="<synthetic>")


def _outcome(rng: random.Random, p_fail: float, p_info: float) -> tuple[str, bool]:
    """(outcome, takes effect)."""
    r = rng.random()
    if r < p_fail:
        return "fail", False
    if r < p_fail + p_info:
        return "info", rng.random() < 0.5
    return "ok", True


def list_append_history(
    rng: random.Random,
    *,
    n_txns: int = 50,
    target_micro_ops: int | None = None,
    n_processes: int = 5,
    keys_active: int = 3,
    max_appends_per_key: int = 32,
    max_mops: int = 4,
    read_fraction: float = 0.5,
    p_fail: float = 0.05,
    p_info: float = 0.05,
    single_ops: bool = False,
    spread: int = 10,
    final_reads: bool = False,
) -> History:
    """A strict-serializable list-append history.

    Args:
        n_txns: transactions to generate (ignored if ``target_micro_ops``).
        target_micro_ops: stop once this many micro-ops were generated.
        keys_active: keys in use at a time; a key is retired after
            ``max_appends_per_key`` appends and a fresh key takes its place.
        single_ops: emit single ``append``/``read`` ops instead of ``txn``s.
        final_reads: end with one ok read of every key ever used (as Jepsen's
            final generator does), each its own transaction.
    """
    clock = _Clock(rng, n_processes, spread)
    state: dict[int, list[int]] = {}
    appends: dict[int, int] = {}
    active = list(range(keys_active))
    next_key = keys_active
    for k in active:
        state[k] = []
        appends[k] = 0
    micro = 0
    i = 0
    while (micro < target_micro_ops) if target_micro_ops is not None else (i < n_txns):
        i += 1
        pid, invoke, _, complete = clock.slot()
        outcome, effective = _outcome(rng, p_fail, p_info)
        n = 1 if single_ops else rng.randint(1, max_mops)
        micro += n
        local: dict[int, list[int]] = {}
        mops: list[list[Any]] = []
        for _ in range(n):
            slot = rng.randrange(len(active))
            k = active[slot]
            if rng.random() < read_fraction:
                cur = local.get(k, state[k])
                mops.append(["r", k, list(cur)])
            else:
                appends[k] += 1
                v = appends[k]
                cur = local.get(k)
                if cur is None:
                    cur = local[k] = list(state[k])
                cur.append(v)
                mops.append(["append", k, v])
                if appends[k] >= max_appends_per_key:
                    state.setdefault(next_key, [])
                    appends[next_key] = 0
                    active[slot] = next_key
                    next_key += 1
        if effective:
            state.update(local)
        inv_mops = [[f, k, None] if f == "r" else [f, k, v] for f, k, v in mops]
        comp_mops = mops if outcome == "ok" else inv_mops
        completes = outcome != "info" or rng.random() < 0.7
        if single_ops:
            f, k, v = mops[0]
            fname = "read" if f == "r" else "append"
            inv_v = None if f == "r" else v
            comp_v = v if (f == "append" or outcome == "ok") else None
            clock.record(pid, invoke, complete, fname, k, inv_v, outcome, comp_v, completes)
        else:
            clock.record(pid, invoke, complete, "txn", None, inv_mops, outcome, comp_mops,
                         completes)
    if final_reads:
        for k in sorted(state):
            pid, invoke, _, complete = clock.slot()
            if single_ops:
                clock.record(pid, invoke, complete, "read", k, None, "ok", list(state[k]))
            else:
                clock.record(pid, invoke, complete, "txn", None, [["r", k, None]], "ok",
                             [["r", k, list(state[k])]])
    return clock.history()


def register_history(
    rng: random.Random,
    *,
    n_ops: int = 30,
    n_processes: int = 4,
    n_keys: int = 2,
    read_fraction: float = 0.4,
    cas_fraction: float = 0.3,
    p_fail: float = 0.05,
    p_info: float = 0.1,
    spread: int = 10,
) -> History:
    """A linearizable read/write/cas register history with unique written values.

    A cas whose ``old`` does not match the current value completes ``fail``.
    """
    clock = _Clock(rng, n_processes, spread)
    value: dict[int, Any] = dict.fromkeys(range(n_keys))
    written: dict[int, list[int]] = {k: [] for k in range(n_keys)}
    counter = 0
    for _ in range(n_ops):
        pid, invoke, _, complete = clock.slot()
        k = rng.randrange(n_keys)
        r = rng.random()
        outcome, effective = _outcome(rng, p_fail, p_info)
        completes = outcome != "info" or rng.random() < 0.7
        if r < read_fraction:
            comp = value[k] if outcome == "ok" else None
            clock.record(pid, invoke, complete, "read", k, None, outcome, comp, completes)
            continue
        counter += 1
        new = counter
        if r < read_fraction + cas_fraction:
            if rng.random() < 0.7 or not written[k]:
                old = value[k]
            else:
                old = rng.choice(written[k])
            if old != value[k] and outcome != "info":
                outcome, effective = "fail", False
            elif old != value[k]:
                effective = False
            if effective:
                value[k] = new
                written[k].append(new)
            clock.record(pid, invoke, complete, "cas", k, [old, new], outcome, [old, new],
                         completes)
        else:
            if effective:
                value[k] = new
                written[k].append(new)
            clock.record(pid, invoke, complete, "write", k, new, outcome, new, completes)
    return clock.history()


# --------------------------------------------------------------------------- injections
#
# Each injection edits a valid list-append txn history so that it contains one
# known anomaly, entangled with existing transactions: the anomaly's ops are
# transactions already in the history (given extra micro-ops on fresh keys),
# plus, where the anomaly needs a witness read, reads appended at the end.

INJECTIONS: dict[str, str] = {
    "G0": "G0",
    "G1a": "G1a",
    "G1b": "G1b",
    "G1c": "G1c",
    "G-single": "G-single",
    "G2": "G2",
    "stale-read": "G-single-realtime",
    "lost-append": "lost-append",
    "duplicate-elements": "duplicate-elements",
    "garbage-read": "garbage-read",
    "incompatible-order": "incompatible-order",
}
"""Injection name -> the anomaly type the checker must report."""


class _Editor:
    def __init__(self, history: History) -> None:
        self.ops = [op.to_dict() for op in history.ops]
        self.history = history
        self.pairs = [
            (inv.index, comp.index)
            for inv, comp in history.pairs()
            if comp is not None and comp.type == "ok" and inv.f == "txn"
        ]
        procs = [op.process for op in history.ops if isinstance(op.process, int)]
        self.next_pid = (max(procs) + 1) if procs else 0
        self.tail: list[dict[str, Any]] = []
        self.fresh = 0

    def key(self) -> str:
        self.fresh += 1
        return f"injected-{self.fresh}"

    def prepend(self, pair: tuple[int, int], mops: list[list[Any]]) -> None:
        inv, comp = pair
        self.ops[inv]["value"] = [[f, k, None if f == "r" else v] for f, k, v in mops] + list(
            self.ops[inv]["value"]
        )
        self.ops[comp]["value"] = [list(m) for m in mops] + list(self.ops[comp]["value"])

    def final_txn(self, mops: list[list[Any]]) -> None:
        """A txn run alone after everything else, on a fresh process."""
        pid = self.next_pid
        self.next_pid += 1
        inv = [[f, k, None if f == "r" else v] for f, k, v in mops]
        self.tail.append({"process": pid, "type": "invoke", "f": "txn", "value": inv})
        self.tail.append({"process": pid, "type": "ok", "f": "txn", "value": mops})

    def build(self) -> History:
        t = self.ops[-1]["time"] if self.ops else 0
        out = list(self.ops)
        for d in self.tail:
            t += 1000
            out.append({**d, "index": len(out), "time": t})
        return History.from_ops(out, source="<synthetic+injected>")


def inject(history: History, kind: str, rng: random.Random) -> History | None:
    """Return a copy of a txn list-append history with anomaly ``kind`` injected.

    None when the history has too few suitable transactions.
    """
    ed = _Editor(history)
    if kind == "G1a":
        return _inject_g1a(history, ed, rng)
    if len(ed.pairs) < 2:
        return None
    a, b = rng.sample(ed.pairs, 2)
    x, y = ed.key(), ed.key()
    if kind == "G0":
        ed.prepend(a, [["append", x, 1], ["append", y, 2]])
        ed.prepend(b, [["append", x, 3], ["append", y, 4]])
        ed.final_txn([["r", x, [1, 3]], ["r", y, [4, 2]]])
    elif kind == "G1b":
        ed.prepend(a, [["append", x, 1], ["append", x, 2]])
        ed.prepend(b, [["r", x, [1]]])
        ed.final_txn([["r", x, [1, 2]]])
    elif kind == "G1c":
        ed.prepend(a, [["append", x, 1], ["r", y, [2]]])
        ed.prepend(b, [["append", y, 2], ["r", x, [1]]])
    elif kind == "G-single":
        ed.prepend(a, [["r", x, []], ["r", y, [3]]])
        ed.prepend(b, [["append", x, 2], ["append", y, 3]])
        ed.final_txn([["r", x, [2]]])
    elif kind == "G2":
        ed.prepend(a, [["append", x, 1], ["r", y, []]])
        ed.prepend(b, [["append", y, 2], ["r", x, []]])
        ed.final_txn([["r", x, [1]], ["r", y, [2]]])
    elif kind == "stale-read":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1]]])
        ed.final_txn([["r", x, []]])
    elif kind == "lost-append":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, []]])
    elif kind == "duplicate-elements":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1, 1]]])
    elif kind == "garbage-read":
        ed.prepend(a, [["append", x, 1]])
        ed.final_txn([["r", x, [1, 99]]])
    elif kind == "incompatible-order":
        ed.prepend(a, [["append", x, 1]])
        ed.prepend(b, [["append", x, 2]])
        ed.final_txn([["r", x, [1, 2]]])
        ed.final_txn([["r", x, [2, 1]]])
    else:
        raise ValueError(f"unknown injection {kind!r}; known: {', '.join(INJECTIONS)}")
    return ed.build()


def _inject_g1a(history: History, ed: _Editor, rng: random.Random) -> History | None:
    """Turn an ok txn whose append some read observed into a ``fail``."""
    readers: dict[tuple[Any, Any], set[int]] = {}
    for inv, comp in history.pairs():
        if comp is not None and comp.type == "ok" and inv.f == "txn":
            for f, k, v in comp.value:
                if f == "r" and v:
                    for e in v:
                        readers.setdefault((k, e), set()).add(comp.index)
    candidates = [
        (i, c) for i, c in ed.pairs
        if any(
            f == "append" and readers.get((k, v), set()) - {c}
            for f, k, v in ed.ops[c]["value"]
        )
    ]
    if not candidates:
        return None
    inv, comp = rng.choice(candidates)
    ed.ops[comp]["type"] = "fail"
    ed.ops[comp]["value"] = ed.ops[inv]["value"]
    return ed.build()
