"""The Raft node process: the pure core driven by asyncio, disk and TCP.

Theory of operation
-------------------
One asyncio event loop owns the :class:`~jepsenlike.models.raft.core.RaftNode`. Four
kinds of task feed it inputs and then set ``_wake``:

* the ticker calls ``tick(now)`` every ``--tick-ms`` with the monotonic clock;
* the peer transport calls ``step`` for each message received;
* HTTP handlers call ``propose`` (writes, cas, append, txn) or ``read_index`` (reads),
  or forward the op to the leader over the peer transport;
* forwarded ops from followers are handled like local ones and answered over this
  node's own outbound connection to the follower.

The Ready loop waits for ``_wake`` and handles each Ready in the order the core
demands: persist (one write and one fsync per Ready, on the loop itself), send,
apply. Requests that arrive while a Ready is handled wait in their sockets; the loop
reads them all before the next Ready, so they are proposed together and share one
fsync: group commit falls out of the structure. (A worker thread for the fsync was
tried: a thread hand-off costs as much as an fsync on a local disk, and under
libfaketime, which the clock nemesis preloads, it costs ~25 ms.) Appends to
followers are built when a Ready is taken, so they carry every command proposed
since the last one (batching), and up to ``max_inflight`` are outstanding per
follower (pipelining).

Outcomes for clients: a write's future is keyed by its log index. When that index is
applied, the entry there is either ours (``ok``/``fail`` from the state machine) or
another leader's, in which case ours can never commit (an entry never moves to another
index) and the answer is a definite ``fail``. No answer within ``--op-timeout`` is
``info``. Reads wait for a ReadIndex (or lease) confirmation, then for the state
machine to reach that index, and are served locally.

Every ``--snapshot-every`` applied entries the state machine is snapshotted, the core
compacts its log, and the storage rewrites its WAL.
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
from typing import Any

from jepsenlike.models.kv import KVStore, validate_op
from jepsenlike.models.raft.bugs import BUGS, parse_bugs
from jepsenlike.models.raft.core import (
    LEADER,
    Config,
    Message,
    NotLeader,
    RaftNode,
    Ready,
    safe_lease_seconds,
)
from jepsenlike.models.raft.storage import RaftStorage
from jepsenlike.models.server.http import HttpServer
from jepsenlike.models.server.nodeargs import add_common_arguments, setup_logging
from jepsenlike.models.server.transport import Transport

__all__ = ["RaftServer", "add_arguments", "build_parser", "main", "run"]

log = logging.getLogger("raft")


def _fail(error: str, **extra: Any) -> dict[str, Any]:
    return {"type": "fail", "error": error, **extra}


def _info(error: str) -> dict[str, Any]:
    return {"type": "info", "error": error}


class RaftServer:
    """A Raft node serving the KV API. Build from parsed args, then ``await run()``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.id: str = args.id
        self.peers: dict[str, tuple[str, int]] = dict(args.peers)
        if self.id in self.peers:
            raise ValueError(f"--peers lists this node's own id {self.id!r}")
        self.bugs = parse_bugs(args.bug)
        self.tick_s = args.tick_ms / 1000.0
        self.op_timeout = args.op_timeout
        # The lease-without-bound bug trusts the wall clock (skewable, can jump back);
        # the correct mode uses the monotonic clock.
        self.clock = time.time if "lease-without-bound" in self.bugs else time.monotonic
        lease = safe_lease_seconds(args.election_ticks, self.tick_s, args.max_drift)
        self.config = Config(
            election_ticks=args.election_ticks,
            heartbeat_ticks=args.heartbeat_ticks,
            read_mode=args.read_mode,
            lease_seconds=lease,
            max_entries_per_msg=args.max_batch,
            max_inflight=args.max_inflight,
            bugs=self.bugs & {"commit-old-term", "lease-without-bound"},
        )
        self.config.validate()
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
        # Mix in the id: nodes started with one --seed must not share election jitter.
        self.rng = random.Random(f"{seed}:{self.id}")
        self.storage = RaftStorage(
            args.data_dir, fsync=not args.no_fsync, volatile_vote="volatile-vote" in self.bugs
        )
        self.kv = KVStore()
        self.core: RaftNode | None = None
        self.applied = 0
        self.boot = os.urandom(4).hex()
        self._ids = itertools.count(1)
        self.pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self.reads: dict[int, tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = {}
        self.waiting_reads: list[tuple[int, int]] = []  # (index, ctx)
        self.forwards: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._seen = ("", -1, None)
        self._tasks: list[asyncio.Task[None]] = []
        self.transport: Transport | None = None
        self.http: HttpServer | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        hs, snap, entries = self.storage.load()
        self.core = RaftNode(
            self.id,
            list(self.peers),
            self.config,
            self.rng,
            hard_state=hs,
            snapshot=snap,
            entries=entries,
        )
        self.kv = KVStore.restore(snap.data)
        self.applied = snap.index
        log.info(
            "recovered term=%d vote=%s commit=%d snapshot=%d entries=%d bugs=%s",
            hs.term, hs.vote, hs.commit, snap.index, len(entries), ",".join(sorted(self.bugs)) or "-",
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
        log.info("serving clients on %s:%d, peers on %s:%d", *self.args.client_addr,
                 *self.args.peer_addr)
        stop = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = None
        for t in done:
            if t is not stop and t.exception() is not None:
                # Fail-stop: e.g. a WAL write error. Carrying on could acknowledge
                # what is not durable.
                failed = t.exception()
                log.error("task %s died; stopping", t.get_name(), exc_info=failed)
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
        log.info("stopped")

    async def _ticker(self) -> None:
        assert self.core is not None
        while True:
            await asyncio.sleep(self.tick_s)
            self.core.tick(self.clock())
            self._wake.set()

    # ------------------------------------------------------------------ ready loop

    async def _ready_loop(self) -> None:
        core = self.core
        assert core is not None and self.transport is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while core.has_ready():
                rd = core.ready()
                if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
                    # Inline, not in a worker thread: an fsync costs about as much as a
                    # thread hand-off, and under libfaketime (clock nemesis) a hand-off
                    # takes ~25 ms. Batching survives: requests arriving meanwhile wait
                    # in socket buffers and are proposed together before the next Ready.
                    self.storage.save(rd)
                self._note_role(rd)
                send = self.transport.send
                for m in rd.messages:
                    send(m.dst, m.to_wire())
                self._apply(rd)
                if self.applied - core.log.snap_index >= self.args.snapshot_every:
                    core.compact(self.applied, self.kv.snapshot())
                    snap = core.snapshot
                    assert snap is not None
                    self.storage.compact(snap)
                    log.info("snapshot at index %d", snap.index)

    def _apply(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.kv = KVStore.restore(rd.snapshot.data)
            self.applied = rd.snapshot.index
            log.info("installed snapshot at index %d", rd.snapshot.index)
            for idx in [i for i in self.pending if i <= self.applied]:
                _, fut = self.pending.pop(idx)
                if not fut.done():
                    fut.set_result(_info("snapshot-installed"))
        pending = self.pending
        for e in rd.committed_entries:
            self.applied = e.index
            data = e.data
            result = self.kv.apply(data["op"]) if data is not None else None
            p = pending.pop(e.index, None) if pending else None
            if p is not None and not p[1].done():
                if data is not None and data.get("id") == p[0]:
                    p[1].set_result(result)  # type: ignore[arg-type]
                else:
                    # Another leader's entry took this index; ours can never commit.
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
                r[1].set_result(_fail("not-leader", leader=None))

    def _note_role(self, rd: Ready) -> None:
        now = (rd.role, rd.term, rd.leader)
        if now != self._seen:
            self._seen = now
            # Writes proposed while leader keep waiting after a step-down: they may still
            # commit under the next leader (ok), be overwritten (superseded) or time out.
            log.info("role=%s term=%d leader=%s", rd.role, rd.term, rd.leader)

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

    async def _forward(self, leader: str, op: dict[str, Any]) -> dict[str, Any]:
        assert self.transport is not None
        rid = f"{self.id}:{self.boot}:{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.forwards[rid] = fut
        if not self.transport.send(leader, {"t": "fwd", "rid": rid, "op": op}):
            self.forwards.pop(rid, None)
            # Never left this node: definitely not executed.
            return _fail("not-leader", leader=leader)
        try:
            # A little longer than the leader's own timeout, so its answer wins.
            return await asyncio.wait_for(fut, self.op_timeout + 0.3)
        except TimeoutError:
            return _info("timeout")
        finally:
            self.forwards.pop(rid, None)

    # ------------------------------------------------------------------ ops

    async def execute(self, op: dict[str, Any], allow_forward: bool = True) -> dict[str, Any]:
        """Run one client op here or at the leader; returns the client-facing result."""
        problem = validate_op(op)
        if problem is not None:
            return _fail("bad-op", detail=problem)
        core = self.core
        assert core is not None
        f = op["f"]
        if f == "read" and "stale-read" in self.bugs:
            return self.kv.apply(op)  # BUG: no ReadIndex, no leader
        if core.role != LEADER:
            leader = core.leader
            if allow_forward and leader is not None and leader in self.peers:
                return await self._forward(leader, op)
            return _fail("not-leader", leader=leader)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        ctx = next(self._ids)
        if f == "read":
            try:
                core.read_index(ctx, self.clock())
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
            index = core.propose({"id": rid, "op": op})
        except NotLeader as e:
            return _fail("not-leader", leader=e.leader)
        self._wake.set()
        if "early-ack" in self.bugs and f in ("write", "append"):
            return {"type": "ok", "value": op.get("value")}  # BUG: not yet committed
        self.pending[index] = (rid, fut)
        try:
            return await asyncio.wait_for(fut, self.op_timeout)
        except TimeoutError:
            return _info("timeout")
        finally:
            p = self.pending.get(index)
            if p is not None and p[1] is fut:
                del self.pending[index]

    def status(self) -> dict[str, Any]:
        core = self.core
        assert core is not None
        return {
            "id": self.id,
            "role": core.role,
            "term": core.term,
            "leader": core.leader,
            "commit_index": core.commit,
            "applied_index": self.applied,
            "last_index": core.log.last_index,
            "snapshot_index": core.log.snap_index,
            "time": time.time(),
            "bug": ",".join(sorted(self.bugs)) or None,
            "read_mode": self.config.read_mode,
        }

    async def _handle_http(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/op":
            if method != "POST":
                return 405, {"type": "fail", "error": "use POST /op"}
            try:
                op = json.loads(body)
            except ValueError:
                return 400, {"type": "fail", "error": "bad-request", "detail": "body is not JSON"}
            if not isinstance(op, dict):
                return 400, {"type": "fail", "error": "bad-request", "detail": "body must be an object"}
            return 200, await self.execute(op)
        if path == "/status":
            return 200, self.status()
        return 404, {"error": f"no such endpoint {path!r}; try POST /op or GET /status"}


class _LogContext(logging.Filter):
    """Adds ``term`` and ``role`` to every log line."""

    def __init__(self) -> None:
        super().__init__()
        self.server: RaftServer | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        core = self.server.core if self.server else None
        record.ctx = f"[term {core.term} {core.role}]" if core else "[starting]"
        return True


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the Raft node's options (the shared ones plus Raft's own)."""
    add_common_arguments(p)
    p.add_argument("--election-ticks", type=int, default=50,
                   help="minimum election timeout in ticks (randomised up to twice that)")
    p.add_argument("--heartbeat-ticks", type=int, default=5, help="heartbeat interval in ticks")
    p.add_argument("--read-mode", choices=["read-index", "lease"], default="read-index",
                   help="how reads confirm leadership (default read-index)")
    p.add_argument("--max-drift", type=float, default=0.05,
                   help="clock rate drift bound assumed by lease reads (default 0.05 = 5%%)")
    p.add_argument("--snapshot-every", type=int, default=10000,
                   help="compact the log every N applied entries")
    p.add_argument("--max-batch", type=int, default=1024, help="entries per append message")
    p.add_argument("--max-inflight", type=int, default=64, help="appends in flight per follower")
    p.epilog = "seeded bugs (--bug): " + ", ".join(BUGS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jepsenlike.models.raft",
        description="Reference Raft key-value node (see docs/raft-node.md).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run a node from parsed args until SIGTERM/SIGINT; returns the exit code."""
    try:
        parse_bugs(args.bug)
    except ValueError as e:
        print(f"raft node: error: {e}", file=sys.stderr)
        return 2
    ctx = _LogContext()
    setup_logging(args.log_level, args.id, ctx)

    async def _main() -> None:
        server = RaftServer(args)
        ctx.server = server
        await server.run()

    try:
        asyncio.run(_main())
    except ValueError as e:
        print(f"raft node: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"raft node {args.id}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
