"""Backends: where nodes run, and which faults they can inject.

Theory of operation
-------------------
A :class:`Backend` lays out a cluster of ``n`` nodes for one
:class:`~jepsenlike.systems.base.System` (ids ``n1..nN``, addresses, data
dirs), starts them, waits until each is ready, and tears everything down.
Teardown is idempotent and must work from any state: after success, after a
failed start, from an exception handler, from ``atexit``.

Beyond start/stop a backend advertises *capabilities*, a set of names from
:data:`CAPABILITIES`; a nemesis names the capabilities it needs and the
harness refuses it, with the reason, where the backend lacks one (never a
check on the backend's type):

* ``kill``  -- :meth:`Backend.kill` (SIGKILL, or the in-process equivalent)
  and :meth:`Backend.restart` with the same data;
* ``pause`` -- :meth:`Backend.pause` / :meth:`Backend.resume` (SIGSTOP/SIGCONT).

``net`` (partitions) and ``clock`` arrive with the network and clock nemeses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from jepsenlike.errors import JepsenlikeError
from jepsenlike.systems.base import NodeSpec

KILL = "kill"
PAUSE = "pause"
CAPABILITIES = (KILL, PAUSE)


class NodeStartError(JepsenlikeError):
    """A node did not start or did not become ready; the message has its log tail."""


class Backend(ABC):
    """A running (or startable) cluster. Subclasses implement the capabilities they list."""

    name: str = ""
    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node {node_id!r}; nodes are {', '.join(self.node_ids)}")

    @abstractmethod
    def start(self) -> None:
        """Start every node and wait until each is ready.

        Raises:
            NodeStartError: a node exited or was not ready in time.
        """

    @abstractmethod
    def teardown(self) -> None:
        """Stop every node and release everything. Idempotent; never raises."""

    def kill(self, node_id: str) -> None:
        raise NotImplementedError(f"backend {self.name!r} cannot kill nodes")

    def restart(self, node_id: str) -> None:
        raise NotImplementedError(f"backend {self.name!r} cannot restart nodes")

    def pause(self, node_id: str) -> None:
        raise NotImplementedError(f"backend {self.name!r} cannot pause nodes")

    def resume(self, node_id: str) -> None:
        raise NotImplementedError(f"backend {self.name!r} cannot resume nodes")

    def node_state(self, node_id: str) -> str:
        """``up``, ``killed`` or ``paused`` as far as the backend did it."""
        return "up"

    def log_files(self) -> dict[str, Path]:
        """Node id -> its log file, for backends that capture logs."""
        return {}

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()
