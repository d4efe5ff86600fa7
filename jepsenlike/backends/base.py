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
* ``pause`` -- :meth:`Backend.pause` / :meth:`Backend.resume` (SIGSTOP/SIGCONT);
* ``net``   -- peer traffic between nodes can be cut by a grudge
  (:meth:`Backend.apply_grudge`, :meth:`Backend.heal_network`), delayed
  (:meth:`Backend.slow_links`) and made to drop connections
  (:meth:`Backend.flaky_links`);
* ``clock`` -- each node's wall clock can be bumped, strobed, made to drift and
  reset through :meth:`Backend.clock` (a :class:`ClockControl`).

A backend that cannot offer a capability *here* (e.g. ``clock`` without
libfaketime) leaves it out of :attr:`Backend.capabilities` and says why in
:attr:`Backend.refusals`.
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from jepsenlike.errors import JepsenlikeError
from jepsenlike.systems.base import NodeSpec, System

KILL = "kill"
PAUSE = "pause"
NET = "net"
CLOCK = "clock"
CAPABILITIES = (KILL, PAUSE, NET, CLOCK)

Link = tuple[str, str]
"""A directed peer link ``(src, dst)``."""


class ClockControl(Protocol):
    """One node's wall clock, as the ``clock`` nemesis drives it
    (:class:`jepsenlike.faketime.FaketimeClock` is one)."""

    def bump(self, seconds: float) -> None:
        """Step the clock by ``seconds`` (negative: backwards)."""
        ...

    def set_rate(self, rate: float) -> None:
        """Run at ``rate`` seconds per real second from now on."""
        ...

    def strobe(self, delta: float, period: float, duration: float) -> None:
        """Flip between ``+delta`` and the course every ``period`` s for ``duration`` s."""
        ...

    def reset(self) -> None:
        """Back to real time."""
        ...


_LIVE: weakref.WeakSet[Backend] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def track_live(backend: Backend) -> None:
    """Register a started backend so that interpreter exit tears it down."""
    with _LIVE_LOCK:
        _LIVE.add(backend)


def untrack_live(backend: Backend) -> None:
    """Forget a backend whose teardown has run."""
    with _LIVE_LOCK:
        _LIVE.discard(backend)


def _teardown_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for b in live:
        b.teardown()


atexit.register(_teardown_all)


class NodeStartError(JepsenlikeError):
    """A node did not start or did not become ready; the message has its log tail."""



def node_argv(system: System, node: NodeSpec, peers: dict[str, str], *, bug: str | None,
              seed: int, python: str | None = None) -> list[str]:
    """``system``'s command line for ``node``; with ``python``, a command that starts with
    the harness's own interpreter runs under ``python`` instead (the path means nothing in a
    container or on another host)."""
    argv = system.node_command(node, peers, bug=bug, seed=seed)
    if python is not None and argv and argv[0] == sys.executable:
        argv = [python, *argv[1:]]
    return argv


class Backend(ABC):
    """A running (or startable) cluster. Subclasses implement the capabilities they list."""

    name: str = ""
    capabilities: frozenset[str] = frozenset()
    #: Capability name -> why this backend cannot offer it here.
    refusals: Mapping[str, str] = {}
    #: True when it starts each node from the system's ``node_command``; a system
    #: that does not say which backends it runs on runs on these.
    node_commands: bool = True
    #: The shortest readiness timeout worth using (containers start slower than processes).
    min_ready_timeout: float = 0.0

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

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        """Cut peer traffic: bytes from X to Y are held while ``X in grudge[Y]``."""
        raise NotImplementedError(f"backend {self.name!r} cannot partition the network")

    def heal_network(self) -> None:
        """End every partition."""
        raise NotImplementedError(f"backend {self.name!r} cannot partition the network")

    def slow_links(self, links: Iterable[Link] | None, latency_ms: float, jitter_ms: float) -> None:
        """Delay traffic on ``links`` (None: every link); 0, 0 removes the delay."""
        raise NotImplementedError(f"backend {self.name!r} cannot slow the network")

    def flaky_links(self, links: Iterable[Link] | None, drop_probability: float) -> None:
        """Drop connections on ``links`` (None: every link) at random; 0 stops it."""
        raise NotImplementedError(f"backend {self.name!r} cannot make the network flaky")

    def clock(self, node_id: str) -> ClockControl:
        """The wall clock of ``node_id``."""
        raise NotImplementedError(f"backend {self.name!r} cannot change clocks")

    def node_state(self, node_id: str) -> str:
        """``up``, ``killed`` or ``paused`` as far as the backend did it."""
        return "up"

    def log_files(self) -> dict[str, Path]:
        """Node id -> its log file, for backends that capture logs."""
        return {}

    def observer(self) -> Any:
        """What confirms faults on this backend's nodes (:mod:`jepsenlike.confirm`), or None."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()
