"""A deterministic in-memory cluster for the Raft core, with invariant checks.

Theory of operation
-------------------
:class:`SimCluster` runs N :class:`~jepsenlike.models.raft.core.RaftNode` cores with
no sockets, threads or clocks. The network is a bag of in-flight messages; the
caller (a seeded scheduler, or Hypothesis) decides at every step what happens next:
deliver, drop or duplicate one message, tick one node, propose or read at a node,
crash or restart a node, cut or heal links, compact a node's log. After every
action the affected node's Ready is handled exactly like the real server does
(persist to :class:`MemoryStorage`, then send, then apply) and then
:meth:`SimCluster.check_invariants` checks the paper's safety claims:

* **Election safety** -- at most one leader per term, over the whole run.
* **Leader append-only** -- a leader never deletes or overwrites entries in its log.
* **Log matching** -- two logs holding an entry with the same index and term agree
  on every entry up to that index.
* **Leader completeness** -- an entry committed in term T is in the log of every
  leader of a term above T.
* **State machine safety** -- no two nodes apply different entries at one index.
* **Read freshness** (linearizable reads) -- a read invoked after an append was
  acknowledged sees that append.

A violation raises :class:`InvariantViolation` naming the claim, so a failing
Hypothesis example shrinks to the shortest schedule that breaks it.

Each core gets ``now`` from the simulated time. With ``wall_clock=True`` (the
``lease-without-bound`` bug's server reads the wall clock) it is the time plus a
per-node offset that :meth:`SimCluster.clock_bump` moves, backwards too; otherwise
it is the shared time, as the real server reads ``time.monotonic()``.

Crashes lose everything that is not in :class:`MemoryStorage`. Because Ready
handling is atomic here, "crash between persist and send" is modelled by dropping
messages, which the scheduler does anyway. ``volatile_vote=True`` makes the storage
forget term and vote on a crash (the ``volatile-vote`` seeded bug).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.models.kv import KVStore
from jepsenlike.models.raft.core import (
    LEADER,
    Config,
    Entry,
    HardState,
    Message,
    NotLeader,
    RaftNode,
    Ready,
    Snapshot,
)

__all__ = ["InvariantViolation", "MemoryStorage", "SimCluster"]


class InvariantViolation(AssertionError):
    """A Raft safety property broke; ``claim`` names which one."""

    def __init__(self, claim: str, detail: str) -> None:
        super().__init__(f"{claim}: {detail}")
        self.claim = claim


@dataclass
class MemoryStorage:
    """What survives a crash in the simulator."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot = field(default_factory=Snapshot)
    entries: list[Entry] = field(default_factory=list)
    volatile_vote: bool = False

    def save(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            base = self.snapshot.index + 1
            del self.entries[max(first - base, 0) :]
            self.entries.extend(e for e in rd.entries if e.index >= base)

    def compact(self, snap: Snapshot) -> None:
        if snap.index <= self.snapshot.index:
            return
        self.entries = [e for e in self.entries if e.index > snap.index]
        self.snapshot = snap

    def recover(self) -> tuple[HardState, Snapshot, list[Entry]]:
        hs = self.hard_state
        if self.volatile_vote:
            # BUG (volatile-vote): term and vote were only ever kept in memory.
            hs = HardState(0, None, hs.commit)
        return hs, self.snapshot, list(self.entries)


class SimCluster:
    """N Raft cores on a simulated network; see the module docstring."""

    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        config: Config | None = None,
        volatile_vote: bool = False,
        wall_clock: bool = False,
    ) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        self.rng = random.Random(seed)
        self.config = config or Config(election_ticks=10, heartbeat_ticks=2)
        self.storage = {i: MemoryStorage(volatile_vote=volatile_vote) for i in self.ids}
        self.nodes: dict[str, RaftNode | None] = {}
        self.sms: dict[str, KVStore] = {}
        self.inflight: list[Message] = []
        self.cut: set[tuple[str, str]] = set()
        self.time = 0
        # Per-node wall-clock offsets, moved by clock_bump(). Cores see them only with
        # wall_clock=True (what the lease-without-bound server does); otherwise they
        # get the shared monotonic time, as the real server uses time.monotonic().
        self.wall_clock = wall_clock
        self.clock_offset = {i: 0.0 for i in self.ids}
        self.step_count = 0
        # Observations for the invariants.
        self.leader_of_term: dict[int, str] = {}
        self.leader_logs: dict[str, tuple[int, dict[int, int]]] = {}
        self.committed: dict[int, tuple[int, Any]] = {}  # index -> (entry term, data)
        self.commit_term: dict[int, int] = {}  # index -> lowest term it was seen committed in
        self.applied: dict[int, tuple[int, Any]] = {}
        self.acked_appends: dict[Any, int] = {}  # value -> step it was acknowledged
        self.pending: dict[Any, tuple[str, Any]] = {}  # request id -> (node, request)
        self.reads_done = 0
        self.writes_done = 0
        self._next_id = 0
        for i in self.ids:
            self.restart(i)

    # ------------------------------------------------------------ node lifecycle

    def _peers(self, i: str) -> list[str]:
        return [p for p in self.ids if p != i]

    def up(self) -> list[str]:
        return [i for i in self.ids if self.nodes.get(i) is not None]

    def crash(self, i: str) -> None:
        self.nodes[i] = None
        self.sms.pop(i, None)
        self.leader_logs.pop(i, None)
        self.pending = {k: v for k, v in self.pending.items() if v[0] != i}

    def restart(self, i: str) -> None:
        hs, snap, entries = self.storage[i].recover()
        node = RaftNode(
            i,
            self._peers(i),
            self.config,
            random.Random(self.rng.getrandbits(32)),
            hard_state=hs,
            snapshot=snap,
            entries=entries,
        )
        self.nodes[i] = node
        self.sms[i] = KVStore.restore(snap.data)
        self._process(i)

    # ------------------------------------------------------------ actions

    def tick(self, i: str) -> None:
        node = self.nodes[i]
        if node is not None:
            self.time += 1
            node.tick(now=self._now(i))
            self._process(i)

    def _now(self, i: str) -> float:
        return float(self.time + (self.clock_offset[i] if self.wall_clock else 0.0))

    def clock_bump(self, i: str, delta: float) -> None:
        """Move node ``i``'s wall clock by ``delta`` (negative: backwards)."""
        self.clock_offset[i] += delta

    def deliver(self, k: int, duplicate: bool = False) -> None:
        m = self.inflight[k] if duplicate else self.inflight.pop(k)
        node = self.nodes.get(m.dst)
        if node is None or (m.src, m.dst) in self.cut:
            return
        node.step(m)
        self._process(m.dst)

    def drop(self, k: int) -> None:
        self.inflight.pop(k)

    def propose_append(self, i: str, key: str = "x") -> bool:
        node = self.nodes.get(i)
        if node is None:
            return False
        self._next_id += 1
        rid = self._next_id
        try:
            node.propose({"id": rid, "op": {"f": "append", "key": key, "value": rid}})
        except NotLeader:
            return False
        self.pending[rid] = (i, ("append", rid))
        self._process(i)
        return True

    def read(self, i: str, key: str = "x") -> bool:
        node = self.nodes.get(i)
        if node is None:
            return False
        self._next_id += 1
        rid = self._next_id
        try:
            node.read_index(rid, now=self._now(i))
        except NotLeader:
            return False
        # Everything acknowledged before now must be visible to this read.
        must_see = set(self.acked_appends)
        self.pending[rid] = (i, ("read", key, must_see))
        self._process(i)
        return True

    def compact(self, i: str) -> None:
        node = self.nodes.get(i)
        if node is None or node.applied <= node.log.snap_index:
            return
        data = self.sms[i].snapshot()
        node.compact(node.applied, data)
        assert node.snapshot is not None
        self.storage[i].compact(node.snapshot)

    def partition(self, side: set[str]) -> None:
        self.cut = {(a, b) for a in self.ids for b in self.ids if (a in side) != (b in side)}

    def heal(self) -> None:
        self.cut = set()

    # ------------------------------------------------------------ ready handling

    def _process(self, i: str) -> None:
        node = self.nodes[i]
        assert node is not None
        while node.has_ready():
            rd = node.ready()
            self.storage[i].save(rd)  # 1. persist
            self.inflight.extend(rd.messages)  # 2. send
            sm = self.sms[i]
            if rd.snapshot is not None:  # 3. apply
                sm = self.sms[i] = KVStore.restore(rd.snapshot.data)
            for e in rd.committed_entries:
                self._observe_apply(i, node, e)
                if e.data is None:
                    continue
                result = sm.apply(e.data["op"])
                req = self.pending.pop(e.data["id"], None)
                if req is not None and req[0] == i and result["type"] == "ok":
                    self.acked_appends[e.data["id"]] = self.step_count
                    self.writes_done += 1
            for rs in rd.read_states:
                req = self.pending.pop(rs.ctx, None)
                if req is None:
                    continue
                if node._applying < rs.index:
                    raise InvariantViolation(
                        "read-freshness", f"{i} served read at {rs.index} before applying it"
                    )
                _, key, must_see = req[1]
                seen = set(sm.read(key) or [])
                missing = must_see - seen
                if missing:
                    raise InvariantViolation(
                        "read-freshness",
                        f"read on {i} (term {node.term}) misses acknowledged appends "
                        f"{sorted(missing)[:5]}",
                    )
                self.reads_done += 1
            for ctx in rd.dropped_reads:
                self.pending.pop(ctx, None)
            node.advance(rd)
        self.check_invariants()

    def _observe_apply(self, i: str, node: RaftNode, e: Entry) -> None:
        seen = self.applied.get(e.index)
        if seen is None:
            self.applied[e.index] = (e.term, e.data)
        elif seen != (e.term, e.data):
            raise InvariantViolation(
                "state machine safety",
                f"{i} applied {e.data!r} (term {e.term}) at index {e.index}; "
                f"another node applied {seen[1]!r} (term {seen[0]})",
            )

    # ------------------------------------------------------------ invariants

    def check_invariants(self) -> None:
        nodes = [(i, n) for i, n in self.nodes.items() if n is not None]
        # Record what is committed (and since which term) before checking leaders.
        for i, n in nodes:
            log = n.log
            for idx in range(log.snap_index + 1, n.commit + 1):
                e = log.entry(idx)
                prev = self.committed.get(idx)
                if prev is None:
                    self.committed[idx] = (e.term, e.data)
                    self.commit_term[idx] = n.term
                elif prev != (e.term, e.data):
                    raise InvariantViolation(
                        "state machine safety",
                        f"{i} holds {e.data!r} (term {e.term}) committed at index {idx}; "
                        f"earlier {prev[1]!r} (term {prev[0]}) was committed there",
                    )
                else:
                    self.commit_term[idx] = min(self.commit_term[idx], n.term)
        for i, n in nodes:
            if n.role != LEADER:
                self.leader_logs.pop(i, None)
                continue
            # Election safety.
            other = self.leader_of_term.setdefault(n.term, i)
            if other != i:
                raise InvariantViolation(
                    "election safety", f"{other} and {i} were both leader in term {n.term}"
                )
            # Leader append-only.
            log = n.log
            prev = self.leader_logs.get(i)
            if prev is not None and prev[0] == n.term:
                for idx, t in prev[1].items():
                    if idx > log.snap_index and log.term_at(idx) != t:
                        raise InvariantViolation(
                            "leader append-only",
                            f"leader {i} (term {n.term}) changed entry {idx} from term {t} "
                            f"to {log.term_at(idx)}",
                        )
            self.leader_logs[i] = (n.term, {e.index: e.term for e in log.entries})
            # Leader completeness.
            for idx, (t, data) in self.committed.items():
                if self.commit_term[idx] >= n.term or idx <= log.snap_index:
                    continue
                if log.term_at(idx) != t or log.entry(idx).data != data:
                    raise InvariantViolation(
                        "leader completeness",
                        f"leader {i} of term {n.term} lacks entry {idx} (term {t}) "
                        f"committed in term {self.commit_term[idx]}",
                    )
        # Log matching: find the highest index where two logs agree on the term;
        # below it they must agree everywhere.
        for a in range(len(nodes)):
            la = nodes[a][1].log
            for b in range(a + 1, len(nodes)):
                lb = nodes[b][1].log
                lo = max(la.snap_index, lb.snap_index) + 1
                hi = min(la.last_index, lb.last_index)
                agreed = False
                for idx in range(hi, lo - 1, -1):
                    ea, eb = la.entry(idx), lb.entry(idx)
                    if ea.term == eb.term:
                        if ea.data != eb.data:
                            raise InvariantViolation(
                                "log matching",
                                f"{nodes[a][0]} and {nodes[b][0]} hold different entries "
                                f"with index {idx} and term {ea.term}",
                            )
                        agreed = True
                    elif agreed:
                        raise InvariantViolation(
                            "log matching",
                            f"{nodes[a][0]} and {nodes[b][0]} agree above index {idx} "
                            f"but differ at it",
                        )

    # ------------------------------------------------------------ schedulers

    def random_step(self, rng: random.Random, faults: bool = True) -> str:
        """Take one action chosen by ``rng``; return a short description of it."""
        self.step_count += 1
        up = self.up()
        r = rng.random()
        if self.inflight and r < 0.55:
            k = rng.randrange(len(self.inflight))
            if faults and rng.random() < 0.08:
                self.drop(k)
                return "drop"
            if faults and rng.random() < 0.03:
                self.deliver(k, duplicate=True)
                return "duplicate"
            self.deliver(k)
            return "deliver"
        if r < 0.80 and up:
            self.tick(rng.choice(up))
            return "tick"
        if r < 0.88 and up:
            self.propose_append(rng.choice(up))
            return "propose"
        if r < 0.92 and up:
            self.read(rng.choice(up))
            return "read"
        if not faults:
            return "noop"
        if r < 0.94 and up:
            self.compact(rng.choice(up))
            return "compact"
        if r < 0.96:
            down = [i for i in self.ids if i not in up]
            if down and (rng.random() < 0.7 or len(up) <= len(self.ids) // 2):
                self.restart(rng.choice(down))
                return "restart"
            if up:
                # Leaders crash more often than others: leader changes in the middle of
                # replication are where commit-rule and voting bugs live.
                leaders = [i for i in up if self.nodes[i].role == LEADER]  # type: ignore[union-attr]
                self.crash(rng.choice(leaders if leaders and rng.random() < 0.7 else up))
                return "crash"
            return "noop"
        if r < 0.965:
            self.clock_bump(rng.choice(self.ids), rng.uniform(-40, 10))
            return "clock-bump"
        if r < 0.98:
            if self.cut:
                self.heal()
                return "heal"
            k = rng.randrange(1, len(self.ids))
            self.partition(set(rng.sample(self.ids, k)))
            return "partition"
        return "noop"

    def run(self, steps: int, rng: random.Random | None = None, faults: bool = True) -> None:
        rng = rng or self.rng
        for _ in range(steps):
            self.random_step(rng, faults)

    def stabilize(self, max_steps: int = 20000) -> str:
        """Heal, restart everyone, and run without faults until one leader has applied
        every proposal it had; returns the leader's id."""
        self.heal()
        for i in self.ids:
            if self.nodes.get(i) is None:
                self.restart(i)
        rng = random.Random(1)
        for _ in range(max_steps):
            leaders = [i for i in self.ids if self.nodes[i] is not None and self.nodes[i].role == LEADER]
            if len(leaders) == 1:
                n = self.nodes[leaders[0]]
                assert n is not None
                if n.commit == n.log.last_index and n.log.term_at(n.commit) == n.term and all(
                    m.applied == n.commit for m in self.nodes.values() if m is not None
                ):
                    return leaders[0]
            if self.inflight and rng.random() < 0.7:
                self.deliver(rng.randrange(len(self.inflight)))
            else:
                self.tick(rng.choice(self.ids))
        raise AssertionError("cluster did not stabilize")
