"""One deterministic simulator for every :class:`~jepsenlike.models.consensus.ConsensusCore`.

Theory of operation
-------------------
A :class:`Simulator` plays the driver of N cores and the network between them. It has
no sockets, threads, clocks or global randomness: everything that happens is a
:class:`Step` of a *schedule* (a list of JSON objects), so a schedule replays exactly,
and Hypothesis can generate and shrink schedules as plain data.

The world:

* **network** -- a bag of in-flight messages. ``deliver``/``drop``/``duplicate`` pick
  one by position (any order: reordering is delivering a later one first);
  ``elapse`` ticks every live node once per round and then delivers everything in the
  bag, FIFO, until it is empty (a quiet, synchronous network); with ``loss``,
  ``dup`` or ``reorder`` the round's deliveries lose, duplicate or reorder messages
  at random (from the run's seeded network rng). A message that crosses
  a partition (``partition``/``heal``) is lost when it would be delivered.
* **time** -- the global simulated time advances one tick per ``elapse`` round (and
  per ``tick`` step). Each node has a *wall-clock offset* moved by ``clock`` steps;
  only systems whose driver reads the wall clock (:attr:`System.wall_clock`) see it,
  as a server that reads ``time.monotonic()`` is immune to clock jumps.
* **crash/restart** -- ``crash`` throws away the core, its state machine and every
  buffered output; ``restart`` builds a new core from the node's storage. Storage
  holds only what the driver persisted from a Ready, before sending its messages and
  calling ``advance``: exactly what survives a real crash.
* **compaction** -- ``compact`` snapshots a node's state machine at its applied index;
  lagging peers then get snapshots through the protocol.
* **clients** -- one client per node (process ``k`` for node ``k``; a new process id
  after the node crashes, as Jepsen does). ``client`` steps invoke read, write, cas
  or list-append transactions on a node (or on whichever node is leader, or on
  every node at once), and ``elapse`` with ``load`` makes idle clients invoke ops at
  random (seeded) every round, like a Jepsen workload running under faults. The
  simulator records the history in the project's JSONL format (``time`` is simulated
  nanoseconds), completing an op when its command is applied (or its read served),
  failing it definitely on ``NotLeader`` and recording ``info`` when the node crashed
  with the op in flight.

After the schedule, :meth:`Simulator.finish` heals, restarts every node, lets the
cluster settle, issues one final read and closes the history: ops still open become
``info``. The history then goes to the checkers (:mod:`jepsenlike.models.simcheck`).

Each Ready is handled as the real server does -- persist, send, apply, ``advance`` --
and a :class:`System` (one per protocol) supplies the core, its storage, its seeded
bugs and its invariant set. :class:`Invariants` hooks see every Ready and run their
checks after every step (an ``elapse`` of many rounds is one step; the cheap
per-Ready hooks see every round); a broken one raises :class:`InvariantViolation` naming the
claim. The engine itself checks *state machine safety*: no two nodes apply different
commands at one index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jepsenlike.models.consensus import LEADER, NotLeader
from jepsenlike.models.kv import KVStore

__all__ = [
    "KV_MACHINE",
    "STEP_KINDS",
    "InvariantViolation",
    "Invariants",
    "Machine",
    "Simulator",
    "System",
    "TICK_NS",
]

#: simulated nanoseconds per tick (a tick is 10 ms of simulated time)
TICK_NS = 10_000_000
#: rounds of quiet network after the schedule (see :meth:`Simulator.finish`)
SETTLE_ROUNDS = 30
#: chance that an idle client invokes an op in a round of loaded ``elapse``
LOAD_RATE = 0.5
#: ticks a client waits for an answer before it records ``info`` and moves on
CLIENT_TIMEOUT = 5

STEP_KINDS = (
    "elapse",
    "tick",
    "deliver",
    "drop",
    "duplicate",
    "flush",
    "crash",
    "restart",
    "partition",
    "heal",
    "clock",
    "compact",
    "client",
)

CLIENT_FS = ("read", "write", "cas", "append")


class InvariantViolation(AssertionError):
    """A protocol safety claim broke; ``claim`` names which one."""

    def __init__(self, claim: str, detail: str) -> None:
        super().__init__(f"{claim}: {detail}")
        self.claim = claim
        self.detail = detail


class Invariants:
    """A protocol's invariant set: hooks called by the simulator (all optional)."""

    def on_ready(self, sim: Simulator, node: str, rd: Any) -> None:
        """Called for each Ready after the driver persisted it, before sending."""

    def on_boot(self, sim: Simulator, node: str) -> None:
        """Called after a node (re)started from its storage."""

    def check(self, sim: Simulator) -> None:
        """Called after every step."""


