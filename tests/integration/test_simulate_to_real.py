"""A simulated schedule, translated, runs on real Raft processes with the faults it asks for.

Whether the real cluster then reproduces the failure is timing-dependent (the
figures are in docs/simulation.md, from benchmarks/bench_sim_reproduce.py), so this
test does not assert the verdict: it asserts that the command ``simulate`` wrote runs,
and that its faults acted as the simulation's did -- the simulated leader isolated,
*its* clock stepped by exactly the scaled simulated delta (confirmed on the node),
inside the partition, and the partition healed when the simulation healed it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from jepsenlike.faketime import search_libfaketime
from jepsenlike.history_io import read_history
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
    pytest.mark.skipif(search_libfaketime().path is None, reason=search_libfaketime().reason),
]

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]

LEASE = {
    "system": "raft", "bug": "lease-without-bound", "nodes": 3, "seed": 0, "workload": "register",
    "steps": [
        {"do": "elapse", "ticks": 20, "load": True},
        {"do": "clock", "node": "leader", "delta": -1.0},
        {"do": "partition", "isolate": ["leader"]},
        {"do": "elapse", "ticks": 30, "load": True},
    ],
}


def test_a_translated_lease_schedule_runs_with_its_exact_clock_step(tmp_path):
    sched = tmp_path / "schedule.json"
    sched.write_text(json.dumps(LEASE))
    sim = subprocess.run([*JEPSENLIKE, "simulate", "--replay", str(sched), "--store",
                          str(tmp_path / "sim"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert sim.returncode == 1, sim.stdout + sim.stderr  # the simulation fails
    sim_dir = (tmp_path / "sim" / "latest").resolve()
    command = json.loads((sim_dir / "results.json").read_text())["run_schedule"]["command"]
    argv = shlex.split(command)[1:] + ["--seed", "3", "--store", str(tmp_path / "real"), "--quiet"]
    real = subprocess.run([*JEPSENLIKE, *argv], capture_output=True, text=True, timeout=240)
    assert real.returncode in (0, 1), real.stdout + real.stderr  # valid or invalid, not an error
    run_dir = (tmp_path / "real" / "latest").resolve()
    ops = [op for op in read_history(run_dir / "history.jsonl").nemesis_ops()]
    done = {op.f: op for op in ops if op.type == "info"}
    invoked = [(op.f, op.time / 1e9) for op in ops if op.type == "invoke"]
    assert [f for f, _ in invoked][:3] == ["start-partition", "bump-clock", "stop-partition"]
    isolated = done["start-partition"].value["isolated"]
    bump = done["bump-clock"].value
    assert bump["nodes"] == [isolated] and bump["offsets"] == {isolated: -5.0}
    assert isolated in bump["confirmed"]
    # Simulated: partition after 20 ticks, healed 30 ticks later (by finish()).
    assert invoked[0][1] == pytest.approx(6.0, abs=0.3)
    assert invoked[2][1] == pytest.approx(7.5, abs=0.3)
