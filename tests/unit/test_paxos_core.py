"""The Multi-Paxos core, claim by claim, on scripted schedules of the simulator.

Each test sets up one situation the protocol must handle (a lost accept, a gap, two
competing old ballots, a lagging replica, ...) and checks the outcome the theory
predicts. The simulator's oracle checks the safety invariants along the way.
"""

from __future__ import annotations

import random

import pytest

from jepsenlike.errors import ConfigError
from jepsenlike.models.paxos.core import (
    BUGS,
    LEADER,
    MSG_ACCEPT,
    MSG_NACK,
    MSG_PREPARE,
    MSG_PROMISE,
    Accepted,
    Config,
    Message,
    NotLeader,
    PaxosNode,
    PersistentState,
    Snapshot,
    validate_bugs,
)
from jepsenlike.models.paxos.sim import InvariantViolation, SimCluster


def elect(c: SimCluster, among: list[str] | None = None, rounds: int = 300) -> str:
    """Tick the live nodes and deliver everything until one of ``among`` leads."""
    among = among or c.up()
    for _ in range(rounds):
        c.deliver_all()
        leader = c.leader()
        if leader in among:
            return leader
        for i in c.up():
            c.tick(i)
    raise AssertionError(f"no leader among {among} after {rounds} rounds\n{c.explain()}")


def settle(c: SimCluster, rounds: int = 50) -> None:
    """Run ticks and deliveries on a perfect network for a while."""
    for _ in range(rounds):
        for i in c.up():
            c.tick(i)
        c.deliver_all()


def to(dst: str, type_: str | None = None):
    return lambda m: m.dst == dst and (type_ is None or m.type == type_)


def fresh(c: SimCluster, *ids: str) -> None:
    """Crash and restart nodes: they keep their votes but forget who led (stickiness)."""
    for i in ids:
        if c.nodes[i].core is not None:
            c.crash(i)
        c.restart(i)


# ---------------------------------------------------------------- basics


def test_a_leader_is_elected_and_commands_are_decided_in_order_everywhere():
    c = SimCluster(3, seed=1)
    leader = elect(c)
    slots = [c.propose(leader, f"c{k}") for k in range(10)]
    settle(c, 10)
    assert slots == list(range(slots[0], slots[0] + 10))
    logs = [c.applied(i) for i in c.ids]
    assert logs[0] == logs[1] == logs[2]
    assert [v for v in logs[0] if v is not None] == [f"c{k}" for k in range(10)]


def test_propose_and_read_off_the_leader_raise_not_leader_with_a_hint():
    c = SimCluster(3, seed=2)
    leader = elect(c)
    follower = next(i for i in c.ids if i != leader)
    with pytest.raises(NotLeader) as e:
        c.core(follower).propose("x")
    assert e.value.leader == leader
    with pytest.raises(NotLeader):
        c.core(follower).read_index("r")


def test_ballots_are_unique_per_node_and_compare_by_round_then_id():
    a = PaxosNode("n1", ["n2", "n3"])
    b = PaxosNode("n2", ["n1", "n3"])
    a.campaign()
    b.campaign()
    assert a.ballot == (1, "n1") and b.ballot == (1, "n2")
    assert a.ballot != b.ballot and b.ballot > a.ballot


def test_non_unique_ballots_bug_gives_two_proposers_the_same_ballot():
    bugs = frozenset({"non-unique-ballots"})
    a = PaxosNode("n1", ["n2", "n3"], Config(bugs=bugs))
    b = PaxosNode("n2", ["n1", "n3"], Config(bugs=bugs))
    a.campaign()
    b.campaign()
    assert a.ballot == b.ballot


# ---------------------------------------------------------------- phase 1 rules


def test_promise_is_persisted_in_the_same_ready_that_sends_it():
    n = PaxosNode("n2", ["n1", "n3"])
    n.step(Message(MSG_PREPARE, "n1", "n2", (4, "n1"), from_slot=1))
    rd = n.ready()
    assert rd.promised == (4, "n1")
    assert [m.type for m in rd.messages] == [MSG_PROMISE]


