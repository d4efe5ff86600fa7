"""The client-op side of a reference node, shared by every protocol's server.

Theory of operation
-------------------
One asyncio event loop owns the protocol core (a pure state machine with
``tick``/``step``/``propose``/``read_index``/``has_ready``/``ready``/``compact``).
Tasks feed it inputs and then set ``_wake``:

* the protocol's ticker calls ``tick`` every ``--tick-ms``;
* the peer :class:`~jepsenlike.models.server.transport.Transport` calls ``step`` for
  each protocol message, and carries forwarded client ops between nodes;
* HTTP handlers (:class:`~jepsenlike.models.server.http.HttpServer`) call ``propose``
  (write, cas, append, txn) or ``read_index`` (read), or forward the op to the leader
  the core names; forwarded ops are served like local ones and answered over this
  node's own outbound connection to the follower.

The Ready loop waits for ``_wake`` and handles each Ready in the order the cores
demand: persist (one write and one fsync per Ready, on the loop itself), send,
apply. Requests that arrive while a Ready is handled wait in their sockets; the loop
reads them all before the next Ready, so they are proposed together and share one
fsync: group commit falls out of the structure. (A worker thread for the fsync was
tried: a thread hand-off costs as much as an fsync on a local disk, and under
libfaketime, which the clock nemesis preloads, it costs ~25 ms.)

Outcomes for clients: a write's future is keyed by its log index (slot). When that
index is applied, the command there is either ours (``ok``/``fail`` from the state
machine) or another one, in which case ours can never be chosen (a command never
moves to another index) and the answer is a definite ``fail`` (``superseded``). A
snapshot installed over a pending index hides what was decided there: ``info``. No
answer within ``--op-timeout`` is ``info``/``timeout``. Reads wait for a read index
(quorum round or lease), then for the state machine to reach it, and are served
locally.

A protocol subclasses :class:`NodeServer`, builds its core and storage, and fills in
the hooks (recovery, ticker, persistence, compaction, status, seeded-bug seams).
:func:`run_node` is the shared process entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import signal
import sys
import time
from typing import Any, ClassVar

from jepsenlike.models.consensus import LEADER, NotLeader
from jepsenlike.models.kv import KVStore, validate_op
from jepsenlike.models.server.http import HttpServer
from jepsenlike.models.server.nodeargs import setup_logging
from jepsenlike.models.server.transport import Transport
from jepsenlike.models.server.wal import DataDirError

__all__ = [
    "DIE_WITH_PARENT_ENV",
    "EXIT_DATA_DIR",
    "NodeServer",
    "Result",
    "die_with_parent",
    "fail",
    "info",
    "run_node",
]

Result = dict[str, Any]


def fail(error: str, **extra: Any) -> Result:
    """A definite failure: the op did not and will not take effect."""
    return {"type": "fail", "error": error, **extra}


def info(error: str) -> Result:
    """An indefinite outcome: the op may or may not take effect."""
    return {"type": "info", "error": error}


class NodeServer:
    """A protocol node serving the KV API. Build from parsed args, then ``await run()``.

    Subclasses set the class attributes and implement the hooks below; ``self.core``
    and ``self.storage`` are theirs to build (``storage`` in ``__init__``, ``core`` in
    :meth:`_recover`).
    """

    protocol: ClassVar[str]  # "raft": the logger name and error-message prefix
    message_type: ClassVar[Any]  # the core's Message class (``from_wire``)
    snapshot_word: ClassVar[str] = "snapshot"  # in log lines and the info error
    index_word: ClassVar[str] = "index"
    term_word: ClassVar[str] = "term"

    def __init__(self, args: argparse.Namespace, bugs: frozenset[str]) -> None:
        self.args = args
        self.id: str = args.id
        self.peers: dict[str, tuple[str, int]] = dict(args.peers)
        if self.id in self.peers:
            raise ValueError(f"--peers lists this node's own id {self.id!r}")
        self.bugs = bugs
        self.log = logging.getLogger(self.protocol)
        self.tick_s = args.tick_ms / 1000.0
        self.op_timeout = args.op_timeout
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
        # Mix in the id: nodes started with one --seed must not share election jitter.
        self.rng = random.Random(f"{seed}:{self.id}")
        self.storage: Any = None
        self.kv = KVStore()
        self.core: Any = None
        self.applied = 0
        self.boot = os.urandom(4).hex()  # keeps command ids unique across restarts
        self._ids = itertools.count(1)
        self.pending: dict[int, tuple[str, asyncio.Future[Result]]] = {}  # index -> (id, fut)
        self.reads: dict[int, tuple[dict[str, Any], asyncio.Future[Result]]] = {}
        self.waiting_reads: list[tuple[int, int]] = []  # (index, ctx)
        self.forwards: dict[str, asyncio.Future[Result]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._seen: tuple[str, int, str | None] = ("", -1, None)
        self._tasks: list[asyncio.Task[None]] = []
        self.transport: Transport | None = None
        self.http: HttpServer | None = None

    # ------------------------------------------------------------------ hooks

    def _recover(self) -> None:
        """Load storage; build ``self.core``, ``self.kv`` and ``self.applied``; log it."""
        raise NotImplementedError

    async def _ticker(self) -> None:
        """Call the core's ``tick`` every ``tick_s`` and set ``_wake``."""
        raise NotImplementedError

    def _needs_persist(self, rd: Any) -> bool:
        """Whether ``rd`` carries durable state for ``storage.save``."""
        raise NotImplementedError

    def _snapshot_index(self) -> int:
        raise NotImplementedError

    def _save_snapshot(self, snap: Any) -> None:
        """Persist a snapshot the core just took (and rewrite the WAL)."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """``GET /status``: the core's summary, with the server's applied index."""
        assert self.core is not None
        st: dict[str, Any] = self.core.status()
        st.update(
            applied_index=self.applied,
            time=time.time(),
            bug=",".join(sorted(self.bugs)) or None,
        )
        return st

    def log_context(self) -> str:
        """What every log line shows after the node id, e.g. ``[term 3 leader]``."""
        raise NotImplementedError

    def _restore_state(self, data: Any) -> Any:
        """The state machine rebuilt from a snapshot's data (default: the KV store)."""
        return KVStore.restore(data)

    def _read_index(self, ctx: int) -> None:
        """Ask the core for a read index (raises the core's ``NotLeader``)."""
        self.core.read_index(ctx)

    # Seams for seeded bugs; the correct node keeps these defaults.

    def _serve_without_leader(self, op: dict[str, Any]) -> Result | None:
        """An answer given before any routing (e.g. a local read), or ``None``."""
        return None

    def _needs_leader(self, op: dict[str, Any]) -> bool:
        """Whether ``op`` must run on the leader (else it goes to the core here)."""
        return True

    def _answer_before_commit(self, op: dict[str, Any]) -> Result | None:
        """An answer given as soon as a write is proposed, or ``None`` to wait."""
        return None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Recover, serve until SIGTERM/SIGINT, then close everything.

        Fail-stop: if a task dies (e.g. a WAL write error) the node stops and exits 1;
        carrying on could acknowledge what is not durable.
        """
        loop = asyncio.get_running_loop()
        self._recover()
        self.transport = Transport(self.id, self.args.peer_addr, self.peers, self._on_peer)
        try:
            await self.transport.start()
            self.http = HttpServer(*self.args.client_addr, self._handle_http)
            await self.http.start()
        except OSError as e:
            # A port already taken: say which and stop now. Without closing the
            # transport first, its peer-dialling tasks would keep asyncio.run's
            # shutdown (and so this process) waiting for ever.
            self.log.error("cannot listen: %s", e)
            self.http = None
            await self.close()
            raise
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name="ready"),
            asyncio.create_task(self._ticker(), name="ticker"),
        ]
        self._wake.set()
        self.log.info(
            "serving clients on %s:%d, peers on %s:%d",
            *self.args.client_addr,
            *self.args.peer_addr,
        )
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = None
        for t in done:
            if t is not stop and t.exception() is not None:
                failed = t.exception()
                self.log.error("task %s died; stopping", t.get_name(), exc_info=failed)
        stop.cancel()
        await self.close()
        if failed is not None:
            raise SystemExit(1)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.http:
            await self.http.close()
        if self.transport:
            await self.transport.close()
        self.storage.close()
        self.log.info("stopped")

    # ------------------------------------------------------------------ ready loop

    async def _ready_loop(self) -> None:
        core = self.core
        assert core is not None and self.transport is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while core.has_ready():
                rd = core.ready()
                if self._needs_persist(rd):
                    # Inline, not in a worker thread: see the module docstring.
                    self.storage.save(rd)
                self._note_role(rd)
                send = self.transport.send
                for m in rd.messages:
                    send(m.dst, m.to_wire())
                self._apply(rd)
                # Only now is the Ready's work done (persisted, sent, applied).
                core.advance(rd)
                if self.applied - self._snapshot_index() >= self.args.snapshot_every:
                    core.compact(self.applied, self.kv.snapshot())
                    snap = core.snapshot
                    assert snap is not None
                    self._save_snapshot(snap)
                    self.log.info("%s at %s %d", self.snapshot_word, self.index_word, snap.index)

    def _apply(self, rd: Any) -> None:
        if rd.snapshot is not None:
            self.kv = self._restore_state(rd.snapshot.data)
            self.applied = rd.snapshot.index
            self.log.info(
                "installed %s at %s %d", self.snapshot_word, self.index_word, rd.snapshot.index
            )
            for idx in [i for i in self.pending if i <= self.applied]:
                _, fut = self.pending.pop(idx)
                if not fut.done():
                    fut.set_result(info(f"{self.snapshot_word}-installed"))
        pending = self.pending
        for e in rd.committed_entries:
            self.applied = e.index
            data = e.data
            result = self.kv.apply(data["op"]) if data is not None else None
            p = pending.pop(e.index, None) if pending else None
            if p is not None and not p[1].done():
                if data is not None and data.get("id") == p[0]:
                    assert result is not None
                    p[1].set_result(result)
                else:
                    # Another command took this index; ours can never be chosen.
                    p[1].set_result(fail("superseded"))
        for rs in rd.read_states:
            self.waiting_reads.append((rs.index, rs.ctx))
        if self.waiting_reads:
            still = []
            for index, ctx in self.waiting_reads:
                if index <= self.applied:
                    r = self.reads.pop(ctx, None)
                    if r is not None and not r[1].done():
                        r[1].set_result(self.kv.apply(r[0]))
                else:
                    still.append((index, ctx))
            self.waiting_reads = still
        for ctx in rd.dropped_reads:
            r = self.reads.pop(ctx, None)
            if r is not None and not r[1].done():
                r[1].set_result(fail("not-leader", leader=None))  # reads change nothing

    def _note_role(self, rd: Any) -> None:
        now = (rd.role, rd.term, rd.leader)
        if now != self._seen:
            self._seen = now
            # Writes proposed while leader keep waiting after a step-down: they may still
            # be chosen under the next leader (ok), be overwritten (superseded) or time out.
            self.log.info("role=%s %s=%d leader=%s", rd.role, self.term_word, rd.term, rd.leader)

    # ------------------------------------------------------------------ peers

    def _on_peer(self, sender: str, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "fwd":
            asyncio.create_task(self._serve_forward(sender, msg))
        elif t == "fwd_resp":
            fut = self.forwards.pop(msg.get("rid"), None)  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                fut.set_result(msg["res"])
        else:
            m = self.message_type.from_wire(msg)
            if m.src != sender:
                self.log.warning(
                    "message claiming to be from %s arrived on %s's link", m.src, sender
                )
                return
            assert self.core is not None
            self.core.step(m)
            self._wake.set()

    async def _serve_forward(self, sender: str, msg: dict[str, Any]) -> None:
        res = await self.execute(msg["op"], allow_forward=False)
        assert self.transport is not None
        self.transport.send(sender, {"t": "fwd_resp", "rid": msg["rid"], "res": res})

    async def _forward(self, leader: str, op: dict[str, Any]) -> Result:
        assert self.transport is not None
        rid = f"{self.id}:{self.boot}:{next(self._ids)}"
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.forwards[rid] = fut
        if not self.transport.send(leader, {"t": "fwd", "rid": rid, "op": op}):
            self.forwards.pop(rid, None)
            return fail("not-leader", leader=leader)  # never left this node
        try:
            # A little longer than the leader's own timeout, so that its answer wins.
            return await self._wait(fut, self.op_timeout + 0.3)
        finally:
            self.forwards.pop(rid, None)

    # ------------------------------------------------------------------ ops

    @staticmethod
    async def _wait(fut: asyncio.Future[Result], timeout: float) -> Result:
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return info("timeout")

    async def execute(self, op: dict[str, Any], allow_forward: bool = True) -> Result:
        """Run one client op here or at the leader; return the client-facing result."""
        problem = validate_op(op)
        if problem is not None:
            return fail("bad-op", detail=problem)
        core = self.core
        assert core is not None
        early = self._serve_without_leader(op)
        if early is not None:
            return early
        if core.role != LEADER and self._needs_leader(op):
            leader = core.leader
            if allow_forward and leader is not None and leader in self.peers:
                return await self._forward(leader, op)
            return fail("not-leader", leader=leader)
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        ctx = next(self._ids)
        if op["f"] == "read":
            try:
                self._read_index(ctx)
            except NotLeader as e:
                return fail("not-leader", leader=e.leader)
            self.reads[ctx] = (op, fut)
            self._wake.set()
            try:
                return await self._wait(fut, self.op_timeout)
            finally:
                self.reads.pop(ctx, None)
        rid = f"{self.id}:{self.boot}:{ctx}"
        try:
            index = core.propose({"id": rid, "op": op})
        except NotLeader as e:
            return fail("not-leader", leader=e.leader)
        self._wake.set()
        early = self._answer_before_commit(op)
        if early is not None:
            return early
        self.pending[index] = (rid, fut)
        try:
            return await self._wait(fut, self.op_timeout)
        finally:
            p = self.pending.get(index)
            if p is not None and p[1] is fut:
                del self.pending[index]

    async def _handle_http(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/op":
            if method != "POST":
                return 405, {"type": "fail", "error": "use POST /op"}
            try:
                op = json.loads(body)
            except ValueError:
                return 400, {"type": "fail", "error": "bad-request", "detail": "body is not JSON"}
            if not isinstance(op, dict):
                return 400, {
                    "type": "fail",
                    "error": "bad-request",
                    "detail": "body must be an object",
                }
            return 200, await self.execute(op)
        if path == "/status":
            return 200, self.status()
        return 404, {"error": f"no such endpoint {path!r}; try POST /op or GET /status"}


class _LogContext(logging.Filter):
    """Adds the server's :meth:`NodeServer.log_context` to every log line."""

    def __init__(self) -> None:
        super().__init__()
        self.server: NodeServer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        server = self.server
        record.ctx = server.log_context() if server and server.core else "[starting]"
        return True


