"""Multi-Paxos as a pure state machine (no I/O, no clock, no global randomness).

Theory of operation
-------------------
Every node plays all three Paxos roles: *acceptor* (votes on values for log slots),
*learner* (finds out which value each slot decided and hands them out in slot order)
and *proposer* (only the distinguished one, the leader, proposes).

A :class:`PaxosNode` is driven by the same inputs as the Raft core, so one driver
shape fits both:

* :meth:`PaxosNode.tick` -- one unit of logical time passed (timeouts, heartbeats);
* :meth:`PaxosNode.step` -- a :class:`Message` from a peer arrived;
* :meth:`PaxosNode.propose` -- a client command to place in the next free slot;
* :meth:`PaxosNode.read_index` -- a linearizable read wants a safe slot to read at;
* :meth:`PaxosNode.compact` -- the driver took a checkpoint of its state machine.

After any of these the driver calls :meth:`PaxosNode.ready` and must handle the
returned :class:`Ready` **in this order**:

1. persist ``promised``, ``accepted`` and ``snapshot`` durably (fsync): a promise or
   an accept is a vote, and a vote that a crash can take back is no vote at all;
2. then send ``messages``;
3. then restore ``snapshot`` into the state machine (if any), apply
   ``committed_entries`` in slot order, answer ``read_states`` once the applied slot
   reaches their ``index`` and answer ``dropped_reads`` with a definite failure.

**Ballots.** A ballot is ``(round, node id)``, compared as a tuple, so two proposers
never share one. A node that wants to lead picks a round above every round it has
seen.

**Phase 1 (prepare/promise), once per leadership, for all open slots at once.** The
candidate sends ``prepare(ballot, from_slot)`` where ``from_slot`` is the first slot it
has not learned as decided. An acceptor whose promise is not higher promises the
ballot and answers with everything it has accepted from ``from_slot`` on (and its
checkpoint, if that already covers ``from_slot``). With promises from a majority
(itself included) the candidate becomes leader and, for every slot from
``from_slot`` up to the highest slot any promise mentions, proposes the value
accepted with the highest ballot -- or a no-op where no promise reports one (a gap).
This is the rule that makes Paxos safe: a value that may have been chosen is
accepted by at least one member of every majority, and the highest ballot among
them carries it.

**Phase 2 (accept/accepted), per slot.** The leader sends ``accept(ballot, [(slot,
value), ...], commit)``; an acceptor whose promise is not higher accepts, persists, and
answers ``accepted(ballot, slots)``. A slot is decided when a majority accepted it in
the same ballot. The leader's *commit* is its highest slot with every slot up to it
decided. Proposals are batched: everything proposed between two :meth:`ready` calls
leaves in one message. Accepts not acknowledged within a heartbeat are sent again.

**Learning.** The leader includes its commit in accepts and heartbeats. A follower
that accepted slot ``s`` *in the leader's current ballot* knows its value is the
decided one (a leader proposes one value per slot per ballot). Slots it did not
accept that way it learns by catch-up: every heartbeat answer carries the follower's
commit, and the leader answers a lagging follower with decided values
(``decided``) or, when the follower is behind the leader's checkpoint, with the
checkpoint itself.

**Checkpoints and truncation.** :meth:`PaxosNode.compact` replaces everything up
to an applied slot by the driver's snapshot of its state machine: acceptor votes and
learned values for those slots are dropped. That is safe because those slots are
decided, and any proposer that asks about them (``from_slot`` at or below the
checkpoint) receives the checkpoint in the promise and installs it instead of
proposing there.

**Liveness.** The leader sends heartbeats every ``heartbeat_ticks``; a follower that
hears nothing for a randomized timeout in ``[election_ticks, 2 * election_ticks)``
starts phase 1. A follower that heard from its leader within ``election_ticks``
ignores other candidates' prepares, and a leader that has not heard from a majority
within ``election_ticks`` steps down (check-quorum), so a node that was cut off and
comes back does not depose a healthy leader. A leader that learns of a higher
ballot (a ``nack``) runs phase 1 again above it.

**Reads** (ReadIndex). A read on the leader takes ``index`` = the highest slot the
leader has assigned (every write acknowledged before the read is at or below it,
because phase 1 saw all of them), then joins the next heartbeat round. When a
majority acknowledges that round in the leader's ballot, no higher ballot had a
majority of promises when those acknowledgements were sent, so nothing newer can
have been decided; the read is served once the state machine applied ``index``.

Seeded bugs (``Config.bugs``, listed in :mod:`jepsenlike.models.paxos.bugs`) each
break one rule so that the toolkit can show it catches the consequence;
``volatile-acceptor`` lives in :mod:`jepsenlike.models.paxos.storage` since it is a
storage rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.models.consensus import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    NotLeader,
    ReadState,
    membership,
    quorum_round,
    release_reads,
    validate_timing,
)
from jepsenlike.models.paxos.bugs import BUGS, validate_bugs

__all__ = [
    "BUGS",
    "CANDIDATE",
    "FOLLOWER",
    "LEADER",
    "NOOP",
    "ZERO_BALLOT",
    "Accepted",
    "Ballot",
    "Config",
    "Entry",
    "Message",
    "NotLeader",
    "PaxosNode",
    "PersistentState",
    "ReadState",
    "Ready",
    "Snapshot",
    "validate_bugs",
]


# Message types.
MSG_PREPARE = "prepare"
MSG_PROMISE = "promise"
MSG_ACCEPT = "accept"
MSG_ACCEPTED = "accepted"
MSG_NACK = "nack"  # "I promised a higher ballot": carries it
MSG_HEARTBEAT = "hb"
MSG_HEARTBEAT_RESP = "hb_resp"
MSG_DECIDED = "decided"  # catch-up: decided values and/or a checkpoint
MESSAGE_TYPES = frozenset(
    {
        MSG_PREPARE,
        MSG_PROMISE,
        MSG_ACCEPT,
        MSG_ACCEPTED,
        MSG_NACK,
        MSG_HEARTBEAT,
        MSG_HEARTBEAT_RESP,
        MSG_DECIDED,
    }
)

Ballot = tuple[int, str]
ZERO_BALLOT: Ballot = (0, "")
NOOP: Any = None  # the value a leader proposes to fill a gap


@dataclass(frozen=True, slots=True)
class Entry:
    """A decided slot: ``data`` is the command, ``None`` for a no-op."""

    index: int
    data: Any = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """An acceptor's vote: in ``slot`` it accepted ``value`` at ``ballot``."""

    slot: int
    ballot: Ballot
    value: Any

    def to_wire(self) -> list[Any]:
        return [self.slot, list(self.ballot), self.value]

    @staticmethod
    def from_wire(w: list[Any]) -> Accepted:
        return Accepted(int(w[0]), _ballot(w[1]), w[2])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checkpoint: the state machine after applying every slot up to ``index``."""

    index: int = 0
    data: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "data": self.data}

    @staticmethod
    def from_wire(w: dict[str, Any]) -> Snapshot:
        return Snapshot(int(w["index"]), w["data"])


@dataclass(frozen=True, slots=True)
class PersistentState:
    """What survives a crash: the promise, the votes above the checkpoint, the checkpoint."""

    promised: Ballot = ZERO_BALLOT
    accepted: dict[int, Accepted] = field(default_factory=dict)
    snapshot: Snapshot = field(default_factory=Snapshot)


def _ballot(w: Any) -> Ballot:
    return (int(w[0]), str(w[1]))


@dataclass(slots=True)
class Message:
    """A Paxos message; unused fields keep their defaults and stay off the wire.

    ``ballot`` is the sender's ballot, except in a ``nack`` where it is the higher
    ballot the sender has promised. ``from_slot`` is a prepare's first open slot.
    ``entries`` are ``(slot, value)`` pairs (accept, decided); ``votes`` are a promise's
    accepted values; ``slots`` the slots an ``accepted`` acknowledges; ``commit`` the
    sender's commit; ``round`` numbers heartbeat rounds (ReadIndex).
    """

    type: str
    src: str
    dst: str
    ballot: Ballot = ZERO_BALLOT
    from_slot: int = 0
    entries: tuple[tuple[int, Any], ...] = ()
    votes: tuple[Accepted, ...] = ()
    slots: tuple[int, ...] = ()
    commit: int = 0
    round: int = 0
    snapshot: Snapshot | None = None

    def to_wire(self) -> dict[str, Any]:
        w: dict[str, Any] = {"t": self.type, "s": self.src, "d": self.dst, "b": list(self.ballot)}
        if self.from_slot:
            w["f"] = self.from_slot
        if self.entries:
            w["e"] = [[s, v] for s, v in self.entries]
        if self.votes:
            w["v"] = [a.to_wire() for a in self.votes]
        if self.slots:
            w["sl"] = list(self.slots)
        if self.commit:
            w["c"] = self.commit
        if self.round:
            w["rd"] = self.round
        if self.snapshot is not None:
            w["snap"] = self.snapshot.to_wire()
        return w

    @staticmethod
    def from_wire(w: dict[str, Any]) -> Message:
        if w.get("t") not in MESSAGE_TYPES:
            raise ValueError(f"unknown message type {w.get('t')!r}")
        snap = w.get("snap")
        return Message(
            type=w["t"],
            src=w["s"],
            dst=w["d"],
            ballot=_ballot(w["b"]),
            from_slot=int(w.get("f", 0)),
            entries=tuple((int(s), v) for s, v in w.get("e", ())),
            votes=tuple(Accepted.from_wire(a) for a in w.get("v", ())),
            slots=tuple(int(s) for s in w.get("sl", ())),
            commit=int(w.get("c", 0)),
            round=int(w.get("rd", 0)),
            snapshot=Snapshot.from_wire(snap) if snap is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the driver must do after feeding inputs; see the module docstring.

    ``promised`` is ``None`` when unchanged. ``accepted`` lists new votes in the order
    they were cast (a later vote for a slot replaces an earlier one). ``snapshot`` is
    a checkpoint received from a peer: persist it (dropping votes at or below its
    index) and restore it. ``term`` is the ballot round, for status displays.
    """

    promised: Ballot | None
    accepted: list[Accepted]
    snapshot: Snapshot | None
    messages: list[Message]
    committed_entries: list[Entry]
    read_states: list[ReadState]
    dropped_reads: list[Any]
    role: str
    leader: str | None
    term: int

    def is_empty(self) -> bool:
        return not (
            self.promised
            or self.accepted
            or self.snapshot
            or self.messages
            or self.committed_entries
            or self.read_states
            or self.dropped_reads
        )


