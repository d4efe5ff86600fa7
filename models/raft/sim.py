"""Raft in simulation: the System for the generic simulator, its invariants, and a
scripted-test cluster.

:class:`RaftSystem` plugs the Raft core into :class:`jepsenlike.models.simulator.Simulator`
(what ``jepsenlike simulate`` runs) and :class:`RaftInvariants` is Raft's invariant
set. :class:`SimCluster` is the scripted-test interface over the same simulator, for
tests that steer single messages (the paper's figure 8) and check read freshness
request by request; the rest of this docstring describes it.

Theory of operation
-------------------
:class:`SimCluster` runs N :class:`~jepsenlike.models.raft.core.RaftNode` cores on
the generic simulator, with no sockets, threads or clocks. The network is a bag of in-flight messages; the
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
from jepsenlike.models.raft.bugs import BUGS
from jepsenlike.models.raft.core import (
    LEADER,
    Config,
    Entry,
    HardState,
    NotLeader,
    RaftNode,
    Ready,
    Snapshot,
    safe_lease_seconds,
)
from jepsenlike.models.simulator import TICK_NS, Invariants, InvariantViolation, Simulator

__all__ = ["InvariantViolation", "MemoryStorage", "RaftInvariants", "RaftSystem", "SimCluster"]


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


class RaftInvariants(Invariants):
    """Raft's safety claims (paper, figure 3), checked over the live cores.

    Election safety, leader append-only, log matching, leader completeness and state
    machine safety (on committed entries; the simulator checks applied ones), plus
    the commit rule behind leader completeness: a leader's commit index only lands
    on an entry of its own term. The
    observations (leaders per term, committed entries) accumulate over the whole run,
    across crashes.
    """

    def __init__(self, commit_rule: bool = True) -> None:
        self.commit_rule = commit_rule
        self.leader_of_term: dict[int, str] = {}
        self.leader_logs: dict[str, tuple[int, dict[int, int]]] = {}
        self.committed: dict[int, tuple[int, Any]] = {}  # index -> (entry term, data)
        self.commit_term: dict[int, int] = {}  # index -> lowest term it was seen committed in

    def on_ready(self, sim: Simulator, node: str, rd: Any) -> None:
        if rd.role == LEADER:
            other = self.leader_of_term.setdefault(rd.term, node)
            if other != node:
                raise InvariantViolation(
                    "election safety", f"{other} and {node} were both leader in term {rd.term}"
                )
            # The commit rule (paper 5.4.2): a leader advances its commit index by
            # counting replicas only to an entry of its own term. Breaking it is what
            # lets figure 8 lose a committed entry; checking the rule itself catches
            # the mistake without waiting for the rare schedule that loses the entry.
            core = sim.nodes[node].core
            if self.commit_rule and rd.hard_state is not None and rd.committed_entries:
                last = rd.committed_entries[-1]
                if last.index == core.commit and last.term != rd.term:
                    raise InvariantViolation(
                        "commit rule",
                        f"leader {node} of term {rd.term} committed index {last.index} "
                        f"of term {last.term} by counting replicas",
                    )

    def on_boot(self, sim: Simulator, node: str) -> None:
        self.leader_logs.pop(node, None)

    def check(self, sim: Simulator) -> None:
        self.check_cores([(i, sim.nodes[i].core) for i in sim.up()])

    def check_cores(self, nodes: list[tuple[str, RaftNode]]) -> None:
        """Check the claims over the live cores ``(id, core)``."""
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



class SimCluster:
    """N Raft cores on the generic :class:`~jepsenlike.models.simulator.Simulator`,
    with the scripted-test interface (see the module docstring).

    The simulator owns the network, the storage, crash/restart and Ready handling;
    this class adds what scripted tests need: single-node ticks whose clock reading is
    the tick count (``lease_seconds`` in ticks), append proposals and reads tracked by
    request id, and the *read freshness* check (a read invoked after an append was
    acknowledged sees it). :class:`RaftInvariants` run after every action.
    """

    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        config: Config | None = None,
        volatile_vote: bool = False,
        wall_clock: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config or Config(election_ticks=10, heartbeat_ticks=2)
        system = RaftSystem(
            config=self.config, volatile_vote=volatile_vote, wall_clock=wall_clock,
            commit_rule=False,  # scripted tests show figure 8's consequence instead
        )
        self.sim = Simulator(system, nodes=n, seed=seed)
        self.sim.apply_hook = self._on_apply
        self.sim.read_hook = self._on_read
        self.sim.drop_hook = lambda i, ctx: self.pending.pop(ctx, None)
        self.ids = self.sim.ids
        self.inflight = self.sim.inflight
        self.wall_clock = wall_clock
        self.time = 0
        self.step_count = 0
        self.inv: RaftInvariants = self.sim.invariants  # type: ignore[assignment]
        self.acked_appends: dict[Any, int] = {}  # value -> step it was acknowledged
        self.pending: dict[Any, tuple[str, Any]] = {}  # request id -> (node, request)
        self.reads_done = 0
        self.writes_done = 0
        self._next_id = 0

    # ------------------------------------------------------------ views

    @property
    def nodes(self) -> dict[str, RaftNode | None]:
        return {i: r.core for i, r in self.sim.nodes.items()}

    @property
    def sms(self) -> dict[str, KVStore]:
        return {i: r.sm for i, r in self.sim.nodes.items() if r.core is not None}

    @property
    def storage(self) -> dict[str, MemoryStorage]:
        return {i: r.storage for i, r in self.sim.nodes.items()}

    @property
    def cut(self) -> set[tuple[str, str]]:
        return self.sim.cut

    @property
    def clock_offset(self) -> dict[str, float]:
        return {i: r.offset for i, r in self.sim.nodes.items()}

    @property
    def committed(self) -> dict[int, tuple[int, Any]]:
        return self.inv.committed

    def up(self) -> list[str]:
        return self.sim.up()

    # ------------------------------------------------------------ node lifecycle

    def crash(self, i: str) -> None:
        self.sim.crash(i)
        self.pending = {k: v for k, v in self.pending.items() if v[0] != i}

    def restart(self, i: str) -> None:
        if self.sim.nodes[i].core is None:
            self.sim._boot(i)
        self.check_invariants()

    # ------------------------------------------------------------ actions

    def _now(self, i: str) -> float:
        return float(self.time + (self.sim.nodes[i].offset if self.wall_clock else 0.0))

    def tick(self, i: str) -> None:
        node = self.sim.nodes[i].core
        if node is not None:
            self.time += 1
            self.sim.time = self.time
            node.tick(now=self._now(i))
            self._process(i)

    def clock_bump(self, i: str, delta: float) -> None:
        """Move node ``i``'s wall clock by ``delta`` (negative: backwards)."""
        self.sim.nodes[i].offset += delta

    def deliver(self, k: int, duplicate: bool = False) -> None:
        m = self.inflight[k] if duplicate else self.inflight.pop(k)
        self.sim._deliver(m)
        self.check_invariants()

    def drop(self, k: int) -> None:
        self.inflight.pop(k)

    def propose_append(self, i: str, key: str = "x") -> bool:
        node = self.sim.nodes[i].core
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
        node = self.sim.nodes[i].core
        if node is None:
            return False
        self._next_id += 1
        rid = self._next_id
        try:
            node.read_index(rid, now=self._now(i))
        except NotLeader:
            return False
        # Everything acknowledged before now must be visible to this read.
        self.pending[rid] = (i, ("read", key, set(self.acked_appends)))
        self._process(i)
        return True

    def compact(self, i: str) -> None:
        self.sim._do_compact({"node": i})

    def partition(self, side: set[str]) -> None:
        self.sim._do_partition({"isolate": sorted(side)})

    def heal(self) -> None:
        self.sim.cut = set()

    # ------------------------------------------------------------ ready handling

    def _process(self, i: str) -> None:
        self.sim._process(i)
        self.check_invariants()

    def _on_apply(self, i: str, e: Entry, result: Any) -> None:
        if e.data is None:
            return
        req = self.pending.pop(e.data["id"], None)
        if req is not None and req[0] == i and result["type"] == "ok":
            self.acked_appends[e.data["id"]] = self.step_count
            self.writes_done += 1

    def _on_read(self, i: str, ctx: Any) -> None:
        req = self.pending.pop(ctx, None)
        if req is None:
            return
        node = self.sim.nodes[i].core
        _, key, must_see = req[1]
        seen = set(self.sim.nodes[i].sm.read(key) or [])
        missing = must_see - seen
        if missing:
            raise InvariantViolation(
                "read-freshness",
                f"read on {i} (term {node.term}) misses acknowledged appends "
                f"{sorted(missing)[:5]}",
            )
        self.reads_done += 1

    def check_invariants(self) -> None:
        self.inv.check(self.sim)

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


