"""The targeted nemeses against the correct Raft node (no seeded bug): each run stays valid,
the fault fires, and every start op is confirmed on the node (``jepsenlike run`` subprocesses).

A short soak: one seed per nemesis. ``benchmarks/bench_soak.py --nemesis NAME`` runs more
(README: "False positives").
"""

from __future__ import annotations

import pytest

from jepsenlike.confirm import START_FS
from jepsenlike.history_io import read_history
from tests.integration.test_run_faults import needs_faketime, needs_raft, results_of, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, needs_raft]


@pytest.mark.parametrize("nemesis, extra", [
    pytest.param("leader-clock", ["--system-options", "read-mode=lease"], marks=needs_faketime),
    ("kill-elected", []),
    ("flip-partition", []),
    ("leader-pause", []),
    ("kill-cluster", []),
])
def test_correct_raft_stays_valid_and_every_targeted_fault_is_confirmed(tmp_path, nemesis, extra):
    store = tmp_path / "store"
    p = run(["--system", "raft", "--nodes", "3", "--time-limit", "12", "--nemesis", nemesis, *extra,
             "--seed", "1", "--store", str(store)], timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    cov = results_of(store)["nemesis"]["coverage"][nemesis]
    assert cov["status"] == "fired" and cov["fired"] >= 2, cov
    hist = read_history((store / "latest") / "history.jsonl")
    starts = [op for op in hist.nemesis_ops() if op.type == "info" and op.f in START_FS]
    assert starts and all(op.value.get("confirmed") and not op.value.get("unconfirmed") for op in starts), \
        [op.value for op in starts if not op.value.get("confirmed") or op.value.get("unconfirmed")][:3]
