"""The set checker on histories whose verdict is known by construction."""

from __future__ import annotations

from jepsenlike.checkers.set_full import check_set
from jepsenlike.history import History


def h(*events):
    """events: (process, type, f, key, value) in order; times are the indices."""
    return History.from_ops(
        [{"index": i, "time": i, "process": p, "type": t, "f": f, "key": k, "value": v}
         for i, (p, t, f, k, v) in enumerate(events)]
    )


def add(p, e, outcome="ok", key=0):
    return [(p, "invoke", "add", key, e), (p, outcome, "add", key, e)]


def read(p, elems, key=0):
    return [(p, "invoke", "read", key, None), (p, "ok", "read", key, elems)]


def test_all_acknowledged_adds_present_is_valid():
    r = check_set(h(*add(0, 1), *add(1, 2), *add(0, 3, "fail"), *read(2, [1, 2])))
    assert r.valid is True, r.explanation


def test_a_lost_element_is_invalid_and_named():
    r = check_set(h(*add(0, 1), *add(1, 2), *read(2, [2])))
    assert r.valid is False
    assert r.details["keys"]["0"]["lost"] == [1] and r.details["anomalies"]["lost"] == 1


def test_an_unexpected_element_is_invalid():
    r = check_set(h(*add(0, 1), *read(2, [1, 99])))
    assert r.valid is False and r.details["keys"]["0"]["unexpected"] == [99]


def test_indefinite_adds_may_or_may_not_appear():
    assert check_set(h(*add(0, 1, "info"), *add(1, 2, "info"), *read(2, [2]))).valid is True
    r = check_set(h(*add(0, 1, "info"), *read(2, [1])))
    assert r.details["keys"]["0"]["recovered_count"] == 1


def test_stale_read_in_the_middle_is_invalid_even_if_the_final_read_is_complete():
    r = check_set(h(*add(0, 1), *read(1, []), *read(1, [1])))
    assert r.valid is False and r.details["anomalies"] == {"stale": 1}


def test_concurrent_add_and_read_is_not_stale():
    ev = [(0, "invoke", "add", 0, 1), (1, "invoke", "read", 0, None), (0, "ok", "add", 0, 1),
          (1, "ok", "read", 0, []), *read(2, [1])]
    assert check_set(h(*ev)).valid is True


def test_no_final_read_is_unknown_and_final_read_must_be_in_the_final_phase():
    assert check_set(h(*add(0, 1))).valid == "unknown"
    ev = h(*read(1, []), *add(0, 1))
    assert check_set(ev, final_from_ns=100).valid == "unknown"


def test_duplicates_are_reported():
    r = check_set(h(*add(0, 1), *read(2, [1, 1])))
    assert r.valid is False and r.details["anomalies"] == {"duplicated": 1}
