"""Raft's safety claims (paper, figure 3) on a simulated network.

Every test drives :class:`SimCluster`, whose ``check_invariants`` runs after every
step: election safety, leader append-only, log matching, leader completeness, state
machine safety and read freshness. A seeded scheduler (and Hypothesis) decides message
delivery order, loss, duplication, partitions, crashes and restarts from persisted
state, and log compaction. The seeded-bug tests show the checks do fire.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsenlike.models.raft.core import LEADER, Config
from jepsenlike.models.raft.sim import InvariantViolation, SimCluster

SEEDS = range(24)


def _run_seed(seed: int, n: int, steps: int = 2500, **kw) -> SimCluster:
    c = SimCluster(n=n, seed=seed, **kw)
    c.run(steps, random.Random(seed))
    return c


def _assert_converged_and_live(c: SimCluster, leader: str) -> None:
    """After ``stabilize``: one leader, every node applied its whole log, every state
    machine agrees, every acknowledged append is there, and a new append commits."""
    assert [i for i in c.up() if c.nodes[i].role == LEADER] == [leader]
    commit = c.nodes[leader].commit
    assert commit > 0 and all(c.nodes[i].applied == commit for i in c.up())
    states = {i: c.sms[i].data for i in c.up()}
    assert all(s == states[leader] for s in states.values())
    assert set(c.acked_appends) <= set(c.sms[leader].read("x") or [])
    acked = set(c.acked_appends)
    assert c.propose_append(leader)
    leader = c.stabilize()
    new = set(c.acked_appends) - acked
    assert len(new) == 1 and new <= set(c.sms[leader].read("x") or [])
    assert c.nodes[leader].commit > commit


@pytest.mark.parametrize("seed", SEEDS)
def test_safety_claims_hold_under_random_faults(seed: int) -> None:
    c = _run_seed(seed, n=3 if seed % 2 else 5)
    leader = c.stabilize()
    # Not vacuous: the run made progress, and after healing a read completes.
    assert c.writes_done > 0
    reads = c.reads_done
    assert c.read(leader)
    c.run(500, random.Random(seed), faults=False)
    assert c.reads_done > reads
    leader = c.stabilize()
    states = {i: sm.data for i, sm in c.sms.items()}
    assert all(s == states[leader] for s in states.values())
    # Every acknowledged append survived all the crashes.
    final = set(c.sms[leader].read("x") or [])
    assert set(c.acked_appends) <= final


@pytest.mark.parametrize("seed", range(8))
def test_safety_claims_hold_with_single_entry_messages(seed: int) -> None:
    # One entry per append makes followers hold old-term entries without the new
    # leader's no-op, the situation of the paper's figure 8.
    cfg = Config(election_ticks=10, heartbeat_ticks=2, max_entries_per_msg=1, max_inflight=4)
    c = _run_seed(seed, n=5 if seed % 2 else 3, config=cfg)
    _assert_converged_and_live(c, c.stabilize())


def test_lease_reads_are_fresh_when_clocks_agree() -> None:
    # In the simulator all nodes share one tick clock (zero drift).
    for seed in range(6):
        cfg = Config(
            election_ticks=10,
            heartbeat_ticks=2,
            read_mode="lease",
            lease_seconds=8.0,  # < election_ticks - 1 ticks of the shared clock
        )
        c = _run_seed(seed, n=3, config=cfg)
        leader = c.stabilize()
        # Lease reads are served (each checked fresh against every acknowledged append).
        reads = c.reads_done
        assert c.read(leader)
        c.run(300, random.Random(seed), faults=False)
        assert c.reads_done > reads
        _assert_converged_and_live(c, c.stabilize())


ACTIONS = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 1 << 16)), min_size=50, max_size=600
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(n=st.sampled_from([3, 5]), actions=ACTIONS)
def test_safety_claims_hold_for_hypothesis_schedules(n: int, actions: list[tuple[int, int]]) -> None:
    c = SimCluster(n=n, seed=0)
    for kind, p in actions:
        up = c.up()
        if kind <= 2 and c.inflight:
            c.deliver(p % len(c.inflight))
        elif kind == 3 and c.inflight:
            c.drop(p % len(c.inflight))
        elif kind <= 5 and up:
            # Ticks are common so that elections happen in short schedules.
            for _ in range(1 + p % 25):
                c.tick(up[p % len(up)])
        elif kind == 6 and up:
            c.propose_append(up[p % len(up)])
        elif kind == 7 and up:
            c.read(up[p % len(up)])
        elif kind == 8:
            i = c.ids[p % n]
            if c.nodes[i] is None:
                c.restart(i)
            elif (p >> 8) % 2:
                c.crash(i)
            else:
                c.compact(i)
        elif kind == 9:
            if c.cut:
                c.heal()
            else:
                c.partition({i for k, i in enumerate(c.ids) if (p >> k) & 1})
    _assert_converged_and_live(c, c.stabilize())


# ---------------------------------------------------------------- seeded bugs


def test_volatile_vote_breaks_election_safety() -> None:
    claims = set()
    for seed in range(40):
        try:
            _run_seed(seed, n=3, steps=1500, volatile_vote=True)
        except InvariantViolation as e:
            claims.add(e.claim)
    assert "election safety" in claims


def _figure8(bugs: frozenset[str]) -> SimCluster:
    """The paper's figure 8, scripted. Returns the cluster after the last election."""
    cfg = Config(
        election_ticks=10,
        heartbeat_ticks=2,
        pre_vote=False,
        check_quorum=False,
        max_entries_per_msg=1,
        bugs=bugs,
    )
    c = SimCluster(n=5, seed=0, config=cfg)

    def flush(pred, stop=lambda: False) -> None:
        while not stop():
            k = next((k for k, m in enumerate(c.inflight) if pred(m)), None)
            if k is None:
                return
            c.deliver(k)

    def elect(i: str, keep_appends: bool = False) -> None:
        node = c.nodes[i]
        for _ in range(4):
            node.campaign()
            c._process(i)
            flush(lambda m: m.type in ("vote", "vote_resp"))
            if node.role == LEADER:
                if not keep_appends:
                    c.inflight.clear()
                return
        raise AssertionError(f"{i} did not win")

    # (a) n1 leads term 1; its no-op reaches everyone. It appends A, which only n2 gets.
    elect("n1", keep_appends=True)
    flush(lambda m: True)
    assert c.nodes["n1"].commit == 1
    c.propose_append("n1")
    flush(lambda m: "n2" in (m.src, m.dst))
    c.inflight.clear()
    c.crash("n1")
    # (b) n5 wins the next term with n3 and n4, appends its no-op at index 2, crashes.
    elect("n5")
    assert c.nodes["n5"].log.last_index == 2
    c.crash("n5")
    # (c) n1 comes back, wins a later term with n2 and n3 and copies A (index 2, old
    # term) to n3. A is now on a majority, but the new no-op is not.
    c.restart("n1")
    elect("n1", keep_appends=True)
    n1 = c.nodes["n1"]
    flush(
        lambda m: {m.src, m.dst} in ({"n1", "n2"}, {"n1", "n3"}),
        stop=lambda: n1.progress["n3"].match >= 2,
    )
    assert n1.progress["n3"].match == 2 and n1.log.term_at(2) == 1
    c.inflight.clear()
    c.crash("n1")
    # (d) n5 returns and wins with n3 and n4: its index-2 entry (term 2) beats A.
    c.restart("n5")
    elect("n5")
    return c


