"""Cycle search: the shortest cycle of each anomaly class inside each SCC.

Theory of operation
-------------------
A cycle in the dependency graph is an anomaly; its class depends on which
relations its edges use (Adya's phenomena, as Elle names them):

=============  =============================================================
G0             only ww edges (write cycle)
G1c            ww and wr edges, at least one wr (circular information flow)
G-single       exactly one rw edge (read skew)
G2             two or more rw edges (anti-dependency cycle, write skew)
G-nonadjacent  two or more rw edges, no two of them adjacent (also around the
               cycle's end); it rules out snapshot isolation, which permits
               G2 cycles whose rw edges sit next to each other (write skew)
=============  =============================================================

Each class has a ``-process`` variant, where the cycle also uses at least one
process-order edge, and a ``-realtime`` variant, where it uses at least one
real-time edge (process edges allowed too). The plain classes use data edges
only. The variants rule out session and strict models respectively.

Only nodes of a nontrivial strongly connected component (SCC) can lie on a
cycle, so the search runs per SCC. For each (class, variant) we restrict the
SCC to the allowed relations and split it again into SCCs (the same Tarjan); in
each sub-SCC we *anchor* on the edges every cycle of the class must contain
(rw for G-single/G2, wr for G1c, ww for G0; the process or real-time edge for
variants). For an anchor ``u -> v`` a breadth-first search from ``v`` back to
``u`` over (node, state) pairs, where the state counts rw edges (0, 1, 2+),
whether a wr edge was seen and whether the variant's edge was seen, finds the
shortest path that completes a cycle of the class. Barrier nodes (real time)
cost nothing to pass through, so this is a 0-1 BFS and lengths count
operations only. The shortest over all anchors is the shortest cycle of the
class in that sub-SCC. For very large SCCs the anchors are sampled
(``max_anchors``); the result then says so, since a shorter cycle may exist.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from .core import (
    ALL,
    DATA,
    PROCESS,
    REALTIME,
    REL_BITS,
    RW,
    WR,
    WW,
    DepGraph,
    strongly_connected,
)

CLASSES: tuple[str, ...] = ("G0", "G1c", "G-single", "G2", "G-nonadjacent")
VARIANTS: tuple[tuple[str, int, int], ...] = (
    # suffix, extra relations allowed, relation the cycle must use
    ("", 0, 0),
    ("-process", PROCESS, PROCESS),
    ("-realtime", PROCESS | REALTIME, REALTIME),
)
_CLASS_RELS = {"G0": WW, "G1c": WW | WR, "G-single": DATA, "G2": DATA, "G-nonadjacent": DATA}
_CLASS_ANCHOR = {"G0": WW, "G1c": WR, "G-single": RW, "G2": RW, "G-nonadjacent": RW}

WORK_BUDGET = 400_000  # anchors x sub-SCC nodes per class; beyond it anchors are sampled

# state bits
_RW_MASK = 3
_SEEN_WR = 4
_SEEN_EXTRA = 8
_LAST_RW = 16  # G-nonadjacent only: the previous edge was rw
_FIRST_RW = 32  # G-nonadjacent only: the anchor (first edge) was rw
_SBITS = 6  # state bits in a packed search key
_SMASK = (1 << _SBITS) - 1

Step = tuple[int, int, int]  # (from txn, to txn, relation bit)


def _advance(state: int, rel: int, required: int) -> int:
    if rel == RW:
        rw = state & _RW_MASK
        if rw < 2:
            state = (state & ~_RW_MASK) | (rw + 1)
    elif rel == WR:
        state |= _SEEN_WR
    if rel & required:
        state |= _SEEN_EXTRA
    return state


def _step(state: int, rel: int, required: int, single: bool, nonadj: bool) -> int:
    """The BFS state after an edge of relation ``rel``; -1 if the class forbids it."""
    s2 = _advance(state, rel, required)
    if single and (s2 & _RW_MASK) > 1:
        return -1
    if nonadj:
        if rel == RW:
            if state & _LAST_RW:
                return -1
            s2 |= _LAST_RW
        else:
            s2 &= ~_LAST_RW
    return s2


# the relation bits set in each mask value
_BITS: tuple[tuple[int, ...], ...] = tuple(
    tuple(r for r in REL_BITS if m & r) for m in range(ALL + 1)
)


def _accepts(cls: str, state: int, required: int) -> bool:
    if required and not state & _SEEN_EXTRA:
        return False
    rw = state & _RW_MASK
    if cls == "G-nonadjacent":
        return rw == 2 and not (state & _LAST_RW and state & _FIRST_RW)
    if cls == "G0":
        return rw == 0 and not state & _SEEN_WR
    if cls == "G1c":
        return rw == 0 and bool(state & _SEEN_WR)
    if cls == "G-single":
        return rw == 1
    return rw == 2


def nonadjacent(steps: list[Step]) -> bool:
    """True if the cycle has two or more rw edges and no two of them adjacent."""
    rels = [r for _, _, r in steps]
    n = len(rels)
    if sum(1 for r in rels if r == RW) < 2:
        return False
    return not any(rels[i] == RW and rels[(i + 1) % n] == RW for i in range(n))


def _is_class(steps: list[Step], target: str) -> bool:
    name = classify(steps)
    if target.startswith("G-nonadjacent"):
        return name == "G2" + target[len("G-nonadjacent"):] and nonadjacent(steps)
    return name == target


def classify(steps: list[Step]) -> str:
    """The anomaly name of a cycle given its (txn-level) steps."""
    rw = sum(1 for _, _, r in steps if r == RW)
    wr = any(r == WR for _, _, r in steps)
    if rw >= 2:
        base = "G2"
    elif rw == 1:
        base = "G-single"
    elif wr:
        base = "G1c"
    else:
        base = "G0"
    if any(r == REALTIME for _, _, r in steps):
        return base + "-realtime"
    if any(r == PROCESS for _, _, r in steps):
        return base + "-process"
    return base


def _bfs_back(
    g: DepGraph,
    members: set[int],
    anchor: Step,
    allowed: int,
    cls: str | None,
    required: int,
    limit: int,
) -> list[Step] | None:
    """Shortest path from the anchor's head back to its tail completing a cycle.

    ``cls`` None accepts any cycle. ``limit`` bounds the cycle length (in ops).
    """
    u, v, rel = anchor
    adj = g.adj
    n_txn = g.n_txn
    start_state = _advance(0, rel, required)
    nonadj = cls == "G-nonadjacent"
    if nonadj and rel == RW:
        start_state |= _LAST_RW | _FIRST_RW
    # a search key packs (node, state) into one int: node << _SBITS | state
    start = v << _SBITS | start_state
    dist = {start: 0 if v >= n_txn else 1}
    parent: dict[int, tuple[int, int]] = {}
    dq = deque([start])
    single = cls == "G-single"
    trans: dict[tuple[int, int], int] = {}  # (state, relation) -> next state, -1: not allowed
    while dq:
        cur = dq.popleft()
        node = cur >> _SBITS
        state = cur & _SMASK
        d = dist[cur]
        if node == u:
            if cls is None or _accepts(cls, state, required):
                return _unwind(parent, cur, start, anchor)
            continue
        for w, m in adj[node].items():
            m &= allowed
            if not m or w not in members:
                continue
            cost = 0 if w >= n_txn else 1
            nd = d + cost
            if nd > limit:
                continue
            for r in _BITS[m]:
                s2 = trans.get((state, r))
                if s2 is None:
                    s2 = trans[state, r] = _step(state, r, required, single, nonadj)
                if s2 < 0:
                    continue
                key = w << _SBITS | s2
                old = dist.get(key)
                if old is not None and old <= nd:
                    continue
                dist[key] = nd
                parent[key] = (cur, r)
                if cost:
                    dq.append(key)
                else:
                    dq.appendleft(key)
    return None


def _unwind(parent: dict[int, tuple[int, int]], end: int, start: int, anchor: Step) -> list[Step]:
    raw: list[Step] = []
    cur = end
    while cur != start:
        prev, r = parent[cur]
        raw.append((prev >> _SBITS, cur >> _SBITS, r))
        cur = prev
    raw.append(anchor)
    raw.reverse()
    return raw


def simple_cycles_of(raw: list[Step]) -> list[list[Step]]:
    """Split a closed walk into simple cycles (the product-state BFS may revisit a
    node in a different state, so what it finds is a walk, not always a cycle)."""
    out: list[list[Step]] = []
    stack: list[Step] = []
    pos: dict[int, int] = {}
    for step in raw:
        a = step[0]
        i = pos.get(a)
        if i is not None:
            loop = stack[i:]
            out.append(loop)
            for s in loop:
                del pos[s[0]]
            del stack[i:]
        pos[a] = len(stack)
        stack.append(step)
    out.append(stack)
    return out


def collapse_barriers(raw: list[Step], n_txn: int) -> list[Step]:
    """Fold each path through barrier nodes into one real-time step between ops."""
    out: list[Step] = []
    entered_from: int | None = None
    # rotate so that the cycle starts at an op, not a barrier
    k = next(i for i, (a, _, _) in enumerate(raw) if a < n_txn)
    raw = raw[k:] + raw[:k]
    for a, b, r in raw:
        if b >= n_txn:
            if a < n_txn:
                entered_from = a
            continue
        if a >= n_txn:
            assert entered_from is not None
            out.append((entered_from, b, REALTIME))
            entered_from = None
        else:
            out.append((a, b, r))
    return out


def _anchors(
    g: DepGraph, members: set[int], rel: int
) -> list[Step]:
    out = []
    adj = g.adj
    n_txn = g.n_txn
    for u in members:
        if u >= n_txn:
            continue
        for w, m in adj[u].items():
            hit = m & rel
            if hit and w in members:
                out.append((u, w, hit & -hit))  # one relation bit
    out.sort()
    return out


def _sample(items: list[Step], k: int) -> list[Step]:
    if len(items) <= k:
        return items
    stride = len(items) / k
    return [items[int(i * stride)] for i in range(k)]


class CycleSearch:
    """Finds the shortest cycle per class and variant in each nontrivial SCC."""

    def __init__(
        self, g: DepGraph, *, max_anchors: int = 200, timeout: float | None = 30.0
    ) -> None:
        self.g = g
        self.max_anchors = max_anchors
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.sampled = False
        self.timed_out = False

    def _expired(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            return True
        return False

    def search_scc(self, scc: list[int]) -> list[tuple[str, list[Step]]]:
        """Cycles found in one SCC: ``[(anomaly name, txn-level steps)]``.

        Never empty: once the time budget is spent, or if no class search
        succeeds, one cycle found by a single search is reported as it is.
        """
        members = set(scc)
        found: list[tuple[str, list[Step]]] = []
        if not self._expired():
            for suffix, extra, required in VARIANTS:
                for cls in CLASSES:
                    if self._expired():
                        break
                    allowed = _CLASS_RELS[cls] | extra
                    cycle = self._shortest_in(scc, allowed, cls, required)
                    if cycle is not None:
                        found.append((cls + suffix, cycle))
        if not found:
            steps = self._any_cycle(members)
            found.append((classify(steps), steps))
        return found

    def _any_cycle(self, members: set[int]) -> list[Step]:
        g = self.g
        anchor = _anchors(g, members, ALL)[0]
        raw = _bfs_back(g, members, anchor, ALL, None, 0, len(members) + 1)
        assert raw is not None, "an SCC always has a cycle through each of its edges"
        loops = [lp for lp in simple_cycles_of(raw) if any(a < g.n_txn for a, _, _ in lp)]
        return collapse_barriers(min(loops, key=len), g.n_txn)

    def _shortest_in(
        self, scc: list[int], allowed: int, cls: str, required: int
    ) -> list[Step] | None:
        g = self.g
        best: list[Step] | None = None
        anchor_rel = required or _CLASS_ANCHOR[cls]
        target = cls + next(sfx for sfx, _, req in VARIANTS if req == required)
        # the SCC split again over the class's relations only
        for comp in strongly_connected(g.adj, scc, allowed):
            if not any(n < g.n_txn for n in comp):
                continue
            sub = set(comp)
            anchors = _anchors(g, sub, anchor_rel)
            # each anchor may cost a search of the whole sub-SCC: bound the total work
            budget = max(8, min(self.max_anchors, WORK_BUDGET // len(sub)))
            if len(anchors) > budget:
                self.sampled = True
                anchors = _sample(anchors, budget)
            for anchor in anchors:
                if self._expired():
                    return best
                limit = len(sub) + 1 if best is None else len(best) - 1
                if limit < 2:
                    break
                raw = _bfs_back(g, sub, anchor, allowed, cls, required, limit)
                if raw is None:
                    continue
                steps = self._matching(raw, target)
                if steps is None:
                    continue
                if best is None or len(steps) < len(best):
                    best = steps
                    if len(best) == 2:
                        break
        return best

    def _matching(self, raw: list[Step], target: str) -> list[Step] | None:
        """The shortest simple cycle of class ``target`` in a closed walk."""
        best = None
        for loop in simple_cycles_of(raw):
            if all(a >= self.g.n_txn for a, _, _ in loop):
                continue
            steps = collapse_barriers(loop, self.g.n_txn)
            if _is_class(steps, target) and (best is None or len(steps) < len(best)):
                best = steps
        return best


def find_cycles(
    g: DepGraph, sccs: list[list[int]], *, max_anchors: int = 200, timeout: float | None = 30.0
) -> tuple[list[tuple[str, list[Step]]], dict[str, Any]]:
    """Search every SCC; returns the cycles and notes on how complete the search was."""
    search = CycleSearch(g, max_anchors=max_anchors, timeout=timeout)
    out: list[tuple[str, list[Step]]] = []
    for scc in sorted(sccs, key=len):
        out.extend(search.search_scc(scc))
    notes: dict[str, Any] = {}
    if search.sampled:
        notes["anchors_sampled"] = True
    if search.timed_out:
        notes["cycle_search_timed_out"] = True
    return out, notes
