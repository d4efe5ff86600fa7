"""Safety of the Paxos core under many schedules, and proof that the checks bite.

The simulator's oracle (see :mod:`jepsenlike.models.paxos.sim`) checks, as every
event happens, that no slot has two chosen values, that all learners apply the
same sequence, that acknowledged commands stay, that reads are linearizable and
that durable promises never go back. Schedules come from seeded random
schedulers and from Hypothesis, with message loss, duplication, reordering,
partitions, crashes and restarts from what each node persisted. After the faults,
a healed cluster must still elect a leader and decide a new command everywhere.

The seeded-bug tests run the same search on a node with one rule broken and
require a violation within a fixed budget: if they pass without finding one,
the invariants are too weak to trust.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jepsenlike.models.paxos.sim import ACTIONS, DEFAULT_WEIGHTS, InvariantViolation, SimCluster


def assert_live_and_converged(c: SimCluster) -> None:
    """Heal everything; a leader must emerge and a new command reach every node."""
    c.stabilize(60)
    leader = c.leader()
    assert leader is not None, f"no leader after healing\n{c.explain()}"
    c.propose(leader, "final")
    c.stabilize(20)
    logs = {i: c.applied(i) for i in c.ids}
    first = logs[c.ids[0]]
    assert all(log == first for log in logs.values()), {i: len(v) for i, v in logs.items()}
    assert "final" in first


@pytest.mark.parametrize("n", [3, 5])
def test_seeded_random_schedules_keep_every_invariant(n):
    for seed in range(60):
        c = SimCluster(n, seed=seed)
        try:
            c.run_random(3000)
            assert_live_and_converged(c)
        except InvariantViolation as e:
            pytest.fail(f"n={n} seed={seed}: {e}\n{c.explain()}")
        assert len(c.oracle.acked) > 0, f"seed {seed}: nothing was ever acknowledged"


def test_checkpoints_and_crashes_heavy_schedules_keep_every_invariant():
    weights = dict(DEFAULT_WEIGHTS, compact=8, crash=4, restart=8, drop=8)
    for seed in range(40):
        c = SimCluster(3, seed=1000 + seed, weights=weights)
        try:
            c.run_random(3000)
            assert_live_and_converged(c)
        except InvariantViolation as e:
            pytest.fail(f"seed={seed}: {e}\n{c.explain()}")


# Hypothesis picks the action at every step. "elapse" (a tick everywhere, then every
# message in flight delivered) lets short schedules reach elections and decisions;
# the fine-grained actions (one delivery, one loss, one tick, a crash) go between.
_ACTION_POOL = ["elapse"] * 6 + [a for a in ACTIONS if a != "elapse"] + ["propose"] * 3

schedules = st.lists(
    st.tuples(st.sampled_from(_ACTION_POOL), st.integers(0, 1 << 20)),
    min_size=80,
    max_size=400,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([3, 5]), seed=st.integers(0, 1 << 16), schedule=schedules)
def test_hypothesis_schedules_keep_every_invariant(n, seed, schedule):
    c = SimCluster(n, seed=seed)
    for action, arg in schedule:
        c.do(action, arg)
    assert_live_and_converged(c)


def find_violation(bug: str, seeds: int, steps: int = 3000, n: int = 3) -> InvariantViolation | None:
    for seed in range(seeds):
        c = SimCluster(n, seed=seed, bugs=[bug])
        try:
            c.run_random(steps)
        except InvariantViolation as e:
            return e
    return None


@pytest.mark.parametrize(
    ("bug", "seeds", "expected"),
    [
        ("no-adopt", 20, "two values chosen"),
        ("volatile-acceptor", 20, "two values chosen|stale read|lost"),
        ("non-unique-ballots", 400, "two values chosen|learners disagree"),
        ("stale-read", 20, "stale read"),
    ],
)
def test_each_seeded_bug_is_caught_within_a_bounded_search(bug, seeds, expected):
    e = find_violation(bug, seeds)
    assert e is not None, f"{bug}: no invariant violated in {seeds} seeded runs"
    assert re.search(expected, str(e)), str(e)


@settings(
    max_examples=300,
    deadline=None,
    phases=[Phase.generate],  # finding one is the point; shrinking it costs seconds
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 1 << 16), schedule=schedules)
def _no_adopt_schedule_is_safe(seed, schedule):
    c = SimCluster(3, seed=seed, bugs=["no-adopt"])
    for action, arg in schedule:
        c.do(action, arg)


def test_hypothesis_finds_the_no_adopt_bug():
    # The same Hypothesis schedules that the correct node survives break no-adopt.
    with pytest.raises(InvariantViolation, match="two values chosen"):
        _no_adopt_schedule_is_safe()
