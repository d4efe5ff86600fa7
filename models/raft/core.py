"""Raft as a pure state machine (no I/O, no clock, no global randomness).

Theory of operation
-------------------
A :class:`RaftNode` is driven by four inputs and produces one output:

* :meth:`RaftNode.tick` -- one unit of logical time passed. The driver also hands in
  ``now``, its own reading of a clock in seconds; the core never reads a clock. Ticks
  drive elections and heartbeats; ``now`` is used only to date lease rounds.
* :meth:`RaftNode.step` -- a :class:`Message` from a peer arrived.
* :meth:`RaftNode.propose` -- a client command to append to the log (leader only).
* :meth:`RaftNode.read_index` -- a linearizable read wants a safe index to read at.

After any of these the driver calls :meth:`RaftNode.ready` and must handle the returned
:class:`Ready` **in this order**:

1. persist ``hard_state``, ``snapshot`` and ``entries`` durably (fsync). ``entries``
   may start at an index the storage already holds: everything from there on is
   replaced (a follower truncating a conflicting suffix);
2. then send ``messages`` (a vote granted or an append acknowledged is a promise that
   only holds if it survives a crash, hence persist first);
3. then restore ``snapshot`` into the state machine (if any) and apply
   ``committed_entries`` in order; serve ``read_states`` once the applied index reaches
   their index; answer ``dropped_reads`` with a definite failure (reads have no effect).

The driver handles one Ready completely before asking for the next, but may keep
calling step/tick/propose while it persists (group commit): those inputs only show up
in the next Ready. This is safe because the leader counts itself in a quorum but a
quorum always includes a follower, and a follower only holds entries the leader sent
after persisting them; a single-node cluster commits an entry in the same Ready that
persists it, and the driver applies only after persisting.

The protocol follows the Raft paper (Ongaro & Ousterhout, 2014) with the usual
production additions:

* **Pre-vote**: a node whose election timer fires first asks "would you vote for me at
  term+1?" without bumping its term, so a partitioned node rejoining does not depose a
  healthy leader.
* **Check-quorum / leader stickiness**: a follower that heard from a leader within the
  minimum election timeout ignores (pre-)vote requests, and a leader that has not
  heard from a quorum within an election timeout steps down. Lease reads rely on the
  first rule.
* **Replication flow control**: per follower a :class:`Progress` in ``probe`` (one
  append in flight, find the match point), ``replicate`` (pipelined appends, up to
  ``max_inflight`` messages of ``max_entries_per_msg`` entries) or ``snapshot`` (an
  InstallSnapshot is in flight) state. Appends are not sent when a command is proposed
  but when the driver asks for a Ready, so all commands proposed meanwhile share one
  message (batching).
* **Commit rule**: an index is committed when a quorum's match index reaches it *and*
  its entry is from the current term (paper, section 5.4.2, figure 8).
* **Log compaction**: :meth:`RaftNode.compact` replaces a prefix of the log by a
  snapshot the driver took; a follower that needs compacted entries gets an
  InstallSnapshot message.
* **ReadIndex**: a read registers the commit index and joins the next heartbeat
  round; when a quorum acknowledges that round the leader knows it was still leader
  when the read arrived, and the read may be served once the state machine has applied
  that index. A new leader first commits an entry of its term (the no-op it appends on
  election) before serving reads.
* **Lease reads** (``read_mode="lease"``): a quorum acknowledging a heartbeat round sent
  at leader time ``t`` means no other leader can be elected before the followers'
  minimum election timeout runs out. The leader serves reads without a round until
  ``t + lease_seconds``. This is correct only while clocks advance at rates within the
  drift bound used to compute ``lease_seconds`` (see :func:`safe_lease_seconds`) and
  the driver's ``now`` never jumps backwards.

Seeded bugs (``bugs``) change single rules; they exist so that the toolkit can show it
catches them. See ``models/raft/bugs.py``.
"""

from __future__ import annotations

import random
from collections import deque
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

__all__ = [
    "CANDIDATE",
    "FOLLOWER",
    "LEADER",
    "PRE_CANDIDATE",
    "Config",
    "Entry",
    "HardState",
    "Message",
    "NotLeader",
    "RaftNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "safe_lease_seconds",
]

# Roles (FOLLOWER, CANDIDATE and LEADER are shared with the Paxos core).
PRE_CANDIDATE = "pre-candidate"

