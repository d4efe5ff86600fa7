"""The linearizability search: known cases, generated histories, the brute-force oracle."""

from __future__ import annotations

import collections
import dataclasses
import json
import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import check_bruteforce
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import freeze, get_spec
from jepsenlike.checkers.synth import MODELS, generate, mutate, render, simulate
from jepsenlike.errors import ConfigError
from jepsenlike.history import History, Op


def H(*events):
    """A history from (process, type, f, value[, key]) tuples, one event each, in order."""
    ops = []
    for i, (p, t, f, v, *key) in enumerate(events):
        ops.append(Op(i, i * 10, p, t, f, key[0] if key else None, v))
    return History.from_ops(ops, "<test>")


def verdict(history, model="cas-register", **kw):
    spec = get_spec(model)
    result = check_linearizable(history, spec, **kw)
    if result.valid in (True, False):
        # every hand-written case is small enough for the oracle: both must agree
        assert check_bruteforce(history, spec) is result.valid
    return result


# ----------------------------------------------------------------------------- known cases


def test_empty_and_sequential_histories():
    assert verdict(H()).valid is True
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1),
          (0, "invoke", "read", None), (0, "ok", "read", 1))
    assert verdict(h).valid is True


def test_stale_read_is_not_linearizable_and_the_witness_says_why():
    h = H((0, "invoke", "write", 1), (0, "ok", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", None))
    r = verdict(h)
    assert r.valid is False
    assert r.details["op"]["index"] == 2
    assert "read" in r.details["op"]["description"]
    assert r.details["reason"] == "read null but the value is 1"
    assert r.details["key"] is None
    lin = r.details["partial_linearizations"][0]
    assert [s["index"] for s in lin["steps"]] == [0]
    assert lin["steps"][0]["state_before"] is None and lin["final_state"] == 1
    assert "read null but the value is 1" in r.explanation
    assert isinstance(r.details["time_s"], float)
    json.dumps(r.to_dict())


def test_concurrent_read_may_see_either_value():
    for seen in (None, 1):
        h = H((0, "invoke", "write", 1), (1, "invoke", "read", None),
              (1, "ok", "read", seen), (0, "ok", "write", 1))
        assert verdict(h).valid is True
    h = H((0, "invoke", "write", 1), (1, "invoke", "read", None),
          (1, "ok", "read", 2), (0, "ok", "write", 1))
    assert verdict(h).valid is False


def test_read_before_the_write_was_invoked_is_not_linearizable():
    h = H((1, "invoke", "read", None), (1, "ok", "read", 1),
          (0, "invoke", "write", 1), (0, "ok", "write", 1))
    assert verdict(h).valid is False


def test_two_successful_cas_from_the_same_value_cannot_both_happen():
    h = H((0, "invoke", "cas", [None, 1]), (1, "invoke", "cas", [None, 2]),
          (0, "ok", "cas", [None, 1]), (1, "ok", "cas", [None, 2]))
    r = verdict(h)
    assert r.valid is False
    assert r.details["reason"].startswith("can't CAS ")


def test_failed_ops_never_happened():
    h = H((0, "invoke", "write", 1), (0, "fail", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is False
    h = H((0, "invoke", "write", 1), (0, "fail", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", None))
    assert verdict(h).valid is True


def test_info_write_may_have_happened_or_not():
    for seen in (None, 1):
        h = H((0, "invoke", "write", 1), (0, "info", "write", 1),
              (1, "invoke", "read", None), (1, "ok", "read", seen))
        assert verdict(h).valid is True


def test_info_write_may_take_effect_after_its_info_completion():
    # the write times out, a read still sees the old value, a later read the new one
    h = H((0, "invoke", "write", 1), (0, "info", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", None),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is True


def test_info_write_happens_at_most_once():
    h = H((0, "invoke", "write", 1), (0, "info", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", 1),
          (1, "invoke", "write", 2), (1, "ok", "write", 2),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is False
    # ... and a second info write of the same value makes it possible again
    h2 = H((0, "invoke", "write", 1), (0, "info", "write", 1),
           (2, "invoke", "write", 1), (2, "info", "write", 1),
           (1, "invoke", "read", None), (1, "ok", "read", 1),
           (1, "invoke", "write", 2), (1, "ok", "write", 2),
           (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h2).valid is True


def test_once_seen_an_info_write_cannot_be_unseen():
    h = H((0, "invoke", "write", 1), (0, "info", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", 1),
          (1, "invoke", "read", None), (1, "ok", "read", None))
    assert verdict(h).valid is False


def test_info_write_cannot_take_effect_before_its_invocation():
    h = H((1, "invoke", "read", None), (1, "ok", "read", 1),
          (0, "invoke", "write", 1), (0, "info", "write", 1))
    assert verdict(h).valid is False


def test_never_completed_ops_are_like_info():
    h = H((0, "invoke", "write", 1),
          (1, "invoke", "read", None), (1, "ok", "read", None),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is True
    h = H((0, "invoke", "cas", [0, 1]),
          (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is False  # the cas could never have succeeded from null


def test_info_reads_constrain_nothing():
    h = H((0, "invoke", "read", None), (0, "info", "read", None),
          (1, "invoke", "write", 3), (1, "ok", "write", 3))
    assert verdict(h).valid is True


def test_info_cas_may_have_succeeded():
    h = H((0, "invoke", "write", 0), (0, "ok", "write", 0),
          (0, "invoke", "cas", [0, 5]), (0, "info", "cas", [0, 5]),
          (1, "invoke", "read", None), (1, "ok", "read", 5))
    assert verdict(h).valid is True


def test_nemesis_events_are_ignored():
    h = H(("nemesis", "invoke", "start-partition", None),
          (0, "invoke", "write", 1), ("nemesis", "info", "start-partition", "majority"),
          (0, "ok", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(h).valid is True


def test_keys_are_checked_independently_and_the_bad_key_is_named():
    h = H((0, "invoke", "write", 1, "a"), (0, "ok", "write", 1, "a"),
          (1, "invoke", "write", 2, "b"), (1, "ok", "write", 2, "b"),
          (0, "invoke", "read", None, "a"), (0, "ok", "read", 1, "a"),
          (1, "invoke", "read", None, "b"), (1, "ok", "read", 1, "b"))
    r = verdict(h)
    assert r.valid is False
    assert r.details["key"] == "b"
    assert [f["key"] for f in r.details["failures"]] == ["b"]
    assert r.details["keys"] == 2
    assert r.details["op"]["index"] == 6
    assert "key \"b\"" in r.explanation


def test_queue_mutex_and_set_histories():
    q = H((0, "invoke", "enqueue", 1), (1, "invoke", "enqueue", 2),
          (0, "ok", "enqueue", 1), (1, "ok", "enqueue", 2),
          (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 2),
          (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1))
    assert verdict(q, "queue").valid is True
    q_bad = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
              (1, "invoke", "enqueue", 2), (1, "ok", "enqueue", 2),
              (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 2))
    r = verdict(q_bad, "queue")
    assert r.valid is False and r.details["reason"] == "dequeued 2 but the head is 1"
    m = H((0, "invoke", "acquire", None), (0, "ok", "acquire", None),
          (1, "invoke", "acquire", None), (1, "ok", "acquire", None))
    r = verdict(m, "mutex")
    assert r.valid is False and r.details["reason"] == "already held"
    s = H((0, "invoke", "add", 1), (1, "invoke", "read", None), (1, "ok", "read", [1]),
          (0, "info", "add", 1))
    assert verdict(s, "set").valid is True


def test_multi_register_and_list_append_txns():
    ok = H((0, "invoke", "txn", [["w", "x", 1], ["w", "y", 1]]),
           (0, "ok", "txn", [["w", "x", 1], ["w", "y", 1]]),
           (1, "invoke", "txn", [["r", "x", None], ["r", "y", None]]),
           (1, "ok", "txn", [["r", "x", 1], ["r", "y", 1]]))
    assert verdict(ok, "multi-register").valid is True
    torn = H((0, "invoke", "txn", [["w", "x", 1], ["w", "y", 1]]),
             (1, "invoke", "txn", [["r", "x", None], ["r", "y", None]]),
             (1, "ok", "txn", [["r", "x", 1], ["r", "y", None]]),
             (1, "invoke", "txn", [["r", "y", None]]),
             (1, "ok", "txn", [["r", "y", None]]),
             (0, "ok", "txn", [["w", "x", 1], ["w", "y", 1]]))
    assert verdict(torn, "multi-register").valid is True  # a null read is unconstrained
    torn2 = H((0, "invoke", "txn", [["w", "x", 1], ["w", "y", 1]]),
              (0, "ok", "txn", [["w", "x", 1], ["w", "y", 1]]),
              (1, "invoke", "txn", [["r", "x", None], ["r", "y", None]]),
              (1, "ok", "txn", [["r", "x", 1], ["r", "y", 2]]))
    assert verdict(torn2, "multi-register").valid is False
    la = H((0, "invoke", "append", 1, "k"), (1, "invoke", "txn", [["append", "k", 2], ["r", "k", None]]),
           (1, "ok", "txn", [["append", "k", 2], ["r", "k", [1, 2]]]), (0, "ok", "append", 1, "k"),
           (0, "invoke", "read", None, "k"), (0, "ok", "read", [1, 2], "k"))
    assert verdict(la, "list-append").valid is True
    la_bad = H((0, "invoke", "append", 1, "k"), (0, "ok", "append", 1, "k"),
               (1, "invoke", "append", 2, "k"), (1, "ok", "append", 2, "k"),
               (0, "invoke", "read", None, "k"), (0, "ok", "read", [2, 1], "k"))
    assert verdict(la_bad, "list-append").valid is False


def test_simplifications_keep_verdicts_and_witnesses_exact():
    # a write nobody reads still happened: the witness names its real value
    h = H((0, "invoke", "write", 7), (0, "ok", "write", 7),
          (1, "invoke", "read", None), (1, "ok", "read", None))
    r = verdict(h, "register")
    assert r.valid is False and r.details["reason"] == "read null but the value is 7"
    assert r.details["partial_linearizations"][0]["final_state"] == 7
    # a cas to a value nobody reads, then a cas expecting the old value
    h = H((0, "invoke", "cas", [None, 7]), (0, "ok", "cas", [None, 7]),
          (1, "invoke", "cas", [None, 8]), (1, "ok", "cas", [None, 8]))
    assert verdict(h).valid is False
    # an element enqueued twice and dequeued once by an ok dequeue: the other
    # copy may have gone to the dequeue of unknown outcome
    q = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
          (0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
          (1, "invoke", "dequeue", None), (1, "info", "dequeue", None),
          (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1),
          (0, "invoke", "dequeue", None), (0, "ok", "dequeue", None))
    assert verdict(q, "queue").valid is True
    q2 = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "enqueue", 2), (0, "ok", "enqueue", 2),
           (1, "invoke", "dequeue", None), (1, "info", "dequeue", None),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", None))
    assert verdict(q2, "queue").valid is True  # the unknown dequeue took 2, after 1 left
    q3 = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "enqueue", 2), (0, "ok", "enqueue", 2),
           (1, "invoke", "dequeue", None), (1, "info", "dequeue", None),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 2),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", None))
    assert verdict(q3, "queue").valid is True  # it took 1
    q4 = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "enqueue", 2), (0, "ok", "enqueue", 2),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1),
           (1, "invoke", "dequeue", None), (1, "info", "dequeue", None),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1))
    assert verdict(q4, "queue").valid is False
    # an element enqueued twice: its two dequeues say nothing about its order
    q5 = H((0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "enqueue", 2), (0, "ok", "enqueue", 2),
           (0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 2),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1))
    assert verdict(q5, "queue").valid is True
    q6 = H((0, "invoke", "enqueue", 2), (0, "ok", "enqueue", 2),
           (0, "invoke", "enqueue", 1), (0, "ok", "enqueue", 1),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 1),
           (0, "invoke", "dequeue", None), (0, "ok", "dequeue", 2))
    r = verdict(q6, "queue")
    assert r.valid is False
    assert r.details["reason"] == (
        "1 would be dequeued after 2, but its dequeue returned before the dequeue of 2 began"
    )
    # an added element nobody reads is still in the set
    s = H((0, "invoke", "add", 5), (0, "ok", "add", 5),
          (1, "invoke", "read", None), (1, "ok", "read", []))
    assert verdict(s, "set").valid is False
    la = H((0, "invoke", "append", 5, "k"), (0, "ok", "append", 5, "k"),
           (1, "invoke", "read", None, "k"), (1, "ok", "read", [], "k"))
    assert verdict(la, "list-append").valid is False


def test_an_op_the_model_does_not_know_is_a_config_error():
    h = H((0, "invoke", "cas", [1, 2]), (0, "ok", "cas", [1, 2]))
    with pytest.raises(ConfigError, match="model 'register' has no op f='cas'"):
        check_linearizable(h, get_spec("register"))


def hard_history(n=9):
    """n concurrent writes of distinct values, each value read by a concurrent read,
    then a read of a value nobody wrote: invalid, but only after trying every order."""
    ev = [(p, "invoke", "write", p) for p in range(n)]
    ev += [(n + p, "invoke", "read", None) for p in range(n)]
    ev += [(p, "ok", "write", p) for p in range(n)]
    ev += [(n + p, "ok", "read", p) for p in range(n)]
    ev += [(2 * n, "invoke", "read", None), (2 * n, "ok", "read", 99)]
    return H(*ev)


def test_budget_exhausted_gives_unknown_with_the_reason():
    h = hard_history()
    r = check_linearizable(h, get_spec("register"), max_memory_states=1000)
    assert r.valid == "unknown"
    u = r.details["unknown"][0]
    assert u["key"] is None and u["ops"] == 19 and u["concurrency"] == 18 and u["info_ops"] == 0
    assert "memory budget" in u["reason"]
    assert "18 concurrent" in r.explanation
    r = check_linearizable(h, get_spec("register"), timeout=0.0)
    assert r.valid == "unknown" and "time budget" in r.details["unknown"][0]["reason"]
    # with enough budget the same history is decided: not linearizable
    r = check_linearizable(h, get_spec("register"))
    assert r.valid is False and r.details["reason"].startswith("read 99 but the value is ")


def test_witness_replays_as_a_legal_sequential_execution():
    rng = random.Random(7)
    checked = 0
    for seed in range(300):
        recs = mutate(simulate("cas-register", random.Random(seed), n_ops=30, processes=4), rng)
        h = render(recs)
        spec = get_spec("cas-register")
        r = check_linearizable(h, spec)
        if r.valid is not False:
            continue
        checked += 1
        lin = r.details["partial_linearizations"][0]
        assert "omitted" not in lin
        state = spec.init()
        for s in lin["steps"]:
            assert s["state_before"] == spec.describe_state(state)
            inv = h.ops[s["index"]]
            comp = h.completion_of(inv)
            ret = freeze(comp.value) if comp is not None and comp.type == "ok" else None
            ok, state = spec.step(state, inv.f, freeze(inv.value), ret if ret is not None else
                                  (None if inv.f == "read" else freeze(inv.value)))
            assert ok
        assert lin["final_state"] == spec.describe_state(state)
        blocked = h.ops[r.details["op"]["index"]]
        assert h.completion_of(blocked).type == "ok"
    assert checked >= 20


# ----------------------------------------------------------------------------- generated


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    seed=st.integers(0, 2**32 - 1),
    n_ops=st.integers(1, 60),
    processes=st.integers(1, 6),
    n_keys=st.integers(1, 3),
    p_info=st.sampled_from([0.0, 0.1, 0.3]),
    p_fail=st.sampled_from([0.0, 0.1]),
)
def test_histories_linearizable_by_construction_are_linearizable(
    model, seed, n_ops, processes, n_keys, p_info, p_fail
):
    if model == "list-append":
        n_ops = min(n_ops, 30)  # distinct appends make every order a distinct state
    h = generate(model, seed, n_ops=n_ops, processes=processes, keys=list(range(n_keys)),
                 p_info=p_info, p_fail=p_fail)
    r = check_linearizable(h, get_spec(model))
    event(f"info ops: {'some' if any(op.type == 'info' for op in h) else 'none'}")
    assert r.valid is True, r.explanation


def small_history(model: str, seed: int) -> History:
    rng = random.Random(seed)
    keys = [1] if rng.random() < 0.6 else [1, 2]
    recs = simulate(model, rng, n_ops=rng.randint(1, 7), processes=rng.randint(1, 4), keys=keys,
                    p_info=rng.choice([0.0, 0.2, 0.4]), values=3)
    if rng.random() < 0.85:
        for _ in range(rng.randint(1, 3)):
            recs = mutate(recs, rng, values=3)
    return render(recs)


class Reversed:
    """A spec whose order hints make the search try candidates latest-called first
    (so the hinted search loop is checked against the oracle for every spec)."""

    def __init__(self, spec):
        self._spec = spec

    def __getattr__(self, name):
        return getattr(self._spec, name)

    def hints(self):
        return dataclasses.replace(self._spec.hints(), order=lambda ops: [-op.call for op in ops])


def test_search_agrees_with_brute_force_on_small_generated_histories():
    verdicts: collections.Counter[tuple[str, bool]] = collections.Counter()
    for model in MODELS:
        spec = get_spec(model)
        for seed in range(500):
            h = small_history(model, seed)
            expected = check_bruteforce(h, spec)
            got = check_linearizable(h, spec).valid
            assert got is expected, (model, seed, [op.to_dict() for op in h])
            got = check_linearizable(h, Reversed(spec)).valid
            assert got is expected, ("reversed", model, seed, [op.to_dict() for op in h])
            verdicts[(model, expected)] += 1
    # the generated set must exercise both verdicts, for every model
    for model in MODELS:
        assert verdicts[(model, True)] >= 30, verdicts
        assert verdicts[(model, False)] >= 30, verdicts


@settings(max_examples=150, deadline=None)
@given(model=st.sampled_from(MODELS), seed=st.integers(0, 2**32 - 1))
def test_search_agrees_with_brute_force_hypothesis(model, seed):
    h = small_history(model, seed)
    spec = get_spec(model)
    expected = check_bruteforce(h, spec)
    event(f"verdict {expected}")
    assert check_linearizable(h, spec).valid is expected
