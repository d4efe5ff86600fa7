"""Test configuration: layering, validation messages, serialisation, system plugins."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from jepsenlike.config import TestConfig, build_config, load_toml
from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.systems import get_system, system_names


def mem(**flags):
    return build_config({"system": "memory", **flags})


def test_defaults_are_the_documented_ones():
    c = TestConfig()
    assert (c.system, c.backend, c.nodes, c.workload, c.nemesis, c.time_limit) == (
        "raft", "local", 5, "register", ("kill", "pause", "partition", "clock"), 30.0)


def test_flags_are_coerced_and_a_seed_is_always_drawn():
    c = mem(nodes="3", rate="250", nemesis="pause", time_limit="8s")
    assert c.nodes == 3 and c.rate == 250.0 and c.nemesis == ("pause",) and c.time_limit == 8.0
    assert isinstance(c.seed, int)
    assert mem(seed="42").seed == 42


def test_nemesis_none_means_no_faults():
    assert mem(nemesis="none").nemesis == ()


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"nemesis": "partiton"}, "--nemesis: unknown nemesis 'partiton'; available: clock, flaky, flip-partition, kill, kill-cluster, kill-elected, leader-clock, leader-pause, partition, pause, shard-move, slow"),
        ({"workload": "bank"}, "--workload: unknown workload 'bank'; available: append, register, set"),
        ({"routing": "sticky"}, "--routing: unknown routing 'sticky'; available: random, round-robin, weighted, leader"),
        ({"backend": "k8s"}, "--backend: unknown backend 'k8s'; available: docker, in-process, local"),
        ({"nodes": "0"}, "--nodes: must be >= 1, got 0"),
        ({"nodes": "three"}, "--nodes: expected an integer, got 'three'"),
        ({"time_limit": "-1"}, "--time-limit: must be > 0, got -1.0"),
        ({"concurrency": "0"}, "--concurrency: must be >= 1, got 0"),
        ({"targets": "half"}, "--targets: unknown target 'half'; available: one, minority, majority, all, leader"),
        ({"targets": "n1+n9", "nodes": "3"}, "--targets: node(s) n9 not in the cluster (n1, n2, n3)"),
        ({"bug": "typo"}, "--bug: system 'memory' has no bug 'typo'; available: stale-read"),
        ({"routing": "leader"}, "--routing: 'leader' routing needs a system that can tell its leader"),
        ({"nemesis": "kill,kill"}, "--nemesis: a nemesis is listed twice"),
        ({"seed": "abc"}, "--seed: expected an integer seed, got 'abc'"),
    ],
)
def test_each_bad_flag_is_named_with_the_valid_choices(flags, message):
    with pytest.raises(ConfigError) as e:
        mem(**flags)
    assert message in str(e.value)


def test_unknown_system_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"--system: unknown system 'rafft'; available: etcd, memory, paxos, raft, shardkv, zookeeper"):
        build_config({"system": "rafft"})


def test_toml_file_is_layered_under_flags(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text(textwrap.dedent("""
        system = "memory"
        nodes = 3
        time-limit = 12
        nemesis = ["pause"]
        seed = 5
    """))
    c = build_config({"nodes": "7"}, f)
    assert (c.system, c.nodes, c.time_limit, c.nemesis, c.seed) == ("memory", 7, 12.0, ("pause",), 5)


def test_toml_errors_name_the_file_and_key(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('system = "memory"\nnemesis = ["partiton"]\n')
    with pytest.raises(ConfigError, match=r"run.toml: nemesis: unknown nemesis 'partiton'; available: clock, flaky, flip-partition, kill"):
        build_config({}, f)
    f.write_text('sytem = "memory"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'sytem'; known keys: name, system"):
        load_toml(f)
    f.write_text("system = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_toml(f)
    with pytest.raises(ConfigError, match="--config: no such file"):
        build_config({}, tmp_path / "missing.toml")


def test_config_round_trips_through_test_json_and_is_frozen():
    c = mem(seed="9", nemesis="kill", targets="leader,n1+n2")
    again = TestConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    with pytest.raises(AttributeError):
        c.nodes = 3  # type: ignore[misc]


def test_reproduce_command_rebuilds_the_same_config():
    c = mem(seed="123", nodes="3", nemesis="pause", time_limit="8", bug="stale-read", store="/tmp/x y")
    cmd = c.reproduce_command()
    assert "--seed 123" in cmd and "--store '/tmp/x y'" in cmd
    import shlex

    from jepsenlike.commands.run import FLAGS
    argv = shlex.split(cmd)[2:]
    flags = {}
    names = {"--" + n.replace("_", "-"): n for n, _, _ in FLAGS}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        flags[names[flag]] = value
    assert build_config(flags) == c


def test_system_plugins_load_through_entry_points(tmp_path, monkeypatch):
    pkg = tmp_path / "mydb_plugin.py"
    pkg.write_text(textwrap.dedent("""
        from jepsenlike.systems.memory import MemorySystem
        class MyDB(MemorySystem):
            name = "mydb"
        class NotASystem:
            pass
    """))
    dist = tmp_path / "mydb_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mydb-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[jepsenlike.systems]\nmydb = mydb_plugin:MyDB\nbroken = mydb_plugin:NotASystem\n"
        "missing = mydb_plugin:Nope\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mydb_plugin", raising=False)
    assert {"mydb", "broken"} <= set(system_names())
    assert get_system("mydb").name == "mydb"
    assert build_config({"system": "mydb", "nemesis": "kill"}).system == "mydb"
    with pytest.raises(PluginError, match=r"'broken' \(distribution mydb-plugin\) gave NotASystem"):
        get_system("broken")
    with pytest.raises(PluginError, match=r"'missing' .*failed to load: AttributeError"):
        get_system("missing")
    monkeypatch.setenv("JEPSENLIKE_NO_PLUGINS", "1")
    assert "mydb" not in system_names()
