"""``in-process``: the backend of systems whose cluster lives inside the harness.

An in-process system (``memory``) has no processes to signal; this backend
builds its cluster object and forwards ``kill``/``restart``/``pause``/``resume``
to the cluster's fault switches, which simulate what the signals would do (see
:mod:`jepsenlike.systems.memory`). It offers ``kill`` and ``pause``; ``net``
and ``clock`` are refused with a reason (:data:`REFUSALS`): the nodes share one
store in one process, so there is no peer traffic to cut and no per-node clock
that the store reads.
"""

from __future__ import annotations

from typing import Any

from jepsenlike.backends.base import CLOCK, KILL, NET, PAUSE, Backend
from jepsenlike.systems.base import NodeSpec, System

REFUSALS = {
    NET: "the in-process system's nodes share one store in the harness process; "
         "there is no peer traffic for the proxies to cut (use raft or paxos for network faults)",
    CLOCK: "the in-process system's nodes are not processes and read no clock; "
           "libfaketime cannot skew them (use raft or paxos for clock faults)",
}


class InProcessBackend(Backend):
    """A cluster inside the harness (memory): kill and pause through its fault switches.

    Runs no node commands: the system's ``make_cluster`` builds the cluster.
    """

    name = "in-process"
    capabilities = frozenset({KILL, PAUSE})
    refusals = REFUSALS
    node_commands = False

    @staticmethod
    def capabilities_here(n_nodes: int = 2) -> tuple[frozenset[str], dict[str, str]]:
        """``kill`` and ``pause``, whatever the machine; the rest refused with a reason."""
        return InProcessBackend.capabilities, dict(REFUSALS)

    def __init__(self, system: System, n_nodes: int, run_dir: Any = None, *, bug: str | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.system = system
        self.nodes = [NodeSpec(f"n{i + 1}", f"mem:n{i + 1}", f"mem:n{i + 1}", "") for i in range(n_nodes)]
        self.bug = bug
        self.seed = seed
        self.cluster: Any = None
        self.state = {n.id: "up" for n in self.nodes}

    def start(self) -> None:
        self.cluster = self.system.make_cluster(self.node_ids, bug=self.bug, seed=self.seed)

    def teardown(self) -> None:
        if self.cluster is not None:
            for nid in self.node_ids:
                self.cluster.resume(nid)

    def kill(self, node_id: str) -> None:
        self.cluster.kill(node_id)
        self.state[node_id] = "killed"

    def restart(self, node_id: str) -> None:
        self.cluster.restart(node_id)
        self.state[node_id] = "up"

    def pause(self, node_id: str) -> None:
        if self.state[node_id] == "up":
            self.cluster.pause(node_id)
            self.state[node_id] = "paused"

    def resume(self, node_id: str) -> None:
        if self.state[node_id] == "paused":
            self.cluster.resume(node_id)
            self.state[node_id] = "up"

    def node_state(self, node_id: str) -> str:
        return self.state[node_id]

    def observer(self) -> Any:
        from jepsenlike.confirm import InProcessObserver

        return InProcessObserver(self)
