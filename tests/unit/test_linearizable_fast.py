"""The fast search's contracts: JSON values, malformed completions, parallel and
stop-at-first paths agreeing with the serial all-keys one, and the unknown path."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import check_bruteforce
from jepsenlike.checkers.linearizable import check_linearizable, prepare
from jepsenlike.checkers.result import UNKNOWN, Verdict
from jepsenlike.checkers.specs import FALSE, TRUE, Reason, freeze, get_spec, show, thaw
from jepsenlike.checkers.synth import kv_history, mutate, render, simulate, stale_read
from jepsenlike.errors import ConfigError
from jepsenlike.history import History, Op


def H(*events):
    """A history from (process, type, f, value[, key]) tuples, one event each, in order."""
    ops = []
    for i, (p, t, f, v, *key) in enumerate(events):
        ops.append(Op(i, i * 10, p, t, f, key[0] if key else None, v))
    return History.from_ops(ops, "<test>")


def same_json(a, b) -> bool:
    """Equal as JSON values: a boolean equals only the same boolean (independent of freeze)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


# ----------------------------------------------------------------------------- true is not 1

SCALARS = st.sampled_from([True, False, 1, 0, 2, None, "1"])


def test_frozen_booleans_are_not_numbers():
    assert freeze(True) is TRUE and freeze(False) is FALSE
    assert TRUE != 1 and FALSE != 0 and hash(TRUE) != hash(1)
    assert len({freeze(True), freeze(1), freeze(False), freeze(0)}) == 4
    assert freeze([True, 1]) != freeze([1, 1])
    assert freeze({"a": True}) != freeze({"a": 1})
    assert thaw(freeze([True, {"k": False}])) == [True, {"k": False}]
    assert show(freeze(True)) == "true" and show(freeze([False, 0])) == "[false, 0]"


@settings(max_examples=80, deadline=None)
@given(written=SCALARS, read=SCALARS)
def test_register_reads_back_exactly_the_json_value_written(written, read):
    expected = same_json(written, read)
    for model in ("register", "cas-register"):
        h = H((0, "invoke", "write", written), (0, "ok", "write", written),
              (1, "invoke", "read", None), (1, "ok", "read", read))
        spec = get_spec(model)
        r = check_linearizable(h, spec)
        assert r.valid is expected, (model, written, read, r.explanation)
        assert check_bruteforce(h, spec) is expected
    # cas: compare-and-set from true succeeds only on true
    h = H((0, "invoke", "write", written), (0, "ok", "write", written),
          (1, "invoke", "cas", [read, 5]), (1, "ok", "cas", [read, 5]))
    assert check_linearizable(h, get_spec("cas-register")).valid is expected


@settings(max_examples=60, deadline=None)
@given(written=SCALARS, read=SCALARS)
def test_multi_register_and_set_keep_booleans_apart(written, read):
    expected = same_json(written, read)
    h = H((0, "invoke", "txn", [["w", "x", written]]), (0, "ok", "txn", [["w", "x", written]]),
          (1, "invoke", "txn", [["r", "x", None]]), (1, "ok", "txn", [["r", "x", read]]))
    spec = get_spec("multi-register")
    if read is None:
        expected = True  # a null read in a txn is unconstrained
    assert check_linearizable(h, spec).valid is expected
    assert check_bruteforce(h, spec) is expected
    h = H((0, "invoke", "add", written), (0, "ok", "add", written),
          (1, "invoke", "read", None), (1, "ok", "read", [read]))
    spec = get_spec("set")
    assert check_linearizable(h, spec).valid is same_json(written, read)
    assert check_bruteforce(h, spec) is same_json(written, read)


def test_keys_true_and_1_are_different_objects():
    h = H((0, "invoke", "write", 5, True), (0, "ok", "write", 5, True),
          (1, "invoke", "read", None, 1), (1, "ok", "read", None, 1))
    r = check_linearizable(h, get_spec("register"))
    assert r.valid is True and r.details["keys"] == 2