# Message types.
MSG_APP = "app"  # AppendEntries
MSG_APP_RESP = "app_resp"  # also the answer to InstallSnapshot
MSG_VOTE = "vote"
MSG_VOTE_RESP = "vote_resp"
MSG_PREVOTE = "prevote"
MSG_PREVOTE_RESP = "prevote_resp"
MSG_HEARTBEAT = "hb"
MSG_HEARTBEAT_RESP = "hb_resp"
MSG_SNAP = "snap"  # InstallSnapshot
MESSAGE_TYPES = frozenset(
    {
        MSG_APP,
        MSG_APP_RESP,
        MSG_VOTE,
        MSG_VOTE_RESP,
        MSG_PREVOTE,
        MSG_PREVOTE_RESP,
        MSG_HEARTBEAT,
        MSG_HEARTBEAT_RESP,
        MSG_SNAP,
    }
)

# Progress states of a follower, as seen by the leader.
PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is the command (JSON), ``None`` for a leader's no-op."""

    index: int
    term: int
    data: Any = None

    def to_wire(self) -> list[Any]:
        return [self.index, self.term, self.data]

    @staticmethod
    def from_wire(w: list[Any]) -> Entry:
        return Entry(w[0], w[1], w[2])


@dataclass(frozen=True, slots=True)
class HardState:
    """What must survive a crash: current term, vote in that term, commit index."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine state as of ``index`` (whose entry had ``term``)."""

    index: int = 0
    term: int = 0
    data: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "term": self.term, "data": self.data}

    @staticmethod
    def from_wire(w: dict[str, Any]) -> Snapshot:
        return Snapshot(w["index"], w["term"], w["data"])


