"""Generated histories: serial ones must pass, injected anomalies must be found.

The generator (``checkers/synth.py``) runs the datatype one op at a time
at increasing linearization points and draws real-time intervals around them,
so its histories are strict serializable by construction; injections add one
known anomaly. Small histories are also cross-checked against the
linearizability search, which shares no code with the graph checker.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import INJECTIONS, inject, list_append_history

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

params = st.fixed_dictionaries(
    {
        "n_txns": st.integers(1, 40),
        "n_processes": st.integers(1, 6),
        "keys_active": st.integers(1, 4),
        "max_appends_per_key": st.integers(1, 8),
        "max_mops": st.integers(1, 4),
        "read_fraction": st.floats(0.1, 0.9),
        "p_fail": st.sampled_from([0.0, 0.1, 0.3]),
        "p_info": st.sampled_from([0.0, 0.1, 0.3]),
        "single_ops": st.booleans(),
        "spread": st.integers(1, 30),
    }
)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), p=params)
def test_serial_list_append_histories_are_valid(seed, p):
    h = list_append_history(random.Random(seed), **p)
    r = check_list_append(h)
    assert r.valid is True, r.explanation
    assert r.details["anomaly_types"] == []


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p=params)
def test_serial_histories_agree_with_the_linearizability_search(seed, p):
    p = {**p, "n_txns": min(p["n_txns"], 12)}
    h = list_append_history(random.Random(seed), **p)
    assert check_linearizable(h, get_spec("list-append"), timeout=20).valid is True
    assert check_list_append(h).valid is True


@pytest.mark.parametrize("kind", sorted(INJECTIONS))
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 30), procs=st.integers(1, 5))
def test_injected_anomaly_is_found_with_its_class(kind, seed, n, procs):
    rng = random.Random(seed)
    h = list_append_history(rng, n_txns=n, n_processes=procs, p_fail=0.05, p_info=0.05)
    mutant = inject(h, kind, rng)
    if mutant is None:  # too few suitable transactions
        return
    r = check_list_append(mutant)
    assert r.valid is False
    assert INJECTIONS[kind] in r.details["anomaly_types"], r.explanation
    for records in r.details["anomalies"].values():
        for rec in records:
            assert rec["explanation"]
            for step in rec.get("steps", ()):
                assert step["why"] and "dependency" not in step["why"]


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(sorted(INJECTIONS)),
    n=st.integers(2, 6),
)
def test_every_violation_found_is_confirmed_by_the_linearizability_search(seed, kind, n):
    """Soundness: when the graph checker rules out strict serializability, the
    independent WGL search on the same (small) history agrees."""
    rng = random.Random(seed)
    h = list_append_history(rng, n_txns=n, n_processes=3, keys_active=2, max_appends_per_key=4)
    mutant = inject(h, kind, rng)
    if mutant is None:
        return
    r = check_list_append(mutant)
    assert r.valid is False
    lin = check_linearizable(mutant, get_spec("list-append"), timeout=20)
    assert lin.valid is False, (r.explanation, lin.explanation)