class System(Protocol):
    """What a protocol plugs into the simulator. See ``docs/simulation.md``."""

    name: str
    #: the driver reads the wall clock (so per-node clock offsets reach the core)
    wall_clock: bool
    #: seeded bug names this system knows
    bug_names: tuple[str, ...]

    def new_storage(self, node: str) -> Any:
        """A fresh, empty storage for ``node``."""

    def boot(self, node: str, peers: list[str], storage: Any, rng: random.Random) -> Any:
        """A core for ``node`` recovered from ``storage``."""

    def restored_state(self, storage: Any) -> Any:
        """The state machine snapshot data ``storage`` holds (``None``: empty)."""

    def persist(self, storage: Any, rd: Any) -> None:
        """Make ``rd``'s durable part durable in ``storage``."""

    def save_snapshot(self, storage: Any, core: Any) -> None:
        """Persist the core's snapshot after :meth:`core.compact`."""

    def snapshot_data(self, snap: Any) -> Any:
        """The state machine data in a Ready's snapshot."""

    def snapshot_index(self, core: Any) -> int:
        """The index the core's latest snapshot covers."""

    def snapshot_index_of(self, snap: Any) -> int:
        """The index a Ready's snapshot covers."""

    def invariants(self) -> Invariants:
        """A fresh invariant set for one run."""

    def serves_reads_locally(self) -> bool:
        """A leader answers reads from its own state machine without confirming that it
        still leads (a seeded bug)."""

    def acks_on_propose(self) -> bool:
        """The driver acknowledges writes before they commit (a seeded bug)."""


class Machine:
    """The state machine each node applies committed entries to.

    The default, :data:`KV_MACHINE`, is the project's :class:`KVStore`, fed the
    ``"op"`` of each entry ``{"id", "op"}`` the simulator's clients propose (what the
    reference servers apply); its snapshots are what the cores carry. A scripted
    harness whose commands are something else (e.g. Paxos's list of values per slot,
    :class:`jepsenlike.models.paxos.sim.SimCluster`) passes its own. Only the default
    serves the simulator's clients.
    """

    def restore(self, data: Any) -> Any:
        """A state machine holding the snapshot ``data`` (``None``: empty)."""
        return KVStore.restore(data)

    def apply(self, sm: Any, data: Any) -> Any:
        """Apply one committed entry's data (``None``: a no-op); the result clients see."""
        return sm.apply(data["op"]) if data is not None else None

    def snapshot(self, sm: Any) -> Any:
        """``sm``'s state as snapshot data (what :meth:`restore` takes back)."""
        return sm.snapshot()


KV_MACHINE = Machine()


@dataclass
class _Node:
    id: str
    storage: Any
    core: Any = None
    sm: Any = field(default_factory=KVStore)
    applied: int = 0  # index of the last entry applied to sm
    boots: int = 0
    offset: float = 0.0
    waiting_reads: list[tuple[int, Any]] = field(default_factory=list)


@dataclass
class _Pending:
    process: int
    node: str
    f: str
    key: Any
    value: Any
    rid: str = ""
    index: int = 0
    since: int = 0  # tick of the invocation
    client: str = ""  # the node whose client invoked it (``node`` is where it runs)


