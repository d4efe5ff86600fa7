"""``shard-move``: move shards between the replica groups of a sharded system.

Fault ops: ``move-shard`` (moves one shard, chosen from the nemesis rng, from its
group to another; completion ``{"shard": s, "from": g, "to": h, "result": ...}``)
and ``settle-shards`` (waits until every moved shard reached its new group; also the
final op). The moves themselves are the system's own replicated, fenced operations:
the nemesis only asks for them (:meth:`ShardKVSystem.move_shard
<jepsenlike.systems.shardkv.ShardKVSystem.move_shard>`). It runs in a lane of its
own, so moves overlap kills, pauses and partitions.

A system without ``move_shard`` (every one but ``shardkv``) answers each op with an
error saying so, and the run's evidence shows that the fault never acted.
"""

from __future__ import annotations

from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.package import NemesisPackage, PackageOptions


class ShardMoveNemesis(Nemesis):
    name = "shard-move"
    fs = frozenset({"move-shard", "settle-shards"})
    requires = frozenset()

    def __init__(self) -> None:
        self.moved = 0

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        system = getattr(test, "system", None)
        if system is None or not hasattr(system, "move_shard"):
            name = getattr(system, "name", "?")
            return op.complete({"nodes": []}, error=f"system {name!r} does not move shards")
        nodes = [n for n in test.backend.nodes if n.id in test.node_ids]
        if op.f == "move-shard":
            value = system.move_shard(nodes, test.rng)
            if value.get("result") == "ok":
                self.moved += 1
            return op.complete(value, error=value.get("error") if value.get("result") != "ok" else None)
        value = system.shards_settled(nodes)
        return op.complete(value, error=None if value.get("settled") else "shards still moving")

    def active(self) -> dict[str, list[str]]:
        return {"shards-moved": [str(self.moved)]} if self.moved else {}


def shard_move_package(options: PackageOptions) -> NemesisPackage:
    """Move shards between replica groups (shardkv), in a lane of its own."""
    return NemesisPackage("shard-move", ShardMoveNemesis(), (("move-shard", "settle-shards"),),
                          (FaultOp("settle-shards"),), ("random",), lane="shards")
