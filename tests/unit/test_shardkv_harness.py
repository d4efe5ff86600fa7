"""Harness side of shardkv: --groups, weighted routing, the system's node command, the
shard-move nemesis on a system that cannot move shards."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from jepsenlike.client import Router
from jepsenlike.config import build_config
from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.core import FaultOp
from jepsenlike.nemesis.package import build_packages
from jepsenlike.systems import get_system
from jepsenlike.systems.base import NodeSpec


def test_groups_alone_means_three_nodes_per_group(tmp_path):
    cfg = build_config({"system": "shardkv", "workload": "append", "groups": "3", "store": str(tmp_path)})
    assert (cfg.nodes, cfg.groups) == (9, 3)
    cfg = build_config({"system": "shardkv", "workload": "append", "groups": "2", "nodes": "10",
                        "store": str(tmp_path)})
    assert cfg.nodes == 10
    assert "--groups 2" in cfg.reproduce_command()


@pytest.mark.parametrize("flags, message", [
    ({"system": "shardkv", "groups": "2", "nodes": "5"}, "--groups: 5 nodes cannot form 2 equal groups"),
    ({"system": "raft", "groups": "2"}, "--groups: system 'raft' does not run replica groups"),
    ({"routing": "weighted", "routing_weights": "n9=2"}, "--routing-weights: expected NODE=WEIGHT"),
    ({"routing": "weighted", "routing_weights": "n1=-1"}, "the weight of n1 must be a number >= 0"),
    ({"routing": "random", "routing_weights": "n1=2"}, "weights only apply to --routing weighted"),
    ({"nodes": "2", "routing": "weighted", "routing_weights": "n1=0,n2=0"}, "every node weighs 0"),
])
def test_bad_groups_and_weights_are_refused_in_one_line(tmp_path, flags, message):
    flags = {"workload": "append", "store": str(tmp_path), **flags}
    with pytest.raises(ConfigError) as e:
        build_config(flags)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_weighted_routing_follows_the_weights():
    nodes = ["n1", "n2", "n3"]
    r = Router(nodes, lambda n: None, "weighted", random.Random(7), weights={"n1": 8, "n3": 0})
    picks = Counter(r.pick() for _ in range(3000))
    assert picks["n3"] == 0  # weight 0: never
    assert 7 < picks["n1"] / picks["n2"] < 9.5  # n2 weighs 1 (not listed)
    with pytest.raises(ValueError, match="positive weight"):
        Router(nodes, lambda n: None, "weighted", random.Random(1), weights=dict.fromkeys(nodes, 0))


def test_node_command_names_the_groups():
    system = get_system("shardkv")
    system.groups = 3
    argv = system.node_command(NodeSpec("n4", "127.0.0.1:1", "127.0.0.1:2", "/tmp/x"), {"n1": "a:1"},
                               bug="no-read-locks", seed=5)
    assert argv[argv.index("--groups") + 1] == "3" and argv[argv.index("--bug") + 1] == "no-read-locks"
    assert "-m" in argv and "jepsenlike.models.shardkv" in argv


def test_shard_move_on_a_system_that_cannot_move_shards_says_so():
    (pkg,) = build_packages(["shard-move"])
    assert pkg.lane == "shards" and pkg.final == (FaultOp("settle-shards"),)

    class Ctx:
        system = get_system("raft")
        backend = type("B", (), {"nodes": []})()
        node_ids: list[str] = []
        rng = random.Random(0)

        def leader(self):
            return None

    done = pkg.nemesis.invoke(Ctx(), FaultOp("move-shard", "random"))
    assert done.type == "info" and done.error == "system 'raft' does not move shards"


def test_group_partition_shape_cuts_one_whole_group_off_the_rest():
    from jepsenlike.nemesis.partition import PartitionNemesis

    system = get_system("shardkv")
    system.groups = 3
    applied = []

    class Ctx:
        backend = type("B", (), {"apply_grudge": lambda self, g: applied.append(g)})()
        node_ids = [f"n{i}" for i in range(1, 10)]
        rng = random.Random(4)

        def __init__(self, system):
            self.system = system

        def leader(self):
            return None

    done = PartitionNemesis().invoke(Ctx(system), FaultOp("start-partition", "group"))
    members = [["n1", "n2", "n3"], ["n4", "n5", "n6"], ["n7", "n8", "n9"]]
    cut = members[done.value["group"]]
    assert done.value["isolated"] == cut
    grudge = applied[0]
    for n in Ctx.node_ids:
        inside = n in cut
        assert set(grudge[n]) == (set(Ctx.node_ids) - set(cut) if inside else set(cut)), n
    # A system without groups: one random node, and the completion says so.
    done = PartitionNemesis().invoke(Ctx(get_system("raft")), FaultOp("start-partition", "group"))
    assert len(done.value["isolated"]) == 1 and "no replica groups" in done.value["note"]


def test_group_shape_needs_groups(tmp_path):
    with pytest.raises(ConfigError, match="shape 'group' cuts one replica group off the others"):
        build_config({"system": "raft", "workload": "append", "nemesis": "partition",
                      "partition_shapes": "group", "store": str(tmp_path)})
    cfg = build_config({"system": "shardkv", "workload": "append", "groups": "2", "nemesis": "partition",
                        "partition_shapes": "group,leader", "store": str(tmp_path)})
    assert cfg.partition_shapes == ("group", "leader")
