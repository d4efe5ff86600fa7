"""Sequential specs: every transition, every rejection and its reason."""

from __future__ import annotations

import pytest

from jepsenlike.checkers.specs import (
    MISSING,
    SPECS,
    FrozenMap,
    freeze,
    get_spec,
    show,
    thaw,
)
from jepsenlike.errors import ConfigError


def run(spec, steps):
    """Apply (f, arg, ret) steps; return the final state or the first reason."""
    state = spec.init()
    for f, arg, ret in steps:
        ok, out = spec.step(state, f, freeze(arg), ret if ret is MISSING else freeze(ret))
        if not ok:
            return ("rejected", out)
        state = out
    return ("ok", state)


def test_registry_knows_every_spec_and_rejects_unknown_names():
    assert set(SPECS) == {
        "register", "cas-register", "multi-register", "kv", "mutex", "set", "queue", "list-append",
    }
    for name in SPECS:
        assert get_spec(name).name == name
    with pytest.raises(ConfigError) as e:
        get_spec("cas-regster")
    assert "unknown model 'cas-regster'" in str(e.value)
    assert "cas-register" in str(e.value) and "list-append" in str(e.value)


def test_register_null_is_a_value_and_the_default():
    spec = get_spec("register")
    assert spec.init() is None
    assert run(spec, [("read", None, None)]) == ("ok", None)
    assert run(spec, [("write", 1, 1), ("read", None, 1)]) == ("ok", 1)
    assert run(spec, [("write", 3, 3), ("read", None, 5)]) == ("rejected", "read 5 but the value is 3")
    assert run(spec, [("write", 3, 3), ("read", None, None)]) == (
        "rejected", "read null but the value is 3",
    )
    assert run(spec, [("write", None, None), ("read", None, None)]) == ("ok", None)
    # an unknown read result constrains nothing
    assert run(spec, [("write", 3, 3), ("read", None, MISSING)]) == ("ok", 3)


def test_register_initial_value_and_structured_values():
    spec = get_spec("register", init=0)
    assert run(spec, [("read", None, 0)]) == ("ok", 0)
    assert run(spec, [("write", [1, 2], [1, 2]), ("read", None, [1, 2])]) == ("ok", (1, 2))


def test_cas_register_reasons_follow_knossos():
    spec = get_spec("cas-register")
    assert run(spec, [("write", 3, 3), ("cas", [1, 2], [1, 2])]) == (
        "rejected", "can't CAS 3 from 1 to 2",
    )
    assert run(spec, [("cas", [None, 1], None), ("cas", [1, 2], None), ("read", None, 2)]) == ("ok", 2)
    assert run(get_spec("cas-register", init=1), [("cas", [1, 5], None)]) == ("ok", 5)
    assert run(spec, [("cas", [0, 1], None)]) == ("rejected", "can't CAS null from 0 to 1")


def test_multi_register_txn_reads_its_own_writes_and_null_reads_are_unconstrained():
    spec = get_spec("multi-register")
    ok, st = spec.step(spec.init(), "txn", freeze([["w", "x", 1], ["r", "x", None]]),
                       freeze([["w", "x", 1], ["r", "x", 1]]))
    assert ok and st == {"x": 1}
    ok, why = spec.step(st, "txn", freeze([["r", "x", None]]), freeze([["r", "x", 2]]))
    assert not ok and why == 'read 2 from key "x" but the value is 1'
    # a null read inside a txn means "not observed"
    assert spec.step(st, "txn", freeze([["r", "x", None]]), freeze([["r", "x", None]]))[0]
    # unknown outcome: writes apply, reads are unconstrained
    ok, st2 = spec.step(st, "txn", freeze([["w", "y", 2], ["r", "x", None]]), MISSING)
    assert ok and st2 == {"x": 1, "y": 2}
    assert st == {"x": 1}, "states are never mutated"
    assert hash(st2) == hash(FrozenMap({"y": 2, "x": 1}))
    init = get_spec("multi-register", init={"x": 5}).init()
    assert init == {"x": 5}
    assert spec.is_read_only("txn", freeze([["r", "x", None]]))
    assert not spec.is_read_only("txn", freeze([["r", "x", None], ["w", "x", 1]]))
    with pytest.raises(ConfigError):
        get_spec("multi-register", init=[1])


def test_kv_append_concatenates_strings():
    spec = get_spec("kv")
    assert run(spec, [("append", "a", "a"), ("append", "b", "b"), ("read", None, "ab")]) == ("ok", "ab")
    assert run(spec, [("write", "x", "x"), ("append", "y", "y"), ("read", None, "x")]) == (
        "rejected", 'read "x" but the value is "xy"',
    )
    assert run(get_spec("kv", init="z"), [("append", "a", "a")]) == ("ok", "za")
    assert run(spec, [("write", 1, 1), ("append", "a", "a")])[0] == "rejected"


