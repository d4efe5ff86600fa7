"""The node command line shared by every reference protocol (a contract with the harness).

``python -m jepsenlike.models.<protocol> --id n1 --client-addr 127.0.0.1:9001
--peer-addr 127.0.0.1:9101 --peers n2=127.0.0.1:9102,n3=127.0.0.1:9103 --data-dir DIR
[--bug NAME] [--seed N] [--tick-ms 10] [--election-ticks N] [--no-fsync] [--repair] ...``

``--peer-addr`` is where this node listens for peer traffic; ``--peers`` gives, for each
other node, the address *this* node dials to reach it (a per-link proxy may sit there).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable

from jepsenlike.models.server.transport import parse_hostport, parse_peers

__all__ = ["add_common_arguments", "add_protocol_arguments", "setup_logging"]


def _hostport(s: str) -> tuple[str, int]:
    try:
        return parse_hostport(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _peers(s: str) -> dict[str, tuple[str, int]]:
    try:
        return parse_peers(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", required=True, help="this node's id, e.g. n1")
    p.add_argument(
        "--client-addr", required=True, type=_hostport, metavar="HOST:PORT",
        help="where the HTTP/JSON client API listens (POST /op, GET /status)",
    )
    p.add_argument(
        "--peer-addr", required=True, type=_hostport, metavar="HOST:PORT",
        help="where this node accepts peer connections",
    )
    p.add_argument(
        "--peers", default="", type=_peers, metavar="ID=HOST:PORT,...",
        help="for each other node, the address this node dials to reach it",
    )
    p.add_argument("--data-dir", required=True, help="directory for the WAL and snapshots")
    p.add_argument("--bug", default=None, metavar="NAME[,NAME]", help="enable seeded bugs")
    p.add_argument("--seed", type=int, default=None, help="seed for election jitter")
    p.add_argument("--tick-ms", type=float, default=10.0, help="length of one tick (ms)")
    p.add_argument("--no-fsync", action="store_true", help="skip fsync (unsafe; for speed)")
    p.add_argument(
        "--op-timeout", type=float, default=1.0,
        help="seconds before an op answers info/timeout (default 1.0)",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    p.add_argument(
        "--repair", action="store_true",
        help="if the WAL is corrupt (or lost), cut it at the first bad record (or start "
        "from an empty one) instead of refusing to start; logs what it cut",
    )


def add_protocol_arguments(
    p: argparse.ArgumentParser,
    *,
    election_help: str,
    snapshot_help: str,
    batch_help: str,
    bugs: Iterable[str],
) -> None:
    """The timer, snapshot and batching options every protocol has (its own wording)."""
    p.add_argument("--election-ticks", type=int, default=50, help=election_help)
    p.add_argument("--heartbeat-ticks", type=int, default=5, help="heartbeat interval in ticks")
    p.add_argument("--snapshot-every", type=int, default=10000, help=snapshot_help)
    p.add_argument("--max-batch", type=int, default=1024, help=batch_help)
    p.epilog = "seeded bugs (--bug): " + ", ".join(bugs)


def setup_logging(level: str, node_id: str, context: logging.Filter | None = None) -> None:
    """Log to stderr; every line names the node (and whatever ``context`` adds)."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = f"%(asctime)s {node_id} %(ctx)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    if context is not None:
        handler.addFilter(context)
    else:

        class _Empty(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.ctx = ""
                return True

        handler.addFilter(_Empty())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