def test_figure8_old_term_entry_is_not_committed_by_counting() -> None:
    c = _figure8(frozenset())
    assert 2 not in c.committed or c.committed[2][0] != 1


def test_commit_old_term_bug_violates_leader_completeness() -> None:
    with pytest.raises(InvariantViolation, match="leader completeness"):
        _figure8(frozenset({"commit-old-term"}))


def _deposed_leader_lease_read(bugs: frozenset[str]) -> SimCluster:
    """A leader with a fresh lease is cut off and its wall clock jumps back an hour;
    the others elect a new leader and commit an append; then the old leader, which
    has not heard of it, is asked to read."""
    cfg = Config(
        election_ticks=10, heartbeat_ticks=2, read_mode="lease", lease_seconds=8.0, bugs=bugs
    )
    c = SimCluster(n=3, seed=3, config=cfg, wall_clock="lease-without-bound" in bugs)
    old = c.stabilize()
    assert c.propose_append(old)
    c.stabilize()
    c.tick(old)  # a heartbeat round, acknowledged: the lease is renewed
    c.tick(old)
    while c.inflight:
        c.deliver(0)
    c.clock_bump(old, -3600.0)
    c.partition({old})
    others = [i for i in c.ids if i != old]
    rng = random.Random(0)
    new = None
    for _ in range(2000):
        c.tick(rng.choice(others))
        while c.inflight:
            c.deliver(0)
        new = next((i for i in others if c.nodes[i].role == LEADER), None)
        if new:
            break
    assert new is not None
    assert c.propose_append(new)
    for _ in range(50):
        c.tick(new)
        while c.inflight:
            c.deliver(0)
    assert len(c.acked_appends) == 2
    assert c.nodes[old].role == LEADER  # deposed, and does not know it yet
    c.read(old)
    return c


def test_lease_read_on_a_deposed_leader_is_not_served_when_the_lease_is_bounded() -> None:
    c = _deposed_leader_lease_read(frozenset())
    assert c.reads_done == 0  # the read waits for a quorum round that cannot happen
    assert c.pending


def test_lease_without_bound_bug_serves_a_stale_read_after_a_clock_jump() -> None:
    with pytest.raises(InvariantViolation, match="read-freshness"):
        _deposed_leader_lease_read(frozenset({"lease-without-bound"}))