#: Set to the pid of the process starting the node to make the node die with it.
DIE_WITH_PARENT_ENV = "JEPSENLIKE_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

#: Exit status of a node that refuses to start on a damaged or foreign data dir.
EXIT_DATA_DIR = 3


def die_with_parent(env: dict[str, str] | None = None) -> None:
    """Honour ``JEPSENLIKE_DIE_WITH_PARENT=<pid>``: be SIGKILLed when the parent dies.

    On Linux this sets ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the
    node when the thread that forked it exits, even on SIGKILL of the harness. The
    parent may have died before the prctl took effect: so afterwards, if
    ``os.getppid()`` is no longer the given pid, the node exits at once (status 1).
    Elsewhere only that check is made. Unset or empty: nothing happens.

    Raises:
        ValueError: the variable is set but is not a pid.
    """
    value = (os.environ if env is None else env).get(DIE_WITH_PARENT_ENV, "").strip()
    if not value:
        return
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(
            f"{DIE_WITH_PARENT_ENV}={value!r} is not a pid; set it to the pid of the process "
            "that starts the node, or unset it"
        )
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if os.getppid() != int(value):
        print(
            f"node: parent {value} is gone (parent is now {os.getppid()}); exiting",
            file=sys.stderr,
        )
        sys.stderr.flush()
        os._exit(1)


