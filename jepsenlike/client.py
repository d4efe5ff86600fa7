"""Clients: how a worker talks to nodes, and which node it talks to.

Theory of operation
-------------------
A :class:`NodeClient` is one connection to one node. Its :meth:`invoke` never
raises for trouble on the wire; it answers a completion dict
``{"type": "ok"|"fail"|"info", "value": ..., "error": ..., "leader"?: ...}``
where ``fail`` means *definitely did not happen* and ``info`` means *may have
happened* (when in doubt, ``info``). The reference nodes' client,
:class:`jepsenlike.models.client.KVClient`, has exactly this shape, and so must
a third-party system's client.

A :class:`Router` holds one client per node for one worker and picks the node
for each op:

* ``random``      -- uniformly from the worker's own seeded rng (the default;
  spreads reads over followers, which is what catches stale reads);
* ``round-robin`` -- node ``(worker + k) mod n`` for the k-th op;
* ``weighted``    -- at random, each node with probability proportional to its
  weight (``--routing-weights n1=4,n2=1``; nodes not listed weigh 1), e.g. to
  load one node or one replica group more than the others;
* ``leader``      -- the node the system says is leader, following a
  ``leader`` hint in a ``not-leader`` answer; falls back to random while no
  leader is known.

Routing draws from its own rng stream, so the op plan (what is asked) does
not change with the routing (where it is asked).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

ROUTINGS = ("random", "round-robin", "weighted", "leader")


@runtime_checkable
class NodeClient(Protocol):
    """A connection to one node. Thread-confined: one per worker per node."""

    def invoke(self, f: str, key: Any = None, value: Any = None) -> dict[str, Any]:
        """Run one op; answer a completion dict and never raise for network trouble."""
        ...

    def status(self) -> dict[str, Any]:
        """The node's status document; may raise when the node does not answer."""
        ...

    def close(self) -> None:
        """Drop the connection; the client may reconnect if used again."""
        ...


class Router:
    """Chooses a node per op and keeps one client per node for one worker.

    Args:
        node_ids: the cluster's node ids, in order.
        open_client: ``node_id -> NodeClient``, called lazily once per node.
        routing: one of :data:`ROUTINGS`.
        rng: the worker's routing rng.
        worker: the worker's index (round-robin offset).
        leader_of: ``() -> node id | None``, the shared leader cache (for
            ``leader`` routing).
        weights: ``{node id: weight}`` for ``weighted`` routing (missing: 1).
    """

    def __init__(
        self,
        node_ids: list[str],
        open_client: Callable[[str], NodeClient],
        routing: str,
        rng: random.Random,
        worker: int = 0,
        leader_of: Callable[[], str | None] | None = None,
        weights: dict[str, float] | None = None,
    ) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"unknown routing {routing!r}; available: {', '.join(ROUTINGS)}")
        self.node_ids = list(node_ids)
        self._open = open_client
        self.routing = routing
        self.rng = rng
        self._next = worker
        self._leader_of = leader_of
        self._hint: str | None = None
        self._clients: dict[str, NodeClient] = {}
        self.weights = [float((weights or {}).get(n, 1.0)) for n in self.node_ids]
        if routing == "weighted" and not any(w > 0 for w in self.weights):
            raise ValueError("weighted routing needs at least one node with a positive weight")

    def pick(self) -> str:
        """The node for the next op."""
        if self.routing == "round-robin":
            node = self.node_ids[self._next % len(self.node_ids)]
            self._next += 1
            return node
        if self.routing == "weighted":
            return self.rng.choices(self.node_ids, weights=self.weights)[0]
        if self.routing == "leader":
            leader = self._hint or (self._leader_of() if self._leader_of else None)
            if leader in self.node_ids:
                return leader
        return self.rng.choice(self.node_ids)

    def client(self, node: str) -> NodeClient:
        c = self._clients.get(node)
        if c is None:
            c = self._clients[node] = self._open(node)
        return c

    def observe(self, node: str, completion: dict[str, Any]) -> None:
        """Learn from a completion: follow leader hints, forget a leader that failed."""
        if self.routing != "leader":
            return
        hint = completion.get("leader")
        if hint in self.node_ids:
            self._hint = hint
        elif completion.get("type") != "ok" and self._hint == node:
            self._hint = None

    def close(self) -> None:
        for c in self._clients.values():
            try:
                c.close()
            except Exception:
                pass
        self._clients.clear()