def test_boolean_initial_states():
    h = H((0, "invoke", "read", None), (0, "ok", "read", 1))
    assert check_linearizable(h, get_spec("register", init=True)).valid is False
    h = H((0, "invoke", "read", None), (0, "ok", "read", True))
    assert check_linearizable(h, get_spec("register", init=True)).valid is True
    h = H((0, "invoke", "release", None), (0, "ok", "release", None))
    assert check_linearizable(h, get_spec("mutex", init=True)).valid is True
    with pytest.raises(ConfigError, match="must be true"):
        get_spec("mutex", init=1)


# ----------------------------------------------------------------------------- malformed completions


@pytest.mark.parametrize(
    ("model", "f", "invoked", "completed"),
    [
        ("register", "write", 1, 2),
        ("register", "write", 1, True),
        ("cas-register", "cas", [0, 1], [0, 2]),
        ("kv", "append", "x", "y"),
        ("set", "add", 1, 2),
        ("queue", "enqueue", 1, True),
    ],
)
def test_an_ok_completion_that_changes_the_written_value_is_refused(model, f, invoked, completed):
    h = H((0, "invoke", f, invoked), (0, "ok", f, completed))
    with pytest.raises(ConfigError) as e:
        check_linearizable(h, get_spec(model))
    msg = str(e.value)
    assert "\n" not in msg and "op 0" in msg and "must repeat" in msg
    # info and fail completions carry no result: their values are not compared
    for t in ("info", "fail"):
        assert check_linearizable(H((0, "invoke", f, invoked), (0, t, f, completed)),
                                  get_spec(model)).valid is True


def test_an_ok_txn_must_repeat_its_micro_ops():
    spec = get_spec("multi-register")
    bad = H((0, "invoke", "txn", [["w", "x", 1], ["r", "y", None]]),
            (0, "ok", "txn", [["w", "x", 2], ["r", "y", None]]))
    with pytest.raises(ConfigError, match="micro-op"):
        check_linearizable(bad, spec)
    short = H((0, "invoke", "txn", [["w", "x", 1], ["r", "y", None]]),
              (0, "ok", "txn", [["w", "x", 1]]))
    with pytest.raises(ConfigError, match="same micro-ops"):
        check_linearizable(short, spec)
    la = H((0, "invoke", "txn", [["append", "x", 1], ["r", "x", None]]),
           (0, "ok", "txn", [["append", "x", 1], ["r", "x", [1]]]))
    assert check_linearizable(la, get_spec("list-append")).valid is True
    la_bad = H((0, "invoke", "txn", [["append", "x", 1]]), (0, "ok", "txn", [["append", "x", 3]]))
    with pytest.raises(ConfigError, match="micro-op"):
        check_linearizable(la_bad, get_spec("list-append"))


def test_reasons_are_worded_when_read():
    why = Reason("read {} but the value is {}", freeze(True), 1)
    assert str(why) == "read true but the value is 1" and why == "read true but the value is 1"


# ----------------------------------------------------------------------------- parallel, stop-at-first


def multi_key_history(seed: int, n_keys: int, bad: int) -> History:
    """A kv history over ``n_keys`` keys; ``bad`` keys get a stale read (not linearizable)."""
    rng = random.Random(seed)
    recs = simulate("kv", rng, n_ops=40 * n_keys, processes=6, keys=list(range(n_keys)),
                    p_info=0.1, p_fail=0.0, kv_mix=(0.5, 0.1))
    for k in rng.sample(range(n_keys), bad):
        recs = stale_read(recs, k, rng.random()) or recs
    return render(recs)


def comparable(r):
    d = r.to_dict()
    d.pop("time_s")
    d.pop("workers")
    return d


