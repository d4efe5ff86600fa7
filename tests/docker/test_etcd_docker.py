"""etcd on the docker backend: Debian's etcd-server installed by the system's container recipe.

The recipe's ``apt-get install etcd-server`` runs inside the project's node
image (Debian bookworm), so the first run builds ``jepsenlike-system:etcd-<hash>``
(needs the Debian mirror once) and later runs find it. Partitions are iptables
rules inside each container. Expected as on the local backend: linearizable
reads valid under partitions; serializable reads caught stale under partitions
that isolate one member.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def run(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--backend", "docker",
                           "--system", "etcd", "--nodes", "3", "--concurrency", "10",
                           "--store", str(store), *args], capture_output=True, text=True, timeout=900)


def test_etcd_linearizable_valid_under_partitions_on_docker(docker_client, node_image, tmp_path):
    p = run(tmp_path, "--nemesis", "partition", "--time-limit", "12", "--seed", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(((tmp_path / "latest").resolve() / "results.json").read_text())
    assert res["nemesis"]["coverage"]["partition"]["status"] == "fired"


def test_etcd_serializable_stale_read_caught_on_docker(docker_client, node_image, tmp_path):
    for seed in (2, 3, 4):
        p = run(tmp_path, "--option", "etcd.reads=serializable", "--nemesis", "partition",
                "--partition-shapes", "one", "--time-limit", "20", "--seed", str(seed))
        assert p.returncode in (0, 1, 2), p.stdout + p.stderr
        if p.returncode == 1:
            break
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not linearizable" in p.stdout and "cannot be linearized" in p.stdout
