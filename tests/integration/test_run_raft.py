"""``jepsenlike run`` against real Raft clusters, as a user runs it (subprocesses).

* a short run with kill and pause on a correct cluster is valid;
* ``--bug stale-read`` is caught (invalid) under ``leader-pause`` within a bounded number of runs;
* Ctrl-C (SIGINT) and SIGTERM mid-run leave no node behind and a readable
  partial history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jepsenlike.history_io import read_history
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
]

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (our nodes carry their data dir in argv)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (d / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(d.name))
    return found


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, "run", "--quiet", *args], capture_output=True, text=True, timeout=timeout)


def test_short_raft_run_with_kill_and_pause_is_valid(tmp_path):
    store = tmp_path / "store"
    p = run(["--nodes", "3", "--time-limit", "8", "--nemesis", "kill,pause", "--nemesis-interval", "1.5",
             "--seed", "4", "--store", str(store)])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verdict: VALID" in p.stdout
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True and results["stats"]["totals"]["ok"] > 50
    fired = {f["f"] for f in results["nemesis"]["fired"]}
    assert {"kill", "start", "pause", "resume"} <= fired, fired
    hist = read_history(run_dir / "history.jsonl")
    kills = [op for op in hist.nemesis_ops() if op.f == "kill" and op.type == "info"]
    assert kills and all(op.value["nodes"] for op in kills)  # says exactly which nodes
    assert "--seed 4" in p.stdout and "Reproduce: jepsenlike run" in p.stdout
    for n in ("n1", "n2", "n3"):
        assert "serving clients" in (run_dir / "nodes" / f"{n}.log").read_text()
    assert not (run_dir / "nodes" / "n1" / "data").exists()
    assert processes_mentioning(str(store)) == []
    # The stored run can be checked again without the cluster, with the same verdict.
    again = subprocess.run([*JEPSENLIKE, "analyze", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "Verdict: VALID" in again.stdout


def test_stale_read_bug_is_caught_within_five_short_runs(tmp_path):
    """A leader that reads its own state without confirming it leads: caught when it wakes up
    from a pause cut off from the others, who elected a new leader meanwhile (leader-pause)."""
    store = tmp_path / "store"
    verdicts = []
    for seed in range(1, 6):
        p = run(["--nodes", "3", "--time-limit", "8", "--nemesis", "leader-pause", "--bug", "stale-read",
                 "--seed", str(seed),
                 "--store", str(store)])
        verdicts.append(p.returncode)
        assert p.returncode in (0, 1, 2), p.stdout + p.stderr
        if p.returncode == 1:
            assert "Verdict: INVALID" in p.stdout and "not linearizable" in p.stdout
            assert "--bug stale-read" in p.stdout  # the reproduce command keeps the bug
            break
    assert 1 in verdicts, f"stale-read not caught in 5 runs: exit codes {verdicts}"
    assert processes_mentioning(str(store)) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_run_leaves_nothing_behind_and_a_readable_history(tmp_path, sig):
    store = tmp_path / "store"
    proc = subprocess.Popen([*JEPSENLIKE, "run", "--nodes", "3", "--time-limit", "60", "--seed", "3",
                             "--nemesis-interval", "1", "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        hist_file = store / "latest" / "history.jsonl"
        while time.monotonic() < deadline:
            if hist_file.exists() and hist_file.read_text().count("\n") > 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run did not get going")
        assert len(processes_mentioning(str(store))) >= 3  # nodes are up: there is something to clean
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "partial history" in err
    assert processes_mentioning(str(store)) == []
    run_dir = hist_file.parent.resolve()
    hist = read_history(run_dir / "history.jsonl")
    assert len(hist) > 200
    assert json.loads((run_dir / "test.json").read_text())["interrupted"] is True
    assert json.loads((run_dir / "results.json").read_text())["valid"] == "unknown"


def test_a_cluster_that_does_not_start_exits_255_and_leaves_nothing(tmp_path):
    store = tmp_path / "store"
    p = run(["--nodes", "3", "--ready-timeout", "0.01", "--store", str(store)])
    assert p.returncode == 255
    assert "jepsenlike: error: node n1" in p.stderr and "was not ready after 0.01 s" in p.stderr
    assert "last lines of" in p.stderr
    results = json.loads((store / "latest" / "results.json").read_text())
    assert results["valid"] == "unknown" and "NodeStartError" in results["crashed"]
    assert processes_mentioning(str(store)) == []