def test_an_acceptor_refuses_lower_ballots_after_a_restart():
    c = SimCluster(3, seed=3)
    c.campaign("n3")  # ballot (1, n3)
    c.deliver_all(to("n2", MSG_PREPARE))
    c.drop_all()
    fresh(c, "n2")
    assert c.core("n2").promised == (1, "n3")
    c.nodes["n1"].core.campaign()  # (1, n1) < (1, n3)
    c._process("n1")
    c.deliver_all(to("n2", MSG_PREPARE))
    replies = [m for m in c.net if m.src == "n2" and m.dst == "n1"]
    assert [m.type for m in replies] == [MSG_NACK]
    assert replies[0].ballot == (1, "n3")


def test_volatile_acceptor_bug_forgets_the_promise_on_restart():
    c = SimCluster(3, seed=3, bugs=["volatile-acceptor"])
    c.campaign("n3")
    c.deliver_all(to("n2", MSG_PREPARE))
    c.drop_all()
    fresh(c, "n2")
    assert c.core("n2").promised == (0, "")


def _value_accepted_by_two_then_leader_dies(bugs=()):
    """n1 leads, proposes 'v'; only n2 hears the accept; n1 crashes."""
    c = SimCluster(3, seed=4, bugs=bugs)
    c.campaign("n1")
    c.deliver_all()
    assert c.leader() == "n1"
    slot = c.propose("n1", "v")
    c.deliver_all(to("n2", MSG_ACCEPT))
    c.drop_all()  # n3 never hears of it, and n1 never hears n2's answer
    c.crash("n1")
    fresh(c, "n2", "n3")
    return c, slot


def test_a_new_leader_adopts_a_value_accepted_in_an_earlier_ballot():
    c, slot = _value_accepted_by_two_then_leader_dies()
    # 'v' is chosen (n1 and n2 accepted it) although nobody knows it yet.
    c.campaign("n3")  # n3 never saw 'v'; it learns it only from n2's promise
    c.deliver_all()
    assert c.leader() == "n3"
    settle(c, 5)
    assert c.applied("n3")[slot - 1] == "v"
    assert c.applied("n2")[slot - 1] == "v"


def test_no_adopt_bug_chooses_a_second_value_for_the_slot():
    c, _ = _value_accepted_by_two_then_leader_dies(bugs=["no-adopt"])
    with pytest.raises(InvariantViolation, match="two values chosen"):
        c.campaign("n3")
        c.deliver_all()
        settle(c, 5)


def test_gaps_are_filled_with_noops_and_accepted_values_keep_their_slots():
    c = SimCluster(3, seed=5)
    c.campaign("n1")
    c.deliver_all()
    s1, s2, s3 = (c.propose("n1", v) for v in ("a", "b", "c"))
    lost_slot = s2
    c.deliver_all(lambda m: m.dst == "n2" and m.type == MSG_ACCEPT and lost_slot not in dict(m.entries))
    c.drop_all()
    c.crash("n1")
    fresh(c, "n2", "n3")
    c.campaign("n3")
    c.deliver_all()
    settle(c, 5)
    log = c.applied("n3")
    assert (log[s1 - 1], log[s2 - 1], log[s3 - 1]) == ("a", None, "c")


def test_the_value_with_the_highest_ballot_wins_among_promises():
    c = SimCluster(5, seed=6)
    others = ["n2", "n3", "n4", "n5"]
    # Ballot (1, n1) proposes x in slot 1; only n1 itself accepts.
    c.campaign("n1")
    c.deliver_all()
    assert c.propose("n1", "x") == 1
    c.drop_all()
    c.crash("n1")
    # Ballot (2, n2) never hears of x and proposes y in slot 1; only n2 accepts.
    fresh(c, *others)
    c.campaign("n2")
    c.deliver_all()
    assert c.leader() == "n2" and c.propose("n2", "y") == 1
    c.drop_all()
    c.crash("n2")
    # n3 gathers promises from n1 (x at ballot 1) and n2 (y at ballot 2) only.
    fresh(c, "n1", "n2", "n3", "n4", "n5")
    c.campaign("n3")
    c.drop_all(lambda m: m.dst in ("n4", "n5"))
    c.deliver_all(lambda m: m.type in (MSG_PREPARE, MSG_PROMISE))
    assert c.core("n3").role == LEADER
    settle(c, 5)
    assert c.applied("n3")[0] == "y"


# ---------------------------------------------------------------- learning, catch-up


