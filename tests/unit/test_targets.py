"""Target specs resolve to concrete nodes by pure, seeded functions."""

from __future__ import annotations

import random

import pytest

from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.targets import (
    majority_size,
    minority_size,
    parse_target_spec,
    resolve_targets,
)

NODES5 = ["n1", "n2", "n3", "n4", "n5"]


@pytest.mark.parametrize("n, minority, majority", [(1, 0, 1), (2, 0, 2), (3, 1, 2), (4, 1, 3), (5, 2, 3), (7, 3, 4)])
def test_sizes(n, minority, majority):
    assert (minority_size(n), majority_size(n)) == (minority, majority)
    # A minority and a majority never overlap in more than the whole.
    assert minority + majority <= n


@pytest.mark.parametrize("spec, size", [("one", 1), ("minority", 2), ("majority", 3), ("all", 5)])
def test_sizes_of_resolved_specs_and_cluster_order(spec, size):
    for seed in range(20):
        got = resolve_targets(spec, NODES5, random.Random(seed))
        assert len(got) == size
        assert got == sorted(got, key=NODES5.index)
        assert set(got) <= set(NODES5)


def test_same_rng_state_same_targets_and_different_seeds_vary():
    a = [resolve_targets("minority", NODES5, random.Random(s)) for s in range(10)]
    b = [resolve_targets("minority", NODES5, random.Random(s)) for s in range(10)]
    assert a == b
    assert len({tuple(x) for x in a}) > 1


def test_leader_target_uses_the_leader_and_falls_back_to_one_node():
    assert resolve_targets("leader", NODES5, random.Random(1), leader="n4") == ["n4"]
    fallback = resolve_targets("leader", NODES5, random.Random(1), leader=None)
    assert len(fallback) == 1 and fallback[0] in NODES5
    # A stale leader id that is not in the cluster is not trusted either.
    assert len(resolve_targets("leader", NODES5, random.Random(1), leader="n9")) == 1


def test_explicit_node_lists():
    assert resolve_targets("n3+n1", NODES5, random.Random(0)) == ["n1", "n3"]
    with pytest.raises(ValueError, match="n9"):
        resolve_targets("n1+n9", NODES5, random.Random(0))
    assert parse_target_spec(" n1+n2 ", NODES5) == "n1+n2"
    with pytest.raises(ConfigError, match="node\\(s\\) n7 not in the cluster"):
        parse_target_spec("n7", NODES5)
    with pytest.raises(ConfigError, match="unknown target 'primary'"):
        parse_target_spec("primary", NODES5)


def test_empty_cluster_and_all():
    assert resolve_targets("one", [], random.Random(0)) == []
    assert resolve_targets("all", NODES5, random.Random(0)) == NODES5
