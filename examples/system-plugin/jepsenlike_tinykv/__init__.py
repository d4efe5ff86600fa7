"""``tinykv``: a complete third-party system plugin for jepsenlike, small enough to copy.

It has the three parts every system plugin has:

* the node program (:mod:`jepsenlike_tinykv.node`, a primary-backup key-value
  store; in your plugin this is your database, started by its own binary);
* a client that turns every op into ``ok`` / ``fail`` / ``info``: tinykv speaks
  the reference nodes' ``POST /op`` API, so it reuses
  :class:`jepsenlike.models.client.KVClient`; write your own for another API
  (see ``jepsenlike/systems/etcd.py`` for an HTTP/JSON one and
  ``jepsenlike/systems/zookeeper.py`` for a library client);
* the :class:`TinyKV` system: the node's command line, its client, readiness,
  who leads, a typed option, and what it cannot take.

Install with ``pip install ./examples/system-plugin``; then::

    jepsenlike list systems
    jepsenlike run --system tinykv --nodes 3 --nemesis kill,partition --time-limit 20
    jepsenlike run --system tinykv --nodes 3 --option tinykv.reads=local \\
        --nemesis partition --grudge "n1=n3;n2=n3;n3=n1+n2" --time-limit 20  # backup n3 cut off: a stale read, INVALID

tinykv dials its peers at the addresses it is given, so it runs rootless
through the local backend's per-link proxies. A system that names every member
by one address that all peers dial (etcd, ZooKeeper) sets ``own_address = True``
and runs in the netns mode (root).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from jepsenlike.models.client import KVClient
from jepsenlike.registry import Option
from jepsenlike.systems.base import NodeSpec, System


class TinyKV(System):
    """tinykv: a primary-backup key-value store (n1 is the primary)."""

    name = "tinykv"
    description = "tinykv, a primary-backup key-value store (example system plugin)"
    can_tell_leader = True
    # What it can take; faults needing anything else are refused up front with the reason.
    workloads = frozenset({"register", "set"})
    refused_capabilities: Mapping[str, str] = {}
    plugin_options = (
        Option("reads", str, "primary", "primary: reads go to the primary; local: each node "
               "answers from its own state (stale on a cut-off backup)", choices=("primary", "local")),
    )

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = dict(settings or {"reads": "primary"})

    def unavailable_reason(self) -> str | None:
        # A real plugin checks for its binary here and names the install command, e.g.
        # "tinykv is not installed; apt-get install -y tinykv".
        return None

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        return [sys.executable, "-m", "jepsenlike_tinykv.node", "--id", node.id,
                "--client-addr", node.client_addr, "--peer-addr", node.peer_addr,
                "--peers", ",".join(f"{n}={a}" for n, a in sorted(peers.items())),
                "--data-dir", node.data_dir, "--reads", self.settings["reads"]]

    def open_client(self, node: NodeSpec, timeout: float) -> KVClient:
        return KVClient(node.client_addr, timeout=timeout)

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        return "n1" if any(n.id == "n1" for n in nodes) else None
