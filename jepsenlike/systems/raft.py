"""``raft``: the reference Raft nodes in :mod:`jepsenlike.models.raft`.

Each node is ``python -P -m jepsenlike.models.raft`` (``-P``: whatever the
working directory, the installed package is imported) with its id, client and
peer addresses, the address it dials for every other node, its data dir and,
optionally, a seeded bug and node options (``--system-options
read-mode=lease`` becomes ``--read-mode lease``). Readiness is ``GET /status`` answering 200; the
leader is the node whose status says ``role == "leader"`` with the highest
term (a deposed leader that has not yet heard of the new term may still say
leader; the higher term wins).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from jepsenlike.systems.base import NodeSpec, System


class KVNodeSystem(System):
    """A reference node speaking the shared KV client API (Raft, Paxos)."""

    module = ""
    can_tell_leader = True
    workloads = frozenset({"register", "set", "append"})
    faults = frozenset({"kill", "pause", "partition", "clock", "slow", "flaky"})

    @property
    def bugs(self) -> tuple[str, ...] | None:  # type: ignore[override]
        """The node's seeded bugs, from ``<module>.bugs.BUGS`` when it has that table."""
        try:
            table = importlib.import_module(self.module + ".bugs").BUGS
        except (ImportError, AttributeError):
            return None
        return tuple(table)

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        argv = [
            # -P: the working directory is not put first on sys.path, so a source
            # checkout's ./jepsenlike/ (run from the clone's root) cannot shadow the
            # installed package, whose jepsenlike.models is mapped from ./models/.
            sys.executable, "-P", "-m", self.module,
            "--id", node.id,
            "--client-addr", node.client_addr,
            "--peer-addr", node.peer_addr,
            "--peers", ",".join(f"{n}={a}" for n, a in sorted(peers.items())),
            "--data-dir", node.data_dir,
            "--seed", str(seed),
        ]
        if bug:
            argv += ["--bug", bug]
        for key, value in sorted(self.options.items()):
            argv += [f"--{key}", value]
        return argv

    def open_client(self, node: NodeSpec, timeout: float) -> Any:
        from jepsenlike.models.client import KVClient

        return KVClient(node.client_addr, timeout=timeout)

    def wall_clock(self, node: NodeSpec, timeout: float = 0.3) -> float | None:
        """The ``time`` field of ``GET /status``: the node process's own ``time.time()``."""
        st = self.status(node, timeout)
        value = (st or {}).get("time")
        return float(value) if isinstance(value, (int, float)) else None

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        best: tuple[int, str] | None = None
        for node in nodes:
            st = self.status(node, timeout)
            if st and st.get("role") == "leader":
                term = int(st.get("term") or 0)
                if best is None or term > best[0]:
                    best = (term, node.id)
        return best[1] if best else None


class RaftSystem(KVNodeSystem):
    name = "raft"
    description = "the reference Raft nodes (jepsenlike.models.raft)"
    module = "jepsenlike.models.raft"
    option_names = ("read-mode", "max-drift", "tick-ms", "election-ticks", "heartbeat-ticks",
                    "op-timeout", "snapshot-every", "max-batch", "max-inflight", "log-level")

    def configure(self, options: dict[str, str], bug: str | None = None) -> None:
        """As :meth:`System.configure`; ``--bug lease-without-bound`` needs lease reads."""
        from jepsenlike.errors import ConfigError

        super().configure(options, bug)
        bugs = {b.strip() for b in (bug or "").split(",")}
        if "lease-without-bound" in bugs and options.get("read-mode") != "lease":
            raise ConfigError(
                "bug 'lease-without-bound' only acts on lease reads; add "
                "--system-options read-mode=lease (in a config file: system-options = [\"read-mode=lease\"])"
            )