def test_mutex():
    spec = get_spec("mutex")
    assert run(spec, [("acquire", None, None), ("release", None, None)]) == ("ok", False)
    assert run(spec, [("acquire", None, None), ("acquire", None, None)]) == ("rejected", "already held")
    assert run(spec, [("release", None, None)]) == ("rejected", "not held")
    assert run(get_spec("mutex", init=True), [("release", None, None)]) == ("ok", False)
    assert not spec.is_read_only("acquire", None)
    with pytest.raises(ConfigError):
        get_spec("mutex", init=3)


def test_set_reads_ignore_order():
    spec = get_spec("set")
    assert run(spec, [("add", 1, 1), ("add", 2, 2), ("read", None, [2, 1])]) == ("ok", frozenset({1, 2}))
    assert run(spec, [("add", 1, 1), ("read", None, [1, 3])]) == (
        "rejected", "read [1, 3] but the set is [1]",
    )
    assert run(get_spec("set", init=[7]), [("read", None, [7])])[0] == "ok"


def test_queue_is_fifo():
    spec = get_spec("queue")
    steps = [("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, 1), ("dequeue", None, 2)]
    assert run(spec, steps) == ("ok", ())
    assert run(spec, [("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, 2)]) == (
        "rejected", "dequeued 2 but the head is 1",
    )
    assert run(spec, [("dequeue", None, 4)]) == ("rejected", "dequeued 4 but the queue is empty")
    assert run(spec, [("dequeue", None, None)]) == ("ok", ())
    assert run(spec, [("enqueue", 1, 1), ("dequeue", None, None)])[0] == "rejected"
    # an unknown dequeue removes the head, whatever it was
    assert run(spec, [("enqueue", 1, 1), ("enqueue", 2, 2), ("dequeue", None, MISSING)]) == ("ok", (2,))
    assert not spec.is_read_only("dequeue", None)


def test_list_append_single_key_and_txn_forms_share_one_state():
    spec = get_spec("list-append")
    s = spec.init()
    ok, s = spec.step(s, "append", (1, 5), 5)
    ok, s = spec.step(s, "txn", freeze([["append", 1, 6], ["r", 1, None]]),
                      freeze([["append", 1, 6], ["r", 1, [5, 6]]]))
    assert ok and s == {1: (5, 6)}
    assert spec.step(s, "read", (1, None), (5, 6)) == (True, s)
    ok, why = spec.step(s, "read", (1, None), (6, 5))
    assert not ok and why == "read [6, 5] from key 1 but the list is [5, 6]"
    # null in an ok read means the empty list
    assert spec.step(s, "read", (2, None), None)[0]
    ok, why = spec.step(s, "txn", freeze([["r", 2, None]]), freeze([["r", 2, [9]]]))
    assert not ok and why == "read [9] from key 2 but the list is []"
    # unknown outcome: appends apply, reads are unconstrained
    ok, s2 = spec.step(s, "txn", freeze([["append", 2, 1], ["r", 1, None]]), MISSING)
    assert ok and s2 == {1: (5, 6), 2: (1,)}


def test_freeze_thaw_show_round_trip():
    v = {"a": [1, {"b": None}], "c": "x"}
    assert thaw(freeze(v)) == v
    hash(freeze(v))
    assert show(None) == "null" and show("a") == '"a"' and show((1, 2)) == "[1, 2]"
    assert show(frozenset({3, 1})) == "[1, 3]"


# name -> (initial state as JSON, one state-changing op (f, arg), the state after it as JSON)
DESCRIBED = {
    "register": (None, ("write", 1), 1),
    "cas-register": (None, ("cas", [None, 2]), 2),
    "kv": (None, ("append", "ab"), "ab"),
    "mutex": ("free", ("acquire", None), "held"),
    "queue": ([], ("enqueue", 7), [7]),
    "set": ([], ("add", 3), [3]),
    "multi-register": ({}, ("txn", [["w", "x", 1]]), {"x": 1}),
    "list-append": ({}, ("append", ["k", 4]), {"k": [4]}),
}


def test_every_spec_has_a_described_case():
    assert set(DESCRIBED) == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_describes_its_initial_state_as_json(name):
    import json

    spec = get_spec(name)
    init, (f, arg), after = DESCRIBED[name]
    described = spec.describe_state(spec.init())
    assert described == init
    assert json.loads(json.dumps(described)) == init  # plain JSON, round-trips
    ok, state = spec.step(spec.init(), f, freeze(arg), MISSING)
    assert ok, state
    assert spec.describe_state(state) == after
    assert json.loads(json.dumps(spec.describe_state(state))) == after
