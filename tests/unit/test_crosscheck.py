"""The search and the graph checker on register histories: merged, never contradicting,
and a contradiction at run time reported as a checker bug (verdict unknown)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import check_bruteforce
from jepsenlike.checkers.crosscheck import graph_check, reconcile, witness_doc
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.result import UNKNOWN, Result
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import register_history
from jepsenlike.history import History
from jepsenlike.report.samples import write_sample_run

SPEC = get_spec("cas-register")


@pytest.mark.parametrize(
    ("search", "graph", "merged", "bug"),
    [
        (True, True, True, False),
        (False, False, False, False),
        (True, False, UNKNOWN, True),
        (False, True, UNKNOWN, True),
        (UNKNOWN, False, False, False),  # a graph cycle proves it even when the search ran out of time
        (False, UNKNOWN, False, False),
        (UNKNOWN, True, True, False),
        (UNKNOWN, UNKNOWN, UNKNOWN, False),
    ],
)
def test_reconcile(search, graph, merged, bug):
    valid, disagreement = reconcile(search, graph)
    assert valid == merged
    assert (disagreement is not None) == bug
    if bug:
        assert disagreement["message"].startswith("CHECKER BUG")


def _mutate(h: History, rng: random.Random) -> History:
    """One of: a read returns another value of its key; a write/cas changes outcome; a write
    repeats another write's value (non-unique values, which the graph hands to the search)."""
    ops = list(h.ops)
    completions = [o for o in ops if o.type != "invoke"]
    if not completions:
        return h
    o = rng.choice(completions)
    writes = [x for x in ops if x.type == "invoke" and x.f == "write" and x.key == o.key]
    kind = rng.random()
    if o.f == "read" and o.type == "ok":
        vals = [x.value if x.f == "write" else x.value[1] for x in ops
                if x.type == "invoke" and x.f in ("write", "cas") and x.key == o.key]
        ops[o.index] = dataclasses.replace(o, value=rng.choice([None, *vals]))
    elif o.f == "write" and kind < 0.5 and len(writes) > 1:
        inv = next(x for x in reversed(ops[:o.index]) if x.process == o.process and x.type == "invoke")
        other = rng.choice([w for w in writes if w.index != inv.index] or writes)
        ops[inv.index] = dataclasses.replace(inv, value=other.value)
        ops[o.index] = dataclasses.replace(o, value=other.value)
    elif o.f in ("write", "cas"):
        ops[o.index] = dataclasses.replace(o, type=rng.choice(["ok", "fail", "info"]))
    return History.from_ops(ops)


@settings(max_examples=250, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    keys=st.integers(1, 3),
    procs=st.integers(1, 6),
    p_info=st.sampled_from([0.0, 0.1, 0.3]),
    mutations=st.integers(0, 3),
)
def test_the_two_checkers_never_contradict(seed, n, keys, procs, p_info, mutations):
    rng = random.Random(seed)
    h = register_history(rng, n_ops=n, n_keys=keys, n_processes=procs, p_info=p_info)
    for _ in range(mutations):
        h = _mutate(h, rng)
    search = check_linearizable(h, SPEC, timeout=30)
    graph = graph_check(h, "cas-register", SPEC, timeout=30)
    assert search.valid in (True, False) and graph.valid in (True, False), graph.explanation
    valid, disagreement = reconcile(search.valid, graph.valid)
    assert disagreement is None, (search.explanation, graph.explanation)
    if sum(1 for _ in h.pairs()) <= 8:  # an independent oracle where it is affordable
        assert valid == check_bruteforce(h, SPEC)
    w = witness_doc(h, SPEC, search.details.get("key"))
    assert (w is not None) == (valid is False)


def test_witness_carries_the_graph_cycle_over_exactly_its_ops():
    h = History.from_ops([
        dict(index=i, time=i * 1000, process=p, type=t, f=f, key=0, value=v)
        for i, (p, t, f, v) in enumerate([
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            (0, "invoke", "write", 2), (0, "ok", "write", 2),
            (1, "invoke", "read", None), (1, "ok", "read", 1),
        ])
    ])
    w = witness_doc(h, SPEC, 0)
    assert w["ops"] == [0, 2, 4]
    cyc = w["cycle"]
    assert cyc["steps"] and {t["invoke_index"] for t in cyc["txns"]} <= set(w["ops"])
    # indices are the history's, not the shrunk sub-history's
    assert {t["index"] for t in cyc["txns"]} <= set(w["events"])
    assert any(s["rel"] == "rw" for s in cyc["steps"])


def test_run_analysis_reports_a_disagreement_as_a_checker_bug(tmp_path: Path, monkeypatch, capsys):
    """A graph checker that contradicts the search (simulated): the run is unknown, loudly."""
    import jepsenlike.checkers.crosscheck as cc

    real = cc.graph_check

    def contrary(history, model_name, spec=None, timeout=60.0):
        r = real(history, model_name, spec, timeout)
        return Result(not r.valid if r.valid in (True, False) else r.valid, r.details, r.explanation)

    monkeypatch.setattr(cc, "graph_check", contrary)
    run_dir = write_sample_run(tmp_path, "invalid-register", seed=7)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] == "unknown"
    assert results["checker_disagreement"]["search"] is False
    assert results["checker_disagreement"]["graph"] is True
    assert results["explanation"].startswith("CHECKER BUG")
    assert "CHECKER BUG" in capsys.readouterr().err


def test_run_analysis_runs_both_checkers_and_writes_the_witness(tmp_path: Path):
    run_dir = write_sample_run(tmp_path, "invalid-register", seed=7)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is False
    assert results["workload"]["valid"] is False and results["graph"]["valid"] is False
    assert "checker_disagreement" not in results
    w = results["witness"]
    assert w["minimal"] and 1 <= len(w["ops"]) <= 10 and w["reason"]
    assert results["explanation"].startswith("witness (key ")
    valid = write_sample_run(tmp_path, "valid-register", seed=7)
    results = json.loads((valid / "results.json").read_text())
    assert results["valid"] is True and results["graph"]["valid"] is True and "witness" not in results