@dataclass(slots=True)
class Config:
    """Tunables. ``validate()`` names the broken rule."""

    election_ticks: int = 30
    heartbeat_ticks: int = 3
    max_entries_per_msg: int = 1024
    bugs: frozenset[str] = field(default_factory=frozenset)

    def validate(self) -> None:
        validate_timing(self.election_ticks, self.heartbeat_ticks)
        if self.max_entries_per_msg < 1:
            raise ValueError(f"max_entries_per_msg={self.max_entries_per_msg!r} must be >= 1")
        validate_bugs(self.bugs)


class PaxosNode:
    """One Multi-Paxos participant (acceptor, learner, proposer). Not thread-safe.

    Args:
        node_id: this node's id (non-empty; it is the tie-breaker in ballots).
        peers: the ids of the other nodes (static membership).
        config: tunables and seeded bugs.
        rng: the only source of randomness (election timeout jitter).
        state: what storage recovered after a restart (promise, votes, checkpoint).
    """

    def __init__(
        self,
        node_id: str,
        peers: list[str],
        config: Config | None = None,
        rng: random.Random | None = None,
        state: PersistentState | None = None,
    ) -> None:
        self.config = config or Config()
        self.config.validate()
        if not node_id:
            raise ValueError("node_id must be a non-empty string")
        self.id = node_id
        self.peers, self.quorum = membership(node_id, peers)
        self.rng = rng if rng is not None else random.Random(0)
        self.bugs = self.config.bugs

        st = state or PersistentState()
        # Acceptor (persistent).
        self.promised: Ballot = st.promised
        self.snapshot: Snapshot = st.snapshot
        self.accepted: dict[int, Accepted] = {
            s: a for s, a in st.accepted.items() if s > st.snapshot.index
        }
        # Learner (volatile: decided values are re-learned from peers after a crash).
        self.decided: dict[int, Any] = {}
        self.commit = self.snapshot.index
        # ``applied`` moves only in advance(); ``_applying`` is what Readies handed out.
        self.applied = self.snapshot.index
        self._applying = self.snapshot.index
        # What the driver confirmed durable (advance): the promise it persisted.
        self.durable_promised: Ballot = self.promised
        # Proposer.
        self.role = FOLLOWER
        self.leader: str | None = None
        self.ballot: Ballot = ZERO_BALLOT  # ours, while candidate or leader
        self.max_round = self.promised[0]
        self.promises: dict[str, Message] = {}
        self.from_slot = 0
        self.next_slot = 0
        self.proposals: dict[int, Any] = {}  # undecided slots we proposed in self.ballot
        self.acks: dict[int, set[str]] = {}
        self.sent_at: dict[int, int] = {}
        self.recent_active: set[str] = set()
        # Timers.
        self.ticks = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = 0
        self._reset_randomized_timeout()
        # ReadIndex (leader only).
        self.round = 0
        self.acked_round: dict[str, int] = {}
        self.pending_reads: list[tuple[Any, int, int]] = []  # (ctx, index, round)
        self.need_read_round = False
        # Output buffers drained by ready().
        self._msgs: list[Message] = []
        self._accepted_out: list[Accepted] = []
        self._promised_dirty = False
        self._snapshot_out: Snapshot | None = None
        self._accept_out: list[tuple[int, Any]] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[Any] = []

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float | None = None) -> None:
        """One tick of logical time passed. ``now`` is accepted for driver symmetry
        with the Raft core and ignored: nothing here depends on clocks."""
        del now
        self.ticks += 1
        self.election_elapsed += 1
        if self.role == LEADER:
            self.heartbeat_elapsed += 1
            if self.election_elapsed >= self.config.election_ticks:
                self.election_elapsed = 0
                active = len(self.recent_active) + 1
                self.recent_active = set()
                if active < self.quorum:
                    self._become_follower(None)
                    return
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._bcast_heartbeat()
                self._resend_accepts()
        elif self.election_elapsed >= self.randomized_timeout:
            self.campaign()
        elif self.role == CANDIDATE:
            # Prepares (or promises) may be lost, or land on followers that still
            # stick to a leader that just died: ask the silent ones again.
            self.heartbeat_elapsed += 1
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                for p in self.peers:
                    if p not in self.promises:
                        self._send(
                            Message(MSG_PREPARE, self.id, p, self.ballot, from_slot=self.from_slot)
                        )

    def campaign(self) -> None:
        """Start phase 1 now with a ballot above every ballot seen."""
        if self.role == LEADER:
            return
        self._start_phase1()

    def propose(self, data: Any) -> int:
        """Place a command in the next free slot; return the slot.

        Raises:
            NotLeader: this node is not the leader (``leader`` is a hint or ``None``).
        """
        if self.role != LEADER:
            raise NotLeader(self.leader)
        slot = self.next_slot
        self.next_slot += 1
        self._propose_at(slot, data)
        return slot

    def read_index(self, ctx: Any, now: float | None = None) -> None:
        """Ask for a linearizable read point; the answer comes as a :class:`ReadState`.

        ``now`` is accepted for symmetry with the Raft core and ignored.

        Raises:
            NotLeader: this node is not the leader.
        """
        del now
        if self.role != LEADER:
            raise NotLeader(self.leader)
        if "stale-read" in self.bugs:
            # BUG: a leader answers with whatever it has applied, without a quorum
            # round to confirm that it still leads.
            self._read_states.append(ReadState(ctx, self.applied))
            return
        index = self.next_slot - 1
        if not self.peers:
            self._read_states.append(ReadState(ctx, index))
            return
        # Joins the next round: acknowledgements of an earlier round prove nothing
        # about leadership at the time this read arrived.
        self.pending_reads.append((ctx, index, self.round + 1))
        self.need_read_round = True

    def compact(self, index: int, data: Any) -> None:
        """Replace everything up to ``index`` (applied) by a checkpoint holding ``data``.

        The driver persists the checkpoint itself (it is not repeated in a Ready).
        """
        if index <= self.snapshot.index:
            return
        if index > self.applied:
            raise ValueError(f"cannot compact to {index}: only {self.applied} applied")
        self.snapshot = Snapshot(index, data)
        self._truncate(index)

    def step(self, m: Message) -> None:
        """Process one message from a peer."""
        if m.dst != self.id or m.src not in self.peers:
            return
        t = m.type
        if t == MSG_PREPARE:
            self._handle_prepare(m)
        elif t == MSG_PROMISE:
            self._handle_promise(m)
        elif t in (MSG_ACCEPT, MSG_HEARTBEAT):
            self._handle_accept(m)
        elif t == MSG_ACCEPTED:
            self._handle_accepted(m)
        elif t == MSG_HEARTBEAT_RESP:
            self._handle_heartbeat_response(m)
        elif t == MSG_NACK:
            self._handle_nack(m)
        elif t == MSG_DECIDED:
            self._handle_decided(m)

    # ------------------------------------------------------------------ output

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._accept_out
            or self.need_read_round
            or self._accepted_out
            or self._promised_dirty
            or self._snapshot_out is not None
            or self.commit > self._applying
            or self._read_states
            or self._dropped_reads
        )

    def ready(self) -> Ready:
        """Hand out everything the driver must do now (see the module docstring).

        Nothing is marked done here: the votes and committed entries of this Ready
        count as persisted and applied only once the driver calls :meth:`advance`
        with it. A later ``ready()`` before that returns only new work.
        """
        if self.role == LEADER:
            if self._accept_out:
                self._bcast_accepts(self._accept_out)
            if self.need_read_round:
                self._bcast_heartbeat()
        self._accept_out = []
        self.need_read_round = False

        snap = self._snapshot_out
        self._snapshot_out = None
        if snap is not None:
            self._applying = max(self._applying, snap.index)
        committed: list[Entry] = []
        if self.commit > self._applying:
            committed = [
                Entry(s, self.decided[s]) for s in range(self._applying + 1, self.commit + 1)
            ]
            self._applying = self.commit
        rd = Ready(
            promised=self.promised if self._promised_dirty else None,
            accepted=self._accepted_out,
            snapshot=snap,
            messages=self._msgs,
            committed_entries=committed,
            read_states=self._read_states,
            dropped_reads=self._dropped_reads,
            role=self.role,
            leader=self.leader,
            term=self.max_round,
        )
        self._promised_dirty = False
        self._accepted_out = []
        self._msgs = []
        self._read_states = []
        self._dropped_reads = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied ``rd``: mark that work done.

        After this ``applied`` covers ``rd``'s checkpoint and committed entries (so
        :meth:`compact` may use them) and ``durable_promised`` is the promise on disk.
        """
        if rd.promised is not None:
            self.durable_promised = rd.promised
        if rd.snapshot is not None:
            self.applied = max(self.applied, rd.snapshot.index)
        if rd.committed_entries:
            self.applied = max(self.applied, rd.committed_entries[-1].index)

    def status(self) -> dict[str, Any]:
        """A summary for logs and ``GET /status`` (``term`` is the ballot round)."""
        return {
            "id": self.id,
            "role": self.role,
            "term": self.max_round,
            "ballot": list(self.ballot if self.role != FOLLOWER else self.promised),
            "leader": self.leader,
            "commit_index": self.commit,
            "applied_index": self.applied,
            "next_slot": self.next_slot,
            "snapshot_index": self.snapshot.index,
        }

    # ------------------------------------------------------------------ roles

    def _new_ballot(self, round_: int) -> Ballot:
        if "non-unique-ballots" in self.bugs:
            # BUG: without the node id as tie-breaker two proposers that pick the same
            # round hold the very same ballot, and acceptors cannot tell them apart.
            return (round_, "")
        return (round_, self.id)

    def _reset_randomized_timeout(self) -> None:
        et = self.config.election_ticks
        self.randomized_timeout = et + self.rng.randrange(et)

    def _drop_reads(self) -> None:
        self._dropped_reads.extend(ctx for ctx, _, _ in self.pending_reads)
        self.pending_reads = []
        self.need_read_round = False

    def _clear_proposer(self) -> None:
        self.promises = {}
        self.proposals = {}
        self.acks = {}
        self.sent_at = {}
        self._accept_out = []
        self._drop_reads()

    def _become_follower(self, leader: str | None) -> None:
        self.role = FOLLOWER
        self.leader = leader
        self.ballot = ZERO_BALLOT
        self.election_elapsed = 0
        self._reset_randomized_timeout()
        self._clear_proposer()

    def _promise(self, ballot: Ballot) -> None:
        if ballot != self.promised:
            self.promised = ballot
            self._promised_dirty = True
        self.max_round = max(self.max_round, ballot[0])

    def _start_phase1(self) -> None:
        self._clear_proposer()
        self.role = CANDIDATE
        self.leader = None
        self.max_round += 1
        self.ballot = self._new_ballot(self.max_round)
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_timeout()
        self._promise(self.ballot)
        self.from_slot = self.commit + 1
        # Our own promise, as if we had sent ourselves a prepare.
        self.promises = {self.id: self._promise_message(self.id, self.ballot, self.from_slot)}
        if len(self.promises) >= self.quorum:
            self._become_leader()
            return
        for p in self.peers:
            self._send(Message(MSG_PREPARE, self.id, p, self.ballot, from_slot=self.from_slot))

    def _promise_message(self, dst: str, ballot: Ballot, from_slot: int) -> Message:
        snap = self.snapshot if self.snapshot.index >= from_slot else None
        votes = tuple(a for s, a in sorted(self.accepted.items()) if s >= from_slot)
        return Message(
            MSG_PROMISE, self.id, dst, ballot, votes=votes, commit=self.commit, snapshot=snap
        )

    def _become_leader(self) -> None:
        # Install the freshest checkpoint any promise carried: those slots are decided.
        snaps = [m.snapshot for m in self.promises.values() if m.snapshot is not None]
        if snaps:
            self._install_snapshot(max(snaps, key=lambda s: s.index))
        best: dict[int, Accepted] = {}
        for m in self.promises.values():
            for a in m.votes:
                cur = best.get(a.slot)
                if cur is None or a.ballot > cur.ballot:
                    best[a.slot] = a
        top = max([self.commit, *best.keys(), *self.decided.keys()])
        self.role = LEADER
        self.leader = self.id
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.recent_active = set(self.peers)  # a full timeout before check-quorum bites
        self.round = 0
        self.acked_round = {p: 0 for p in self.peers}
        for slot in range(self.commit + 1, top + 1):
            if slot in self.decided:
                continue
            if "no-adopt" in self.bugs:
                # BUG: values accepted in earlier ballots are ignored; the slot gets a
                # no-op although a majority may already have chosen something else.
                value = NOOP
            else:
                a = best.get(slot)
                value = a.value if a is not None else NOOP
            self._propose_at(slot, value)
        self.next_slot = top + 1
        self._bcast_heartbeat()

    # ------------------------------------------------------------------ acceptor

    def _handle_prepare(self, m: Message) -> None:
        if m.ballot < self.promised:
            self._send(Message(MSG_NACK, self.id, m.src, self.promised))
            return
        if m.src != self.leader and (
            self.role == LEADER
            or (
                self.role == FOLLOWER
                and self.leader is not None
                and self.election_elapsed < self.config.election_ticks
            )
        ):
            # Leader stickiness: we (or our leader) are alive and well; a candidate that
            # was cut off must not depose a working leader. Silence is always safe.
            return
        if self.role != FOLLOWER and m.ballot != self.ballot:
            self._become_follower(None)  # a higher ballot: our own bid is lost
        self._promise(m.ballot)
        self._send(self._promise_message(m.src, m.ballot, m.from_slot))

    def _handle_accept(self, m: Message) -> None:
        """An accept or a heartbeat from a (would-be) leader."""
        if m.ballot < self.promised:
            self._send(Message(MSG_NACK, self.id, m.src, self.promised))
            return
        if self.role != FOLLOWER and m.ballot != self.ballot:
            self._become_follower(m.src)
        self._promise(m.ballot)
        self.leader = m.src
        if self.role == FOLLOWER:
            self.election_elapsed = 0
        if m.type == MSG_HEARTBEAT:
            self._learn_commit(m.ballot, m.commit)
            self._send(
                Message(
                    MSG_HEARTBEAT_RESP, self.id, m.src, m.ballot, commit=self.commit, round=m.round
                )
            )
            return
        voted: list[int] = []
        stale = False
        for slot, value in m.entries:
            if slot <= self.snapshot.index:
                stale = True  # decided and checkpointed here already
                continue
            a = Accepted(slot, m.ballot, value)
            self.accepted[slot] = a
            self._accepted_out.append(a)
            voted.append(slot)
        self._learn_commit(m.ballot, m.commit)
        self._send(
            Message(MSG_ACCEPTED, self.id, m.src, m.ballot, slots=tuple(voted), commit=self.commit)
        )
        if stale:
            self._send(Message(MSG_DECIDED, self.id, m.src, m.ballot, snapshot=self.snapshot))

    # ------------------------------------------------------------------ learner

    def _learn_commit(self, ballot: Ballot, commit: int) -> None:
        s = self.commit + 1
        while s <= commit:
            if s not in self.decided:
                a = self.accepted.get(s)
                if a is None or a.ballot != ballot:
                    break
                # The leader of `ballot` proposed one value for s and says s is decided.
                self.decided[s] = a.value
            s += 1
        self._advance_commit()

    def _advance_commit(self) -> None:
        c = self.commit
        while c + 1 in self.decided:
            c += 1
        self.commit = c

    def _decide(self, slot: int, value: Any) -> None:
        if slot > self.commit and slot not in self.decided:
            self.decided[slot] = value
            self._advance_commit()

    def _handle_decided(self, m: Message) -> None:
        if m.snapshot is not None:
            self._install_snapshot(m.snapshot)
        for slot, value in m.entries:
            self._decide(slot, value)

    def _install_snapshot(self, snap: Snapshot) -> None:
        if snap.index <= self._applying:
            return
        self.snapshot = snap
        self._snapshot_out = snap
        self.commit = max(self.commit, snap.index)
        self._applying = snap.index
        self._truncate(snap.index)
        self._accepted_out = [a for a in self._accepted_out if a.slot > snap.index]
        for s in [s for s in self.proposals if s <= snap.index]:
            self._forget_proposal(s)
        if self.role == LEADER:
            self.next_slot = max(self.next_slot, snap.index + 1)
        self._advance_commit()

    def _truncate(self, index: int) -> None:
        for d in (self.accepted, self.decided):
            for s in [s for s in d if s <= index]:
                del d[s]

    # ------------------------------------------------------------------ proposer

    def _handle_promise(self, m: Message) -> None:
        if self.role != CANDIDATE or m.ballot != self.ballot:
            return
        self.promises.setdefault(m.src, m)
        if len(self.promises) >= self.quorum:
            self._become_leader()

    def _handle_nack(self, m: Message) -> None:
        self.max_round = max(self.max_round, m.ballot[0])
        if self.role == LEADER and m.ballot > self.ballot:
            # Someone promised a higher ballot. We were the working leader (or that
            # node would not be nacking our accepts): take the lead back above it.
            self._start_phase1()

    def _propose_at(self, slot: int, value: Any) -> None:
        a = Accepted(slot, self.ballot, value)
        self.accepted[slot] = a
        self._accepted_out.append(a)
        self.proposals[slot] = value
        self.acks[slot] = {self.id}
        self.sent_at[slot] = self.ticks
        self._accept_out.append((slot, value))
        if len(self.acks[slot]) >= self.quorum:
            self._chosen(slot)

    def _forget_proposal(self, slot: int) -> None:
        self.proposals.pop(slot, None)
        self.acks.pop(slot, None)
        self.sent_at.pop(slot, None)

    def _chosen(self, slot: int) -> None:
        value = self.proposals[slot]
        self._forget_proposal(slot)
        self._decide(slot, value)

    def _handle_accepted(self, m: Message) -> None:
        if self.role != LEADER or m.ballot != self.ballot:
            return
        self.recent_active.add(m.src)
        for slot in m.slots:
            acks = self.acks.get(slot)
            if acks is None:
                continue
            acks.add(m.src)
            if len(acks) >= self.quorum:
                self._chosen(slot)

    def _handle_heartbeat_response(self, m: Message) -> None:
        if self.role != LEADER or m.ballot != self.ballot:
            return
        self.recent_active.add(m.src)
        if m.commit < self.commit:
            self._send_catch_up(m.src, m.commit)
        if m.round > self.acked_round.get(m.src, 0):
            self.acked_round[m.src] = m.round
            self._confirm_rounds()

    def _send_catch_up(self, p: str, their_commit: int) -> None:
        snap = self.snapshot if their_commit < self.snapshot.index else None
        start = max(their_commit, self.snapshot.index) + 1
        stop = min(self.commit, start + self.config.max_entries_per_msg - 1)
        entries = tuple((s, self.decided[s]) for s in range(start, stop + 1))
        self._send(Message(MSG_DECIDED, self.id, p, self.ballot, entries=entries, snapshot=snap))

    def _bcast_accepts(self, entries: list[tuple[int, Any]]) -> None:
        n = self.config.max_entries_per_msg
        for i in range(0, len(entries), n):
            chunk = tuple(entries[i : i + n])
            for p in self.peers:
                self._send(
                    Message(MSG_ACCEPT, self.id, p, self.ballot, entries=chunk, commit=self.commit)
                )

    def _resend_accepts(self) -> None:
        """Accepts (or their answers) may be lost: re-send the slow ones to the silent."""
        due = [
            s for s, t in self.sent_at.items() if self.ticks - t >= self.config.heartbeat_ticks
        ]
        if not due:
            return
        due.sort()
        due = due[: self.config.max_entries_per_msg]
        for p in self.peers:
            chunk = tuple((s, self.proposals[s]) for s in due if p not in self.acks[s])
            if chunk:
                self._send(
                    Message(MSG_ACCEPT, self.id, p, self.ballot, entries=chunk, commit=self.commit)
                )
        for s in due:
            self.sent_at[s] = self.ticks

    def _bcast_heartbeat(self) -> None:
        self.round += 1
        for p in self.peers:
            self._send(
                Message(MSG_HEARTBEAT, self.id, p, self.ballot, commit=self.commit, round=self.round)
            )
        if not self.peers:
            self._confirm_rounds()

    def _confirm_rounds(self) -> None:
        r = quorum_round(self.round, (self.acked_round.get(p, 0) for p in self.peers), self.quorum)
        if self.pending_reads:
            self.pending_reads = release_reads(self.pending_reads, r, self._read_states)

    def _send(self, m: Message) -> None:
        self._msgs.append(m)
