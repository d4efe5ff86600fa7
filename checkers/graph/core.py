"""The dependency graph shared by the list-append and register analyses.

Theory of operation
-------------------
A node is one client operation ("transaction", even when it is a single read or
write) that took effect: every ``ok`` op, and every ``info`` op whose effect
some other op observed. ``fail`` ops and unobserved ``info`` ops are not nodes;
they can never be in a cycle. Node ids are dense ints (``Txn.id``).

Edges are stored in plain Python structures for speed: ``adj[u]`` is a dict
``{v: mask}`` where ``mask`` ORs the relation bits ``WW``, ``WR``, ``RW``,
``PROCESS`` and ``REALTIME``. The analyses add the data edges (ww, wr, rw);
:func:`add_order_edges` adds the process and real-time edges.

Real time without quadratic blow-up. "A completed before B began" holds for
O(n^2) pairs; we only need their reachability. We add *barrier* nodes (ids
``>= n_txn``): sweeping the history in order, the first invocation after one
or more completions opens a new barrier; each op that completed since the last
barrier points to it, the previous barrier points to it, and every op invoked
while it is the newest barrier hangs off it. Then a path ``A -> b ... b' -> B``
exists iff A completed before B was invoked, with two edges per op plus one
per barrier. Barrier edges carry the ``REALTIME`` bit; the cycle search
counts only op nodes toward a cycle's length and folds a barrier path back
into one real-time step when it explains a cycle.

An ``info`` node has no completion: it gets incoming process and real-time
edges (it was invoked after its predecessors completed) but no outgoing ones.

Strongly connected components are found with an iterative Tarjan over the
int adjacency; only components with more than one node can hold a cycle, and
only they are handed to :mod:`.cycles`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

WW = 1
WR = 2
RW = 4
PROCESS = 8
REALTIME = 16
DATA = WW | WR | RW
ALL = DATA | PROCESS | REALTIME

REL_NAMES: dict[int, str] = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}
REL_BITS: tuple[int, ...] = (WW, WR, RW, PROCESS, REALTIME)


class Txn:
    """One client operation as the graph sees it.

    ``mops`` are micro-ops ``[f, key, value]``: for an ``ok`` op the completed
    ones (reads filled in), otherwise the invoked ones.
    """

    __slots__ = ("id", "invoke", "complete", "process", "type", "f", "mops", "node")

    def __init__(
        self,
        id: int,
        invoke: int,
        complete: int | None,
        process: int | str,
        type: str,
        f: str,
        mops: list[Any],
    ) -> None:
        self.id = id
        self.invoke = invoke
        self.complete = complete
        self.process = process
        self.type = type  # "ok" | "info" | "fail"  (never completed -> "info")
        self.f = f
        self.mops = mops
        self.node = type == "ok"  # info ops become nodes once observed

    @property
    def index(self) -> int:
        """The history index that names this op: its completion, else its invocation."""
        return self.complete if self.complete is not None else self.invoke

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "invoke_index": self.invoke,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": [list(m) for m in self.mops] if self.f == "txn" else _single_value(self),
        }


def _single_value(t: Txn) -> Any:
    f, key, value = t.mops[0]
    return {"key": key, "value": value}


class DepGraph:
    """Adjacency of the dependency graph: ``adj[u] = {v: relation mask}``."""

    __slots__ = ("n_txn", "adj")

    def __init__(self, n_txn: int) -> None:
        self.n_txn = n_txn
        self.adj: list[dict[int, int]] = [{} for _ in range(n_txn)]

    def add(self, u: int, v: int, rel: int) -> None:
        if u != v:
            d = self.adj[u]
            d[v] = d.get(v, 0) | rel

    def new_barrier(self) -> int:
        self.adj.append({})
        return len(self.adj) - 1

    def edge_count(self) -> int:
        return sum(len(d) for d in self.adj)


def add_order_edges(g: DepGraph, txns: list[Txn], history_len: int) -> None:
    """Add process-order and (barrier-encoded) real-time edges between node txns."""
    events: list[Any] = [None] * history_len
    for t in txns:
        if not t.node:
            continue
        events[t.invoke] = t
        if t.type == "ok" and t.complete is not None:
            events[t.complete] = t
    adj = g.adj
    last_of_process: dict[Any, Txn] = {}
    done_since_barrier: list[int] = []
    barrier = -1
    for i, t in enumerate(events):
        if t is None:
            continue
        if t.invoke == i:
            if done_since_barrier:
                b = g.new_barrier()
                for a in done_since_barrier:
                    adj[a][b] = REALTIME
                if barrier >= 0:
                    adj[barrier][b] = REALTIME
                barrier = b
                done_since_barrier = []
            if barrier >= 0:
                adj[barrier][t.id] = REALTIME
            prev = last_of_process.get(t.process)
            if prev is not None and prev.type == "ok":
                d = adj[prev.id]
                d[t.id] = d.get(t.id, 0) | PROCESS
            last_of_process[t.process] = t
        else:
            done_since_barrier.append(t.id)


def strongly_connected(
    adj: list[dict[int, int]], nodes: Iterable[int] | None = None, mask: int = ALL
) -> list[list[int]]:
    """Tarjan's SCCs (iterative) over edges whose mask meets ``mask``.

    ``nodes`` restricts the search to a node subset (edges leaving it are
    ignored). Returns only components with at least two nodes.
    """
    if nodes is None and mask == ALL:
        return _scc_whole(adj)
    if nodes is not None:
        return _scc_subset(adj, nodes, mask)
    n = len(adj)
    if nodes is None:
        member = None
        roots: Iterable[int] = range(n)
    else:
        member = bytearray(n)
        for v in nodes:
            member[v] = 1
        roots = [v for v in range(n) if member[v]]
    index = [-1] * n
    low = [0] * n
    on_stack = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in roots:
        if index[root] >= 0:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = 1
        work = [(root, iter(adj[root].items()))]
        while work:
            v, it = work[-1]
            pushed = False
            for w, m in it:
                if not m & mask or (member is not None and not member[w]):
                    continue
                iw = index[w]
                if iw < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = 1
                    work.append((w, iter(adj[w].items())))
                    pushed = True
                    break
                if on_stack[w] and iw < low[v]:
                    low[v] = iw
            if pushed:
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                w = stack.pop()
                on_stack[w] = 0
                if w == v:
                    continue  # a single node: no cycle
                comp = [w]
                while w != v:
                    w = stack.pop()
                    on_stack[w] = 0
                    comp.append(w)
                out.append(comp)
    return out


def _scc_whole(adj: list[dict[int, int]]) -> list[list[int]]:
    """:func:`strongly_connected` over every node and edge: the hot path, kept lean
    (keys only, no masks, ``for``/``else`` instead of a pushed flag)."""
    n = len(adj)
    index = [-1] * n
    low = [0] * n
    on_stack = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        d = adj[root]
        if not d:  # no successors: a trivial component
            index[root] = counter
            counter += 1
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = 1
        work = [(root, iter(d))]
        while work:
            v, it = work[-1]
            for w in it:
                iw = index[w]
                if iw < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = 1
                    work.append((w, iter(adj[w])))
                    break
                if on_stack[w] and iw < low[v]:
                    low[v] = iw
            else:
                work.pop()
                lv = low[v]
                if work:
                    u = work[-1][0]
                    if lv < low[u]:
                        low[u] = lv
                if lv == index[v]:
                    w = stack.pop()
                    on_stack[w] = 0
                    if w == v:
                        continue
                    comp = [w]
                    while w != v:
                        w = stack.pop()
                        on_stack[w] = 0
                        comp.append(w)
                    out.append(comp)
    return out


def _scc_subset(adj: list[dict[int, int]], nodes: Iterable[int], mask: int) -> list[list[int]]:
    """:func:`strongly_connected` restricted to ``nodes``, in time and memory
    proportional to the subset (the cycle search calls it once per component
    and class, on graphs with far more nodes than the component)."""
    member = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in sorted(member):
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(adj[root].items()))]
        while work:
            v, it = work[-1]
            for w, m in it:
                if not m & mask or w not in member:
                    continue
                iw = index.get(w)
                if iw is None:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(adj[w].items())))
                    break
                if w in on_stack and iw < low[v]:
                    low[v] = iw
            else:
                work.pop()
                lv = low[v]
                if work:
                    u = work[-1][0]
                    if lv < low[u]:
                        low[u] = lv
                if lv == index[v]:
                    w = stack.pop()
                    on_stack.discard(w)
                    if w == v:
                        continue
                    comp = [w]
                    while w != v:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                    out.append(comp)
    return out
