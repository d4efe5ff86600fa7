"""``shardkv``: keys sharded over Raft groups, transactions by two-phase commit.

The nodes are :mod:`jepsenlike.models.shardkv` processes, started like the Raft ones
(:class:`~jepsenlike.systems.raft.KVNodeSystem`) with ``--groups G`` added: the run's
``--groups`` (default 1; ``--groups G`` alone makes ``3G`` nodes). Its API is the
transactional one, so it takes the ``append`` workload. The leader it reports, for
``leader`` routing and the ``leader`` fault target, is the leader of one group chosen
at random each time, and None until every group has one (so the harness's
recovery phase waits for all groups).
"""

from __future__ import annotations

import random
from typing import Any

from jepsenlike.systems.base import NodeSpec
from jepsenlike.systems.raft import KVNodeSystem


class ShardKVSystem(KVNodeSystem):
    name = "shardkv"
    description = "keys sharded over Raft groups, multi-key transactions by 2PC (jepsenlike.models.shardkv)"
    module = "jepsenlike.models.shardkv"
    grouped = True
    workloads = frozenset({"append"})
    faults = frozenset({"kill", "pause", "partition", "clock", "slow", "flaky"})
    option_names = ("shards", "recover-after", "recover-ms", "tick-ms", "election-ticks",
                    "heartbeat-ticks", "op-timeout", "snapshot-every", "max-batch", "log-level")

    def __init__(self) -> None:
        self._rng = random.Random()

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        return [*super().node_command(node, peers, bug=bug, seed=seed), "--groups", str(self.groups)]

    def group_statuses(self, nodes: list[NodeSpec], timeout: float = 0.5) -> list[dict[str, Any]]:
        """The status of every node that answers (each names its ``group``)."""
        out = []
        for node in nodes:
            st = self.status(node, timeout)
            if st is not None:
                out.append({**st, "id": node.id})
        return out

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        best: dict[int, tuple[int, str]] = {}
        for st in self.group_statuses(nodes, timeout):
            if st.get("role") == "leader":
                g, term = int(st.get("group", 0)), int(st.get("term") or 0)
                if g not in best or term > best[g][0]:
                    best[g] = (term, st["id"])
        if len(best) < self.groups:
            return None
        return best[self._rng.choice(sorted(best))][1]
