"""The replicated key-value state machine: op semantics, atomic txns, determinism."""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from jepsenlike.models.kv import KVStore, validate_op


def op(f, key=None, value=None):
    return {"f": f, "key": key, "value": value}


def test_read_of_missing_key_is_none_and_write_then_read() -> None:
    kv = KVStore()
    assert kv.apply(op("read", "a")) == {"type": "ok", "value": None}
    assert kv.apply(op("write", "a", 3)) == {"type": "ok", "value": 3}
    assert kv.apply(op("read", "a")) == {"type": "ok", "value": 3}


def test_cas_succeeds_only_from_the_current_value() -> None:
    kv = KVStore()
    kv.apply(op("write", "a", 1))
    assert kv.apply(op("cas", "a", [2, 3])) == {"type": "fail", "error": "cas-mismatch"}
    assert kv.read("a") == 1
    assert kv.apply(op("cas", "a", [1, 3]))["type"] == "ok"
    assert kv.read("a") == 3
    # cas on a missing key compares against None
    assert kv.apply(op("cas", "b", [None, 1]))["type"] == "ok"


def test_append_builds_a_list_and_refuses_non_lists() -> None:
    kv = KVStore()
    kv.apply(op("append", "l", 1))
    kv.apply(op("append", "l", 2))
    assert kv.read("l") == [1, 2]
    kv.apply(op("write", "s", "str"))
    assert kv.apply(op("append", "s", 1)) == {"type": "fail", "error": "not-a-list"}


def test_txn_fills_in_reads_and_sees_its_own_writes() -> None:
    kv = KVStore()
    kv.apply(op("append", "x", 0))
    r = kv.apply(
        op("txn", None, [["r", "x", None], ["append", "x", 1], ["r", "x", None], ["w", "y", 5],
                         ["r", "y", None], ["append", "z", 9]])
    )
    assert r == {
        "type": "ok",
        "value": [["r", "x", [0]], ["append", "x", 1], ["r", "x", [0, 1]], ["w", "y", 5],
                  ["r", "y", 5], ["append", "z", 9]],
    }
    assert kv.read("x") == [0, 1] and kv.read("y") == 5 and kv.read("z") == [9]


def test_failing_txn_applies_nothing() -> None:
    kv = KVStore()
    kv.apply(op("write", "s", "str"))
    r = kv.apply(op("txn", None, [["w", "a", 1], ["append", "s", 2]]))
    assert r["type"] == "fail"
    assert kv.read("a") is None and kv.read("s") == "str"


def test_malformed_ops_fail_without_effect() -> None:
    kv = KVStore()
    for bad in [op("nope", "a"), op("cas", "a", 1), op("txn", None, [["x", "a", 1]]), "str"]:
        assert kv.apply(bad)["error"] == "bad-op"  # type: ignore[arg-type]
    assert kv.data == {}
    assert "unknown f" in (validate_op(op("nope")) or "")


def test_values_read_are_copies() -> None:
    kv = KVStore()
    kv.apply(op("append", "l", [1]))
    got = kv.apply(op("read", "l"))["value"]
    got.append("mutated")
    got[0].append("mutated")
    assert kv.read("l") == [[1]]


def test_integer_and_string_keys_survive_snapshot_alike() -> None:
    kv = KVStore()
    kv.apply(op("write", 1, "one"))
    again = KVStore.restore(json.loads(json.dumps(kv.snapshot())))
    assert again.read(1) == "one" and again == kv


ops = st.one_of(
    st.builds(op, st.just("read"), st.sampled_from("abc")),
    st.builds(op, st.just("write"), st.sampled_from("abc"), st.integers(0, 3)),
    st.builds(op, st.just("cas"), st.sampled_from("abc"),
              st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=2, max_size=2)),
    st.builds(op, st.just("append"), st.sampled_from("abc"), st.integers(0, 3)),
    st.builds(
        op, st.just("txn"), st.none(),
        st.lists(st.tuples(st.sampled_from(["r", "w", "append"]), st.sampled_from("abc"),
                           st.integers(0, 3)).map(list), max_size=4),
    ),
)


@given(st.lists(ops, max_size=40), st.integers(0, 40))
def test_replicas_applying_the_same_ops_agree_even_through_a_snapshot(oplist, cut) -> None:
    a = KVStore()
    results_a = [a.apply(o) for o in oplist]
    b = KVStore()
    results_b = [b.apply(o) for o in oplist[:cut]]
    b = KVStore.restore(json.loads(json.dumps(b.snapshot())))
    results_b += [b.apply(o) for o in oplist[cut:]]
    assert results_a == results_b
    assert a == b


def test_state_machine_uses_no_randomness() -> None:
    rng = random.Random(5)
    oplist = [op("append", rng.choice("xyz"), rng.randrange(9)) for _ in range(200)]
    x, y = KVStore(), KVStore()
    random.seed(1)
    [x.apply(o) for o in oplist]
    random.seed(2)
    [y.apply(o) for o in oplist]
    assert x.snapshot() == y.snapshot()
