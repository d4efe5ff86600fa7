"""etcd and ZooKeeper from Debian's packages, run as a user runs them (``jepsenlike run``).

What each must show (issue 17), with fixed seeds and short runs:

* etcd, linearizable reads (the default): valid under partition, kill and pause,
  every fault fired; the list-append workload (read-modify-write txns guarded by
  mod revisions) has no anomaly under partitions and kills; clock faults are
  refused up front because etcd's Go runtime ignores libfaketime, with that reason;
* etcd, ``reads=serializable``: a stale read is caught under partitions that isolate
  one member (it keeps answering reads from its own state), with the witness;
* ZooKeeper, ``reads=sync``: valid under partition, kill and pause; list-append
  (multis guarded by znode versions) has no anomaly under partitions and kills;
* ZooKeeper, ``reads=local``: a stale read is caught under partitions (a cut-off
  follower answers from its own state until it notices it lost the leader);
* either system, not installed: refused with the exact ``apt-get install`` line.

The runs need root (netns mode) and the packages; without them they are skipped
with the reason. The refusal tests need neither.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepsenlike.backends import backend_refusals, netns
from jepsenlike.errors import ConfigError
from jepsenlike.systems import etcd as etcd_mod
from jepsenlike.systems import get_system
from jepsenlike.systems import zookeeper as zk_mod

pytestmark = [pytest.mark.integration]

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]
_netns_why = netns.unavailable_reason()
needs_etcd = pytest.mark.skipif(_netns_why is not None or etcd_mod.EtcdSystem().unavailable_reason() is not None,
                                reason=str(_netns_why or etcd_mod.EtcdSystem().unavailable_reason()))
needs_zk = pytest.mark.skipif(_netns_why is not None or zk_mod.ZooKeeperSystem().unavailable_reason() is not None,
                              reason=str(_netns_why or zk_mod.ZooKeeperSystem().unavailable_reason()))


def run(args: list[str], store, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, "run", "--quiet", "--nodes", "3", "--concurrency", "10",
                           "--store", str(store), *args], capture_output=True, text=True, timeout=timeout)


def results_of(store) -> dict:
    return json.loads(((store / "latest").resolve() / "results.json").read_text())


def assert_fired(results: dict, faults: list[str]) -> None:
    coverage = results["nemesis"]["coverage"]
    for f in faults:
        assert coverage[f]["status"] == "fired", (f, coverage[f])


def caught_within(seeds: list[int], args: list[str], store) -> subprocess.CompletedProcess[str]:
    """The first run among these seeds that is invalid (or the last one)."""
    p = None
    for seed in seeds:
        p = run([*args, "--seed", str(seed)], store)
        assert p.returncode in (0, 1, 2), p.stdout + p.stderr
        if p.returncode == 1:
            break
    assert p is not None
    return p


@needs_etcd
@pytest.mark.slow
def test_etcd_linearizable_reads_valid_under_partition_kill_pause(tmp_path):
    p = run(["--system", "etcd", "--nemesis", "partition,kill,pause", "--nemesis-interval", "1.5",
             "--time-limit", "20", "--seed", "21"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verdict: VALID" in p.stdout
    assert_fired(results_of(tmp_path), ["partition", "kill", "pause"])


@needs_etcd
@pytest.mark.slow
def test_etcd_append_transactions_have_no_anomaly_under_partitions_and_kills(tmp_path):
    p = run(["--system", "etcd", "--workload", "append", "--nemesis", "partition,kill",
             "--nemesis-interval", "2", "--time-limit", "14", "--seed", "7"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    res = results_of(tmp_path)
    assert res["workload"]["valid"] is True
    assert_fired(res, ["partition", "kill"])


@needs_etcd
def test_etcd_clock_faults_refused_with_the_reason(tmp_path):
    caps, why = backend_refusals("local", get_system("etcd"), 3)
    assert "clock" not in caps and "vDSO" in why["clock"]
    p = run(["--system", "etcd", "--nemesis", "clock", "--time-limit", "4", "--warmup", "1",
             "--seed", "1"], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr  # unknown: the asked-for fault could not act
    assert "fault 'clock' was refused" in p.stdout and "libfaketime cannot move it" in p.stdout
    res = results_of(tmp_path)
    assert res["valid"] == "unknown" and res["workload"]["valid"] is True


@needs_etcd
@pytest.mark.slow
def test_etcd_serializable_reads_stale_read_caught_under_partitions(tmp_path):
    p = caught_within([2, 3, 4], ["--system", "etcd", "--option", "etcd.reads=serializable",
                                  "--nemesis", "partition", "--partition-shapes", "one",
                                  "--time-limit", "20"], tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Verdict: INVALID" in p.stdout and "not linearizable" in p.stdout
    assert "cannot be linearized" in p.stdout  # the witness: the read and the state it contradicts


@needs_zk
@pytest.mark.slow
def test_zookeeper_sync_reads_valid_under_partition_kill_pause(tmp_path):
    p = run(["--system", "zookeeper", "--nemesis", "partition,kill,pause", "--nemesis-interval", "2",
             "--time-limit", "24", "--seed", "4"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert_fired(results_of(tmp_path), ["partition", "kill", "pause"])


@needs_zk
@pytest.mark.slow
def test_zookeeper_append_multis_have_no_anomaly_under_partitions_and_kills(tmp_path):
    p = run(["--system", "zookeeper", "--workload", "append", "--nemesis", "partition,kill",
             "--nemesis-interval", "2", "--time-limit", "16", "--seed", "7"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    res = results_of(tmp_path)
    assert res["workload"]["valid"] is True
    assert_fired(res, ["partition", "kill"])


@needs_zk
@pytest.mark.slow
def test_zookeeper_local_reads_stale_read_caught_under_partitions(tmp_path):
    p = caught_within([3, 5, 6], ["--system", "zookeeper", "--option", "zookeeper.reads=local",
                                  "--nemesis", "partition", "--partition-shapes", "one",
                                  "--time-limit", "20"], tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not linearizable" in p.stdout and "cannot be linearized" in p.stdout


def test_not_installed_systems_are_refused_with_the_apt_line(monkeypatch):
    monkeypatch.setattr(etcd_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(etcd_mod, "_exists", lambda path: False)
    with pytest.raises(ConfigError, match=r"apt-get install -y etcd-server"):
        get_system("etcd")
    monkeypatch.setattr(zk_mod.os.path, "exists", lambda path: False)
    with pytest.raises(ConfigError, match=r"apt-get install -y zookeeper"):
        get_system("zookeeper")


def test_list_shows_options_and_installed_status():
    p = subprocess.run([*JEPSENLIKE, "list", "systems"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "--option etcd.reads='linearizable'" in p.stdout
    assert "--option zookeeper.reads='sync'" in p.stdout
    for name, system in (("etcd", etcd_mod.EtcdSystem()), ("zookeeper", zk_mod.ZooKeeperSystem())):
        block = p.stdout.split(f"  {name} ", 1)[1].split("\n", 2)[1]
        why = system.unavailable_reason()
        assert block.strip() == (f"status: NOT INSTALLED: {why}" if why else "status: installed")
