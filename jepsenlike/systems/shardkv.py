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
import time
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

    def group_members(self, node_ids: list[str]) -> list[list[str]]:
        """The replica groups' members, as the nodes compute them (for the ``group`` partition shape)."""
        from jepsenlike.models.shardkv.server import group_layout

        return group_layout(list(node_ids), self.groups)

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

    def move_shard(self, nodes: list[NodeSpec], rng: random.Random, timeout: float = 3.0) -> dict[str, Any]:
        """Move one shard, chosen with ``rng``, to another group; say what happened.

        Asks the shard's group (any of its nodes; they forward to the leader) for a
        replicated ``shard-out``; the group then hands the shard to its new owner itself
        (``shard-in``, retried until acknowledged). ``busy`` (the shard's keys are locked
        by transactions in flight) is retried until ``timeout``.
        """
        from jepsenlike.models.client import KVClient

        by_id = {n.id: n for n in nodes}
        leaders = [st for st in self.group_statuses(nodes, 0.5) if st.get("role") == "leader"]
        owned = sorted({(s, int(st["group"])) for st in leaders for s in st.get("owned", [])})
        if self.groups < 2:
            return {"error": "one group: nowhere to move a shard"}
        if not owned:
            return {"error": "no group leader answered"}
        shard, src = rng.choice(owned)
        dst = rng.choice([g for g in range(self.groups) if g != src])
        members = next(st["members"] for st in leaders if int(st["group"]) == src)
        out: dict[str, Any] = {"shard": shard, "from": src, "to": dst}
        deadline = time.monotonic() + timeout
        res: dict[str, Any] = {"type": "fail", "error": "not-tried"}
        while time.monotonic() < deadline:
            node = by_id[rng.choice(members)]
            with KVClient(node.client_addr, timeout=2.0) as client:
                res = client.invoke("shard-out", None, {"shard": shard, "to": dst})
            if res.get("type") == "ok" or res.get("error") == "wrong-group":
                break
            time.sleep(0.05)
        out["result"] = res.get("type")
        if res.get("type") == "ok":
            out["epoch"] = (res.get("value") or {}).get("epoch")
        else:
            out["error"] = res.get("error")
        return out

    def shards_settled(self, nodes: list[NodeSpec], timeout: float = 10.0) -> dict[str, Any]:
        """Wait until no group leader has a shard waiting to be handed over."""
        deadline = time.monotonic() + timeout
        handing = -1
        while time.monotonic() < deadline:
            sts = self.group_statuses(nodes, 0.5)
            leaders = {int(st["group"]) for st in sts if st.get("role") == "leader"}
            handing = sum(int(st.get("handing") or 0) for st in sts if st.get("role") == "leader")
            if handing == 0 and len(leaders) == self.groups:
                return {"settled": True}
            time.sleep(0.2)
        return {"settled": False, "handing": handing}
