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
  node, one per worker so that workers never share a connection;
* :attr:`System.workloads` and :attr:`System.faults` -- optionally, the
  workloads and fault kinds it supports; others are refused up front
  (:mod:`jepsenlike.capabilities`);
* :meth:`System.wall_clock` -- optionally, the node's own wall clock, with
  which clock faults are confirmed (:mod:`jepsenlike.confirm`);
* :meth:`System.container_recipe` -- optionally, for the ``docker`` backend, a
  :class:`ContainerRecipe`: Dockerfile lines and files that put the system's own
  programs into the container, on top of jepsenlike's node image (default None:
  the node image is enough, as for the reference nodes).

A system that runs inside the harness (``memory``) says so by naming the
backends it runs on (``backends = ("in-process",)``, also its
``default_backend``) and provides :meth:`System.make_cluster` instead of a
command line; the ``in-process`` backend then drives the cluster's kill/pause
switches directly.

Systems register by name: the built-ins in :mod:`jepsenlike.systems`, third
parties through the ``jepsenlike.systems`` entry-point group (see
``docs/testing-your-system.md``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

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


#: What a :class:`ContainerRecipe` file is made from: its bytes, or a host path
#: (a file, or a directory copied whole).
RecipeSource = Union[bytes, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ContainerRecipe:
    """How to put a system's own programs into the docker backend's node containers.

    The docker backend builds an image ``FROM`` jepsenlike's node image (Debian
    bookworm with Python 3.11, iptables, iproute2, libfaketime, and the project in
    ``/opt/jepsenlike``), adds :attr:`files` to the build context, runs
    :attr:`lines`, and starts the system's nodes from that image. The image is
    tagged ``jepsenlike-system:<name>-<hash12>``, the hash covering the lines,
    every file's name, bytes and mode, and the node image: an unchanged recipe is
    built once and then found.

    Attributes:
        lines: Dockerfile instructions run on top of the node image, in order
            (``RUN``, ``ENV``, ``COPY``, ``ADD``, ``WORKDIR``, ``USER``, ...; a
            line ending in ``\\`` continues on the next). ``FROM``, ``ENTRYPOINT``
            and ``CMD`` are refused: the backend picks the base and runs
            :meth:`System.node_command` itself. No registry is needed unless a
            line fetches from the network.
        files: ``{path in the build context: source}`` for ``COPY``/``ADD`` to
            use. A source is ``bytes`` (made executable when it starts with
            ``#!``) or a host path: a file (its owner-execute bit is kept) or a
            directory (copied whole, without ``__pycache__``, ``*.pyc`` and
            hidden entries). Context paths are relative, without ``..``, and not
            ``Dockerfile``.
        base_image: for users with a registry: build jepsenlike's node layer
            ``FROM`` this image (any Debian-like image with Python >= 3.11 and
            pip, e.g. one that already ships your database), then apply the
            recipe. Default: the registry-free node image.
    """

    lines: Sequence[str] = ()
    files: Mapping[str, RecipeSource] = field(default_factory=dict)
    base_image: str | None = None

    def __post_init__(self) -> None:
        from jepsenlike.errors import ConfigError

        lines = (self.lines,) if isinstance(self.lines, str) else tuple(self.lines)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "files", dict(self.files))
        continued = False
        for line in lines:
            if not isinstance(line, str):
                raise ConfigError(f"container recipe lines are strings; got {line!r}")
            for sub in line.splitlines() or [""]:
                word = sub.strip().split(" ", 1)[0].upper()
                if not continued and word in ("FROM", "ENTRYPOINT", "CMD"):
                    raise ConfigError(
                        f"container recipe line {sub.strip()!r}: {word} is not allowed (the docker "
                        "backend chooses the base image and runs the system's node_command)"
                    )
                continued = sub.rstrip().endswith("\\")
        for dest, source in self.files.items():
            parts = dest.replace("\\", "/").split("/")
            if not dest or dest.startswith("/") or ".." in parts or dest.strip("/") == "Dockerfile":
                raise ConfigError(
                    f"container recipe file {dest!r}: context paths are relative, without '..', "
                    "and not 'Dockerfile'"
                )
            if not isinstance(source, (bytes, str, os.PathLike)):
                raise ConfigError(
                    f"container recipe file {dest!r}: the source is bytes or a path; got "
                    f"{type(source).__name__}"
                )


class System(ABC):
    """How to run and talk to one kind of node. Subclass and register by name."""

    #: The name users pass to ``--system``.
    name: str = ""
    #: One line for ``--help`` and error messages.
    description: str = ""
    #: The backends it runs on, or None for every backend that starts node commands.
    backends: tuple[str, ...] | None = None
    #: The backend a run uses when ``--backend`` is not given.
    default_backend: str = "local"
    #: Known ``--bug`` names, or None when the system does not declare them
    #: (the flag is then passed through unchecked).
    bugs: tuple[str, ...] | None = None

    #: True when every member is named by one address that all peers dial (etcd's peer
    #: URLs, ZooKeeper's server list): per-link proxies cannot serve it, so the local
    #: backend runs each node in its own network namespace (root).
    own_address: bool = False
    #: Backend capability (``clock``, ``kill``, ``pause``, ``net``) -> why faults needing it
    #: cannot act on this system (e.g. a static Go binary ignores libfaketime). Faults
    #: needing a listed capability are refused up front with this reason.
    refused_capabilities: Mapping[str, str] = {}
    #: Workloads its API supports (``{"register", "set", "append"}``), or None: not declared.
    workloads: frozenset[str] | None = None
    #: Fault kinds that act on its nodes (see :mod:`jepsenlike.capabilities`), or None: not declared.
    faults: frozenset[str] | None = None

    def fault_refusals(self) -> dict[str, str]:
        """Capability -> why this system cannot take faults that need it (default: the table)."""
        return dict(self.refused_capabilities)

    #: True when the system runs its nodes as several replica groups (``--groups``).
    grouped: bool = False
    #: The run's ``--groups`` (set by the harness before :meth:`configure`; 1 when not given).
    groups: int = 1

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

    def wall_clock(self, node: NodeSpec, timeout: float = 0.3) -> float | None:
        """The node's own wall clock now (epoch seconds), or None if it cannot tell.

        Clock faults are confirmed with it (:mod:`jepsenlike.confirm`); with None
        the backend starts a probe process under the node's preload instead.
        """
        return None

    #: True when :meth:`leader` can answer; the ``leader`` routing and target need it.
    can_tell_leader: bool = False

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        """The id of the current leader, if the system has one and it is known."""
        return None

    def container_recipe(self) -> ContainerRecipe | None:
        """What the ``docker`` backend adds to its node image for this system, or None.

        None (the default) runs :meth:`node_command` in jepsenlike's node image as
        it is, which is all the reference nodes need. A system whose nodes need
        their own programs returns a :class:`ContainerRecipe`; its
        :meth:`node_command` then names them as they are inside the container.
        Called once per backend start, after :meth:`configure`.
        """
        return None

    def make_cluster(self, nodes: list[str], *, bug: str | None, seed: int) -> Any:
        """For systems on the ``in-process`` backend: build the in-memory cluster."""
        raise NotImplementedError(f"system {self.name!r} runs as processes, not in-process")
