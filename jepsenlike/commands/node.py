"""``jepsenlike node raft|paxos|shardkv ...``: run a reference node (same flags as ``python -m``).

``jepsenlike node raft --id n1 --client-addr ... --peer-addr ... --peers ... --data-dir ...``
is the same command as ``python -m jepsenlike.models.raft ...``; see docs/raft-node.md
and docs/paxos-node.md.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

PROTOCOLS = {
    "raft": "the reference Raft key-value node",
    "paxos": "the reference Multi-Paxos key-value node",
    "shardkv": "a member of one Raft group of the sharded transactional store (docs/shardkv.md)",
}


def _runner(protocol: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(f"jepsenlike.models.{protocol}.server").run(args)

    return run


def register(sub: Any) -> None:
    """Add ``node`` and its per-protocol subcommands to the CLI."""
    p = sub.add_parser("node", help="run a reference node (raft, paxos or shardkv)")
    protocols = p.add_subparsers(dest="protocol", metavar="PROTOCOL")
    for name, help_text in PROTOCOLS.items():
        server = importlib.import_module(f"jepsenlike.models.{name}.server")
        q = protocols.add_parser(name, help=help_text)
        server.add_arguments(q)
        q.set_defaults(func=_runner(name))
    p.set_defaults(func=lambda args: (p.print_help(), 255)[1])
