"""Graph plumbing: real-time barriers, SCCs, cycle search and classification."""

from __future__ import annotations

import random

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.graph.core import (
    PROCESS,
    REALTIME,
    RW,
    WR,
    WW,
    DepGraph,
    Txn,
    add_order_edges,
    strongly_connected,
)
from jepsenlike.checkers.graph.cycles import classify, find_cycles, simple_cycles_of
from jepsenlike.checkers.graph.listappend import prepare
from jepsenlike.checkers.synth import list_append_history


def _reach(g: DepGraph, src: int, mask: int) -> set[int]:
    seen, todo = set(), [src]
    while todo:
        u = todo.pop()
        for w, m in g.adj[u].items():
            if m & mask and w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), procs=st.integers(1, 6))
def test_barriers_encode_exactly_the_real_time_order(seed, n, procs):
    h = list_append_history(random.Random(seed), n_txns=n, n_processes=procs, p_info=0.2)
    txns, _ = prepare(h)
    for t in txns:
        t.node = t.type != "fail"  # info ops as nodes too, to cover their edges
    g = DepGraph(len(txns))
    add_order_edges(g, txns, len(h))
    nodes = [t for t in txns if t.node]
    for a in nodes:
        reach = {x for x in _reach(g, a.id, REALTIME | PROCESS) if x < g.n_txn}
        expected = {
            b.id for b in nodes
            if a.type == "ok" and a.complete is not None and a.complete < b.invoke
        }
        assert reach == expected
    # process edges only join consecutive ops of a process, and never leave an info op
    for a in nodes:
        for b, m in g.adj[a.id].items():
            if m & PROCESS:
                assert txns[b].process == a.process and a.type == "ok"
    # linear size: at most one barrier per invocation
    assert len(g.adj) - g.n_txn <= len(nodes)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 25), p=st.floats(0.02, 0.3), seed=st.integers(0, 2**32 - 1))
def test_tarjan_agrees_with_networkx(n, p, seed):
    rng = random.Random(seed)
    g = DepGraph(n)
    h = nx.DiGraph()
    h.add_nodes_from(range(n))
    for u in range(n):
        for v in range(n):
            if u != v and rng.random() < p:
                g.add(u, v, WW)
                h.add_edge(u, v)
    ours = sorted(sorted(c) for c in strongly_connected(g.adj))
    theirs = sorted(sorted(c) for c in nx.strongly_connected_components(h) if len(c) > 1)
    assert ours == theirs


def _graph(n: int, edges: list[tuple[int, int, int]]) -> tuple[DepGraph, list[Txn]]:
    txns = [Txn(i, 2 * i, 2 * i + 1, i, "ok", "txn", []) for i in range(n)]
    g = DepGraph(n)
    for u, v, r in edges:
        g.add(u, v, r)
    return g, txns


def test_shortest_cycle_of_each_class_is_found():
    # 0 -ww-> 1 -ww-> 0 (G0); 2 -wr-> 3 -ww-> 4 -wr-> 2 (G1c);
    # 5 -rw-> 6 -wr-> 5 (G-single); a longer G-single 5 -rw-> 7 -ww-> 8 -wr-> 5
    g, _ = _graph(
        9,
        [(0, 1, WW), (1, 0, WW), (2, 3, WR), (3, 4, WW), (4, 2, WR), (5, 6, RW), (6, 5, WR),
         (5, 7, RW), (7, 8, WW), (8, 5, WR)],
    )
    cycles, notes = find_cycles(g, strongly_connected(g.adj))
    found = {name: steps for name, steps in cycles}
    assert set(found) == {"G0", "G1c", "G-single"}
    assert len(found["G-single"]) == 2
    assert {a for a, _, _ in found["G1c"]} == {2, 3, 4}
    assert notes == {}


def test_g2_needs_two_anti_dependencies_and_g_single_exactly_one():
    g, _ = _graph(3, [(0, 1, RW), (1, 2, RW), (2, 0, WW)])
    [(name, steps)] = find_cycles(g, strongly_connected(g.adj))[0]
    assert name == "G2" and len(steps) == 3


def test_classify_variants():
    assert classify([(0, 1, WW), (1, 0, PROCESS)]) == "G0-process"
    assert classify([(0, 1, WR), (1, 0, REALTIME), (1, 0, PROCESS)]) == "G1c-realtime"
    assert classify([(0, 1, RW), (1, 0, WR)]) == "G-single"
    assert classify([(0, 1, RW), (1, 2, RW), (2, 0, WW)]) == "G2"


def test_a_walk_is_split_into_simple_cycles():
    walk = [(0, 1, WW), (1, 2, RW), (2, 1, WR), (1, 0, WW)]
    loops = simple_cycles_of(walk)
    assert sorted(map(sorted, loops)) == sorted(
        [sorted([(1, 2, RW), (2, 1, WR)]), sorted([(0, 1, WW), (1, 0, WW)])]
    )


def test_large_scc_is_sampled_but_still_reported():
    n = 600
    g, _ = _graph(n, [(i, (i + 1) % n, WW) for i in range(n)])
    cycles, notes = find_cycles(g, strongly_connected(g.adj))
    assert [(name, len(steps)) for name, steps in cycles] == [("G0", n)]
    assert notes == {"anchors_sampled": True}


def test_consistency_lattice():
    from jepsenlike.checkers.graph.explain import consistency_summary

    s = consistency_summary({"G-single"})
    assert set(s["weakest_ruled_out"]) == {"repeatable-read", "snapshot-isolation"}
    assert s["not_ruled_out"] == ["read-uncommitted", "read-committed"]
    s = consistency_summary({"G1c-process"})
    assert s["ruled_out"] == ["strong-session-serializable", "strict-serializable"]
    s = consistency_summary({"lost-append"}, linearizable=True)
    assert s["ruled_out"] == ["strict-serializable", "linearizable"]
    assert s["weakest_ruled_out"] == ["strict-serializable"]
    assert consistency_summary(set())["ruled_out"] == []


def test_every_scc_gets_a_cycle_even_when_the_search_time_is_spent():
    g, _ = _graph(6, [(0, 1, WW), (1, 0, WR), (2, 3, RW), (3, 4, RW), (4, 2, RW), (5, 5, WW)])
    sccs = strongly_connected(g.adj)
    cycles, notes = find_cycles(g, sccs, timeout=0)
    assert notes == {"cycle_search_timed_out": True}
    assert sorted(name for name, _ in cycles) == ["G1c", "G2"]
    assert sorted(len(steps) for _, steps in cycles) == [2, 3]
