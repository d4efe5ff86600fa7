"""The System interface: how to run one kind of node and talk to it.

Theory of operation
-------------------
A :class:`System` knows nothing about *where* nodes run; a backend asks it
for what it needs:

* :meth:`System.node_command` -- the argv that starts one node, given the
  node's :class:`NodeSpec` (id, addresses, data dir) and the addresses of its
  peers, plus the run's ``bug`` and ``seed``;
* :meth:`System.probe` -- is this node ready to serve (called until true or
  the backend's readiness timeout);
* :meth:`System.leader` -- optionally, which node is the leader now (used by
  the ``leader`` routing and the ``leader`` nemesis target);
* :meth:`System.open_client` -- a :class:`jepsenlike.client.NodeClient` for one
  node, one per worker so that workers never share a connection.

A system that runs inside the harness (``memory``) sets ``in_process`` and
provides :meth:`System.make_cluster` instead of a command line; the backend
then drives the in-process cluster's kill/pause switches directly.

Systems register by name: the built-ins in :mod:`jepsenlike.systems`, third
parties through the ``jepsenlike.systems`` entry-point group (see
``docs/testing-your-system.md``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from jepsenlike.client import NodeClient


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster, as the backend laid it out.

    Attributes:
        id: the node's name, ``n1`` .. ``nN``.
        client_addr: ``host:port`` clients connect to.
        peer_addr: ``host:port`` the node listens on for its peers.
        data_dir: the node's own directory for durable state.
    """

    id: str
    client_addr: str
    peer_addr: str
    data_dir: str


class System(ABC):
    """How to run and talk to one kind of node. Subclass and register by name."""

    #: The name users pass to ``--system``.
    name: str = ""
    #: One line for ``--help`` and error messages.
    description: str = ""
    #: True when the nodes live inside the harness process (no command line).
    in_process: bool = False
    #: Known ``--bug`` names, or None when the system does not declare them
    #: (the flag is then passed through unchecked).
    bugs: tuple[str, ...] | None = None

    #: Node options ``--system-options`` accepts (``key=value``), or None to pass any.
    option_names: tuple[str, ...] | None = ()
    #: The options in force for this run (set by :meth:`configure`).
    options: dict[str, str] = {}

    def configure(self, options: dict[str, str], bug: str | None = None) -> None:
        """Take the run's ``--system-options`` (and see its ``--bug``) before nodes start.

        Raises:
            ConfigError: an unknown option, or a combination that cannot work.
        """
        from jepsenlike.errors import ConfigError

        if self.option_names is not None:
            unknown = sorted(set(options) - set(self.option_names))
            if unknown:
                raise ConfigError(
                    f"system {self.name!r} has no option {unknown[0]!r}; available: "
                    f"{', '.join(self.option_names) or '(none)'}"
                )
        self.options = dict(options)

    def unavailable_reason(self) -> str | None:
        """Why this system cannot run here (e.g. its module is missing), or None."""
        return None

    @abstractmethod
    def node_command(
        self,
        node: NodeSpec,
        peers: dict[str, str],
        *,
        bug: str | None,
        seed: int,
    ) -> list[str]:
        """The argv that starts ``node``.

        Args:
            node: this node's id, addresses and data dir.
            peers: for every *other* node, the address this node should dial.
            bug: a seeded bug name to enable, or None.
            seed: the run's seed, for the node's own randomness.
        """

    @abstractmethod
    def open_client(self, node: NodeSpec, timeout: float) -> NodeClient:
        """A fresh client connected to ``node`` (lazily; must not raise if it is down)."""

    def probe(self, node: NodeSpec, timeout: float = 1.0) -> bool:
        """True when ``node`` is ready to serve. Default: ``status()`` answers."""
        client = self.open_client(node, timeout)
        try:
            client.status()
            return True
        except Exception:
            return False
        finally:
            client.close()

    def status(self, node: NodeSpec, timeout: float = 1.0) -> dict[str, Any] | None:
        """The node's status document, or None if it does not answer."""
        client = self.open_client(node, timeout)
        try:
            return client.status()
        except Exception:
            return None
        finally:
            client.close()

    #: True when :meth:`leader` can answer; the ``leader`` routing and target need it.
    can_tell_leader: bool = False

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        """The id of the current leader, if the system has one and it is known."""
        return None

    def make_cluster(self, nodes: list[str], *, bug: str | None, seed: int) -> Any:
        """For ``in_process`` systems: build the in-memory cluster."""
        raise NotImplementedError(f"system {self.name!r} runs as processes, not in-process")
