"""``jepsenlike run --backend docker`` end to end, through the CLI as a user runs it.

Correct raft and paxos stay valid under partition, kill, pause and clock faults in
containers; a seeded bug is caught under partitions; a run, and a run interrupted
with Ctrl-C, leave no container, network or volume behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.history_io import read_history

pytestmark = pytest.mark.docker

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]
FAULTS = "partition,kill,pause,clock"


def run(store: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JEPSENLIKE, "run", "--backend", "docker", "--nodes", "3", "--quiet",
         "--store", str(store), *args],
        capture_output=True, text=True, timeout=timeout,
    )


def ours(client: Any) -> dict[str, list[str]]:
    """Everything labelled as a jepsenlike run, whoever started it."""
    from jepsenlike.backends.docker.cleanup import LABEL_RUN

    f = {"label": LABEL_RUN}
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=f)],
        "networks": [n.name for n in client.networks.list(filters=f)],
        "volumes": [v.name for v in client.volumes.list(filters=f)],
    }


NOTHING = {"containers": [], "networks": [], "volumes": []}


@pytest.fixture
def clean_daemon(docker_client: Any, node_image: Any) -> Any:
    # Other docker tests clean up after themselves; start from, and check, a clean slate.
    assert ours(docker_client) == NOTHING
    return docker_client


@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_correct_system_is_valid_under_every_fault_in_containers(clean_daemon, tmp_path, system):
    p = run(tmp_path, "--system", system, "--nemesis", FAULTS, "--time-limit", "16",
            "--nemesis-interval", "1.5", "--seed", "11")
    assert p.returncode == 0, p.stdout + p.stderr
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert results["valid"] is True
    fired = {f["f"] for f in results["nemesis"]["fired"]}
    assert {"start-partition", "kill", "pause"} <= fired, fired
    assert any("clock" in f for f in fired), fired
    assert ours(clean_daemon) == NOTHING


def test_stale_read_bug_is_caught_under_leader_pause_in_containers(clean_daemon, tmp_path):
    verdicts = []
    for seed in (1, 2, 3):
        p = run(tmp_path, "--system", "raft", "--bug", "stale-read", "--nemesis", "leader-pause",
                "--time-limit", "12", "--nemesis-interval", "1.5", "--seed", str(seed))
        verdicts.append(p.returncode)
        if p.returncode == 1:
            break
    assert verdicts[-1] == 1, f"exit codes {verdicts}: stale reads never caught in 3 runs"
    assert ours(clean_daemon) == NOTHING


def test_ctrl_c_leaves_no_container_and_a_readable_history(clean_daemon, tmp_path):
    proc = subprocess.Popen(
        [*JEPSENLIKE, "run", "--backend", "docker", "--nodes", "3", "--quiet", "--store",
         str(tmp_path), "--time-limit", "60", "--nemesis", "partition,kill", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        history = None
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("*/*/history.jsonl"))
            if found and found[0].stat().st_size > 2000:
                history = found[0]
                break
            time.sleep(0.5)
        assert history is not None, "the run never started recording"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert len(read_history(history)) > 0
    assert ours(clean_daemon) == NOTHING
