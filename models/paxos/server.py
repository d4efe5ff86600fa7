"""The Multi-Paxos node process: the pure core driven by asyncio, disk and TCP.

Theory of operation
-------------------
One asyncio event loop owns the :class:`~jepsenlike.models.paxos.core.PaxosNode`.
Inputs come from three places, and each sets ``_wake`` after feeding the core:

* a ticker calls ``tick()`` every ``--tick-ms``;
* the peer :class:`~jepsenlike.models.server.transport.Transport` calls ``step`` for
  each protocol message (and carries forwarded client ops between nodes);
* HTTP handlers (:class:`~jepsenlike.models.server.http.HttpServer`) call ``propose``
  for writes, cas, append and txn, ``read_index`` for reads, or forward the op to
  the leader the core names.

The Ready loop handles each Ready in the order the core demands: persist the
promise, votes and received checkpoint (:class:`FileStorage`, one fsync, in a worker
thread), then send the messages, then apply. While the worker fsyncs, the loop keeps
taking proposals and messages; they share the next Ready and the next fsync, which
is where batching and group commit come from.

The client contract is the Raft node's (``docs/raft-node.md``), because the state
machine (:class:`~jepsenlike.models.kv.KVStore`) and the HTTP API are shared:

* a write waits for its slot to be applied. If the command there is ours, the
  state machine's answer (``ok``, or a definite ``fail`` such as ``cas-mismatch``)
  goes back; if another value was decided there, ours can never be decided anywhere
  (a new leader only re-proposes a value in the slot it was accepted in), so the
  answer is a definite ``fail`` (``superseded``). A checkpoint from a peer that
  jumps over our slot hides what was decided there: ``info``;
* a read waits for a quorum-confirmed read index and for the state machine to
  reach it, then reads locally;
* a follower forwards ops to the leader it knows over the peer transport (or
  answers ``fail``/``not-leader`` with the hint when it knows none);
* nothing within ``--op-timeout`` is ``info``/``timeout``: the op may still happen.

Every ``--snapshot-every`` applied slots the state machine is checkpointed, the core
drops what it covers, and the storage rewrites its WAL.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import random
import signal
import sys
import time
from typing import Any

from jepsenlike.models.kv import KVStore, validate_op
from jepsenlike.models.paxos.bugs import BUGS, parse_bugs
from jepsenlike.models.paxos.core import LEADER, Config, Message, NotLeader, PaxosNode, Ready
from jepsenlike.models.paxos.storage import FileStorage
from jepsenlike.models.server.http import HttpServer
from jepsenlike.models.server.nodeargs import add_common_arguments, setup_logging
from jepsenlike.models.server.transport import Transport

__all__ = ["PaxosServer", "add_arguments", "build_parser", "main", "run"]

log = logging.getLogger("paxos")

Result = dict[str, Any]


def _fail(error: str, **extra: Any) -> Result:
    return {"type": "fail", "error": error, **extra}


def _info(error: str) -> Result:
    return {"type": "info", "error": error}


class PaxosServer:
    """A Multi-Paxos node serving the KV API. Build from parsed args, ``await run()``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.id: str = args.id
        self.peers: dict[str, tuple[str, int]] = dict(args.peers)
        if self.id in self.peers:
            raise ValueError(f"--peers lists this node's own id {self.id!r}")
        self.bugs = parse_bugs(args.bug)
        self.tick_s = args.tick_ms / 1000.0
        self.op_timeout = args.op_timeout
        self.config = Config(
            election_ticks=args.election_ticks,
            heartbeat_ticks=args.heartbeat_ticks,
            max_entries_per_msg=args.max_batch,
            bugs=self.bugs,
        )
        self.config.validate()
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
        # Mix in the id: nodes started with one --seed must not share election jitter.
        self.rng = random.Random(f"{seed}:{self.id}")
        self.storage = FileStorage(
            args.data_dir,
            volatile="volatile-acceptor" in self.bugs,
            fsync=not args.no_fsync,
        )
        self.kv = KVStore()
        self.core: PaxosNode | None = None
        self.applied = 0
        self.boot = os.urandom(4).hex()  # keeps command ids unique across restarts
        self._ids = itertools.count(1)
        self.pending: dict[int, tuple[str, asyncio.Future[Result]]] = {}  # slot -> (id, fut)
        self.reads: dict[int, tuple[dict[str, Any], asyncio.Future[Result]]] = {}
        self.waiting_reads: list[tuple[int, int]] = []  # (index, ctx)
        self.forwards: dict[str, asyncio.Future[Result]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wal")
        self._seen: tuple[str, int, str | None] = ("", -1, None)
        self._tasks: list[asyncio.Task[None]] = []
        self.transport: Transport | None = None
        self.http: HttpServer | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Recover, serve until SIGTERM/SIGINT, then close everything."""
        loop = asyncio.get_running_loop()
        state = self.storage.load()
        self.core = PaxosNode(self.id, list(self.peers), self.config, self.rng, state=state)
        self.kv = KVStore.restore(state.snapshot.data)
        self.applied = state.snapshot.index
        log.info(
            "recovered promised=%s votes=%d checkpoint=%d torn_bytes=%d bugs=%s",
            state.promised,
            len(state.accepted),
            state.snapshot.index,
            self.storage.torn_bytes,
            ",".join(sorted(self.bugs)) or "-",
        )
        self.transport = Transport(self.id, self.args.peer_addr, self.peers, self._on_peer)
        await self.transport.start()
        self.http = HttpServer(*self.args.client_addr, self._handle_http)
        await self.http.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name="ready"),
            asyncio.create_task(self._ticker(), name="ticker"),
        ]
        self._wake.set()
        log.info(
            "serving clients on %s:%d, peers on %s:%d",
            *self.args.client_addr,
            *self.args.peer_addr,
        )
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stop and t.exception() is not None:
                log.error("task %s died", t.get_name(), exc_info=t.exception())
        await self.close()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.http:
            await self.http.close()
        if self.transport:
            await self.transport.close()
        self._executor.shutdown(wait=True)
        self.storage.close()
        log.info("stopped")

    async def _ticker(self) -> None:
        core = self.core
        assert core is not None
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.tick_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > 10 * self.tick_s:
                next_at = loop.time()  # we were stopped (SIGSTOP): do not burst ticks
            core.tick()
            self._wake.set()

    # ------------------------------------------------------------------ ready loop

    async def _ready_loop(self) -> None:
        core = self.core
        assert core is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while core.has_ready():
                rd = core.ready()
                if rd.promised is not None or rd.accepted or rd.snapshot is not None:
                    await loop.run_in_executor(self._executor, self.storage.save, rd)
                self._note_role(rd)
                send = self.transport.send
                for m in rd.messages:
                    send(m.dst, m.to_wire())
                self._apply(rd)
                if self.applied - core.snapshot.index >= self.args.snapshot_every:
                    core.compact(self.applied, self.kv.snapshot())
                    snap = core.snapshot
                    await loop.run_in_executor(self._executor, self.storage.save_snapshot, snap)
                    log.info("checkpoint at slot %d", snap.index)

    def _apply(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.kv = KVStore.restore(rd.snapshot.data)
            self.applied = rd.snapshot.index
            log.info("installed checkpoint at slot %d", rd.snapshot.index)
            for slot in [s for s in self.pending if s <= self.applied]:
                _, fut = self.pending.pop(slot)
                if not fut.done():
                    fut.set_result(_info("checkpoint-installed"))
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
                    # Another value was decided in our slot; ours can never be decided.
                    p[1].set_result(_fail("superseded"))
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
                r[1].set_result(_fail("not-leader", leader=None))  # reads change nothing

    def _note_role(self, rd: Ready) -> None:
        now = (rd.role, rd.term, rd.leader)
        if now != self._seen:
            self._seen = now
            log.info("role=%s round=%d leader=%s", rd.role, rd.term, rd.leader)

    # ------------------------------------------------------------------ peers

    def _on_peer(self, sender: str, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "fwd":
            asyncio.create_task(self._serve_forward(sender, msg))
        elif t == "fwd_resp":
            fut = self.forwards.pop(msg.get("rid"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg["res"])
        else:
            m = Message.from_wire(msg)
            if m.src != sender:
                log.warning("message claiming to be from %s arrived on %s's link", m.src, sender)
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
            return _fail("not-leader", leader=leader)  # never left this node
        try:
            # A little longer than the leader's own timeout, so that its answer wins.
            return await asyncio.wait_for(fut, self.op_timeout + 0.3)
        except TimeoutError:
            return _info("timeout")
        finally:
            self.forwards.pop(rid, None)

    # ------------------------------------------------------------------ ops

    async def execute(self, op: dict[str, Any], allow_forward: bool = True) -> Result:
        """Run one client op here or at the leader; return the client-facing result."""
        problem = validate_op(op)
        if problem is not None:
            return _fail("bad-op", detail=problem)
        core = self.core
        assert core is not None
        f = op["f"]
        local_read = f == "read" and "stale-read" in self.bugs
        if core.role != LEADER and not local_read:
            leader = core.leader
            if allow_forward and leader is not None and leader in self.peers:
                return await self._forward(leader, op)
            return _fail("not-leader", leader=leader)
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        ctx = next(self._ids)
        if f == "read":
            try:
                core.read_index(ctx)
            except NotLeader as e:
                return _fail("not-leader", leader=e.leader)
            self.reads[ctx] = (op, fut)
            self._wake.set()
            try:
                return await asyncio.wait_for(fut, self.op_timeout)
            except TimeoutError:
                return _info("timeout")
            finally:
                self.reads.pop(ctx, None)
        rid = f"{self.id}:{self.boot}:{ctx}"
        try:
            slot = core.propose({"id": rid, "op": op})
        except NotLeader as e:
            return _fail("not-leader", leader=e.leader)
        self.pending[slot] = (rid, fut)
        self._wake.set()
        try:
            return await asyncio.wait_for(fut, self.op_timeout)
        except TimeoutError:
            return _info("timeout")
        finally:
            p = self.pending.get(slot)
            if p is not None and p[1] is fut:
                del self.pending[slot]

    def status(self) -> dict[str, Any]:
        """``GET /status``; ``term`` is the highest ballot round this node has seen."""
        core = self.core
        assert core is not None
        st = core.status()
        st.update(
            applied_index=self.applied,
            time=time.time(),
            bug=",".join(sorted(self.bugs)) or None,
        )
        return st

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
    """Adds the ballot round and role to every log line."""

    def __init__(self) -> None:
        super().__init__()
        self.server: PaxosServer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        core = self.server.core if self.server else None
        record.ctx = f"[round {core.max_round} {core.role}]" if core else "[starting]"
        return True


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the Paxos node's options (the shared ones plus its own)."""
    add_common_arguments(p)
    p.add_argument(
        "--election-ticks",
        type=int,
        default=50,
        help="minimum leader timeout in ticks (randomised up to twice that)",
    )
    p.add_argument("--heartbeat-ticks", type=int, default=5, help="heartbeat interval in ticks")
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=10000,
        help="checkpoint the state machine every N applied slots",
    )
    p.add_argument("--max-batch", type=int, default=1024, help="slots per accept message")
    p.epilog = "seeded bugs (--bug): " + ", ".join(BUGS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jepsenlike.models.paxos",
        description="Reference Multi-Paxos key-value node (see docs/paxos-node.md).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run a node from parsed args until SIGTERM/SIGINT; return the exit code."""
    try:
        parse_bugs(args.bug)
    except ValueError as e:
        print(f"paxos node: error: {e}", file=sys.stderr)
        return 2
    ctx = _LogContext()
    setup_logging(args.log_level, args.id, ctx)

    async def _main() -> None:
        server = PaxosServer(args)
        ctx.server = server
        await server.run()

    try:
        asyncio.run(_main())
    except ValueError as e:
        print(f"paxos node: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"paxos node {args.id}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
