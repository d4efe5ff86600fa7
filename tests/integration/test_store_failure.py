"""A store that fills up mid-run: a clean stop, one line, a history analyze reads; interruption markers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from jepsenlike.history_io import read_history
from jepsenlike.procguard import RUN_MARKER, marked_processes

pytestmark = pytest.mark.integration

JEPSENLIKE = [sys.executable, "-P", "-m", "jepsenlike"]


@pytest.fixture
def tiny_store(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_store_stops_the_run_cleanly_and_analyze_reads_the_history(tiny_store, tmp_path):
    store = tiny_store / "store"
    t0 = time.monotonic()
    p = subprocess.run(
        [*JEPSENLIKE, "run", "--nodes", "3", "--nemesis", "kill,pause", "--time-limit", "120", "--warmup", "0.5",
         "--nemesis-interval", "0.5",
         "--quiet", "--store", str(store)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "JEPSENLIKE_RUNTIME_DIR": str(tmp_path / "rt")})
    took = time.monotonic() - t0
    assert p.returncode == 255, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, p.stderr
    assert errors[0].startswith("jepsenlike: error: the store is full writing"), errors[0]
    assert "jepsenlike analyze" in errors[0]
    assert took < 100, f"the run did not stop at the full disk ({took:.0f} s)"

    run = (store / "latest").resolve()
    test_doc = json.loads((run / "test.json").read_text())
    assert test_doc["interrupted"] is True
    assert "full" in test_doc["interrupted_reason"]
    results = json.loads((run / "results.json").read_text())
    assert results["interrupted"] is True and results["valid"] == "unknown"
    assert not (run / ".reserve").exists()

    # The history ends with a complete line, and no line was written twice.
    raw = (run / "history.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    indices = [json.loads(ln)["index"] for ln in raw.splitlines()]
    assert [i for i, n in Counter(indices).items() if n > 1] == []
    assert indices == list(range(len(indices)))
    assert len(read_history(run / "history.jsonl")) == len(indices) > 100

    # Faults healed and nodes stopped: no process of the run is left.
    assert [pid for pid, env in marked_processes() if env.get(RUN_MARKER) == str(run)] == []

    a = subprocess.run([*JEPSENLIKE, "analyze", str(run)], capture_output=True, text=True, timeout=300)
    assert a.returncode == 2, (a.stdout, a.stderr)
    assert "interrupted" in a.stdout and "never fired" not in a.stdout, a.stdout
    again = json.loads((run / "results.json").read_text())
    assert again["interrupted"] is True and "full" in again["interrupted_reason"]


def test_analyze_keeps_the_interrupted_marker_of_a_ctrl_c_run(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [*JEPSENLIKE, "run", "--system", "memory", "--nemesis", "kill", "--time-limit", "60", "--warmup", "0.5",
         "--quiet", "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hist = store / "latest" / "history.jsonl"
        if hist.exists() and hist.stat().st_size > 5000:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run = (store / "latest").resolve()
    assert f"partial history in {store}" in err
    assert json.loads((run / "results.json").read_text())["interrupted"] is True
    a = subprocess.run([*JEPSENLIKE, "analyze", str(run)], capture_output=True, text=True, timeout=120)
    assert a.returncode == 2, (a.stdout, a.stderr)
    assert "the run was interrupted" in a.stdout
    assert "never scheduled" not in a.stdout and "chaos phase was too short" not in a.stdout
    assert json.loads((run / "results.json").read_text())["interrupted"] is True


def test_an_interrupt_before_any_history_does_not_point_at_a_history(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [*JEPSENLIKE, "run", "--nodes", "3", "--quiet", "--store", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the run directory exists, then interrupt while the nodes start.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (store / "latest").exists():
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    m = re.search(r"partial history in (\S+)", err)
    if m:
        assert (Path(m.group(1)) / "history.jsonl").exists(), err
    else:
        assert "no history in" in err, err
