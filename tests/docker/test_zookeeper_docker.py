"""ZooKeeper on the docker backend: Debian's zookeeper installed by the system's container recipe.

The recipe's ``apt-get install zookeeper`` (with its JRE) runs inside the
project's node image; kazoo stays on the harness side. Expected as on the local
backend: ``sync`` reads valid under partition, kill and pause; local reads caught
stale under partitions that isolate one member.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
pytest.importorskip("kazoo", reason="the zookeeper system needs kazoo: pip install 'jepsenlike[zookeeper]'")


def run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--backend", "docker",
                           "--system", "zookeeper", "--nodes", "3", "--concurrency", "10",
                           "--store", str(store), *args], capture_output=True, text=True, timeout=1500)


def test_zookeeper_sync_reads_valid_on_docker(docker_client, node_image, tmp_path):
    p = run(tmp_path, "--nemesis", "partition,kill,pause", "--nemesis-interval", "2", "--time-limit", "24",
            "--seed", "4")
    assert p.returncode == 0, p.stdout + p.stderr


def test_zookeeper_local_reads_stale_read_caught_on_docker(docker_client, node_image, tmp_path):
    p = run(tmp_path, "--option", "zookeeper.reads=local", "--nemesis", "partition", "--partition-shapes", "one",
            "--time-limit", "20", "--seed", "3")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not linearizable" in p.stdout
