"""Multi-Paxos in simulation: the System for the generic simulator, its invariants,
and a scripted-test cluster.

:class:`PaxosSystem` plugs the core into :class:`jepsenlike.models.simulator.Simulator`
(what ``jepsenlike simulate`` runs) with :class:`PaxosInvariants`, which count votes
with the same :class:`Oracle` as :class:`SimCluster` below. :class:`SimCluster` is the
scripted-test interface over the same simulator, for tests that steer single messages.

Theory of operation
-------------------
:class:`SimCluster` runs the cores on the generic simulator, which plays the driver
for every node and the network between them (one simulator for every protocol and
for ``jepsenlike simulate``). Messages a node sends go into the simulator's in-flight
bag; a message across a cut link is lost when it would be delivered. A scheduler (a seeded
``random.Random`` in :meth:`SimCluster.run_random`, or Hypothesis through
:meth:`SimCluster.do`) picks what happens next: deliver a message (in any order, or
twice), lose one, tick a node, propose a command, ask for a read, take a
checkpoint, crash a node, restart it from what its :class:`MemoryStorage` kept,
partition the nodes or heal. Nothing reads a clock and every choice comes from the
scheduler, so a seed (or a Hypothesis example) replays exactly.

Each node's state machine is the list of values it applied, one per slot
(:class:`SlotLog`), so a checkpoint is just a copy of that list. The :class:`Oracle`
checks every Ready (:class:`ScriptedInvariants`, after the driver persisted it and
before it is applied) and raises :class:`InvariantViolation` at the first safety
property that breaks:

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
from jepsenlike.models.simulator import Invariants, Machine, Simulator
from jepsenlike.models.simulator import InvariantViolation as SimViolation

__all__ = [
    "ACTIONS", "InvariantViolation", "Oracle", "PaxosInvariants", "PaxosSystem", "ScriptedInvariants",
    "SimCluster", "SlotLog",
]

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


class SlotLog(Machine):
    """A Paxos node's state machine in scripted tests: the list of values it applied,
    one per slot (slot ``k`` at index ``k - 1``; a no-op is ``None``); a checkpoint is a
    copy of that list."""

    def restore(self, data: Any) -> list[Any]:
        return list(data or [])

    def apply(self, sm: list[Any], data: Any) -> None:
        sm.append(data)

    def snapshot(self, sm: list[Any]) -> list[Any]:
        return list(sm)


class ScriptedInvariants(Invariants):
    """The :class:`Oracle`'s checks as simulator hooks (see the module docstring).

    Everything a Ready hands over is checked in :meth:`on_ready`, after the driver
    persisted it and before it is applied, on the state the node will have once it
    is: so a broken rule raises this module's :class:`InvariantViolation` (with the
    words the tests match) before the engine's own state machine check could.
    """

    def __init__(self, size: int, volatile: bool) -> None:
        self.oracle = Oracle(size)
        self.volatile = volatile
        self.max_promised: dict[str, Ballot] = {}
        self.proposed: dict[str, tuple[str, int]] = {}  # command -> (node, slot)
        self.reads: dict[str, dict[int, int]] = {}  # node -> read id -> slot needed

    def on_boot(self, sim: Simulator, node: str) -> None:
        self.reads[node] = {}

    def on_ready(self, sim: Simulator, node: str, rd: Ready) -> None:
        for a in rd.accepted:
            self.oracle.vote(node, a)
        if not self.volatile:
            promised = sim.nodes[node].storage.promised
            prev = self.max_promised.get(node, (0, ""))
            if promised < prev:
                raise InvariantViolation(
                    f"{node}'s durable promise went back from {prev} to {promised}"
                )
            self.max_promised[node] = promised
        # The node's applied values once this Ready is applied.
        sm = list(sim.nodes[node].sm)
        if rd.snapshot is not None:
            sm = list(rd.snapshot.data)
            for slot, value in enumerate(sm, start=1):
                self.oracle.apply(node, slot, value)
        for e in rd.committed_entries:
            if e.index != len(sm) + 1:
                raise InvariantViolation(
                    f"{node} applied slot {e.index} after slot {len(sm)}: out of order"
                )
            self.oracle.apply(node, e.index, e.data)
            sm.append(e.data)
            owner = self.proposed.get(e.data) if isinstance(e.data, str) else None
            if owner == (node, e.index):
                self.oracle.ack(e.data, e.index)
        if rd.snapshot is not None or rd.committed_entries:
            self.oracle.check_acked(node, sm)

    def on_read(self, sim: Simulator, node: str, ctx: Any) -> None:
        """A read the node registered is served now (its index is applied)."""
        needed = self.reads[node].pop(ctx, None)
        if needed is not None:
            self.oracle.read(node, needed, len(sim.nodes[node].sm))

    def on_dropped_read(self, node: str, ctx: Any) -> None:
        self.reads[node].pop(ctx, None)


class SimCluster:
    """``n`` Paxos nodes on the generic :class:`~jepsenlike.models.simulator.Simulator`,
    with a scheduler-driven fault model and the scripted-test interface.

    The simulator owns the network (a message crossing a cut link is lost when it
    would be delivered), the storage, crash/restart and the Ready handling; this class
    adds the actions by number (:meth:`do`), the random scheduler, the scripting
    helpers, and the :class:`Oracle` (:class:`ScriptedInvariants`) that checks every
    Ready.

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
        self.bugs = frozenset(bugs)
        self.config = config or Config(election_ticks=10, heartbeat_ticks=2)
        self.config.bugs = self.bugs
        self.rng = random.Random(seed)
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.inv = ScriptedInvariants(n, volatile="volatile-acceptor" in self.bugs)
        self.sim = Simulator(
            _ScriptedPaxos(self.bugs, n, self.config, self.inv), nodes=n, seed=seed,
            machine=SlotLog(),
        )
        self.sim.read_hook = lambda i, ctx: self.inv.on_read(self.sim, i, ctx)
        self.sim.drop_hook = self.inv.on_dropped_read
        self.ids = self.sim.ids
        self.nodes = self.sim.nodes  # id -> node record: .core (None when down), .sm
        self.oracle = self.inv.oracle
        self.proposed = self.inv.proposed
        self.trace: list[str] = []
        self.step_no = 0
        self.next_command = 0
        self.next_read = 0

    # ------------------------------------------------------------------ views

    @property
    def net(self) -> list[Message]:
        """The messages in flight (the simulator's bag)."""
        return self.sim.inflight

    @net.setter
    def net(self, msgs: list[Message]) -> None:
        self.sim.inflight[:] = msgs

    @property
    def blocked(self) -> set[tuple[str, str]]:
        """Cut directed links ``(src, dst)``."""
        return self.sim.cut

    @blocked.setter
    def blocked(self, links: set[tuple[str, str]]) -> None:
        self.sim.cut = set(links)

    # ------------------------------------------------------------------ driver

    def _process(self, i: str) -> None:
        self.sim._process(i)

    # ------------------------------------------------------------------ actions

    def up(self) -> list[str]:
        return self.sim.up()

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
                self.sim._deliver(m)
        elif action in ("tick", "propose", "read", "compact", "crash"):
            if not up:
                return
            i = up[arg % len(up)]
            desc = f"{action} {i}"
            core = self.core(i)
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
                self.inv.reads[i][rid] = self.oracle.max_acked_slot
            elif action == "compact":
                if core.applied <= core.snapshot.index:
                    return
                self.sim._do_compact({"node": i})
                desc += f" @{core.snapshot.index}"
            else:
                self.sim.crash(i)
                self.trace.append(f"{self.step_no}: {desc}")
                return
            self._process(i)
        elif action == "restart":
            down = [i for i in self.ids if self.nodes[i].core is None]
            if not down:
                return
            i = down[arg % len(down)]
            desc = f"restart {i}"
            self.sim._boot(i)
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
            self.sim._do_elapse({"ticks": 1})
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
        self.sim.crash(i)
        self.trace.append(f"{self.step_no}: crash {i}")

    def restart(self, i: str) -> None:
        if self.nodes[i].core is not None:
            raise ValueError(f"{i} is up")
        self.sim._boot(i)
        self.trace.append(f"{self.step_no}: restart {i}")

    def tick(self, i: str, n: int = 1) -> None:
        for _ in range(n):
            self.core(i).tick()
            self._process(i)

    def leader(self) -> str | None:
        """The node that considers itself leader with the highest ballot, if any."""
        best = None
        for i in self.up():
            core = self.core(i)
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

    def __init__(
        self, bugs: frozenset[str] = frozenset(), nodes: int = 3, config: Config | None = None
    ) -> None:
        unknown = sorted(set(bugs) - set(BUGS))
        if unknown:
            raise ValueError(f"unknown paxos bug {unknown}; valid bugs: {', '.join(BUGS)}")
        self.bugs = frozenset(bugs)
        self.size = nodes
        self.config = config or Config(election_ticks=10, heartbeat_ticks=2, bugs=self.bugs)

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


class _ScriptedPaxos(PaxosSystem):
    """:class:`PaxosSystem` with :class:`SimCluster`'s invariant set."""

    def __init__(self, bugs: frozenset[str], nodes: int, config: Config,
                 inv: ScriptedInvariants) -> None:
        super().__init__(bugs, nodes, config)
        self._inv = inv

    def invariants(self) -> Invariants:  # type: ignore[override]
        return self._inv
