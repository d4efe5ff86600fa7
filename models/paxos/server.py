"""The Multi-Paxos node process: the pure core driven by asyncio, disk and TCP.

Theory of operation
-------------------
One asyncio event loop owns the :class:`~jepsenlike.models.paxos.core.PaxosNode`; the
driver is :class:`~jepsenlike.models.server.node.NodeServer`, shared with the Raft
node, and this module adds what is Paxos's own. Inputs come from three places, and
each sets ``_wake`` after feeding the core:

* a ticker calls ``tick()`` every ``--tick-ms``;
* the peer :class:`~jepsenlike.models.server.transport.Transport` calls ``step`` for
  each protocol message (and carries forwarded client ops between nodes);
* HTTP handlers (:class:`~jepsenlike.models.server.http.HttpServer`) call ``propose``
  for writes, cas, append and txn, ``read_index`` for reads, or forward the op to
  the leader the core names.

The Ready loop handles each Ready in the order the core demands: persist the
promise, votes and received checkpoint (:class:`FileStorage`, one write and one
fsync, on the event loop itself), then send the messages, then apply. Requests and
messages that arrive meanwhile wait in their sockets and are all taken before the
next Ready, so they share its accept message and its fsync: batching and group
commit. (The fsync used to run in a worker thread; under libfaketime, which the
clock nemesis preloads, each thread hand-off costs ~25 ms, so it moved onto the
loop as in the Raft node.)

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

from jepsenlike.models.kv import KVStore
from jepsenlike.models.paxos.bugs import BUGS, parse_bugs
from jepsenlike.models.paxos.core import Config, Message, PaxosNode, Ready, Snapshot
from jepsenlike.models.paxos.storage import FileStorage
from jepsenlike.models.server.node import NodeServer, run_node
from jepsenlike.models.server.nodeargs import add_common_arguments, add_protocol_arguments
from jepsenlike.models.server.wal import Identity

__all__ = ["PaxosServer", "add_arguments", "build_parser", "main", "run"]


class PaxosServer(NodeServer):
    """A Multi-Paxos node serving the KV API. Build from parsed args, ``await run()``."""

    protocol = "paxos"
    message_type = Message
    snapshot_word = "checkpoint"
    index_word = "slot"
    term_word = "round"

    def __init__(self, args: argparse.Namespace, bugs: frozenset[str] | None = None) -> None:
        super().__init__(args, parse_bugs(args.bug) if bugs is None else bugs)
        self.config = Config(
            election_ticks=args.election_ticks,
            heartbeat_ticks=args.heartbeat_ticks,
            max_entries_per_msg=args.max_batch,
            bugs=self.bugs,
        )
        self.config.validate()
        self.storage: FileStorage = FileStorage(
            args.data_dir,
            volatile="volatile-acceptor" in self.bugs,
            fsync=not args.no_fsync,
            identity=Identity.of(self.protocol, self.id, self.peers),
            repair=args.repair,
        )
        self.core: PaxosNode | None = None

    def _recover(self) -> None:
        state = self.storage.load()
        self.core = PaxosNode(self.id, list(self.peers), self.config, self.rng, state=state)
        self.kv = KVStore.restore(state.snapshot.data)
        self.applied = state.snapshot.index
        self.log.info(
            "recovered promised=%s votes=%d checkpoint=%d torn_bytes=%d bugs=%s",
            state.promised,
            len(state.accepted),
            state.snapshot.index,
            self.storage.torn_bytes,
            ",".join(sorted(self.bugs)) or "-",
        )

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

    def _needs_persist(self, rd: Ready) -> bool:
        return rd.promised is not None or bool(rd.accepted) or rd.snapshot is not None

    def _snapshot_index(self) -> int:
        assert self.core is not None
        return self.core.snapshot.index

    def _save_snapshot(self, snap: Snapshot) -> None:
        self.storage.save_snapshot(snap)

    def log_context(self) -> str:
        """The ballot round and role (``/status`` calls the round ``term``)."""
        assert self.core is not None
        return f"[round {self.core.max_round} {self.core.role}]"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the Paxos node's options (the shared ones plus its own)."""
    add_common_arguments(p)
    add_protocol_arguments(
        p,
        election_help="minimum leader timeout in ticks (randomised up to twice that)",
        snapshot_help="checkpoint the state machine every N applied slots",
        batch_help="slots per accept message",
        bugs=BUGS,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jepsenlike.models.paxos",
        description="Reference Multi-Paxos key-value node (see docs/paxos-node.md).",
    )
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run a node from parsed args until SIGTERM/SIGINT; return the exit code."""
    return run_node(PaxosServer, parse_bugs, args)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