# The parallel path forks, so it is taken only in a process without other threads; the pytest
# process may have some (left by earlier tests), so the comparison runs in a fresh interpreter.
_PARALLEL_SCRIPT = """
import json, multiprocessing, random, sys
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import render, simulate, stale_read

seed, n_keys, bad, all_keys = json.loads(sys.argv[1])
rng = random.Random(seed)
recs = simulate("kv", rng, n_ops=40 * n_keys, processes=6, keys=list(range(n_keys)),
                p_info=0.1, p_fail=0.0, kv_mix=(0.5, 0.1))
for k in rng.sample(range(n_keys), bad):
    recs = stale_read(recs, k, rng.random()) or recs
h = render(recs)
spec = get_spec("kv")
out = {}
for name, workers in (("serial", 1), ("parallel", 2)):
    r = check_linearizable(h, spec, workers=workers, all_keys=all_keys)
    d = r.to_dict()
    out[name] = {"workers": d.pop("workers"), "explanation": r.explanation,
                 "result": {k: v for k, v in d.items() if k != "time_s"}}
out["children"] = len(multiprocessing.active_children())
print(json.dumps(out, default=repr))
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_keys=st.integers(2, 6), bad=st.integers(0, 2),
       all_keys=st.booleans())
def test_parallel_path_gives_the_serial_result(seed, n_keys, bad, all_keys):
    p = subprocess.run(
        [sys.executable, "-c", _PARALLEL_SCRIPT, json.dumps([seed, n_keys, min(bad, n_keys), all_keys])],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["parallel"]["workers"] == 2
    assert out["serial"]["workers"] == 1
    assert out["parallel"]["result"] == out["serial"]["result"]
    assert out["parallel"]["explanation"] == out["serial"]["explanation"]
    assert out["children"] == 0  # the pool's processes are gone


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_keys=st.integers(1, 5), bad=st.integers(0, 3))
def test_stop_at_first_and_all_keys_agree_on_the_verdict(seed, n_keys, bad):
    h = multi_key_history(seed, n_keys, min(bad, n_keys))
    spec = get_spec("kv")
    first = check_linearizable(h, spec)
    every = check_linearizable(h, spec, all_keys=True)
    assert first.valid is every.valid
    if every.valid is False:
        # the first bad key in part order is the one stop-at-first names
        assert first.details["key"] == every.details["key"]
        assert [f["key"] for f in first.details["failures"]] == [every.details["key"]]
        # and it says how many parts it left unchecked: those after that key
        order = [thaw(k) for k in prepare(h, spec)]
        after = len(order) - order.index(first.details["key"]) - 1
        assert first.details.get("unchecked_keys", 0) == after
        assert "unchecked_keys" not in every.details
    else:
        assert "unchecked_keys" not in first.details


def test_a_bad_key_is_found_with_each_key_checked_independently():
    h = kv_history(3, clients=10, n_ops=300, n_keys=3, bad_key=1)
    for workers in (1, 2):
        r = check_linearizable(h, get_spec("kv"), workers=workers, all_keys=True)
        assert r.valid is False
        assert [f["key"] for f in r.details["failures"]] == [1]
        assert "read" in r.details["reason"]
    good = kv_history(3, clients=10, n_ops=300, n_keys=3, bad_key=None)
    assert check_linearizable(good, get_spec("kv"), workers=2).valid is True


def test_workers_must_be_positive():
    with pytest.raises(ConfigError, match="workers"):
        check_linearizable(H(), get_spec("register"), workers=0)


# ----------------------------------------------------------------------------- unknown


def hard_part(n: int, key):
    """n concurrent writes, each read by a concurrent read, then an impossible read:
    not linearizable, but only after trying every order (too much for a small budget)."""
    ev = [(p, "invoke", "write", p, key) for p in range(n)]
    ev += [(n + p, "invoke", "read", None, key) for p in range(n)]
    ev += [(p, "ok", "write", p, key) for p in range(n)]
    ev += [(n + p, "ok", "read", p, key) for p in range(n)]
    ev += [(2 * n, "invoke", "read", None, key), (2 * n, "ok", "read", 99, key)]
    return ev


@pytest.mark.parametrize("workers", [1, 2])
def test_budget_gives_unknown_and_a_bad_key_still_decides(workers):
    spec = get_spec("register")
    hard = H(*hard_part(9, "hard"))
    r = check_linearizable(hard, spec, max_memory_states=1000, workers=workers)
    assert r.valid == UNKNOWN and "memory budget" in r.details["unknown"][0]["reason"]
    # a later key that is plainly not linearizable decides the verdict
    bad = [(30, "invoke", "write", 1, "b"), (30, "ok", "write", 1, "b"),
           (31, "invoke", "read", None, "b"), (31, "ok", "read", 2, "b")]
    h = H(*hard_part(9, "hard"), *bad)
    r = check_linearizable(h, spec, max_memory_states=1000, workers=workers)
    assert r.valid is False and r.details["key"] == "b"
    assert r.details["unknown"][0]["key"] == "hard"
    # out of time: unknown, and the keys after it are said to be unchecked
    good = [(30, "invoke", "write", 1, "g"), (30, "ok", "write", 1, "g")]
    h = H(*hard_part(9, "hard"), *good)
    r = check_linearizable(h, spec, timeout=0.0, workers=workers)
    assert r.valid == UNKNOWN
    assert "time budget" in r.details["unknown"][0]["reason"]
    assert r.details["unknown"][-1] == {"key": None, "reason": "not checked: 1 more keys"}


def test_verdict_maps_to_result_validity():
    for v in (True, False, UNKNOWN):
        assert Verdict.of(v).validity == v
    with pytest.raises(ValueError):
        Verdict.of(1)  # type: ignore[arg-type]


def test_mutated_histories_never_carry_a_changed_write():
    # gen.mutate must only produce well-formed histories (the oracle tests rely on it)
    spec = get_spec("cas-register")
    for seed in range(200):
        rng = random.Random(seed)
        recs = simulate("cas-register", rng, n_ops=12, processes=3, values=3)
        for _ in range(3):
            recs = mutate(recs, rng, values=3)
        check_linearizable(render(recs), spec)  # raises ConfigError if malformed


def test_kv_with_unique_tokens_agrees_with_brute_force():
    # unique strings make the kv simplify hint drop unobserved info appends and
    # writes often; the oracle (which drops nothing) must agree every time
    spec = get_spec("kv")
    verdicts = {True: 0, False: 0}
    dropped = 0
    for seed in range(400):
        rng = random.Random(seed)
        recs = simulate("kv", rng, n_ops=rng.randint(2, 8), processes=rng.randint(1, 4),
                        p_info=rng.choice([0.2, 0.4]), kv_mix=(0.4, 0.2))
        if rng.random() < 0.85:
            for _ in range(rng.randint(1, 2)):
                recs = mutate(recs, rng)
        if rng.random() < 0.3:
            recs = stale_read(recs, None, rng.random()) or recs
        h = render(recs)
        expected = check_bruteforce(h, spec)
        assert check_linearizable(h, spec).valid is expected, [op.to_dict() for op in h]
        verdicts[expected] += 1
        kept = sum(len(ops) for ops in prepare(h, spec).values())
        ok_or_unknown = sum(1 for inv, comp in h.pairs() if comp is None or comp.type != "fail")
        reads_unknown = sum(
            1 for inv, comp in h.pairs()
            if inv.f == "read" and (comp is None or comp.type == "info")
        )
        dropped += (ok_or_unknown - reads_unknown) - kept
    assert verdicts[True] >= 50 and verdicts[False] >= 50, verdicts
    assert dropped >= 20  # the hint really was exercised


def test_frozen_values_and_reasons_survive_the_trip_to_a_worker():
    import pickle

    from jepsenlike.checkers.specs import MISSING, UNOBSERVED

    for x in (TRUE, FALSE, MISSING, UNOBSERVED):
        assert pickle.loads(pickle.dumps(x)) is x
    why = pickle.loads(pickle.dumps(Reason("read {} but {}", TRUE, freeze([1, True]))))
    assert str(why) == "read true but [1, true]"
    # booleans across the parallel path: key "b" reads 1 after true was written
    events = []
    for k in ("a", "b", "c"):
        events += [(0, "invoke", "write", True, k), (0, "ok", "write", True, k),
                   (1, "invoke", "read", None, k), (1, "ok", "read", 1 if k == "b" else True, k)]
    h = H(*events)
    serial = check_linearizable(h, get_spec("register"), workers=1, all_keys=True)
    parallel = check_linearizable(h, get_spec("register"), workers=2, all_keys=True)
    assert serial.valid is False and serial.details["key"] == "b"
    assert serial.details["reason"] == "read 1 but the value is true"
    assert comparable(parallel) == comparable(serial)


def _kv(rows: list[tuple]) -> History:
    """(process, type, f, value) rows on one key, in event order."""
    return History.from_ops(
        [{"index": i, "time": i, "process": p, "type": t, "f": f, "key": "k", "value": v}
         for i, (p, t, f, v) in enumerate(rows)]
    )


# Porcupine's kv shape (its c50 histories): concurrent appends that no read ever
# shows, because a write resets the key before anyone reads. Every order of
# them makes a different string; the search folds all such dead values into one.
KV_WIPED = [
    (0, "invoke", "append", "a"), (1, "invoke", "append", "b"),
    (2, "invoke", "append", "c"), (3, "invoke", "append", "d"),
    (4, "invoke", "write", "w"),
    (0, "ok", "append", "a"), (1, "ok", "append", "b"), (2, "ok", "append", "c"),
    (3, "ok", "append", "d"), (4, "ok", "write", "w"),
    (5, "invoke", "append", "e"), (5, "ok", "append", "e"),
    (6, "invoke", "read", None), (6, "ok", "read", "we"),
]


def test_kv_appends_wiped_by_a_write_are_checked_right():
    # linearizable: a, b, c, d in any order, then the write, then e
    spec = get_spec("kv", init="")
    h = _kv(KV_WIPED)
    assert check_linearizable(h, spec).valid is True
    assert check_bruteforce(h, spec) is True
    # a wiped append may also follow the write it was concurrent with
    late = _kv(KV_WIPED[:-1] + [(6, "ok", "read", "wbe")])
    assert check_bruteforce(late, spec) is True
    assert check_linearizable(late, spec).valid is True
    # but not after e: b returned before e was invoked
    worse = _kv(KV_WIPED[:-1] + [(6, "ok", "read", "web")])
    assert check_bruteforce(worse, spec) is False  # b returned before e began
    assert check_linearizable(worse, spec).valid is False
    # a read in the middle that shows a dead value is refused
    mid = _kv(KV_WIPED[:5] + [(7, "invoke", "read", None), (7, "ok", "read", "ab")]
              + KV_WIPED[5:])
    assert check_bruteforce(mid, spec) is True  # a then b, read, c, d, write
    assert check_linearizable(mid, spec).valid is True
    # an int written (not a string): appends onto it fail, dead or not
    ints = _kv([(0, "invoke", "write", 1), (0, "ok", "write", 1),
                (1, "invoke", "append", "z"), (1, "ok", "append", "z")])
    assert check_bruteforce(ints, spec) is False
    assert check_linearizable(ints, spec).valid is False


def test_kv_dead_values_agree_with_brute_force():
    # kv histories rich in writes that reset keys and appends nobody reads
    # (the folding of dead values into one state); the oracle folds nothing
    spec = get_spec("kv", init="")
    verdicts = {True: 0, False: 0}
    for seed in range(400):
        rng = random.Random(1000 + seed)
        recs = simulate("kv", rng, n_ops=rng.randint(3, 8), processes=rng.randint(2, 5),
                        p_info=rng.choice([0.0, 0.2]), kv_mix=(0.2, 0.3), init="")
        if rng.random() < 0.7:
            recs = mutate(recs, rng)
        if rng.random() < 0.3:
            recs = stale_read(recs, None, rng.random()) or recs
        h = render(recs)
        expected = check_bruteforce(h, spec)
        assert check_linearizable(h, spec).valid is expected, [op.to_dict() for op in h]
        verdicts[expected] += 1
    assert verdicts[True] >= 50 and verdicts[False] >= 25, verdicts
