"""Multi-Paxos in simulation: the System for the generic simulator, its invariants,
and a scripted-test cluster.

:class:`PaxosSystem` plugs the core into :class:`jepsenlike.models.simulator.Simulator`
(what ``jepsenlike simulate`` runs) with :class:`PaxosInvariants`, which count votes
with the same :class:`Oracle` as :class:`SimCluster` below. :class:`SimCluster` is the
older scripted harness kept for tests that steer single messages.

Theory of operation
-------------------
:class:`SimCluster` plays the driver for every node and the network between them.
Messages a node sends go into one in-flight pool; a scheduler (a seeded
``random.Random`` in :meth:`SimCluster.run_random`, or Hypothesis through
:meth:`SimCluster.do`) picks what happens next: deliver a message (in any order, or
twice), lose one, tick a node, propose a command, ask for a read, take a
checkpoint, crash a node, restart it from what its :class:`MemoryStorage` kept,
partition the nodes or heal. Nothing reads a clock and every choice comes from the
scheduler, so a seed (or a Hypothesis example) replays exactly.

Each node's state machine is the list of values it applied, one per slot, so a
checkpoint is just a copy of that list. After every event the :class:`Oracle`
checks the safety properties, and raises :class:`InvariantViolation` at the first
one that breaks:

* **one value per slot (chosen)** -- counting every vote any acceptor ever cast, no
  slot gets a majority for one value in some ballot and a majority for a different
  value in another;
* **learners agree** -- every node applies slots in order, and whatever any node
  applies (or installs from a checkpoint) at slot ``s`` equals what every other node
  applied there;
* **acknowledged means durable** -- a command acknowledged to its client (applied
  on the node that proposed it, in the slot it was given) stays there (implied by
  the previous rule, checked separately for a clearer message);
* **reads are linearizable** -- a read answers with a state that contains every
  command acknowledged before the read was asked for;
* **promises never go backwards** on a node's disk (unless the ``volatile-acceptor``
  bug says there is no disk).

The driver loop for one node is the one the real server runs: feed an input, take
the :class:`Ready`, persist, send, apply.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.models.paxos.bugs import BUGS
from jepsenlike.models.paxos.core import (
    Accepted,
    Ballot,
    Config,
    Message,
    NotLeader,
    PaxosNode,
    Ready,
    Snapshot,
)
from jepsenlike.models.paxos.storage import MemoryStorage
from jepsenlike.models.simulator import Invariants, Simulator
from jepsenlike.models.simulator import InvariantViolation as SimViolation

__all__ = ["ACTIONS", "InvariantViolation", "Oracle", "PaxosInvariants", "PaxosSystem", "SimCluster"]

ACTIONS = (
    "deliver",
    "drop",
    "duplicate",
    "tick",
    "propose",
    "read",
    "compact",
    "crash",
    "restart",
    "partition",
    "heal",
    "elapse",
)

# Weights of the random scheduler; deliveries and ticks dominate, faults are rarer.
DEFAULT_WEIGHTS = {
    "deliver": 50,
    "drop": 3,
    "duplicate": 2,
    "tick": 25,
    "propose": 10,
    "read": 4,
    "compact": 1,
    "crash": 1,
    "restart": 3,
    "partition": 1,
    "heal": 1,
    "elapse": 0,
}


class InvariantViolation(AssertionError):
    """A safety property broke; the message says which, where, and how we got there."""


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@dataclass
class Oracle:
    """Watches every vote, apply and read of a cluster and checks the invariants."""

    size: int
    learned: dict[int, Any] = field(default_factory=dict)  # slot -> value applied
    learned_by: dict[int, str] = field(default_factory=dict)
    votes: dict[tuple[int, Ballot, str], set[str]] = field(default_factory=dict)
    chosen: dict[int, tuple[str, Ballot]] = field(default_factory=dict)
    acked: dict[Any, int] = field(default_factory=dict)  # command -> slot
    max_acked_slot: int = 0

    @property
    def majority(self) -> int:
        return self.size // 2 + 1

    def vote(self, node: str, a: Accepted) -> None:
        k = _key(a.value)
        voters = self.votes.setdefault((a.slot, a.ballot, k), set())
        voters.add(node)
        if len(voters) >= self.majority:
            prev = self.chosen.get(a.slot)
            if prev is None:
                self.chosen[a.slot] = (k, a.ballot)
            elif prev[0] != k:
                raise InvariantViolation(
                    f"two values chosen for slot {a.slot}: {prev[0]} by a majority at "
                    f"ballot {prev[1]} and {k} by {sorted(voters)} at ballot {a.ballot}"
                )

    def apply(self, node: str, slot: int, value: Any) -> None:
        if slot not in self.learned:
            self.learned[slot] = value
            self.learned_by[slot] = node
        elif _key(self.learned[slot]) != _key(value):
            raise InvariantViolation(
                f"learners disagree on slot {slot}: {node} applied {value!r} but "
                f"{self.learned_by[slot]} applied {self.learned[slot]!r}"
            )

    def ack(self, command: Any, slot: int) -> None:
        self.acked[command] = slot
        self.max_acked_slot = max(self.max_acked_slot, slot)

    def check_acked(self, node: str, applied: list[Any]) -> None:
        for cmd, slot in self.acked.items():
            if slot <= len(applied) and applied[slot - 1] != cmd:
                raise InvariantViolation(
                    f"acknowledged command {cmd!r} in slot {slot} is lost: {node} "
                    f"has {applied[slot - 1]!r} there"
                )

    def read(self, node: str, needed: int, applied: int) -> None:
        if applied < needed:
            raise InvariantViolation(
                f"stale read on {node}: it answered with {applied} slots applied, but a "
                f"write in slot {needed} was acknowledged before the read began"
            )


@dataclass
class _SimNode:
    core: PaxosNode | None
    disk: MemoryStorage
    sm: list[Any] = field(default_factory=list)  # value per slot, slot k at sm[k - 1]
    reads: dict[int, int] = field(default_factory=dict)  # read id -> slot needed
    ready_reads: list[tuple[int, int]] = field(default_factory=list)  # (read id, index)
    max_promised: Ballot = (0, "")


class SimCluster:
    """``n`` Paxos nodes on an in-memory network with a scheduler-driven fault model.

    Args:
        n: number of nodes (ids ``n1``..``nN``).
        seed: seeds the random scheduler and every node's rng.
        bugs: seeded bugs, as in :data:`jepsenlike.models.paxos.core.BUGS`.
        config: core tunables (defaults suit the simulator: short timeouts).
    """

    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        bugs: Iterable[str] = (),
        config: Config | None = None,
        weights: dict[str, int] | None = None,
    ) -> None:
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self.bugs = frozenset(bugs)
        self.config = config or Config(election_ticks=10, heartbeat_ticks=2)
        self.config.bugs = self.bugs
        self.rng = random.Random(seed)
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.oracle = Oracle(n)
        self.net: list[Message] = []
        self.blocked: set[tuple[str, str]] = set()
        self.trace: list[str] = []
        self.step_no = 0
        self.next_command = 0
        self.next_read = 0
        self.proposed: dict[str, tuple[str, int]] = {}  # command -> (node, slot)
        volatile = "volatile-acceptor" in self.bugs
        self.nodes: dict[str, _SimNode] = {}
        for i in self.ids:
            self.nodes[i] = _SimNode(None, MemoryStorage(volatile=volatile))
            self._boot(i)

    # ------------------------------------------------------------------ driver

    def _boot(self, i: str) -> None:
        sn = self.nodes[i]
        state = sn.disk.load()
        sn.core = PaxosNode(
            i,
            [p for p in self.ids if p != i],
            config=self.config,
            rng=random.Random(self.rng.random()),
            state=state,
        )
        sn.sm = list(state.snapshot.data or [])
        sn.reads = {}
        sn.ready_reads = []

    def _process(self, i: str) -> None:
        sn = self.nodes[i]
        core = sn.core
        assert core is not None
        while core.has_ready():
            rd = core.ready()
            self._handle_ready(i, sn, rd)
            core.advance(rd)

    def _handle_ready(self, i: str, sn: _SimNode, rd: Ready) -> None:
        sn.disk.save(rd)
        for a in rd.accepted:
            self.oracle.vote(i, a)
        if not sn.disk.volatile:
            if sn.disk.promised < sn.max_promised:
                raise InvariantViolation(
                    f"{i}'s durable promise went back from {sn.max_promised} to "
                    f"{sn.disk.promised}"
                )
            sn.max_promised = sn.disk.promised
        for m in rd.messages:
            if (m.src, m.dst) not in self.blocked:
                self.net.append(m)
        if rd.snapshot is not None:
            data = list(rd.snapshot.data)
            for slot, value in enumerate(data, start=1):
                self.oracle.apply(i, slot, value)
            sn.sm = data
        for e in rd.committed_entries:
            if e.index != len(sn.sm) + 1:
                raise InvariantViolation(
                    f"{i} applied slot {e.index} after slot {len(sn.sm)}: out of order"
                )
            self.oracle.apply(i, e.index, e.data)
            sn.sm.append(e.data)
            owner = self.proposed.get(e.data) if isinstance(e.data, str) else None
            if owner == (i, e.index):
                self.oracle.ack(e.data, e.index)
        if rd.snapshot is not None or rd.committed_entries:
            self.oracle.check_acked(i, sn.sm)
        sn.ready_reads.extend((rs.ctx, rs.index) for rs in rd.read_states)
        for ctx in rd.dropped_reads:
            sn.reads.pop(ctx, None)
        still = []
        for ctx, index in sn.ready_reads:
            if len(sn.sm) >= index:
                self.oracle.read(i, sn.reads.pop(ctx), len(sn.sm))
            else:
                still.append((ctx, index))
        sn.ready_reads = still

    # ------------------------------------------------------------------ actions

    def up(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i].core is not None]

    def do(self, action: str, arg: int) -> None:
        """Perform ``action`` (one of :data:`ACTIONS`); ``arg`` picks its target."""
        self.step_no += 1
        up = self.up()
        desc = action
        if action in ("deliver", "drop", "duplicate"):
            if not self.net:
                return
            k = arg % len(self.net)
            m = self.net[k] if action == "duplicate" else self.net.pop(k)
            desc = f"{action} {m.type} {m.src}->{m.dst} b={m.ballot}"
            if action != "drop":
                sn = self.nodes[m.dst]
                if sn.core is not None and (m.src, m.dst) not in self.blocked:
                    sn.core.step(m)
                    self._process(m.dst)
        elif action in ("tick", "propose", "read", "compact", "crash"):
            if not up:
                return
            i = up[arg % len(up)]
            desc = f"{action} {i}"
            sn = self.nodes[i]
            core = sn.core
            assert core is not None
            if action == "tick":
                core.tick()
            elif action == "propose":
                cmd = f"c{self.next_command}"
                self.next_command += 1
                try:
                    slot = core.propose(cmd)
                except NotLeader:
                    return
                self.proposed[cmd] = (i, slot)
                desc += f" {cmd}@{slot}"
            elif action == "read":
                rid = self.next_read
                self.next_read += 1
                try:
                    core.read_index(rid)
                except NotLeader:
                    return
                sn.reads[rid] = self.oracle.max_acked_slot
            elif action == "compact":
                if core.applied <= core.snapshot.index:
                    return
                snap = Snapshot(core.applied, list(sn.sm[: core.applied]))
                core.compact(snap.index, snap.data)
                sn.disk.save_snapshot(snap)
                desc += f" @{snap.index}"
            else:
                sn.core = None
                self.trace.append(f"{self.step_no}: {desc}")
                return
            self._process(i)
        elif action == "restart":
            down = [i for i in self.ids if self.nodes[i].core is None]
            if not down:
                return
            i = down[arg % len(down)]
            desc = f"restart {i}"
            self._boot(i)
            self._process(i)
        elif action == "partition":
            ids = list(self.ids)
            random.Random(arg).shuffle(ids)
            cut = 1 + arg % (len(ids) - 1)
            a, b = set(ids[:cut]), set(ids[cut:])
            self.blocked = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            desc = f"partition {sorted(a)} | {sorted(b)}"
        elif action == "heal":
            self.blocked = set()
        elif action == "elapse":
            # One tick everywhere, then the network delivers everything it holds.
            for i in up:
                self.core(i).tick()
                self._process(i)
            while self.net:
                m = self.net.pop(0)
                sn = self.nodes[m.dst]
                if sn.core is not None and (m.src, m.dst) not in self.blocked:
                    sn.core.step(m)
                    self._process(m.dst)
        else:
            raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        self.trace.append(f"{self.step_no}: {desc}")

    def run_random(self, steps: int) -> None:
        """Run ``steps`` scheduler-chosen actions; invariants are checked as they happen."""
        names = list(self.weights)
        weights = [self.weights[n] for n in names]
        for _ in range(steps):
            action = self.rng.choices(names, weights)[0]
            self.do(action, self.rng.randrange(1 << 30))

    def stabilize(self, rounds: int = 200) -> None:
        """Heal, restart every node, and let the cluster run with a perfect network."""
        self.blocked = set()
        for i in self.ids:
            if self.nodes[i].core is None:
                self.restart(i)
        for _ in range(rounds):
            for i in self.ids:
                self.do("tick", self.up().index(i))
            while self.net:
                self.do("deliver", 0)

    # ------------------------------------------------------------------ scripting

    def deliver_all(self, where: Any = None, limit: int = 100_000) -> int:
        """Deliver in-flight messages matching ``where(m)`` (all if ``None``), including
        the ones they cause, until none match; return how many were delivered."""
        n = 0
        while n < limit:
            k = next(
                (k for k, m in enumerate(self.net) if where is None or where(m)), None
            )
            if k is None:
                return n
            self.do("deliver", k)
            n += 1
        raise RuntimeError(f"deliver_all: still delivering after {limit} messages")

    def drop_all(self, where: Any = None) -> int:
        """Lose every in-flight message matching ``where(m)``; return how many."""
        keep = [m for m in self.net if where is not None and not where(m)]
        n = len(self.net) - len(keep)
        self.net = keep
        return n

    def core(self, i: str) -> PaxosNode:
        """The live core of node ``i`` (raises if it is down)."""
        core = self.nodes[i].core
        if core is None:
            raise ValueError(f"{i} is down")
        return core

    def campaign(self, i: str) -> None:
        """Make ``i`` start phase 1 now."""
        self.core(i).campaign()
        self._process(i)
        self.trace.append(f"{self.step_no}: campaign {i}")

    def propose(self, i: str, cmd: str) -> int:
        """Propose ``cmd`` on ``i`` (must be leader); return its slot."""
        slot = self.core(i).propose(cmd)
        self.proposed[cmd] = (i, slot)
        self._process(i)
        return slot

    def crash(self, i: str) -> None:
        self.core(i)
        self.nodes[i].core = None
        self.trace.append(f"{self.step_no}: crash {i}")

    def restart(self, i: str) -> None:
        if self.nodes[i].core is not None:
            raise ValueError(f"{i} is up")
        self._boot(i)
        self._process(i)
        self.trace.append(f"{self.step_no}: restart {i}")

    def tick(self, i: str, n: int = 1) -> None:
        for _ in range(n):
            self.core(i).tick()
            self._process(i)

    def leader(self) -> str | None:
        """The node that considers itself leader with the highest ballot, if any."""
        best = None
        for i in self.up():
            core = self.nodes[i].core
            assert core is not None
            if core.role == "leader" and (best is None or core.ballot > best[0]):
                best = (core.ballot, i)
        return best[1] if best else None

    def applied(self, i: str) -> list[Any]:
        return list(self.nodes[i].sm)

    def explain(self, last: int = 40) -> str:
        """The last ``last`` actions, for failure messages."""
        return "\n".join(self.trace[-last:])


class PaxosInvariants(Invariants):
    """Multi-Paxos safety claims for :class:`~jepsenlike.models.simulator.Simulator`.

    * **one value chosen per slot** -- counting every vote any acceptor ever cast
      (the :class:`Oracle`), no slot gets a majority for two different values;
    * **promises kept** -- an acceptor's promise never goes below one it made
      before, across crashes and restarts (it did promise; forgetting breaks it);
    * **learners agree** is the simulator's own state machine safety check.
    """

    def __init__(self, size: int) -> None:
        self.oracle = Oracle(size)
        self.max_promised: dict[str, Ballot] = {}

    def on_ready(self, sim: Simulator, node: str, rd: Ready) -> None:
        try:
            for a in rd.accepted:
                self.oracle.vote(node, a)
        except InvariantViolation as e:
            raise SimViolation("one value chosen per slot", str(e)) from None
        if rd.promised is not None:
            self._promise(node, rd.promised)

    def on_boot(self, sim: Simulator, node: str) -> None:
        self._promise(node, sim.nodes[node].core.promised)

    def _promise(self, node: str, ballot: Ballot) -> None:
        prev = self.max_promised.get(node, (0, ""))
        if ballot < prev:
            raise SimViolation(
                "promises kept", f"{node} promised {ballot} after having promised {prev}"
            )
        self.max_promised[node] = ballot


class PaxosSystem:
    """The Multi-Paxos core as a :class:`~jepsenlike.models.simulator.System`.

    ``volatile-acceptor`` lives in the storage, ``no-adopt``, ``stale-read`` and
    ``non-unique-ballots`` in the core config. The driver never reads a wall clock.
    """

    name = "paxos"
    bug_names = tuple(BUGS)
    wall_clock = False

    def __init__(self, bugs: frozenset[str] = frozenset(), nodes: int = 3) -> None:
        unknown = sorted(set(bugs) - set(BUGS))
        if unknown:
            raise ValueError(f"unknown paxos bug {unknown}; valid bugs: {', '.join(BUGS)}")
        self.bugs = frozenset(bugs)
        self.size = nodes
        self.config = Config(election_ticks=10, heartbeat_ticks=2, bugs=self.bugs)

    def new_storage(self, node: str) -> MemoryStorage:
        return MemoryStorage(volatile="volatile-acceptor" in self.bugs)

    def boot(self, node: str, peers: list[str], storage: MemoryStorage, rng: random.Random) -> PaxosNode:
        self.size = len(peers) + 1
        return PaxosNode(node, peers, config=self.config, rng=rng, state=storage.load())

    def restored_state(self, storage: MemoryStorage) -> Any:
        return storage.load().snapshot.data

    def persist(self, storage: MemoryStorage, rd: Ready) -> None:
        storage.save(rd)

    def save_snapshot(self, storage: MemoryStorage, core: PaxosNode) -> None:
        storage.save_snapshot(core.snapshot)

    def snapshot_data(self, snap: Snapshot) -> Any:
        return snap.data

    def snapshot_index(self, core: PaxosNode) -> int:
        return core.snapshot.index

    def snapshot_index_of(self, snap: Snapshot) -> int:
        return snap.index

    def invariants(self) -> PaxosInvariants:
        return PaxosInvariants(self.size)

    def serves_reads_locally(self) -> bool:
        return False  # the paxos stale-read bug lives in the core's read_index

    def acks_on_propose(self) -> bool:
        return False
