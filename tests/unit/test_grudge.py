"""Partition shapes: each shape's defining property, for many cluster sizes and seeds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepsenlike.errors import ConfigError
from jepsenlike.nemesis import grudge as g


def cluster(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


sizes = st.integers(min_value=3, max_value=12)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def assert_well_formed(grudge: g.Grudge, nodes: list[str]) -> None:
    assert set(grudge) == set(nodes)
    for node, drops in grudge.items():
        assert node not in drops
        assert drops <= set(nodes)


def cut_edges(grudge: g.Grudge) -> set[tuple[str, str]]:
    """(sender, receiver) pairs whose traffic is held."""
    return {(s, r) for r, drops in grudge.items() for s in drops}


@settings(max_examples=60, deadline=None)
@given(n=sizes, seed=seeds)
def test_one_isolates_exactly_one_node(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.one(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    loners = [x for x, drops in grudge.items() if drops == set(nodes) - {x}]
    assert len(loners) == 1
    loner = loners[0]
    for x in nodes:
        if x != loner:
            assert grudge[x] == {loner}


@settings(max_examples=60, deadline=None)
@given(n=sizes, seed=seeds)
def test_halves_are_two_symmetric_components_of_near_equal_size(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.halves(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    seen = g.visible_sets(grudge, nodes)
    components = {frozenset(v) for v in seen.values()}
    assert len(components) == 2
    a, b = sorted(components, key=len)
    assert a | b == set(nodes) and not a & b
    assert len(b) - len(a) <= 1
    edges = cut_edges(grudge)
    assert edges == {(s, r) for s, r in edges if (r, s) in edges}  # symmetric


@settings(max_examples=60, deadline=None)
@given(n=sizes, seed=seeds)
def test_majority_side_is_a_strict_majority_and_rest_is_cut_off(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.majority(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    seen = g.visible_sets(grudge, nodes)
    big = max((frozenset(v) for v in seen.values()), key=len)
    assert len(big) == g.majority_size(n)
    for x in nodes:
        assert seen[x] == (big if x in big else set(nodes) - big)


@settings(max_examples=80, deadline=None)
@given(n=sizes, seed=seeds)
def test_majorities_ring_every_node_sees_a_distinct_majority(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.majorities_ring(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    seen = g.visible_sets(grudge, nodes)
    for node, visible in seen.items():
        assert node in visible
        assert len(visible) >= g.majority_size(n)
    assert len({frozenset(v) for v in seen.values()}) == n
    # And it is a real partition: nobody sees everyone.
    assert all(len(v) < n for v in seen.values())


@pytest.mark.parametrize("n", [4, 5])
def test_majorities_ring_is_symmetric_where_the_window_is_odd(n: int) -> None:
    for seed in range(20):
        edges = cut_edges(g.majorities_ring(cluster(n), random.Random(seed)))
        assert all((r, s) in edges for s, r in edges)


def test_majorities_ring_on_five_is_the_classic_ring() -> None:
    nodes = cluster(5)
    seen = g.visible_sets(g.majorities_ring(nodes, random.Random(7)), nodes)
    # Each node sees exactly two others, and "sees" links form a single 5-cycle.
    assert all(len(v) == 3 for v in seen.values())
    start = nodes[0]
    prev, cur, walked = None, start, [start]
    while True:
        nxt = next(x for x in sorted(seen[cur] - {cur}) if x != prev)
        if nxt == start:
            break
        walked.append(nxt)
        prev, cur = cur, nxt
    assert sorted(walked) == nodes


@settings(max_examples=60, deadline=None)
@given(n=sizes, seed=seeds)
def test_bridge_node_sees_all_and_the_halves_do_not_see_each_other(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.bridge(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    seen = g.visible_sets(grudge, nodes)
    bridges = [x for x in nodes if seen[x] == set(nodes)]
    assert len(bridges) == 1
    middle = bridges[0]
    for x in nodes:
        assert middle in seen[x]  # everyone hears the bridge
    sides = {frozenset(seen[x] - {middle}) for x in nodes if x != middle}
    assert len(sides) == 2
    left, right = sides
    assert not left & right and left | right == set(nodes) - {middle}
    assert abs(len(left) - len(right)) <= 1
    assert all(not seen[x] & (right if x in left else left) for x in nodes if x != middle)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=2, max_value=12), seed=seeds)
def test_asymmetric_is_one_way(n: int, seed: int) -> None:
    nodes = cluster(n)
    grudge = g.asymmetric(nodes, random.Random(seed))
    assert_well_formed(grudge, nodes)
    edges = cut_edges(grudge)
    assert edges, "an asymmetric partition must cut something"
    assert not any((r, s) in edges for s, r in edges)  # no link is cut both ways
    deaf = {x for x in nodes if grudge[x]}
    heard = set(nodes) - deaf
    assert deaf and heard
    assert all(grudge[x] == heard for x in deaf)


@settings(max_examples=40, deadline=None)
@given(n=sizes, seed=seeds, name=st.sampled_from(sorted(g.PARTITION_SHAPES)))
def test_shapes_depend_on_the_node_set_and_seed_not_on_list_order(n: int, seed: int, name: str) -> None:
    shape = g.PARTITION_SHAPES[name]
    nodes = cluster(n)
    shuffled = list(reversed(nodes))
    assert shape(nodes, random.Random(seed)) == shape(shuffled, random.Random(seed))


def test_seeds_give_different_partitions() -> None:
    nodes = cluster(7)
    results = {g.describe(g.halves(nodes, random.Random(s))) for s in range(30)}
    assert len(results) > 5


def test_complete_grudge_and_invert() -> None:
    grudge = g.complete_grudge([["a", "b"], ["c"], ["d", "e"]])
    assert grudge == {
        "a": {"c", "d", "e"},
        "b": {"c", "d", "e"},
        "c": {"a", "b", "d", "e"},
        "d": {"a", "b", "c"},
        "e": {"a", "b", "c"},
    }
    nodes = "abcde"
    seen = g.invert(grudge, nodes)
    assert seen["a"] == {"b"} and seen["c"] == set()
    assert g.invert(seen, nodes) == grudge


def test_complete_grudge_rejects_overlapping_components() -> None:
    with pytest.raises(ConfigError, match=r"overlap on \['b'\]"):
        g.complete_grudge([["a", "b"], ["b", "c"]])


def test_validate_grudge_normalizes() -> None:
    assert g.validate_grudge({"n1": ["n2"]}, cluster(3)) == {"n1": {"n2"}, "n2": set(), "n3": set()}


@pytest.mark.parametrize(
    ("grudge", "message"),
    [
        ({"n9": ["n1"]}, r"unknown node 'n9'; valid nodes: n1, n2, n3"),
        ({"n1": ["n7"]}, r"unknown node 'n7' \(as a sender dropped by 'n1'\); valid nodes: n1, n2, n3"),
        ({"n1": ["n1"]}, r"'n1' drop its own traffic"),
        ({"n1": "n2"}, r"must be a list of nodes, got the string 'n2'"),
        (["n1"], r"must map node -> list"),
    ],
)
def test_validate_grudge_errors_name_the_bad_node(grudge: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        g.validate_grudge(grudge, cluster(3))  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "least"), [("bridge", 3), ("majorities-ring", 3), ("majority", 3), ("one", 2)])
def test_too_few_nodes_is_a_config_error(name: str, least: int) -> None:
    with pytest.raises(ConfigError, match=f"needs at least {least} nodes"):
        g.PARTITION_SHAPES[name](cluster(least - 1), random.Random(0))


def test_unknown_shape_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="unknown partition shape 'ringg'; available: one, halves"):
        g.partition_shape("ringg")
    assert g.partition_shape("bridge") is g.bridge


def test_describe() -> None:
    assert g.describe({"b": {"c", "a"}, "a": set()}) == "b<-{a,c}"
    assert g.describe({"a": set()}) == "(no partition)"
