"""The Raft node process: the pure core driven by asyncio, disk and TCP.

Theory of operation
-------------------
One asyncio event loop owns the :class:`~jepsenlike.models.raft.core.RaftNode`. The
driver -- peer transport, HTTP client API, forwarding to the leader, the Ready loop
with its inline fsync and group commit, client outcomes -- is
:class:`~jepsenlike.models.server.node.NodeServer`, shared with the Paxos node; see
its module docstring. What is Raft's own:

* the ticker calls ``tick(now)`` every ``--tick-ms`` with the monotonic clock (the
  wall clock under the ``lease-without-bound`` bug), and reads hand the same clock to
  ``read_index`` for lease reads (``--read-mode lease``);
* appends to followers are built when a Ready is taken, so they carry every command
  proposed since the last one (batching), and up to ``--max-inflight`` are
  outstanding per follower (pipelining);
* a write's index may be taken over by another leader's entry (``superseded``);
* every ``--snapshot-every`` applied entries the state machine is snapshotted, the
  core compacts its log, and the storage rewrites its WAL;
* the seeded bugs ``stale-read`` and ``early-ack`` live here (the others in the core
  and the storage).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from jepsenlike.models.consensus import LEADER
from jepsenlike.models.kv import KVStore
from jepsenlike.models.raft.bugs import BUGS, parse_bugs
from jepsenlike.models.raft.core import (
    Config,
    Message,
    RaftNode,
    Ready,
    safe_lease_seconds,
)
from jepsenlike.models.raft.storage import RaftStorage
from jepsenlike.models.server.node import NodeServer, Result, run_node
from jepsenlike.models.server.nodeargs import add_common_arguments, add_protocol_arguments
from jepsenlike.models.server.wal import Identity

__all__ = ["RaftServer", "add_arguments", "build_parser", "main", "run"]


class RaftServer(NodeServer):
    """A Raft node serving the KV API. Build from parsed args, then ``await run()``."""

    protocol = "raft"
    message_type = Message

    def __init__(self, args: argparse.Namespace, bugs: frozenset[str] | None = None) -> None:
        super().__init__(args, parse_bugs(args.bug) if bugs is None else bugs)
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
        self.storage: RaftStorage = RaftStorage(
            args.data_dir,
            fsync=not args.no_fsync,
            volatile_vote="volatile-vote" in self.bugs,
            identity=Identity.of(self.protocol, self.id, self.peers),
            repair=args.repair,
        )
        self.core: RaftNode | None = None

    def _recover(self) -> None:
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
        self.log.info(
            "recovered term=%d vote=%s commit=%d snapshot=%d entries=%d bugs=%s",
            hs.term, hs.vote, hs.commit, snap.index, len(entries), ",".join(sorted(self.bugs)) or "-",
        )

    async def _ticker(self) -> None:
        assert self.core is not None
        while True:
            await asyncio.sleep(self.tick_s)
            self.core.tick(self.clock())
            self._wake.set()

    def _needs_persist(self, rd: Ready) -> bool:
        return rd.hard_state is not None or bool(rd.entries) or rd.snapshot is not None

    def _snapshot_index(self) -> int:
        assert self.core is not None
        return self.core.log.snap_index

    def _save_snapshot(self, snap: Any) -> None:
        self.storage.compact(snap)

    def _read_index(self, ctx: int) -> None:
        assert self.core is not None
        self.core.read_index(ctx, self.clock())

    def _serve_without_leader(self, op: dict[str, Any]) -> Result | None:
        if op["f"] == "read" and "stale-read" in self.bugs and self.core is not None \
                and self.core.role == LEADER:
            # BUG: a leader answers from its own state machine without confirming that it
            # still leads (no ReadIndex round, no lease); followers still forward to it.
            return self.kv.apply(op)
        return None

    def _answer_before_commit(self, op: dict[str, Any]) -> Result | None:
        if "early-ack" in self.bugs and op["f"] in ("write", "append"):
            return {"type": "ok", "value": op.get("value")}  # BUG: not yet committed
        return None

    def status(self) -> dict[str, Any]:
        st = super().status()
        st["read_mode"] = self.config.read_mode
        return st

    def log_context(self) -> str:
        assert self.core is not None
        return f"[term {self.core.term} {self.core.role}]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the Raft node's options (the shared ones plus Raft's own)."""
    add_common_arguments(p)
    add_protocol_arguments(
        p,
        election_help="minimum election timeout in ticks (randomised up to twice that)",
        snapshot_help="compact the log every N applied entries",
        batch_help="entries per append message",
        bugs=BUGS,
    )
    p.add_argument("--read-mode", choices=["read-index", "lease"], default="read-index",
                   help="how reads confirm leadership (default read-index)")
    p.add_argument("--max-drift", type=float, default=0.05,
                   help="clock rate drift bound assumed by lease reads (default 0.05 = 5%%)")
    p.add_argument("--max-inflight", type=int, default=64, help="appends in flight per follower")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jepsenlike.models.raft",
        description="Reference Raft key-value node (see docs/raft-node.md).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run a node from parsed args until SIGTERM/SIGINT; returns the exit code."""
    return run_node(RaftServer, parse_bugs, args)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