def test_a_partitioned_replica_catches_up_from_a_checkpoint():
    c = SimCluster(3, seed=7)
    leader = elect(c)
    lagger = next(i for i in c.ids if i != leader)
    c.blocked = {(a, b) for a in c.ids for b in c.ids if lagger in (a, b) and a != b}
    for k in range(30):
        c.propose(leader, f"c{k}")
    settle(c, 5)
    assert len(c.applied(leader)) >= 30 and len(c.applied(lagger)) < 30
    for i in c.ids:
        if i != lagger:
            c.do("compact", c.up().index(i))
    assert c.core(leader).snapshot.index >= 30
    c.blocked = set()
    settle(c, 60)
    assert c.core(lagger).snapshot.index >= 30  # it got the checkpoint, not the log
    assert c.applied(lagger) == c.applied(leader)


def test_a_restarted_replica_relearns_the_log_from_its_peers():
    c = SimCluster(3, seed=8)
    leader = elect(c)
    follower = next(i for i in c.ids if i != leader)
    for k in range(5):
        c.propose(leader, f"a{k}")
    settle(c, 3)
    c.crash(follower)
    for k in range(5):
        c.propose(leader, f"b{k}")
    settle(c, 3)
    c.restart(follower)
    assert c.applied(follower) == []  # learned values are volatile
    settle(c, 20)
    assert c.applied(follower) == c.applied(leader)
    assert "b4" in c.applied(follower)


def test_the_cluster_recovers_after_every_node_restarts_from_disk():
    c = SimCluster(3, seed=9)
    leader = elect(c)
    for k in range(5):
        c.propose(leader, f"c{k}")
    settle(c, 3)
    before = c.applied(leader)
    for i in c.ids:
        c.crash(i)
    for i in c.ids:
        c.restart(i)
    leader = elect(c)
    c.propose(leader, "after")
    settle(c, 5)
    log = c.applied(leader)
    assert log[: len(before)] == before and log[-1] == "after"


# ---------------------------------------------------------------- liveness rules


def test_an_isolated_leader_steps_down_within_an_election_timeout():
    c = SimCluster(3, seed=10)
    leader = elect(c)
    c.blocked = {(a, b) for a in c.ids for b in c.ids if leader in (a, b) and a != b}
    c.tick(leader, 2 * c.config.election_ticks)
    assert c.core(leader).role != LEADER


def test_a_returning_node_does_not_depose_a_healthy_leader_for_long():
    c = SimCluster(3, seed=11)
    leader = elect(c)
    loner = next(i for i in c.ids if i != leader)
    c.blocked = {(a, b) for a in c.ids for b in c.ids if loner in (a, b) and a != b}
    for _ in range(100):  # the loner campaigns again and again, raising its round
        c.tick(loner)
        c.drop_all(lambda m: m.src == loner)
    c.blocked = set()
    new = elect(c)
    c.propose(new, "x")
    settle(c, 10)
    assert all(c.applied(i)[-1] == "x" for i in c.ids)


# ---------------------------------------------------------------- reads


def test_a_leader_read_waits_for_a_quorum_round():
    c = SimCluster(5, seed=12)
    leader = elect(c)
    core = c.core(leader)
    core.read_index("r1")
    rd = core.ready()
    assert rd.read_states == []  # not before a majority confirms leadership
    heartbeats = [m for m in rd.messages if m.type == "hb"]
    assert len(heartbeats) == 4
    confirmed = []
    for m in heartbeats[:2]:  # leader + 2 followers = 3 of 5
        peer = c.core(m.dst)
        peer.step(m)
        (reply,) = peer.ready().messages
        core.step(reply)
        confirmed.append([r.ctx for r in core.ready().read_states])
    assert confirmed == [[], ["r1"]]


def test_stale_read_bug_serves_a_leader_read_without_a_round():
    c = SimCluster(3, seed=13, bugs=["stale-read"])
    leader = elect(c)
    core = c.core(leader)
    core.ready()
    core.read_index("r")
    rd = core.ready()
    assert [r.ctx for r in rd.read_states] == ["r"]  # at once: no quorum round
    assert not rd.messages
    follower = c.core(next(i for i in c.ids if i != leader))
    with pytest.raises(NotLeader):  # a follower still refuses (the server forwards)
        follower.read_index("r2")


def test_reads_are_dropped_when_the_leader_loses_its_ballot():
    n = PaxosNode("n1", ["n2", "n3"])
    n.campaign()
    n.step(Message(MSG_PROMISE, "n2", "n1", (1, "n1")))
    assert n.role == LEADER
    n.ready()
    n.read_index("r")
    n.step(Message(MSG_ACCEPT, "n3", "n1", (5, "n3"), entries=((1, None),)))
    assert n.ready().dropped_reads == ["r"]


