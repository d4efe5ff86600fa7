"""``jepsenlike run --system shardkv`` as a user runs it: real node processes on loopback.

* the correct system stays valid with partitions, kills and shard moves over two groups;
* two seeded bugs are caught, each with its anomaly class named, within three short runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]
LOAD = ["--system", "shardkv", "--workload", "append", "--groups", "2", "--concurrency", "16",
        "--rate", "0", "--quiet"]


def run(args: list[str], store) -> tuple[subprocess.CompletedProcess[str], dict]:
    p = subprocess.run([*JEPSENLIKE, "run", *LOAD, "--store", str(store), *args],
                       capture_output=True, text=True, timeout=180)
    results = json.loads(((store / "latest").resolve() / "results.json").read_text())
    return p, results


def test_correct_shardkv_is_valid_under_partitions_kills_and_shard_moves(tmp_path):
    store = tmp_path / "store"
    p, results = run(["--nemesis", "partition,kill,shard-move", "--nemesis-interval", "1.5",
                      "--time-limit", "10", "--seed", "3"], store)
    assert p.returncode == 0, p.stdout + p.stderr
    assert results["valid"] is True and results["stats"]["totals"]["ok"] > 50
    fired = results["nemesis"]["fired"]
    moves = [f for f in fired if f["f"] == "move-shard"]
    assert moves and any((f.get("value") or {}).get("result") == "ok" for f in moves), moves
    assert {"kill", "start-partition"} <= {f["f"] for f in fired}


@pytest.mark.parametrize("bug, anomaly", [("early-lock-release", "G1c"), ("read-committed", "G-single")])
def test_seeded_bug_is_caught_with_its_anomaly_within_three_runs(tmp_path, bug, anomaly):
    seen = []
    for seed in (1, 2, 3):
        p, results = run(["--nemesis", "none", "--time-limit", "8", "--bug", bug, "--seed", str(seed)],
                         tmp_path / f"store{seed}")
        head = (results.get("explanation") or "").splitlines()[:1]
        seen.append((p.returncode, head))
        if p.returncode == 1 and results["valid"] is False and head and f" {anomaly}" in head[0]:
            return
    pytest.fail(f"--bug {bug} not caught with {anomaly} in three runs: {seen}")
