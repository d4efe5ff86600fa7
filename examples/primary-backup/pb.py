"""A small primary-backup replication core, sans I/O, plugged into ``jepsenlike simulate``.

How it works: node ``n1`` is the fixed primary. A client command proposed there is
appended to the primary's log; every tick the primary sends each backup the entries
it has not acknowledged yet, with its commit index. A backup appends entries that
extend its log, persists them, and acknowledges its log length. An entry commits
once *every* backup holds it (so any replica's log is a prefix of the primary's and
nothing acknowledged can be lost while the primary's disk survives). Reads go to the
primary and are answered at its commit index: the primary never changes, so that is
linearizable. The node is unavailable while the primary is down; this is an example
of the :class:`~jepsenlike.models.consensus.ConsensusCore` interface, not a
production protocol.

Seeded bug ``backup-reads``: backups answer reads from their own applied state
(the "read from the nearest replica" shortcut), which is stale whenever a backup
lags, for example behind a partition. ``jepsenlike simulate --system
examples/primary-backup/pb.py:PrimaryBackupSystem --bug backup-reads`` finds it and
shrinks the schedule; ``docs/simulation.md`` walks through the interface.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.models.consensus import FOLLOWER, LEADER, NotLeader, ReadState
from jepsenlike.models.simulator import Invariants, InvariantViolation, Simulator

BUGS = ("backup-reads",)
PRIMARY = "n1"


@dataclass(frozen=True)
class Entry:
    index: int
    data: Any


@dataclass
class Msg:
    type: str  # "append" or "ack"
    src: str
    dst: str
    start: int = 0  # first index in entries (append) / log length (ack)
    entries: tuple[Entry, ...] = ()
    commit: int = 0


@dataclass
class Ready:
    entries: list[Entry]  # to persist (they extend the stored log)
    commit: int | None  # to persist, when it moved
    messages: list[Msg]
    committed_entries: list[Entry]
    read_states: list[ReadState]
    dropped_reads: list[Any] = field(default_factory=list)
    snapshot: None = None
    role: str = FOLLOWER
    leader: str | None = PRIMARY
    term: int = 0


@dataclass
class Storage:
    log: list[Entry] = field(default_factory=list)
    commit: int = 0


class PBCore:
    """One replica; implements :class:`~jepsenlike.models.consensus.ConsensusCore`."""

    def __init__(self, node_id: str, peers: list[str], storage: Storage, bugs: frozenset[str]):
        self.id = node_id
        self.peers = sorted(peers)
        self.bugs = bugs
        self.role = LEADER if node_id == PRIMARY else FOLLOWER
        self.leader: str | None = PRIMARY
        self.log = list(storage.log)
        self.commit = storage.commit
        self.applied = 0
        self._applying = 0
        self._stable = len(self.log)
        self._persisted_commit = self.commit
        self.acked = {p: 0 for p in self.peers}
        self._msgs: list[Msg] = []
        self._reads: list[ReadState] = []

    # inputs
    def tick(self, now: float | None = None) -> None:
        if self.role == LEADER:
            for p in self.peers:
                start = self.acked[p] + 1
                self._msgs.append(
                    Msg("append", self.id, p, start, tuple(self.log[start - 1 :]), self.commit)
                )

    def step(self, m: Msg) -> None:
        if m.type == "append" and self.role != LEADER:
            if m.start <= len(self.log) + 1:
                for e in m.entries:
                    if e.index == len(self.log) + 1:
                        self.log.append(e)
            self.commit = max(self.commit, min(m.commit, len(self.log)))
            self._msgs.append(Msg("ack", self.id, m.src, len(self.log)))
        elif m.type == "ack" and self.role == LEADER:
            self.acked[m.src] = max(self.acked[m.src], m.start)
            self.commit = max(self.commit, min([len(self.log), *self.acked.values()]))

    def propose(self, data: Any) -> int:
        if self.role != LEADER:
            raise NotLeader(PRIMARY)
        self.log.append(Entry(len(self.log) + 1, data))
        if not self.peers:
            self.commit = len(self.log)
        return len(self.log)

    def read_index(self, ctx: Any, now: float | None = None) -> None:
        if self.role != LEADER:
            if "backup-reads" not in self.bugs:
                raise NotLeader(PRIMARY)
            self._reads.append(ReadState(ctx, self.applied))  # BUG: whatever we have
            return
        self._reads.append(ReadState(ctx, self.commit))

    def compact(self, index: int, data: Any) -> None:
        pass  # no snapshots in this example

    def campaign(self) -> None:
        pass  # the primary is fixed

    # output
    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._reads
            or len(self.log) > self._stable
            or self.commit != self._persisted_commit
            or self.commit > self._applying
        )

    def ready(self) -> Ready:
        rd = Ready(
            entries=self.log[self._stable :],
            commit=self.commit if self.commit != self._persisted_commit else None,
            messages=self._msgs,
            committed_entries=self.log[self._applying : self.commit],
            read_states=self._reads,
            role=self.role,
        )
        self._stable = len(self.log)
        self._persisted_commit = self.commit
        self._applying = self.commit
        self._msgs, self._reads = [], []
        return rd

    def advance(self, rd: Ready) -> None:
        if rd.committed_entries:
            self.applied = rd.committed_entries[-1].index

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "term": 0, "commit_index": self.commit}


class PrefixInvariant(Invariants):
    """Every replica's log is a prefix of the primary's; nothing committed is lost."""

    def __init__(self) -> None:
        self.committed: dict[int, Any] = {}

    def check(self, sim: Simulator) -> None:
        up = {i: sim.nodes[i].core for i in sim.up()}
        primary = up.get(PRIMARY)
        for i, core in up.items():
            for e in core.log[: core.commit]:
                seen = self.committed.setdefault(e.index, e.data)
                if seen != e.data:
                    raise InvariantViolation(
                        "committed entries stay", f"{i} has {e.data!r} at committed {e.index}"
                    )
            if primary is not None and core.log != primary.log[: len(core.log)]:
                raise InvariantViolation(
                    "backup log is a prefix", f"{i}'s log is not a prefix of the primary's"
                )


class PrimaryBackupSystem:
    """The :class:`~jepsenlike.models.simulator.System` for :class:`PBCore`."""

    name = "primary-backup"
    wall_clock = False
    bug_names = BUGS

    def __init__(self, bugs: frozenset[str] = frozenset(), nodes: int = 3) -> None:
        unknown = sorted(set(bugs) - set(BUGS))
        if unknown:
            raise ValueError(f"unknown primary-backup bug {unknown}; valid bugs: {', '.join(BUGS)}")
        self.bugs = frozenset(bugs)

    def new_storage(self, node: str) -> Storage:
        return Storage()

    def boot(self, node: str, peers: list[str], storage: Storage, rng: random.Random) -> PBCore:
        return PBCore(node, peers, storage, self.bugs)

    def restored_state(self, storage: Storage) -> Any:
        return None  # no snapshots: the state machine replays the log from scratch

    def persist(self, storage: Storage, rd: Ready) -> None:
        storage.log.extend(rd.entries)
        if rd.commit is not None:
            storage.commit = rd.commit

    def save_snapshot(self, storage: Storage, core: PBCore) -> None:
        pass

    def snapshot_data(self, snap: Any) -> Any:
        return None

    def snapshot_index(self, core: PBCore) -> int:
        return core.applied  # nothing to compact: the compact step is a no-op

    def snapshot_index_of(self, snap: Any) -> int:
        return 0

    def invariants(self) -> PrefixInvariant:
        return PrefixInvariant()

    def serves_reads_locally(self) -> bool:
        return False

    def acks_on_propose(self) -> bool:
        return False
