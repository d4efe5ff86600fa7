"""A real ``jepsenlike run`` with a seeded bug: both checkers, the minimal witness, the wall clock.

The in-process memory cluster with its stale-read bug (a replica answers from
its own copy) gives a non-linearizable history in a few seconds; its witness is
checked against the history exactly as generated histories are
(tests/unit/test_witness.py): not linearizable, 1-minimal, paired.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepsenlike.history_io import read_history
from tests.unit.test_witness import assert_witness

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_stale_read_run_has_a_small_minimal_witness_and_a_graph_cycle(tmp_path):
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "jepsenlike", "run", "--system", "memory", "--bug", "stale-read",
         "--time-limit", "4", "--warmup", "1", "--recovery", "0.5", "--seed", "3", "--nemesis", "kill",
         "--store", str(store)],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is False
    assert results["workload"]["valid"] is False and results["graph"]["valid"] is False
    assert "checker_disagreement" not in results
    w = results["witness"]
    assert w["minimal"] and 1 <= len(w["ops"]) <= 10
    assert w["cycle"]["steps"], "the graph checker explains the witness with a cycle"
    history = read_history(run_dir / "history.jsonl")
    assert_witness(history, w)
    # every op of the witness names the node that served it, and the sentence names them
    assert all(d["node"] for d in w["details"])
    assert any(d["node"] in w["reason"] for d in w["details"])
    # the verdict's first line is the witness
    assert f"witness (key {w['key']!r}, {len(w['ops'])} ops" in proc.stdout
    # history time 0 on the wall clock, to the microsecond, in both records
    test_doc = json.loads((run_dir / "test.json").read_text())
    clock = results["clock"]
    assert clock == test_doc["clock"] and isinstance(clock["history_start_unix_ns"], int)
    assert clock["history_start_utc"].count(".") == 1 and len(clock["history_start_utc"].split(".")[1]) >= 6
    # show prints the witness before anything else about the verdict
    shown = subprocess.run([sys.executable, "-m", "jepsenlike", "show", str(run_dir)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.index("witness: ") < shown.stdout.index("explanation")
    page = (run_dir / "report.html").read_text()
    assert page.index('id="witness-title"') < page.index('id="anomaly"')