class Simulator:
    """N cores of ``system`` on a simulated network; see the module docstring.

    Args:
        system: the protocol adapter (e.g. :class:`jepsenlike.models.raft.sim.RaftSystem`).
        nodes: cluster size (ids ``n1``..``nN``).
        seed: seeds every node's rng (election jitter); nothing else is random.
        workload: ``register`` (read/write/cas on one key, checked for
            linearizability) or ``append`` (list-append transactions, checked by the
            graph checker).
        machine: the nodes' state machine (:class:`Machine`; default the KV store).
    """

    def __init__(
        self,
        system: System,
        nodes: int = 3,
        seed: int = 0,
        workload: str = "register",
        machine: Machine = KV_MACHINE,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"nodes={nodes!r}: need at least 1 node")
        if workload not in ("register", "append"):
            raise ValueError(f"workload={workload!r}; expected 'register' or 'append'")
        self.system = system
        self.machine = machine
        self.seed = seed
        self.workload = workload
        self.ids = [f"n{k + 1}" for k in range(nodes)]
        self.nodes = {i: _Node(i, system.new_storage(i)) for i in self.ids}
        self.inflight: list[Any] = []
        self.cut: set[tuple[str, str]] = set()
        self.time = 0  # ticks
        self._ns = 0
        self.history: list[dict[str, Any]] = []
        self.pending: dict[int, _Pending] = {}  # process -> open op
        self.gen = {i: 0 for i in self.ids}  # client generation per node (new process)
        self.next_value = 0
        self.written: list[Any] = [None]
        self.applied_at: dict[int, str] = {}  # index -> json of the command applied there
        self.steps_done = 0
        self.delivered = 0
        self.ops_done = 0
        self.invariants = system.invariants()
        self.load_rng = random.Random(f"{seed}/load")
        self.net_rng = random.Random(f"{seed}/net")
        self.trace: list[str] = []
        # Hooks for scripted harnesses that track their own requests
        # (:class:`jepsenlike.models.raft.sim.SimCluster`): called with (node, entry,
        # result) for every applied entry, and (node, ctx) for read states this
        # simulator's clients did not register, once served or dropped.
        self.apply_hook: Callable[[str, Any, Any], None] | None = None
        self.read_hook: Callable[[str, Any], None] | None = None
        self.drop_hook: Callable[[str, Any], None] | None = None
        for i in self.ids:
            self._boot(i)

    # ------------------------------------------------------------------ queries

    def up(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i].core is not None]

    def core(self, i: str) -> Any:
        core = self.nodes[i].core
        if core is None:
            raise ValueError(f"{i} is down; restart it first")
        return core

    def leader(self) -> str | None:
        """The live node that believes it leads, with the highest term (None: none)."""
        best: tuple[Any, str] | None = None
        for i in self.up():
            c = self.nodes[i].core
            if c.role == LEADER:
                key = (c.status().get("term", 0), i)
                if best is None or key > best:
                    best = key
        return best[1] if best else None

    def now(self, i: str) -> float:
        """Node ``i``'s clock reading in seconds (wall clock only if the driver uses it)."""
        off = self.nodes[i].offset if self.system.wall_clock else 0.0
        return self.time * TICK_NS / 1e9 + off

    # ------------------------------------------------------------------ schedule

    def run(self, steps: Iterable[dict[str, Any]]) -> None:
        """Apply every step, then :meth:`finish`."""
        for s in steps:
            self.step(s)
        self.finish()

    def step(self, s: dict[str, Any]) -> None:
        """Apply one schedule step (a JSON object with ``do`` and its arguments)."""
        kind = s.get("do")
        fn: Callable[[dict[str, Any]], None] | None = getattr(self, f"_do_{kind}", None)
        if kind not in STEP_KINDS or fn is None:
            raise ValueError(f"step {s!r}: unknown 'do'; expected one of {', '.join(STEP_KINDS)}")
        self.steps_done += 1
        fn(s)
        self.invariants.check(self)

    def _node_arg(self, s: dict[str, Any]) -> str | None:
        return self._resolve(s.get("node"), s)

    def _resolve(self, n: Any, s: dict[str, Any]) -> str | None:
        """A node id, or a role selector resolved now: ``leader`` (the live node that
        leads with the highest term), ``follower`` (the first live non-leader),
        ``crashed`` (the first node that is down). ``None`` when nobody fits."""
        if n in self.nodes:
            return n
        if n == "leader":
            return self.leader()
        if n == "follower":
            lead = self.leader()
            return next((i for i in self.up() if i != lead), None)
        if n == "crashed":
            return next((i for i in self.ids if self.nodes[i].core is None), None)
        raise ValueError(
            f"step {s!r}: node {n!r} must be one of {', '.join(self.ids)}, "
            "leader, follower or crashed"
        )

    def _do_elapse(self, s: dict[str, Any]) -> None:
        load = bool(s.get("load", False))
        loss = float(s.get("loss", 0.0))
        dup = float(s.get("dup", 0.0))
        reorder = bool(s.get("reorder", False))
        for _ in range(int(s.get("ticks", 1))):
            self.time += 1
            for i in self.up():
                self.nodes[i].core.tick(self.now(i))
                self._process(i)
            self._timeouts()
            if load:
                self._load()
            if loss or dup or reorder:
                self._flush_faulty(loss, dup, reorder)
            else:
                self._flush()

    def _timeouts(self) -> None:
        """A client gives up on an op after :data:`CLIENT_TIMEOUT` ticks: ``info``
        (it may still take effect), and the client continues as a new process."""
        for proc, op in list(self.pending.items()):
            if self.time - op.since >= CLIENT_TIMEOUT:
                del self.pending[proc]
                self._complete(op, "info", None, "timeout")

    def _load(self) -> None:
        """Background load: each idle client invokes an op with probability :data:`LOAD_RATE` (the
        choices come from the run's seeded load rng, so a schedule replays exactly)."""
        for i in self.up():
            r = self.load_rng.random()
            if r < LOAD_RATE and self.process_of(i) not in self.pending:
                f = ("write", "read", "read", "cas")[self.load_rng.randrange(4)]
                self.invoke(i, f, self.load_rng.randrange(8))

    def _do_tick(self, s: dict[str, Any]) -> None:
        i = self._node_arg(s)
        if i is None:
            return
        for _ in range(int(s.get("ticks", 1))):
            self.time += 1
            if self.nodes[i].core is None:
                return
            self.nodes[i].core.tick(self.now(i))
            self._process(i)

    def _msg(self, s: dict[str, Any]) -> int | None:
        if not self.inflight:
            return None
        return int(s.get("msg", 0)) % len(self.inflight)

    def _do_deliver(self, s: dict[str, Any]) -> None:
        k = self._msg(s)
        if k is not None:
            self._deliver(self.inflight.pop(k))

    def _do_drop(self, s: dict[str, Any]) -> None:
        k = self._msg(s)
        if k is not None:
            self.inflight.pop(k)

    def _do_duplicate(self, s: dict[str, Any]) -> None:
        k = self._msg(s)
        if k is not None:
            self._deliver(self.inflight[k])

    def _do_flush(self, s: dict[str, Any]) -> None:
        self._flush()

    def _do_crash(self, s: dict[str, Any]) -> None:
        i = self._node_arg(s)
        if i is not None:
            self.crash(i)

    def _do_restart(self, s: dict[str, Any]) -> None:
        i = self._node_arg(s)
        if i is not None and self.nodes[i].core is None:
            self._boot(i)

    def _do_partition(self, s: dict[str, Any]) -> None:
        side = {self._resolve(n, s) for n in s.get("isolate") or ()} - {None}
        self.cut = {(a, b) for a in self.ids for b in self.ids if (a in side) != (b in side)}

    def _do_heal(self, s: dict[str, Any]) -> None:
        self.cut = set()

    def _do_clock(self, s: dict[str, Any]) -> None:
        i = self._node_arg(s)
        if i is not None:
            self.nodes[i].offset += float(s.get("delta", 0.0))

    def _do_compact(self, s: dict[str, Any]) -> None:
        i = self._node_arg(s)
        if i is None:
            return
        n = self.nodes[i]
        core = n.core
        if core is None or core.applied <= self.system.snapshot_index(core):
            return
        core.compact(core.applied, self.machine.snapshot(n.sm))
        self.system.save_snapshot(n.storage, core)

    def _do_client(self, s: dict[str, Any]) -> None:
        f = s.get("f")
        if f not in CLIENT_FS:
            raise ValueError(f"step {s!r}: 'f' must be one of {', '.join(CLIENT_FS)}")
        target = s.get("node", "leader")
        if target == "all":
            for i in self.up():
                self.invoke(i, f, int(s.get("arg", 0)))
            return
        i = self._resolve(target, s)
        if i is None or self.nodes[i].core is None:
            return  # no leader known / node down: the client has nowhere to send
        self.invoke(i, f, int(s.get("arg", 0)))

    # ------------------------------------------------------------------ network

    def _deliver(self, m: Any) -> None:
        n = self.nodes.get(m.dst)
        if n is None or n.core is None or (m.src, m.dst) in self.cut:
            return
        self.delivered += 1
        n.core.step(m)
        self._process(m.dst)

    def _flush(self, limit: int = 20_000) -> None:
        k = 0
        while self.inflight:
            k += 1
            if k > limit:
                raise RuntimeError(f"network did not quiesce within {limit} deliveries")
            self._deliver(self.inflight.pop(0))

    def _flush_faulty(self, loss: float, dup: float, reorder: bool, limit: int = 20_000) -> None:
        """Deliver until quiet, losing (``loss``), duplicating (``dup``) and picking
        messages out of order (``reorder``) with the run's seeded network rng."""
        rng = self.net_rng
        k = 0
        while self.inflight:
            k += 1
            if k > limit:
                raise RuntimeError(f"network did not quiesce within {limit} deliveries")
            j = rng.randrange(len(self.inflight)) if reorder else 0
            m = self.inflight.pop(j)
            if loss and rng.random() < loss:
                continue
            if dup and rng.random() < dup:
                self._deliver(m)
            self._deliver(m)

    # ------------------------------------------------------------------ nodes

    def _boot(self, i: str) -> None:
        n = self.nodes[i]
        n.boots += 1
        rng = random.Random(f"{self.seed}/{i}/{n.boots}")
        peers = [p for p in self.ids if p != i]
        n.core = self.system.boot(i, peers, n.storage, rng)
        n.sm = self.machine.restore(self.system.restored_state(n.storage))
        n.applied = self.system.snapshot_index(n.core)
        n.waiting_reads = []
        self.invariants.on_boot(self, i)
        self._process(i)

    def crash(self, i: str) -> None:
        n = self.nodes[i]
        if n.core is None:
            return
        n.core = None
        for proc in [p for p, op in self.pending.items() if op.node == i]:
            op = self.pending.pop(proc)
            self._complete(op, "info", None, "node-crashed")
        self.gen[i] += 1  # the node's client reconnects as a new process

    def _process(self, i: str) -> None:
        n = self.nodes[i]
        core = n.core
        while core.has_ready():
            rd = core.ready()
            self.system.persist(n.storage, rd)  # 1. persist
            self.invariants.on_ready(self, i, rd)
            self.inflight.extend(rd.messages)  # 2. send
            if rd.snapshot is not None:  # 3. apply
                self._install(i, n, rd.snapshot)
            for e in rd.committed_entries:
                self._apply(i, n, e)
            for rs in rd.read_states:
                n.waiting_reads.append((rs.index, rs.ctx))
            for ctx in rd.dropped_reads:
                op = self._take(ctx)
                if op is not None:
                    self._complete(op, "fail", None, "not-leader")
                elif self.drop_hook is not None:
                    self.drop_hook(i, ctx)
            self._serve_reads(n)
            core.advance(rd)  # 4. done

    def _install(self, i: str, n: _Node, snap: Any) -> None:
        index = self.system.snapshot_index_of(snap)
        n.sm = self.machine.restore(self.system.snapshot_data(snap))
        n.applied = index
        for proc, op in list(self.pending.items()):
            if op.node == i and op.index and op.index <= index:
                del self.pending[proc]
                self._complete(op, "info", None, "snapshot-installed")

    def _apply(self, i: str, n: _Node, e: Any) -> None:
        if e.index != n.applied + 1:
            raise InvariantViolation(
                "state machine safety", f"{i} applied index {e.index} after {n.applied}"
            )
        key = json.dumps(e.data, sort_keys=True)
        seen = self.applied_at.setdefault(e.index, key)
        if seen != key:
            raise InvariantViolation(
                "state machine safety",
                f"{i} applied {key} at index {e.index}; another node applied {seen} there",
            )
        n.applied = e.index
        result = self.machine.apply(n.sm, e.data)
        if self.apply_hook is not None:
            self.apply_hook(i, e, result)
        for proc, op in list(self.pending.items()):
            if op.node == i and op.index == e.index:
                del self.pending[proc]
                if e.data is not None and e.data.get("id") == op.rid:
                    assert result is not None
                    self._complete_result(op, result)
                else:
                    self._complete(op, "fail", None, "superseded")

    def _serve_reads(self, n: _Node) -> None:
        still = []
        for index, ctx in n.waiting_reads:
            if index <= n.applied:
                op = self._take(ctx)
                if op is not None:
                    self._complete_result(op, n.sm.apply(self._kv_op(op)))
                elif self.read_hook is not None:
                    self.read_hook(n.id, ctx)
            else:
                still.append((index, ctx))
        n.waiting_reads = still

    # ------------------------------------------------------------------ clients

    def _take(self, rid: Any) -> _Pending | None:
        for proc, op in self.pending.items():
            if op.rid == rid:
                return self.pending.pop(proc)
        return None

    def process_of(self, i: str) -> int:
        return self.ids.index(i) + len(self.ids) * self.gen[i]

    def _kv_op(self, op: _Pending) -> dict[str, Any]:
        return {"f": op.f, "key": op.key, "value": op.value}

    def invoke(self, i: str, f: str, arg: int) -> None:
        """Client of node ``i`` invokes ``f`` (skipped if that client is busy)."""
        proc = self.process_of(i)
        if proc in self.pending:
            return
        key: Any = "x"
        value: Any = None
        if self.workload == "append":
            if f in ("write", "cas", "append"):
                self.next_value += 1
                value = [["append", key, self.next_value]]
            else:
                value = [["r", key, None]]
            f = "txn"
        elif f in ("write", "append"):
            f = "write"
            self.next_value += 1
            value = self.next_value
            self.written.append(value)
        elif f == "cas":
            self.next_value += 1
            value = [self.written[arg % len(self.written)], self.next_value]
            self.written.append(self.next_value)
        op = _Pending(proc, i, f, key, value, rid=f"{proc}:{len(self.history)}", since=self.time)
        op.client = i
        self._record(proc, "invoke", f, key, value, i)
        read_only = f == "read" or (f == "txn" and all(m[0] == "r" for m in value))
        self._submit(op, i, read_only, forward=True)

    def _submit(self, op: _Pending, j: str, read_only: bool, forward: bool) -> None:
        """Hand ``op`` to node ``j``'s core; a node that is not the leader forwards it
        once to the leader it knows (as the reference server does), unless the link
        between them is cut."""
        core = self.nodes[j].core
        op.node = j
        if read_only and core.role == LEADER and self.system.serves_reads_locally():
            # BUG (stale-read): the leader answers from its own state machine without
            # confirming that it still leads (no ReadIndex round, no lease).
            self._complete_result(op, self.nodes[j].sm.apply(self._kv_op(op)))
            return
        try:
            if read_only:
                core.read_index(op.rid, self.now(j))
                self.pending[op.process] = op
            else:
                op.index = core.propose({"id": op.rid, "op": self._kv_op(op)})
                if self.system.acks_on_propose() and op.f in ("write", "append"):
                    self._complete(op, "ok", op.value, None)  # BUG (early-ack): not committed
                else:
                    self.pending[op.process] = op
        except NotLeader as e:
            hint = e.leader
            if (
                forward
                and hint in self.nodes
                and hint != j
                and self.nodes[hint].core is not None
                and (j, hint) not in self.cut
            ):
                self._submit(op, hint, read_only, forward=False)
                return
            self._complete(op, "fail", None, "not-leader")
            return
        self._process(j)

    def _complete_result(self, op: _Pending, result: dict[str, Any]) -> None:
        if result["type"] == "ok":
            self._complete(op, "ok", result.get("value", op.value), None)
        else:
            self._complete(op, "fail", None, result.get("error"))

    def _complete(self, op: _Pending, typ: str, value: Any, error: Any) -> None:
        if typ == "info" and op.client and self.process_of(op.client) == op.process:
            self.gen[op.client] += 1  # an indeterminate op retires its process (as Jepsen)
        if typ == "ok" and op.f in ("write", "cas"):
            value = op.value
        elif typ != "ok":
            value = op.value if op.f != "read" else None
        self.ops_done += 1
        self._record(op.process, typ, op.f, op.key, value, op.client or op.node, error)

    def _record(
        self,
        process: int,
        typ: str,
        f: str,
        key: Any,
        value: Any,
        node: str,
        error: Any = None,
    ) -> None:
        self._ns = max(self._ns + 1000, self.time * TICK_NS)
        d: dict[str, Any] = {
            "index": len(self.history),
            "time": self._ns,
            "process": process,
            "type": typ,
            "f": f,
            "key": key,
            "value": value,
            "node": node,
        }
        if error is not None:
            d["error"] = error
        self.history.append(d)

    # ------------------------------------------------------------------ end

    def finish(self, settle: int = SETTLE_ROUNDS) -> None:
        """Heal, restart everyone, settle, read once more, and close open ops as info."""
        self.cut = set()
        for i in self.ids:
            if self.nodes[i].core is None:
                self._boot(i)
        self._do_elapse({"ticks": settle})
        leader = self.leader()
        if leader is not None:
            self.gen[leader] += 1  # a fresh client, so the final read is never skipped
            self.invoke(leader, "read", 0)
            self._do_elapse({"ticks": 5})
        self.invariants.check(self)
        for proc in sorted(self.pending):
            op = self.pending.pop(proc)
            self._complete(op, "info", None, "timeout")
