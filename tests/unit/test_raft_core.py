"""The Raft core against single sentences of the paper, one rule per test.

A tiny FIFO network (:class:`Net`) delivers messages in order, with optional drops,
so each test can set up exactly the situation the rule talks about.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from jepsenlike.models.raft.core import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    MSG_APP,
    MSG_HEARTBEAT,
    MSG_SNAP,
    MSG_VOTE,
    MSG_VOTE_RESP,
    Config,
    Entry,
    HardState,
    Message,
    NotLeader,
    RaftNode,
    Ready,
    Snapshot,
    safe_lease_seconds,
)


class Net:
    def __init__(self, n: int = 3, **cfg) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        base = {"election_ticks": 10, "heartbeat_ticks": 1}
        base.update(cfg)
        self.config = Config(**base)
        self.nodes = {
            i: RaftNode(i, [p for p in self.ids if p != i], self.config, random.Random(k))
            for k, i in enumerate(self.ids)
        }
        for node in self.nodes.values():
            # Past the start-up quiet period (see test_restarted_node_...): tests call
            # campaign() directly instead of ticking through it.
            node.booting = False
        self.queue: list[Message] = []
        self.readies: dict[str, list[Ready]] = {i: [] for i in self.ids}
        self.now = 0.0

    def process(self, i: str) -> None:
        node = self.nodes[i]
        while node.has_ready():
            rd = node.ready()
            self.readies[i].append(rd)
            self.queue.extend(rd.messages)
            node.advance(rd)

    def deliver(
        self,
        pred: Callable[[Message], bool] = lambda m: True,
        drop: Callable[[Message], bool] = lambda m: False,
        limit: int = 10000,
    ) -> int:
        n = 0
        while n < limit:
            k = next((k for k, m in enumerate(self.queue) if pred(m)), None)
            if k is None:
                break
            m = self.queue.pop(k)
            n += 1
            if drop(m):
                continue
            self.nodes[m.dst].step(m)
            self.process(m.dst)
        return n

    def elect(self, i: str) -> RaftNode:
        self.nodes[i].campaign()
        self.process(i)
        self.deliver()
        assert self.nodes[i].role == LEADER
        return self.nodes[i]

    def tick(self, i: str, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[i].tick(self.now)
            self.process(i)

    def propose(self, i: str, data) -> int:
        idx = self.nodes[i].propose(data)
        self.process(i)
        return idx

    def sent(self, i: str) -> list[Message]:
        return [m for rd in self.readies[i] for m in rd.messages]


# ------------------------------------------------------------------ elections


def test_election_timeouts_are_randomized_between_et_and_twice_et() -> None:
    seen = set()
    for seed in range(50):
        n = RaftNode("n1", ["n2", "n3"], Config(election_ticks=10), random.Random(seed))
        seen.add(n.randomized_timeout)
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 5


@pytest.mark.parametrize("n", [1, 3, 5])
def test_leader_is_elected_in_one_round_when_all_are_up(n: int) -> None:
    net = Net(n)
    leader = net.elect("n1")
    assert leader.term == 1
    assert all(x.term == 1 and x.leader == "n1" for x in net.nodes.values())


def test_follower_election_timeout_starts_an_election() -> None:
    net = Net(3)
    net.tick("n2", 20)
    net.deliver()
    assert net.nodes["n2"].role == LEADER


def test_pre_vote_keeps_an_isolated_node_from_inflating_its_term() -> None:
    net = Net(3)
    net.elect("n1")
    net.tick("n3", 200)  # n3 is cut off: nothing it sends is delivered
    net.queue.clear()
    assert net.nodes["n3"].term == 1
    # Healed, it does not depose the leader.
    net.tick("n1", 3)
    net.deliver()
    assert net.nodes["n1"].role == LEADER and net.nodes["n1"].term == 1


def test_vote_is_persisted_in_the_same_ready_that_sends_the_grant() -> None:
    net = Net(3, pre_vote=False)
    net.nodes["n1"].campaign()
    net.process("n1")
    net.deliver(lambda m: m.type == MSG_VOTE)
    for i in ("n2", "n3"):
        rd = next(r for r in net.readies[i] if any(m.type == MSG_VOTE_RESP for m in r.messages))
        assert rd.hard_state == HardState(term=1, vote="n1", commit=0)


def test_each_node_votes_for_at_most_one_candidate_per_term() -> None:
    net = Net(3, pre_vote=False)
    net.nodes["n1"].campaign()
    net.nodes["n2"].campaign()
    net.process("n1")
    net.process("n2")
    # n3 hears n1 first, then n2, both for term 1.
    net.deliver(lambda m: m.dst == "n3" and m.src == "n1")
    net.deliver(lambda m: m.dst == "n3" and m.src == "n2")
    grants = [m for m in net.sent("n3") if m.type == MSG_VOTE_RESP and not m.reject]
    assert [m.dst for m in grants] == ["n1"]


def test_voter_denies_candidate_whose_log_is_less_up_to_date() -> None:
    net = Net(3, pre_vote=False, check_quorum=False)  # no stickiness: n2 must judge the log
    net.elect("n1")
    net.propose("n1", "x")
    net.deliver(lambda m: m.dst == "n2" or m.src == "n2")  # n3 misses "x"
    net.queue.clear()
    net.nodes["n3"].campaign()
    net.process("n3")
    net.deliver(lambda m: m.src == "n3" or m.dst == "n3", drop=lambda m: m.dst == "n1")
    assert net.nodes["n3"].role != LEADER
    assert any(m.reject for m in net.sent("n2") if m.type == MSG_VOTE_RESP and m.dst == "n3")


def test_candidate_steps_down_on_append_from_leader_of_same_term() -> None:
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect("n1")
    n2 = net.nodes["n2"]
    n2.role = CANDIDATE  # as if its timer fired and it lost the race in this term
    net.tick("n1", 1)
    net.deliver()
    assert n2.role == FOLLOWER and n2.leader == "n1"


def test_restarted_node_ignores_vote_requests_for_one_election_timeout() -> None:
    # It may have acknowledged a leader's lease just before crashing.
    n = RaftNode("n2", ["n1", "n3"], Config(election_ticks=10, heartbeat_ticks=1))
    vote = Message(MSG_VOTE, "n3", "n2", term=1, index=0, log_term=0)
    n.step(vote)
    assert n.ready().messages == [] and n.vote is None
    for _ in range(10):
        n.tick()
    n.step(vote)
    assert n.vote == "n3"


def test_message_with_higher_term_turns_leader_into_follower() -> None:
    net = Net(3)
    leader = net.elect("n1")
    leader.step(Message("app_resp", "n2", "n1", term=5))
    assert leader.role == FOLLOWER and leader.term == 5


def test_check_quorum_leader_steps_down_when_it_hears_from_no_quorum() -> None:
    net = Net(3)
    leader = net.elect("n1")
    net.queue.clear()
    for _ in range(25):
        net.tick("n1")
        net.queue.clear()
    assert leader.role == FOLLOWER


def test_follower_that_hears_a_leader_ignores_vote_requests() -> None:
    # Leader stickiness: what makes lease reads sound.
    net = Net(3, pre_vote=False)
    net.elect("n1")
    n2 = net.nodes["n2"]
    n2.step(Message(MSG_VOTE, "n3", "n2", term=2, index=99, log_term=99))
    assert n2.term == 1 and n2.vote == "n1"


# ------------------------------------------------------------------ replication


def test_leader_appends_noop_of_its_term_on_election() -> None:
    net = Net(3)
    leader = net.elect("n1")
    assert leader.log.entry(1) == Entry(1, 1, None)
    assert leader.commit == 1


def test_commands_proposed_together_share_one_append_per_follower() -> None:
    net = Net(3)
    leader = net.elect("n1")
    for k in range(100):
        leader.propose(k)
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == MSG_APP]
    assert sorted(m.dst for m in apps) == ["n2", "n3"]
    assert all(len(m.entries) == 100 for m in apps)
    assert [e.data for e in rd.entries] == list(range(100))


def test_appends_are_pipelined_up_to_max_inflight() -> None:
    net = Net(3, max_entries_per_msg=10, max_inflight=3)
    leader = net.elect("n1")
    for k in range(100):
        leader.propose(k)
        net.process("n1")
    apps = [m for m in net.queue if m.type == MSG_APP and m.dst == "n2"]
    assert len(apps) == 3 and all(len(m.entries) <= 10 for m in apps)
    net.deliver()
    assert net.nodes["n2"].log.last_index == leader.log.last_index == 101


def test_leader_commits_once_a_majority_stored_an_entry_of_its_term() -> None:
    net = Net(5)
    leader = net.elect("n1")
    idx = net.propose("n1", "x")
    net.deliver(lambda m: "n2" in (m.src, m.dst))
    assert leader.commit < idx  # 2 of 5
    net.deliver(lambda m: "n3" in (m.src, m.dst))
    assert leader.commit == idx  # 3 of 5


def test_committed_entries_come_out_after_the_entries_that_persist_them() -> None:
    net = Net(1)
    leader = net.elect("n1")
    leader.propose("x")
    rd = leader.ready()
    assert rd.entries[-1].data == "x" and rd.committed_entries[-1].data == "x"


def test_follower_rejects_append_whose_previous_entry_does_not_match() -> None:
    n2 = RaftNode("n2", ["n1", "n3"], Config(election_ticks=10, heartbeat_ticks=1))
    n2.step(Message(MSG_APP, "n1", "n2", term=1, index=5, log_term=1, entries=(Entry(6, 1, "x"),)))
    (resp,) = n2.ready().messages
    assert resp.reject and resp.index == 5 and resp.hint == 0
    assert n2.log.last_index == 0


def test_follower_deletes_conflicting_suffix_and_keeps_matching_entries() -> None:
    n2 = RaftNode("n2", ["n1", "n3"], Config(election_ticks=10, heartbeat_ticks=1))
    old = tuple(Entry(i, 1, f"old{i}") for i in (1, 2, 3))
    n2.step(Message(MSG_APP, "n1", "n2", term=1, entries=old))
    n2.ready()
    new = (Entry(2, 1, "old2"), Entry(3, 2, "new3"))
    n2.step(Message(MSG_APP, "n3", "n2", term=2, index=1, log_term=1, entries=new))
    rd = n2.ready()
    assert [(e.index, e.term, e.data) for e in n2.log.entries] == [
        (1, 1, "old1"), (2, 1, "old2"), (3, 2, "new3")
    ]
    assert rd.entries == [Entry(3, 2, "new3")]  # storage replaces from index 3


def test_stale_append_does_not_truncate_newer_entries() -> None:
    n2 = RaftNode("n2", ["n1", "n3"], Config(election_ticks=10, heartbeat_ticks=1))
    n2.step(Message(MSG_APP, "n1", "n2", term=1, entries=(Entry(1, 1, "a"), Entry(2, 1, "b"))))
    n2.step(Message(MSG_APP, "n1", "n2", term=1, entries=(Entry(1, 1, "a"),)))
    assert n2.log.last_index == 2


def test_lost_appends_are_resent() -> None:
    net = Net(3)
    leader = net.elect("n1")
    net.propose("n1", "x")
    net.queue.clear()  # the append is lost
    for _ in range(6):
        net.tick("n1")
        net.deliver()
    assert all(n.log.last_index == 2 for n in net.nodes.values())
    assert leader.commit == 2


def test_restart_from_persisted_state_replays_committed_entries() -> None:
    net = Net(3)
    net.elect("n1")
    net.propose("n1", "x")
    net.deliver()
    hs = HardState()
    entries: list[Entry] = []
    for rd in net.readies["n2"]:
        hs = rd.hard_state or hs
        for e in rd.entries:
            del entries[e.index - 1 :]
            entries.append(e)
    again = RaftNode("n2", ["n1", "n3"], net.config, hard_state=hs, entries=entries)
    assert again.term == 1 and again.vote == "n1"
    rd = again.ready()
    assert [e.data for e in rd.committed_entries] == [None, "x"][: hs.commit]


# ------------------------------------------------------------------ snapshots


def test_follower_behind_the_compaction_point_gets_install_snapshot() -> None:
    net = Net(3)
    leader = net.elect("n1")
    for k in range(10):
        net.propose("n1", k)
        net.deliver(lambda m: "n3" not in (m.src, m.dst))
    net.queue = [m for m in net.queue if "n3" not in (m.src, m.dst)]
    leader.advance(leader.ready())
    leader.compact(leader.applied, {"data": {"k": 9}})
    assert leader.log.snap_index == 11
    for _ in range(4):
        net.tick("n1")
        net.deliver()
    snaps = [m for m in net.sent("n1") if m.type == MSG_SNAP and m.dst == "n3"]
    assert snaps and snaps[0].snapshot.index == 11
    n3 = net.nodes["n3"]
    installed = [rd.snapshot for rd in net.readies["n3"] if rd.snapshot is not None]
    assert installed == [Snapshot(11, 1, {"data": {"k": 9}})]
    assert n3.commit >= 11 and n3.log.snap_index == 11
    net.propose("n1", "after")
    net.deliver()
    assert n3.log.entry(12).data == "after"


# ------------------------------------------------------------------ reads


def test_read_index_waits_for_a_quorum_to_confirm_leadership() -> None:
    net = Net(3)
    leader = net.elect("n1")
    leader.read_index("r1")
    rd = leader.ready()
    assert rd.read_states == []
    hbs = [m for m in rd.messages if m.type == MSG_HEARTBEAT]
    assert len(hbs) == 2
    net.queue.extend(rd.messages)
    net.deliver(lambda m: "n2" in (m.src, m.dst))
    states = [s for r in net.readies["n1"] for s in r.read_states]
    assert [(s.ctx, s.index) for s in states] == [("r1", 1)]


def test_deposed_leader_cannot_serve_read_index() -> None:
    net = Net(3)
    leader = net.elect("n1")
    leader.read_index("r1")
    net.process("n1")
    net.queue.clear()  # partitioned: no heartbeat answers
    leader.step(Message("app_resp", "n2", "n1", term=2))  # learns of a newer term
    rd = leader.ready()
    assert rd.read_states == [] and rd.dropped_reads == ["r1"]
    with pytest.raises(NotLeader):
        leader.read_index("r2")


def test_new_leader_serves_reads_only_after_committing_an_entry_of_its_term() -> None:
    net = Net(3)
    n1 = net.nodes["n1"]
    n1.campaign()
    net.process("n1")
    net.deliver(lambda m: m.type in ("prevote", "prevote_resp", "vote", "vote_resp"))
    assert n1.role == LEADER and n1.commit == 0
    n1.read_index("r")
    net.process("n1")
    net.deliver(lambda m: m.type in ("hb", "hb_resp"))
    assert not [s for r in net.readies["n1"] for s in r.read_states]
    net.deliver()
    net.tick("n1")
    net.deliver()
    assert [s.ctx for r in net.readies["n1"] for s in r.read_states] == ["r"]


def test_lease_read_needs_no_round_within_the_lease_and_one_after() -> None:
    net = Net(3, read_mode="lease", lease_seconds=5.0)
    leader = net.elect("n1")
    net.now = 100.0
    net.tick("n1")  # heartbeat round sent at t=100
    net.deliver()
    assert leader.lease_until == 105.0
    net.now = 104.0
    leader.read_index("fast")
    assert [s.ctx for s in leader.ready().read_states] == ["fast"]
    net.now = 106.0
    leader.now = 106.0
    leader.read_index("slow")
    assert leader.ready().read_states == []


def test_lease_without_bound_bug_dates_the_lease_from_the_acks() -> None:
    net = Net(3, read_mode="lease", lease_seconds=5.0, bugs=frozenset({"lease-without-bound"}))
    leader = net.elect("n1")
    net.now = 100.0
    net.tick("n1")
    for n in net.nodes.values():
        n.now = 103.0  # the acks arrive later, by the leader's clock
    net.deliver()
    assert leader.lease_until > 105.0


def test_safe_lease_is_shorter_than_the_minimum_election_timeout() -> None:
    assert safe_lease_seconds(50, 0.01, 0.05) < 0.5
    with pytest.raises(ValueError):
        safe_lease_seconds(50, 0.01, 1.5)


# ------------------------------------------------------------------ plumbing


def test_messages_round_trip_through_the_wire_format() -> None:
    m = Message(
        MSG_APP, "n1", "n2", 3, index=4, log_term=2, entries=(Entry(5, 3, {"op": 1}),), commit=4,
        round=7, snapshot=Snapshot(2, 1, {"data": {}}),
    )
    assert Message.from_wire(m.to_wire()) == m
    with pytest.raises(ValueError, match="unknown message type"):
        Message.from_wire({"t": "bogus", "s": "a", "d": "b", "term": 1})


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"election_ticks": 3, "heartbeat_ticks": 3}, "must be greater than heartbeat_ticks=3"),
        ({"read_mode": "fast"}, "read_mode='fast'"),
        ({"read_mode": "lease", "check_quorum": False}, "needs check_quorum"),
    ],
)
def test_config_errors_name_the_rule(kw, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        Config(**kw).validate()


def test_propose_on_follower_raises_not_leader_with_hint() -> None:
    net = Net(3)
    net.elect("n1")
    with pytest.raises(NotLeader) as e:
        net.nodes["n2"].propose("x")
    assert e.value.leader == "n1"


def test_ready_marks_nothing_done_until_advance() -> None:
    # etcd-raft's Ready/Advance: applied moves only when the driver says it applied.
    n = RaftNode("n1", [], Config(election_ticks=10, heartbeat_ticks=2))
    n.campaign()
    rd = n.ready()
    assert rd.committed_entries and rd.entries and rd.hard_state is not None
    assert n.applied == 0 and n.stable_index == 0 and n.durable_hs.term == 0
    with pytest.raises(ValueError, match="only 0 applied"):
        n.compact(1, {})
    # A second ready() before advance hands out only new work, never the same twice.
    again = n.ready()
    assert again.committed_entries == [] and again.entries == []
    n.advance(rd)
    assert n.applied == rd.committed_entries[-1].index
    assert n.stable_index == rd.entries[-1].index and n.durable_hs == rd.hard_state
    n.compact(n.applied, {})
    assert n.log.snap_index == n.applied