class RaftSystem:
    """The Raft core as a :class:`~jepsenlike.models.simulator.System`.

    Seeded bugs map to the layer they live in: ``commit-old-term`` and
    ``lease-without-bound`` to the core config (the latter also switches reads to
    lease mode and makes the driver read the wall clock, so clock steps reach the
    core), ``volatile-vote`` to the storage, ``stale-read`` and ``early-ack`` to the
    driver. ``read_mode="lease"`` runs correct lease reads without the bug.
    """

    name = "raft"
    bug_names = tuple(BUGS)

    def __init__(
        self,
        bugs: frozenset[str] = frozenset(),
        read_mode: str = "read-index",
        config: Config | None = None,
        volatile_vote: bool = False,
        wall_clock: bool = False,
        commit_rule: bool = True,
    ) -> None:
        self.commit_rule = commit_rule
        unknown = sorted(set(bugs) - set(BUGS))
        if unknown:
            raise ValueError(f"unknown raft bug {unknown}; valid bugs: {', '.join(BUGS)}")
        self.bugs = frozenset(bugs)
        if config is not None:
            # A scripted harness's own config (its bugs included).
            self.bugs |= config.bugs
            if volatile_vote:
                self.bugs |= {"volatile-vote"}
            self.config = config
            self.wall_clock = wall_clock
            return
        lease = read_mode == "lease" or "lease-without-bound" in self.bugs
        et = 10
        self.config = Config(
            election_ticks=et,
            heartbeat_ticks=2,
            # One entry per append: followers then hold old-term entries without the
            # new leader's no-op, the situation of the paper's figure 8.
            max_entries_per_msg=1,
            max_inflight=4,
            read_mode="lease" if lease else "read-index",
            lease_seconds=safe_lease_seconds(et, TICK_NS / 1e9, 0.0) if lease else 0.0,
            bugs=self.bugs & {"commit-old-term", "lease-without-bound"},
        )
        self.wall_clock = "lease-without-bound" in self.bugs

    def new_storage(self, node: str) -> MemoryStorage:
        return MemoryStorage(volatile_vote="volatile-vote" in self.bugs)

    def boot(self, node: str, peers: list[str], storage: MemoryStorage, rng: random.Random) -> RaftNode:
        hs, snap, entries = storage.recover()
        return RaftNode(node, peers, self.config, rng, hard_state=hs, snapshot=snap, entries=entries)

    def restored_state(self, storage: MemoryStorage) -> Any:
        return storage.snapshot.data

    def persist(self, storage: MemoryStorage, rd: Ready) -> None:
        storage.save(rd)

    def save_snapshot(self, storage: MemoryStorage, core: RaftNode) -> None:
        assert core.snapshot is not None
        storage.compact(core.snapshot)

    def snapshot_data(self, snap: Snapshot) -> Any:
        return snap.data

    def snapshot_index(self, core: RaftNode) -> int:
        return core.log.snap_index

    def snapshot_index_of(self, snap: Snapshot) -> int:
        return snap.index

    def invariants(self) -> RaftInvariants:
        return RaftInvariants(self.commit_rule)

    def serves_reads_locally(self) -> bool:
        return "stale-read" in self.bugs

    def acks_on_propose(self) -> bool:
        return "early-ack" in self.bugs