@dataclass(slots=True)
class Message:
    """A Raft message. Unused fields keep their defaults and are not sent on the wire.

    ``index``/``log_term`` are the paper's prevLogIndex/prevLogTerm for appends, the
    candidate's last log index/term for votes, and the acknowledged (or rejected) index
    in responses. ``hint`` is a rejecting follower's guess of the last index that may
    match. ``round`` numbers heartbeat rounds (ReadIndex and lease confirmations).
    """

    type: str
    src: str
    dst: str
    term: int
    index: int = 0
    log_term: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    hint: int = 0
    round: int = 0
    snapshot: Snapshot | None = None

    def to_wire(self) -> dict[str, Any]:
        w: dict[str, Any] = {"t": self.type, "s": self.src, "d": self.dst, "term": self.term}
        if self.index:
            w["i"] = self.index
        if self.log_term:
            w["lt"] = self.log_term
        if self.entries:
            w["e"] = [e.to_wire() for e in self.entries]
        if self.commit:
            w["c"] = self.commit
        if self.reject:
            w["r"] = True
        if self.hint:
            w["h"] = self.hint
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
            term=int(w["term"]),
            index=int(w.get("i", 0)),
            log_term=int(w.get("lt", 0)),
            entries=tuple(Entry(e[0], e[1], e[2]) for e in w.get("e", ())),
            commit=int(w.get("c", 0)),
            reject=bool(w.get("r", False)),
            hint=int(w.get("h", 0)),
            round=int(w.get("rd", 0)),
            snapshot=Snapshot.from_wire(snap) if snap is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the driver must do after feeding inputs; see the module docstring."""

    hard_state: HardState | None
    entries: list[Entry]
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
            self.hard_state
            or self.entries
            or self.snapshot
            or self.messages
            or self.committed_entries
            or self.read_states
            or self.dropped_reads
        )


def safe_lease_seconds(election_ticks: int, tick_seconds: float, max_drift: float) -> float:
    """The longest lease that is safe when clock *rates* differ by at most ``max_drift``.

    Followers refuse to vote for ``election_ticks`` ticks of their own clock after
    hearing from the leader; measured on a leader clock that may run ``max_drift`` faster,
    that is at least ``election_ticks * tick_seconds / (1 + max_drift)``. We also give up
    one tick for the follower's tick granularity (its timer may already be one tick
    along when the heartbeat lands).
    """
    if not 0 <= max_drift < 1:
        raise ValueError(f"max_drift={max_drift!r} must be in [0, 1)")
    return max(0.0, (election_ticks - 1) * tick_seconds / (1 + max_drift))


@dataclass(slots=True)
class Config:
    """Tunables. ``validate()`` names the broken rule."""

    election_ticks: int = 30
    heartbeat_ticks: int = 3
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_msg: int = 1024
    max_inflight: int = 64
    read_mode: str = "read-index"  # or "lease"
    lease_seconds: float = 0.0  # only for read_mode="lease"; see safe_lease_seconds
    bugs: frozenset[str] = field(default_factory=frozenset)

    def validate(self) -> None:
        validate_timing(self.election_ticks, self.heartbeat_ticks)
        if self.read_mode not in ("read-index", "lease"):
            raise ValueError(f"read_mode={self.read_mode!r}; expected 'read-index' or 'lease'")
        if self.read_mode == "lease" and not self.check_quorum:
            raise ValueError("read_mode='lease' needs check_quorum=True (followers must stick)")
        if self.max_entries_per_msg < 1 or self.max_inflight < 1:
            raise ValueError("max_entries_per_msg and max_inflight must be at least 1")


class RaftLog:
    """Entries after a snapshot point. ``entries[k].index == snap_index + 1 + k``."""

    __slots__ = ("snap_index", "snap_term", "entries")

    def __init__(self, snap_index: int = 0, snap_term: int = 0) -> None:
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.entries: list[Entry] = []

    @property
    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snap_term

    def term_at(self, index: int) -> int | None:
        """Term of the entry at ``index``; ``None`` if compacted away or beyond the end."""
        if index == self.snap_index:
            return self.snap_term
        k = index - self.snap_index - 1
        if 0 <= k < len(self.entries):
            return self.entries[k].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snap_index - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index < hi`` (``lo`` must be above the snapshot)."""
        base = self.snap_index + 1
        return self.entries[max(lo - base, 0) : max(hi - base, 0)]

    def truncate_from(self, index: int) -> None:
        del self.entries[index - self.snap_index - 1 :]

    def compact_to(self, index: int, term: int) -> None:
        if index <= self.snap_index:
            return
        if index >= self.last_index:
            self.entries = []
        else:
            self.entries = self.entries[index - self.snap_index :]
        self.snap_index = index
        self.snap_term = term


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower."""

    match: int = 0
    next: int = 1
    state: str = PROBE
    paused: bool = False  # probe: one append is outstanding
    inflight: deque[int] = field(default_factory=deque)  # last index of each append in flight
    pending_snapshot: int = 0
    recent_active: bool = False
    acked_round: int = 0
    hb_match: int = -1  # match seen at the previous heartbeat answer (stall detection)
    hb_stalls: int = 0

    def become_probe(self) -> None:
        self.state = PROBE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()


class RaftNode:
    """One Raft participant. Not thread-safe: one driver feeds it.

    Args:
        node_id: this node's id.
        peers: the ids of the other voters (static membership).
        config: tunables and seeded bugs.
        rng: the only source of randomness (election timeout jitter).
        hard_state: persisted term/vote/commit, from storage on restart.
        snapshot: the latest persisted snapshot, if any.
        entries: persisted log entries after the snapshot, in order.
    """

    def __init__(
        self,
        node_id: str,
        peers: list[str],
        config: Config | None = None,
        rng: random.Random | None = None,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
    ) -> None:
        self.config = config or Config()
        self.config.validate()
        self.id = node_id
        self.peers, self.quorum = membership(node_id, peers)
        self.rng = rng if rng is not None else random.Random(0)
        self.bugs = self.config.bugs

        hs = hard_state or HardState()
        snap = snapshot or Snapshot()
        self.log = RaftLog(snap.index, snap.term)
        for e in entries or ():
            if e.index <= snap.index:
                continue
            if e.index != self.log.last_index + 1:
                raise ValueError(f"entries are not contiguous at index {e.index}")
            self.log.entries.append(e)
        self.snapshot: Snapshot | None = snap if snap.index > 0 else None
        self.term = hs.term
        self.vote = hs.vote
        # A persisted commit index is a hint written lazily; it can never exceed what
        # the log holds because both were persisted in the same Ready.
        self.commit = min(max(hs.commit, snap.index), self.log.last_index)
        # The driver restores the snapshot into its state machine before the first
        # Ready and then replays committed entries from there. ``applied`` moves only
        # in advance(); ``_applying`` is what Readies have handed out so far.
        self.applied = snap.index
        self._applying = snap.index
        # What the driver confirmed durable (advance): the hard state and the last
        # log index persisted. Handed-out-but-unconfirmed work is not counted here.
        self.durable_hs = HardState(self.term, self.vote, self.commit)
        self.stable_index = self.log.last_index

        self.role = FOLLOWER
        self.leader: str | None = None
        # A node that just (re)started may have acknowledged a leader's heartbeat
        # right before it crashed; it stays deaf to vote requests for one election
        # timeout, as if it still heard that leader, or a lease could be broken by a
        # quick restart. It costs nothing: no node campaigns before its own timeout.
        self.booting = True
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = 0
        self._reset_randomized_timeout()
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.now = 0.0

        # ReadIndex / lease bookkeeping (leader only).
        self.round = 0  # last heartbeat round sent
        self.round_time: dict[int, float] = {}
        self.confirmed_round = 0
        self.pending_reads: list[tuple[Any, int, int]] = []  # (ctx, index, round)
        self.reads_awaiting_commit: list[Any] = []
        self.need_read_round = False
        self.lease_until = float("-inf")

        # Output buffers drained by ready().
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._dropped_reads: list[Any] = []
        self._unstable_from: int | None = None  # lowest log index not yet handed out
        self._pending_snapshot: Snapshot | None = None
        self._need_bcast = False
        self._prev_hs = HardState(self.term, self.vote, self.commit)

    # ------------------------------------------------------------------ inputs

    def tick(self, now: float | None = None) -> None:
        """One tick of logical time passed; ``now`` is the driver's clock reading."""
        if now is not None:
            self.now = now
        self.election_elapsed += 1
        if self.booting and self.election_elapsed >= self.config.election_ticks:
            self.booting = False
        if self.role == LEADER:
            self.heartbeat_elapsed += 1
            if self.election_elapsed >= self.config.election_ticks:
                self.election_elapsed = 0
                if self.config.check_quorum:
                    active = 1 + sum(1 for p in self.peers if self.progress[p].recent_active)
                    for p in self.peers:
                        self.progress[p].recent_active = False
                    if active < self.quorum:
                        if "lease-without-bound" in self.bugs and self.now < self.lease_until:
                            # BUG: a leader trusts its (unbounded) lease over the
                            # evidence that it lost its quorum.
                            pass
                        else:
                            self._become_follower(self.term, None)
                            return
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._bcast_heartbeat()
        elif self.election_elapsed >= self.randomized_timeout:
            self.election_elapsed = 0
            self.campaign()

    def campaign(self) -> None:
        """Start an election now (pre-vote first when enabled)."""
        if self.role == LEADER:
            return
        if self.config.pre_vote and self.peers:
            self._become_pre_candidate()
        else:
            self._become_candidate()

    def propose(self, data: Any) -> int:
        """Append a command to the leader's log; return its index.

        Raises:
            NotLeader: this node is not the leader; ``leader`` is a hint or ``None``.
        """
        if self.role != LEADER:
            raise NotLeader(self.leader)
        return self._append(data)

    def read_index(self, ctx: Any, now: float | None = None) -> None:
        """Ask for a linearizable read point; the answer comes as a :class:`ReadState`.

        Args:
            ctx: the caller's handle for this read, echoed in the ReadState.
            now: the driver's clock reading; lease reads need it (the last tick's
                reading could be up to a tick old, which would stretch the lease).

        Raises:
            NotLeader: this node is not the leader.
        """
        if now is not None:
            self.now = now
        if self.role != LEADER:
            raise NotLeader(self.leader)
        if not self._committed_in_term():
            self.reads_awaiting_commit.append(ctx)
            return
        self._register_read(ctx)

    def compact(self, index: int, data: Any) -> None:
        """Replace log entries up to ``index`` (applied) by a snapshot with ``data``."""
        if index <= self.log.snap_index:
            return
        if index > self.applied:
            raise ValueError(f"cannot compact to {index}: only {self.applied} applied")
        term = self.log.term_at(index)
        assert term is not None
        self.snapshot = Snapshot(index, term, data)
        self.log.compact_to(index, term)

    def step(self, m: Message) -> None:
        """Process one message from a peer."""
        if m.dst != self.id:
            return
        if m.src not in self.progress and m.src not in self.peers:
            return
        if m.term > self.term:
            if m.type in (MSG_VOTE, MSG_PREVOTE) and self._in_leader_lease():
                # Leader stickiness: we heard from a live leader recently, so this
                # candidate is disruptive (or partitioned). Lease reads rely on this.
                return
            if m.type == MSG_PREVOTE or (m.type == MSG_PREVOTE_RESP and not m.reject):
                pass  # pre-votes never change terms
            elif m.type in (MSG_APP, MSG_HEARTBEAT, MSG_SNAP):
                self._become_follower(m.term, m.src)
            else:
                self._become_follower(m.term, None)
        elif m.term < self.term:
            if m.type in (MSG_APP, MSG_HEARTBEAT) and (
                self.config.check_quorum or self.config.pre_vote
            ):
                # A stale leader that cannot learn our term would be stuck forever
                # behind pre-vote/stickiness; tell it.
                self._send(Message(MSG_APP_RESP, self.id, m.src, self.term))
            elif m.type == MSG_PREVOTE:
                self._send(Message(MSG_PREVOTE_RESP, self.id, m.src, self.term, reject=True))
            return

        if m.type in (MSG_VOTE, MSG_PREVOTE):
            self._handle_vote_request(m)
            return

        role = self.role
        if role == LEADER:
            if m.type == MSG_APP_RESP:
                self._handle_append_response(m)
            elif m.type == MSG_HEARTBEAT_RESP:
                self._handle_heartbeat_response(m)
        elif role in (CANDIDATE, PRE_CANDIDATE):
            if m.type in (MSG_APP, MSG_HEARTBEAT, MSG_SNAP):
                self._become_follower(m.term, m.src)
                self._step_follower(m)
            elif (m.type == MSG_VOTE_RESP and role == CANDIDATE) or (
                m.type == MSG_PREVOTE_RESP and role == PRE_CANDIDATE
            ):
                self._handle_vote_response(m)
        else:
            self._step_follower(m)

    # ------------------------------------------------------------------ output

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._need_bcast
            or self.need_read_round
            or self._read_states
            or self._dropped_reads
            or self._unstable_from is not None
            or self._pending_snapshot is not None
            or self.commit > self._applying
            or self._prev_hs != HardState(self.term, self.vote, self.commit)
        )

    def ready(self) -> Ready:
        """Hand out everything the driver must do now (see the module docstring).

        Nothing is marked done here: the entries, hard state and committed entries
        of this Ready count as persisted and applied only once the driver calls
        :meth:`advance` with it. A later ``ready()`` before that returns only work
        not handed out yet (so a driver may pipeline), never the same work twice.
        """
        if self.role == LEADER:
            if self._need_bcast:
                for p in self.peers:
                    self._maybe_send_append(p, send_if_empty=False)
            if self.need_read_round:
                self._bcast_heartbeat()
        self._need_bcast = False
        self.need_read_round = False

        hs = HardState(self.term, self.vote, self.commit)
        hs_out = hs if hs != self._prev_hs else None
        self._prev_hs = hs
        entries: list[Entry] = []
        if self._unstable_from is not None:
            entries = self.log.slice(self._unstable_from, self.log.last_index + 1)
            self._unstable_from = None
        snap = self._pending_snapshot
        self._pending_snapshot = None
        if snap is not None:
            self._applying = max(self._applying, snap.index)
        committed: list[Entry] = []
        if self.commit > self._applying:
            committed = self.log.slice(self._applying + 1, self.commit + 1)
            self._applying = self.commit
        rd = Ready(
            hard_state=hs_out,
            entries=entries,
            snapshot=snap,
            messages=self._msgs,
            committed_entries=committed,
            read_states=self._read_states,
            dropped_reads=self._dropped_reads,
            role=self.role,
            leader=self.leader,
            term=self.term,
        )
        self._msgs = []
        self._read_states = []
        self._dropped_reads = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied ``rd``: mark that work done.

        After this, ``applied`` covers ``rd``'s snapshot and committed entries (so
        :meth:`compact` may use them), and ``durable_hs``/``stable_index`` record what
        the driver made durable. Call it once per Ready, in the order handed out.
        """
        if rd.hard_state is not None:
            self.durable_hs = rd.hard_state
        if rd.snapshot is not None:
            self.applied = max(self.applied, rd.snapshot.index)
            self.stable_index = max(self.stable_index, rd.snapshot.index)
        if rd.entries:
            self.stable_index = rd.entries[-1].index
        if rd.committed_entries:
            self.applied = max(self.applied, rd.committed_entries[-1].index)

    # ------------------------------------------------------------------ roles

    def _reset_randomized_timeout(self) -> None:
        et = self.config.election_ticks
        self.randomized_timeout = et + self.rng.randrange(et)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_timeout()
        self.votes = {}
        self._drop_reads()
        self.lease_until = float("-inf")

    def _drop_reads(self) -> None:
        self._dropped_reads.extend(ctx for ctx, _, _ in self.pending_reads)
        self._dropped_reads.extend(self.reads_awaiting_commit)
        self.pending_reads = []
        self.reads_awaiting_commit = []
        self.round_time = {}

    def _become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self.role = FOLLOWER
        self.leader = leader

    def _become_pre_candidate(self) -> None:
        # Term and vote stay: a pre-vote is only a question.
        self.role = PRE_CANDIDATE
        self.leader = None
        self.votes = {self.id: True}
        self._drop_reads()
        for p in self.peers:
            self._send(
                Message(
                    MSG_PREVOTE,
                    self.id,
                    p,
                    self.term + 1,
                    index=self.log.last_index,
                    log_term=self.log.last_term,
                )
            )

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.role = CANDIDATE
        self.vote = self.id
        self.votes = {self.id: True}
        if len(self.votes) >= self.quorum:
            self._become_leader()
            return
        for p in self.peers:
            self._send(
                Message(
                    MSG_VOTE,
                    self.id,
                    p,
                    self.term,
                    index=self.log.last_index,
                    log_term=self.log.last_term,
                )
            )

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = LEADER
        self.leader = self.id
        self.round = 0
        self.confirmed_round = 0
        last = self.log.last_index
        self.progress = {p: Progress(match=0, next=last + 1) for p in self.peers}
        for pr in self.progress.values():
            pr.recent_active = True  # give followers a full timeout before check-quorum
        # A no-op of our own term: committing it commits every earlier entry (figure 8)
        # and lets reads proceed.
        self._append(None)

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MSG_PREVOTE
        resp_type = MSG_PREVOTE_RESP if pre else MSG_VOTE_RESP
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.leader is None)
            or (pre and m.term > self.term)
        )
        up_to_date = m.log_term > self.log.last_term or (
            m.log_term == self.log.last_term and m.index >= self.log.last_index
        )
        if can_vote and up_to_date:
            # A pre-vote answer carries the asked-for term so the asker can count it.
            self._send(Message(resp_type, self.id, m.src, m.term if pre else self.term))
            if not pre:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self._send(Message(resp_type, self.id, m.src, self.term, reject=True))

    def _handle_vote_response(self, m: Message) -> None:
        self.votes.setdefault(m.src, not m.reject)
        granted = sum(1 for v in self.votes.values() if v)
        rejected = len(self.votes) - granted
        if granted >= self.quorum:
            if self.role == PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
        elif rejected >= self.quorum:
            self._become_follower(self.term, None)

    def _in_leader_lease(self) -> bool:
        return (
            self.config.check_quorum
            and (self.leader is not None or self.booting)
            and self.election_elapsed < self.config.election_ticks
        )

    # ------------------------------------------------------------------ follower

    def _step_follower(self, m: Message) -> None:
        if m.type in (MSG_APP, MSG_HEARTBEAT, MSG_SNAP):
            self.election_elapsed = 0
            self.leader = m.src
        if m.type == MSG_APP:
            self._handle_append(m)
        elif m.type == MSG_HEARTBEAT:
            # The leader sends min(match, commit), an index our log agrees on.
            if m.commit > self.commit:
                self.commit = min(m.commit, self.log.last_index)
            self._send(Message(MSG_HEARTBEAT_RESP, self.id, m.src, self.term, round=m.round))
        elif m.type == MSG_SNAP:
            self._handle_snapshot(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.commit:
            self._send(Message(MSG_APP_RESP, self.id, m.src, self.term, index=self.commit))
            return
        log = self.log
        if log.term_at(m.index) == m.log_term:
            for e in m.entries:
                if e.index <= log.snap_index:
                    continue
                t = log.term_at(e.index)
                if t == e.term:
                    continue
                if t is not None:
                    if e.index <= self.commit:
                        raise AssertionError(
                            f"{self.id}: would truncate committed entry {e.index} "
                            f"(commit {self.commit})"
                        )
                    log.truncate_from(e.index)
                self._mark_unstable(e.index)
                log.entries.extend(x for x in m.entries if x.index >= e.index)
                break
            last_new = m.index + len(m.entries)
            if m.commit > self.commit:
                self.commit = max(self.commit, min(m.commit, last_new))
            self._send(Message(MSG_APP_RESP, self.id, m.src, self.term, index=last_new))
        else:
            # Skip back over entries whose term is above the leader's prevLogTerm: they
            # cannot match, so the leader need not probe them one by one.
            hint = min(m.index, log.last_index)
            while hint > log.snap_index and (log.term_at(hint) or 0) > m.log_term:
                hint -= 1
            self._send(
                Message(
                    MSG_APP_RESP, self.id, m.src, self.term, index=m.index, reject=True, hint=hint
                )
            )

    def _handle_snapshot(self, m: Message) -> None:
        s = m.snapshot
        assert s is not None
        if s.index <= self.commit:
            self._send(Message(MSG_APP_RESP, self.id, m.src, self.term, index=self.commit))
            return
        if self.log.term_at(s.index) == s.term:
            # We already hold the snapshot's last entry: just learn the commit index.
            self.commit = s.index
            self._send(Message(MSG_APP_RESP, self.id, m.src, self.term, index=self.commit))
            return
        self.log = RaftLog(s.index, s.term)
        self.snapshot = s
        self.commit = s.index
        self._pending_snapshot = s
        self._unstable_from = None  # the snapshot replaces the whole log
        self._send(Message(MSG_APP_RESP, self.id, m.src, self.term, index=s.index))

    # ------------------------------------------------------------------ leader

    def _append(self, data: Any) -> int:
        idx = self.log.last_index + 1
        self.log.entries.append(Entry(idx, self.term, data))
        self._mark_unstable(idx)
        self._need_bcast = True
        if not self.peers:
            self._maybe_commit()
        return idx

    def _mark_unstable(self, index: int) -> None:
        if self._unstable_from is None or index < self._unstable_from:
            self._unstable_from = index

    def _committed_in_term(self) -> bool:
        return self.log.term_at(self.commit) == self.term

    def _maybe_commit(self) -> None:
        matches = sorted((self.progress[p].match for p in self.peers), reverse=True)
        matches.insert(0, self.log.last_index)
        n = matches[self.quorum - 1]
        if n <= self.commit:
            return
        if self.log.term_at(n) != self.term and "commit-old-term" not in self.bugs:
            return
        self.commit = n
        if self.reads_awaiting_commit and self._committed_in_term():
            waiting, self.reads_awaiting_commit = self.reads_awaiting_commit, []
            for ctx in waiting:
                self._register_read(ctx)

    def _maybe_send_append(self, p: str, send_if_empty: bool) -> bool:
        pr = self.progress[p]
        if pr.state == SNAPSHOT or pr.paused or len(pr.inflight) >= self.config.max_inflight:
            return False
        log = self.log
        prev = pr.next - 1
        prev_term = log.term_at(prev)
        if prev_term is None:
            if prev < log.snap_index:
                self._send_snapshot(p, pr)
                return True
            # next ran beyond our log (stale progress after truncation): re-probe.
            pr.match = min(pr.match, log.last_index)
            pr.become_probe()
            prev = pr.next - 1
            prev_term = log.term_at(prev)
            if prev_term is None:
                self._send_snapshot(p, pr)
                return True
        entries = log.slice(pr.next, pr.next + self.config.max_entries_per_msg)
        if not entries and not send_if_empty:
            return False
        self._send(
            Message(
                MSG_APP,
                self.id,
                p,
                self.term,
                index=prev,
                log_term=prev_term,
                entries=tuple(entries),
                commit=self.commit,
            )
        )
        if entries:
            if pr.state == REPLICATE:
                last = entries[-1].index
                pr.next = last + 1
                pr.inflight.append(last)
            else:
                pr.paused = True
        elif pr.state == PROBE:
            pr.paused = True
        return True

    def _send_snapshot(self, p: str, pr: Progress) -> None:
        snap = self.snapshot
        assert snap is not None, "log compacted but no snapshot kept"
        self._send(Message(MSG_SNAP, self.id, p, self.term, snapshot=snap))
        pr.state = SNAPSHOT
        pr.pending_snapshot = snap.index
        pr.inflight.clear()
        pr.paused = False

    def _handle_append_response(self, m: Message) -> None:
        pr = self.progress[m.src]
        pr.recent_active = True
        if m.reject:
            if pr.state == REPLICATE:
                if m.index <= pr.match:
                    return  # stale
                pr.become_probe()
            elif pr.state == PROBE:
                if m.index != pr.next - 1:
                    return  # stale
                pr.next = max(min(m.index, m.hint + 1), pr.match + 1, 1)
                pr.paused = False
            else:
                return
            self._maybe_send_append(m.src, send_if_empty=True)
            return
        if m.index > pr.match:
            pr.match = m.index
            if pr.next <= m.index:
                pr.next = m.index + 1
            while pr.inflight and pr.inflight[0] <= m.index:
                pr.inflight.popleft()
            if pr.state == PROBE:
                pr.become_replicate()
            elif pr.state == SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_replicate()
            old_commit = self.commit
            self._maybe_commit()
            if self.commit != old_commit:
                self._need_bcast = True  # tell followers the new commit index soon
        elif pr.state == PROBE:
            pr.paused = False
        # Keep the pipe full.
        while self._maybe_send_append(m.src, send_if_empty=False):
            if pr.state != REPLICATE:
                break

    def _handle_heartbeat_response(self, m: Message) -> None:
        pr = self.progress[m.src]
        pr.recent_active = True
        if pr.state == PROBE:
            pr.paused = False
        elif pr.state == SNAPSHOT:
            # The snapshot or its answer may have been lost: offer it again.
            pr.become_probe()
        elif pr.inflight and pr.match == pr.hb_match:
            # Pipelined appends were lost (nothing was acknowledged for two heartbeat
            # answers): start over from the match point.
            pr.hb_stalls += 1
            if pr.hb_stalls >= 2:
                pr.become_probe()
        if pr.match != pr.hb_match:
            pr.hb_stalls = 0
        pr.hb_match = pr.match
        if pr.match < self.log.last_index:
            # In replicate state an empty append would race the ones in flight.
            self._maybe_send_append(m.src, send_if_empty=pr.state == PROBE)
        if m.round > pr.acked_round:
            pr.acked_round = m.round
            self._confirm_rounds()

    def _bcast_heartbeat(self) -> None:
        self.round += 1
        self.round_time[self.round] = self.now
        for p in self.peers:
            pr = self.progress[p]
            self._send(
                Message(
                    MSG_HEARTBEAT,
                    self.id,
                    p,
                    self.term,
                    commit=min(pr.match, self.commit),
                    round=self.round,
                )
            )
        if not self.peers:
            self._confirm_rounds()

    # ------------------------------------------------------------------ reads

    def _register_read(self, ctx: Any) -> None:
        if not self.peers:
            self._read_states.append(ReadState(ctx, self.commit))
            return
        if self.config.read_mode == "lease" and self.now < self.lease_until:
            self._read_states.append(ReadState(ctx, self.commit))
            return
        # Joins the next round: acknowledgements of an earlier round prove nothing
        # about leadership at the time this read arrived.
        self.pending_reads.append((ctx, self.commit, self.round + 1))
        self.need_read_round = True

    def _confirm_rounds(self) -> None:
        r = quorum_round(self.round, (self.progress[p].acked_round for p in self.peers), self.quorum)
        if r <= self.confirmed_round:
            return
        self.confirmed_round = r
        if self.config.read_mode == "lease":
            if "lease-without-bound" in self.bugs:
                # BUG: dates the lease from when the acks arrived, not from when the
                # round was sent, and stretches it to a full election timeout with no
                # allowance for clock drift.
                self.lease_until = self.now + self.config.lease_seconds * 2
            else:
                sent = self.round_time.get(r)
                if sent is not None:
                    self.lease_until = max(self.lease_until, sent + self.config.lease_seconds)
        for old in [k for k in self.round_time if k < r]:
            del self.round_time[old]
        if self.pending_reads:
            self.pending_reads = release_reads(self.pending_reads, r, self._read_states)

    # ------------------------------------------------------------------ misc

    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def status(self) -> dict[str, Any]:
        """A summary for logs and ``GET /status``."""
        return {
            "id": self.id,
            "role": self.role,
            "term": self.term,
            "leader": self.leader,
            "commit_index": self.commit,
            "applied_index": self.applied,
            "last_index": self.log.last_index,
            "snapshot_index": self.log.snap_index,
        }
