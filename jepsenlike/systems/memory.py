"""``memory``: an in-process, linearizable key-value store posing as a cluster.

Theory of operation
-------------------
Every "node" of a :class:`MemoryCluster` is a view of one shared
:class:`jepsenlike.models.kv.KVStore` guarded by one lock, so every op takes
effect atomically at one instant between its invocation and completion: the
store is linearizable by construction. There is no network and no process;
it exists to measure the harness's own overhead and to test the harness fast.

Faults are simulated with the same meaning they have on real nodes:

* a *killed* node refuses connections: ops answer ``fail`` at once (nothing
  was sent), and a restart brings it back with the same data;
* a *paused* node holds every request until it is resumed; a client that gives
  up first records ``info`` (the held op is then dropped, which ``info``
  allows).

``--bug stale-read`` gives each node a private replica that catches up with
the shared store only now and then (decided by the cluster's seeded rng);
reads are served from the replica, so they can return old values -- a
non-linearizable history the register workload must catch.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from jepsenlike.models.kv import KVStore
from jepsenlike.systems.base import NodeSpec, System

BUGS = ("stale-read",)


class MemoryCluster:
    """The shared state of an in-process cluster and its fault switches."""

    def __init__(self, nodes: list[str], *, bug: str | None = None, seed: int = 0) -> None:
        self.nodes = list(nodes)
        self.bug = bug
        self.store = KVStore()
        self.lock = threading.Condition()
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.rng = random.Random(f"{seed}/memory")
        self.replicas = {n: KVStore() for n in nodes} if bug == "stale-read" else {}
        self.applied = 0

    # -- fault switches (called by the in-process backend) --------------------

    def kill(self, node: str) -> None:
        with self.lock:
            self.killed.add(node)
            self.paused.discard(node)
            self.lock.notify_all()

    def restart(self, node: str) -> None:
        with self.lock:
            self.killed.discard(node)
            self.lock.notify_all()

    def pause(self, node: str) -> None:
        with self.lock:
            self.paused.add(node)

    def resume(self, node: str) -> None:
        with self.lock:
            self.paused.discard(node)
            self.lock.notify_all()

    # -- the node API ---------------------------------------------------------

    def invoke(self, node: str, f: str, key: Any, value: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.lock:
            if node in self.killed:
                return {"type": "fail", "value": None, "error": "connect: connection refused"}
            while node in self.paused:
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"type": "info", "value": None, "error": "timeout"}
                self.lock.wait(left)
                if node in self.killed:
                    return {"type": "info", "value": None, "error": "connection: reset"}
            if self.replicas and f == "read":
                replica = self.replicas[node]
                if self.rng.random() < 0.3:
                    self.replicas[node] = replica = KVStore.restore(self.store.snapshot())
                res = replica.apply({"f": f, "key": key, "value": value})
            else:
                res = self.store.apply({"f": f, "key": key, "value": value})
                self.applied += 1
        return {"type": res["type"], "value": res.get("value"), "error": res.get("error")}

    def status(self, node: str) -> dict[str, Any]:
        with self.lock:
            if node in self.killed:
                raise ConnectionRefusedError(f"{node} is killed")
            if node in self.paused:
                raise TimeoutError(f"{node} is paused")
            return {
                "id": node,
                "role": "replica",
                "term": 0,
                "leader": None,
                "commit_index": self.applied,
                "applied_index": self.applied,
                "time": time.time(),
            }


class MemoryClient:
    """A :class:`jepsenlike.client.NodeClient` for one node of a :class:`MemoryCluster`."""

    def __init__(self, cluster: MemoryCluster, node: str, timeout: float) -> None:
        self.cluster = cluster
        self.node = node
        self.timeout = timeout

    def invoke(self, f: str, key: Any = None, value: Any = None) -> dict[str, Any]:
        return self.cluster.invoke(self.node, f, key, value, self.timeout)

    def status(self) -> dict[str, Any]:
        return self.cluster.status(self.node)

    def close(self) -> None:
        pass


class MemorySystem(System):
    name = "memory"
    description = "in-process linearizable key-value store (no network; harness benchmarks and fast tests)"
    backends = ("in-process",)
    default_backend = "in-process"
    bugs = BUGS
    workloads = frozenset({"register", "set", "append"})
    faults = frozenset({"kill", "pause"})  # one store in one process: no links, no clocks

    def __init__(self) -> None:
        self.cluster: MemoryCluster | None = None

    def make_cluster(self, nodes: list[str], *, bug: str | None, seed: int) -> MemoryCluster:
        self.cluster = MemoryCluster(nodes, bug=bug, seed=seed)
        return self.cluster

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        raise NotImplementedError("the memory system runs in-process; it has no command line")

    def open_client(self, node: NodeSpec, timeout: float) -> MemoryClient:
        if self.cluster is None:
            raise RuntimeError("memory cluster not started")
        return MemoryClient(self.cluster, node.id, timeout)