# ---------------------------------------------------------------- checkpoints


def test_compact_drops_votes_and_values_at_or_below_the_checkpoint():
    c = SimCluster(3, seed=14)
    leader = elect(c)
    for k in range(4):
        c.propose(leader, f"c{k}")
    settle(c, 3)
    core = c.core(leader)
    applied = core.applied
    core.compact(applied, c.applied(leader))
    assert core.snapshot == Snapshot(applied, c.applied(leader))
    assert all(s > applied for s in core.accepted)
    assert all(s > applied for s in core.decided)
    with pytest.raises(ValueError, match="only"):
        core.compact(applied + 5, [])


def test_a_prepare_below_the_checkpoint_gets_the_checkpoint_in_the_promise():
    state = PersistentState(
        (1, "n1"), {6: Accepted(6, (1, "n1"), "z")}, Snapshot(5, ["a", "b", "c", "d", "e"])
    )
    n = PaxosNode("n2", ["n1", "n3"], state=state)
    n.step(Message(MSG_PREPARE, "n3", "n2", (2, "n3"), from_slot=1))
    (promise,) = n.ready().messages
    assert promise.snapshot == state.snapshot
    assert promise.votes == (Accepted(6, (1, "n1"), "z"),)


# ---------------------------------------------------------------- config and wire


def test_unknown_bug_names_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        validate_bugs(["no-adoptt"])
    msg = str(e.value)
    assert "'no-adoptt'" in msg
    for name in BUGS:
        assert name in msg


def test_config_validation_names_the_rule():
    with pytest.raises(ValueError, match="election_ticks=3 must be greater than heartbeat_ticks=3"):
        PaxosNode("n1", ["n2"], Config(election_ticks=3, heartbeat_ticks=3))


def test_messages_round_trip_through_the_wire_format():
    msgs = [
        Message(MSG_PREPARE, "n1", "n2", (3, "n1"), from_slot=7),
        Message(
            MSG_PROMISE,
            "n2",
            "n1",
            (3, "n1"),
            votes=(Accepted(7, (2, "n3"), {"f": "write", "key": 1, "value": 2}),),
            commit=6,
            snapshot=Snapshot(4, {"data": {"k": [1]}}),
        ),
        Message(MSG_ACCEPT, "n1", "n2", (3, "n1"), entries=((7, None), (8, "x")), commit=6),
        Message("accepted", "n2", "n1", (3, "n1"), slots=(7, 8), commit=8),
        Message("hb", "n1", "n2", (3, "n1"), commit=8, round=4),
    ]
    for m in msgs:
        assert Message.from_wire(m.to_wire()) == m
    with pytest.raises(ValueError, match="unknown message type"):
        Message.from_wire({"t": "vote", "s": "a", "d": "b", "b": [1, "a"]})


def test_the_core_is_deterministic_given_its_rng():
    def run(seed: int) -> list[str]:
        c = SimCluster(3, seed=seed)
        c.run_random(500)
        return c.trace

    assert run(21) == run(21)
    assert run(21) != run(22)


def test_a_single_node_cluster_decides_alone():
    n = PaxosNode("n1", [], rng=random.Random(1))
    n.campaign()
    assert n.role == LEADER
    slot = n.propose("x")
    n.read_index("r")
    rd = n.ready()
    assert [(e.index, e.data) for e in rd.committed_entries] == [(slot, "x")]
    assert [r.ctx for r in rd.read_states] == ["r"]


def test_ready_marks_nothing_done_until_advance():
    # Ready/Advance: applied and the durable promise move only when the driver says so.
    n = PaxosNode("n1", [], Config(election_ticks=10, heartbeat_ticks=2))
    n.campaign()
    n.propose("c1")
    rd = n.ready()
    assert [e.data for e in rd.committed_entries][-1] == "c1"
    assert rd.promised is not None and n.durable_promised != rd.promised
    assert n.applied == 0
    with pytest.raises(ValueError, match="only 0 applied"):
        n.compact(1, [])
    assert n.ready().committed_entries == []  # never handed out twice
    n.advance(rd)
    assert n.applied == rd.committed_entries[-1].index and n.durable_promised == rd.promised