def run_node(
    server_cls: type[NodeServer],
    parse_bugs: Any,
    args: argparse.Namespace,
) -> int:
    """Run a node from parsed args until SIGTERM/SIGINT; return the exit code.

    2 for a usage error (unknown bug, bad config), 1 for an OS error (port in use,
    unreadable data dir) or a dead task, 3 (:data:`EXIT_DATA_DIR`) when the data dir
    is damaged or another node's (one ERROR line says which file, offset and record),
    0 after a clean stop.
    """
    name = server_cls.protocol
    try:
        die_with_parent()
    except ValueError as e:
        print(f"{name} node: error: {e}", file=sys.stderr)
        return 2
    try:
        bugs = parse_bugs(args.bug)
    except ValueError as e:
        print(f"{name} node: error: {e}", file=sys.stderr)
        return 2
    ctx = _LogContext()
    setup_logging(args.log_level, args.id, ctx)

    async def _main() -> None:
        server = server_cls(args, bugs)
        ctx.server = server
        await server.run()

    try:
        asyncio.run(_main())
    except DataDirError as e:
        logging.getLogger(name).error("refusing to start: %s", e)
        return EXIT_DATA_DIR
    except ValueError as e:
        print(f"{name} node: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{name} node {args.id}: error: {e}", file=sys.stderr)
        return 1
    return 0
