"""The graph checker on unique-value register histories, and its agreement with
the linearizability search."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import check_bruteforce
from jepsenlike.checkers.graph import check_history, check_registers
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import register_history
from jepsenlike.errors import ConfigError
from jepsenlike.history import History


def H(*events, key="x"):
    """Events are (process, type, f, value) or (process, type, f, value, key)."""
    ops = []
    for i, e in enumerate(events):
        p, t, f, v, *k = e
        ops.append(dict(index=i, time=i, process=p, type=t, f=f, key=k[0] if k else key, value=v))
    return History.from_ops(ops)


def op(p, f, v, result=None, t="ok"):
    return [(p, "invoke", f, None if f == "read" else v), (p, t, f, result if f == "read" else v)]


def test_sequential_history_is_decided_by_the_graph():
    h = H(*op(0, "write", 1), *op(1, "read", None, 1), *op(0, "cas", [1, 2]), *op(1, "read", None, 2))
    r = check_registers(h)
    assert r.valid is True, r.explanation
    assert r.details["checker"] == "graph"
    assert r.details["path"] == "graph"
    assert r.details["decided_by"] == {"graph": ["x"]}
    assert "decided by the dependency graph" in r.explanation


def test_stale_read_after_a_completed_write():
    h = H(*op(0, "write", 1), *op(0, "write", 2), *op(1, "read", None, 1))
    r = check_registers(h)
    assert r.valid is False
    assert r.details["path"] == "graph"
    assert r.details["consistency"]["ruled_out"] == ["linearizable"]
    assert "G-single-realtime" in r.details["anomaly_types"]
    rec = r.details["anomalies"]["G-single-realtime"][0]
    assert sorted(rec["ops"]) == [3, 5]
    rw = next(s for s in rec["steps"] if s["rel"] == "rw")
    assert "later version" in rw["why"] and "completed before" in rw["why"]


def test_read_of_initial_value_after_a_write_completed():
    h = H(*op(0, "write", 1), *op(1, "read", None, None))
    r = check_registers(h)
    assert r.valid is False
    text = r.explanation
    assert "initial value" in text


def test_cas_chain_orders_versions():
    # write 1, then (concurrently with a read) cas 1->2; a read that starts
    # after the cas completed must not see 1.
    h = H(
        *op(0, "write", 1),
        (1, "invoke", "cas", [1, 2]),
        (2, "invoke", "read", None),
        (1, "ok", "cas", [1, 2]),
        (2, "ok", "read", 1),
        *op(2, "read", None, 1),
    )
    r = check_registers(h)
    assert r.valid is False
    assert r.details["path"] == "graph"
    assert "cas" in r.explanation


def test_two_cas_from_the_same_value_cannot_both_succeed():
    h = H(
        *op(0, "write", 1),
        (1, "invoke", "cas", [1, 2]),
        (2, "invoke", "cas", [1, 3]),
        (1, "ok", "cas", [1, 2]),
        (2, "ok", "cas", [1, 3]),
    )
    r = check_registers(h)
    assert r.valid is False
    assert r.details["path"] == "graph"


def test_concurrent_blind_writes_fall_back_to_the_search():
    h = H(
        (0, "invoke", "write", 1),
        (1, "invoke", "write", 2),
        (0, "ok", "write", 1),
        (1, "ok", "write", 2),
    )
    r = check_registers(h)
    assert r.valid is True
    assert r.details["path"] == "linearizability-search"
    assert r.details["decided_by"]["linearizability-search"] == ["x"]
    assert r.details["search"]["valid"] is True


def test_search_fallback_finds_what_the_graph_cannot_infer():
    # Concurrent blind writes 1 and 2, then two sequential reads 2, 1 and
    # then 2 again: no single order of the writes explains it.
    h = H(
        (0, "invoke", "write", 1),
        (1, "invoke", "write", 2),
        (0, "ok", "write", 1),
        (1, "ok", "write", 2),
        *op(2, "read", None, 2),
        *op(2, "read", None, 1),
        *op(2, "read", None, 2),
    )
    r = check_registers(h)
    assert r.valid is False
    assert r.details["path"] in ("graph", "linearizability-search")
    assert check_linearizable(h, get_spec("cas-register")).valid is False


def test_nonunique_values_go_to_the_search():
    h = H(*op(0, "write", 1), *op(0, "write", 1), *op(1, "read", None, 1))
    r = check_registers(h, model_name="register")
    assert r.valid is True
    assert r.details["nonunique_value_keys"] == ["x"]
    assert r.details["decided_by"]["linearizability-search"] == ["x"]


def test_keys_are_decided_separately():
    h = H(
        *op(0, "write", 1),
        (1, "invoke", "write", 5, "y"),
        (2, "invoke", "write", 6, "y"),
        (1, "ok", "write", 5, "y"),
        (2, "ok", "write", 6, "y"),
    )
    r = check_registers(h)
    assert r.valid is True
    assert r.details["path"] == "graph+linearizability-search"
    assert r.details["decided_by"] == {"graph": ["x"], "linearizability-search": ["y"]}


def test_aborted_and_garbage_reads():
    h = H(*op(0, "write", 1, t="fail"), *op(1, "read", None, 1), *op(1, "read", None, 9))
    r = check_registers(h)
    assert r.valid is False
    assert {"G1a", "garbage-read"} <= set(r.details["anomaly_types"])


def test_info_write_that_was_read_counts():
    h = H(
        (0, "invoke", "write", 1),
        (0, "info", "write", 1),
        *op(1, "read", None, 1),
        *op(1, "read", None, None),
    )
    r = check_registers(h)
    assert r.valid is False  # once 1 was read, the initial value cannot come back


def test_register_model_rejects_cas():
    h = H(*op(0, "cas", [None, 1]))
    with pytest.raises(ConfigError, match="cas-register"):
        check_history(h, "register")
    assert check_history(h, "cas-register").valid is True


def _mutate(h: History, rng: random.Random) -> History:
    """Change one ok read to another value written to its key (or the initial
    value), or change the outcome of one write or cas."""
    ops = list(h.ops)
    completions = [o for o in ops if o.type != "invoke"]
    if not completions:
        return h
    o = rng.choice(completions)
    if o.f == "read" and o.type == "ok":
        written = [
            x.value if x.f == "write" else x.value[1]
            for x in ops
            if x.type == "invoke" and x.f in ("write", "cas") and x.key == o.key
        ]
        ops[o.index] = dataclasses.replace(o, value=rng.choice([None, *written]))
    elif o.f in ("write", "cas"):
        ops[o.index] = dataclasses.replace(o, type=rng.choice(["ok", "fail", "info"]))
    return History.from_ops(ops)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 30),
    keys=st.integers(1, 3),
    procs=st.integers(1, 6),
    p_info=st.sampled_from([0.0, 0.1, 0.3]),
    mutations=st.integers(0, 2),
)
def test_same_verdict_as_the_linearizability_search(seed, n, keys, procs, p_info, mutations):
    rng = random.Random(seed)
    h = register_history(rng, n_ops=n, n_keys=keys, n_processes=procs, p_info=p_info)
    if not mutations:
        assert check_registers(h).valid is True
    for _ in range(mutations):
        h = _mutate(h, rng)
    expected = check_linearizable(h, get_spec("cas-register"), timeout=30).valid
    r = check_registers(h)
    assert r.valid == expected, r.explanation
    json.dumps(r.to_dict())


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), mutate=st.booleans())
def test_same_verdict_as_brute_force_on_tiny_histories(seed, n, mutate):
    rng = random.Random(seed)
    h = register_history(rng, n_ops=n, n_keys=1, n_processes=3, p_info=0.15)
    if mutate:
        h = _mutate(h, rng)
    expected = check_bruteforce(h, get_spec("cas-register"))
    r = check_registers(h)
    assert r.valid == expected, r.explanation


def test_initial_value_comes_from_the_spec():
    spec = get_spec("cas-register", 0)
    ok = H(*op(1, "read", None, 0), *op(0, "write", 1), *op(1, "read", None, 1))
    r = check_history(ok, "cas-register", spec=spec)
    assert r.valid is True and r.details["path"] == "graph"
    stale = H(*op(0, "write", 1), *op(1, "read", None, 0))
    assert check_history(stale, "cas-register", spec=spec).valid is False
    # with the default initial value (null), reading 0 is a read of a value never written
    r = check_history(stale, "cas-register")
    assert r.valid is False and "garbage-read" in r.details["anomaly_types"]
