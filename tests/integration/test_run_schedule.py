"""``jepsenlike run --schedule``: a run's own faults, replayed from its history, come back exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepsenlike.history import read_history

pytestmark = pytest.mark.integration

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]


def run(store, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JEPSENLIKE, "run", "--system", "memory", "--quiet", "--time-limit", "4", "--warmup", "0.5",
         "--recovery", "0.3", "--nemesis-interval", "0.5", "--seed", "17", "--store", str(store), *args],
        capture_output=True, text=True, timeout=120)


def invocations(run_dir):
    hist = read_history(run_dir / "history.jsonl")
    ops = hist.nemesis_ops()
    invokes = [(op.f, op.value) for op in ops if op.type == "invoke"]
    nodes = [(op.value or {}).get("nodes") for op in ops if op.type == "info"]
    return invokes, nodes


def test_replaying_a_runs_history_gives_the_same_nemesis_invocations(tmp_path):
    first = run(tmp_path / "a", "--nemesis", "kill,pause", "--targets", "one,minority")
    assert first.returncode == 0, first.stderr
    old_dir = (tmp_path / "a" / "latest").resolve()
    old, old_nodes = invocations(old_dir)
    assert len(old) >= 6 and {f for f, _ in old} >= {"kill", "start", "pause", "resume"}

    again = run(tmp_path / "b", "--schedule", str(old_dir / "history.jsonl"))
    assert again.returncode == 0, again.stderr
    new_dir = (tmp_path / "b" / "latest").resolve()
    new, new_nodes = invocations(new_dir)
    assert new == old  # same order, f and target specs, the heal included
    assert new_nodes == old_nodes  # and, with the same seed, the same nodes

    doc = json.loads((new_dir / "test.json").read_text())
    assert doc["config"]["schedule"] == str(old_dir / "history.jsonl")
    assert doc["config"]["nemesis"] == ["kill", "pause"]
    assert [e["f"] for e in doc["schedule"]["ops"]] == [f for f, _ in old][: len(doc["schedule"]["ops"])]
    assert "--schedule " + str(old_dir / "history.jsonl") in doc["reproduce"]


def test_a_hand_written_schedule_fires_at_its_times_and_names_bad_lines(tmp_path):
    sched = tmp_path / "faults.jsonl"
    sched.write_text('{"at": 1.0, "f": "pause", "value": "n2"}\n'
                     '# comments and blank lines are skipped\n\n'
                     '{"at": 2.0, "f": "resume", "value": null}\n'
                     '{"at": 2.5, "f": "kill", "value": "n1+n3"}\n')
    p = run(tmp_path / "s", "--schedule", str(sched))
    assert p.returncode == 0, p.stderr
    run_dir = (tmp_path / "s" / "latest").resolve()
    hist = read_history(run_dir / "history.jsonl")
    inv = [op for op in hist.nemesis_ops() if op.type == "invoke"]
    assert [(op.f, op.value) for op in inv] == [("pause", "n2"), ("resume", None), ("kill", "n1+n3"),
                                                ("resume", None), ("start", None)]
    for op, at in zip(inv, (1.0, 2.0, 2.5), strict=False):
        assert at <= op.time / 1e9 < at + 0.5
    done = [op for op in hist.nemesis_ops() if op.type == "info"]
    assert done[0].value["nodes"] == ["n2"] and done[2].value["nodes"] == ["n1", "n3"]
    doc = json.loads((run_dir / "test.json").read_text())
    assert doc["config"]["nemesis"] == ["pause", "kill"]

    sched.write_text('{"at": 1.0, "f": "pause", "value": "n2"}\n{"at": "soon", "f": "kill"}\n')
    bad = run(tmp_path / "x", "--schedule", str(sched))
    assert bad.returncode == 255
    assert bad.stderr.strip().splitlines()[-1] == (
        f"jepsenlike: error: --schedule: {sched} line 2: field 'at': expected seconds >= 0, got 'soon'")
    sched.write_text('{"at": 1.0, "f": "explode"}\n')
    bad = run(tmp_path / "x", "--schedule", str(sched))
    assert "line 1: field 'f': no nemesis handles 'explode'" in bad.stderr
    sched.write_text('{"at": 9.0, "f": "pause", "value": "one"}\n')
    bad = run(tmp_path / "x", "--schedule", str(sched))
    assert "line 1: field 'at': 9 s is past the chaos phase (--time-limit 4)" in bad.stderr
