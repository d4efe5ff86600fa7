"""The graph checker on hand-written list-append histories, one per anomaly class."""

from __future__ import annotations

import pytest

from jepsenlike.checkers.graph import check_history, check_list_append
from jepsenlike.errors import ConfigError, HistoryError
from jepsenlike.history import History


def H(*events):
    """Events are (process, type, value) for txns or (process, type, f, key, value)."""
    ops = []
    for i, e in enumerate(events):
        if len(e) == 3:
            p, t, v = e
            ops.append(dict(index=i, time=i * 10, process=p, type=t, f="txn", value=v))
        else:
            p, t, f, k, v = e
            ops.append(dict(index=i, time=i * 10, process=p, type=t, f=f, key=k, value=v))
    return History.from_ops(ops)


def txn(p, *mops, t="ok"):
    """An invocation and its completion, back to back."""
    inv = [[f, k, None if f == "r" else v] for f, k, v in mops]
    return [(p, "invoke", inv), (p, t, [list(m) for m in mops] if t == "ok" else inv)]


def types(result):
    return set(result.details["anomaly_types"])


def only_cycle(result, name):
    [rec] = result.details["anomalies"][name]
    return rec


def test_serial_history_is_valid():
    h = H(
        *txn(0, ["append", "x", 1], ["r", "y", []]),
        *txn(1, ["r", "x", [1]], ["append", "y", 2]),
        *txn(0, ["r", "x", [1]], ["r", "y", [2]]),
    )
    r = check_list_append(h)
    assert r.valid is True, r.explanation
    assert r.details["checker"] == "graph"
    assert r.details["anomaly_types"] == []
    assert r.details["consistency"]["ruled_out"] == []


def test_g0_write_cycle():
    # T1 and T2 both append to x and y, and the final read shows their
    # appends interleaved in opposite orders on the two keys.
    h = H(
        (0, "invoke", [["append", "x", 1], ["append", "y", 1]]),
        (1, "invoke", [["append", "x", 2], ["append", "y", 2]]),
        (0, "ok", [["append", "x", 1], ["append", "y", 1]]),
        (1, "ok", [["append", "x", 2], ["append", "y", 2]]),
        *txn(2, ["r", "x", [1, 2]], ["r", "y", [2, 1]]),
    )
    r = check_list_append(h)
    assert r.valid is False
    assert types(r) == {"G0"}
    rec = only_cycle(r, "G0")
    assert sorted(rec["ops"]) == [2, 3]
    assert [s["rel"] for s in rec["steps"]] == ["ww", "ww"]
    assert "read-uncommitted" in r.details["consistency"]["weakest_ruled_out"]


def test_g1c_circular_information_flow():
    h = H(
        (0, "invoke", [["append", "x", 1], ["r", "y", None]]),
        (1, "invoke", [["append", "y", 2], ["r", "x", None]]),
        (0, "ok", [["append", "x", 1], ["r", "y", [2]]]),
        (1, "ok", [["append", "y", 2], ["r", "x", [1]]]),
    )
    r = check_list_append(h)
    assert types(r) == {"G1c"}
    rec = only_cycle(r, "G1c")
    assert {s["rel"] for s in rec["steps"]} == {"wr"}
    text = rec["explanation"]
    assert "observing T1's append of 1" in text or "observing T2's append of 1" in text
    assert "a contradiction" in text
    c = r.details["consistency"]
    assert c["weakest_ruled_out"] == ["read-committed"]
    assert "read-uncommitted" in c["not_ruled_out"]
    assert "serializable" in c["ruled_out"]


def test_g_single_read_skew():
    h = H(
        (0, "invoke", [["r", "x", None], ["r", "y", None]]),
        *txn(1, ["append", "x", 1], ["append", "y", 2]),
        (0, "ok", [["r", "x", []], ["r", "y", [2]]]),
        *txn(2, ["r", "x", [1]]),
    )
    r = check_list_append(h)
    assert "G-single" in types(r)
    rec = only_cycle(r, "G-single")
    assert sorted(s["rel"] for s in rec["steps"]) == ["rw", "wr"]
    rw = next(s for s in rec["steps"] if s["rel"] == "rw")
    assert "does not yet contain" in rw["why"] and "append of 1" in rw["why"]
    c = r.details["consistency"]
    assert set(c["weakest_ruled_out"]) == {"repeatable-read", "snapshot-isolation"}
    assert "read-committed" in c["not_ruled_out"]


def test_g2_write_skew_is_not_ruled_out_for_snapshot_isolation():
    h = H(
        (0, "invoke", [["append", "x", 1], ["r", "y", None]]),
        (1, "invoke", [["append", "y", 2], ["r", "x", None]]),
        (0, "ok", [["append", "x", 1], ["r", "y", []]]),
        (1, "ok", [["append", "y", 2], ["r", "x", []]]),
        *txn(2, ["r", "x", [1]], ["r", "y", [2]]),
    )
    r = check_list_append(h)
    assert types(r) == {"G2"}
    rec = only_cycle(r, "G2")
    assert [s["rel"] for s in rec["steps"]] == ["rw", "rw"]
    assert not rec.get("nonadjacent")
    c = r.details["consistency"]
    assert "snapshot-isolation" in c["not_ruled_out"]
    assert "serializable" in c["ruled_out"]


def test_g2_with_nonadjacent_anti_dependencies_rules_out_snapshot_isolation():
    # T1 -rw-> T2 -wr-> T3 -rw-> T4 -wr-> T1
    h = H(
        (0, "invoke", [["r", "a", None], ["r", "d", None]]),
        (1, "invoke", [["append", "a", 1], ["append", "b", 1]]),
        (2, "invoke", [["r", "b", None], ["r", "c", None]]),
        (3, "invoke", [["append", "c", 1], ["append", "d", 1]]),
        (0, "ok", [["r", "a", []], ["r", "d", [1]]]),
        (1, "ok", [["append", "a", 1], ["append", "b", 1]]),
        (2, "ok", [["r", "b", [1]], ["r", "c", []]]),
        (3, "ok", [["append", "c", 1], ["append", "d", 1]]),
        *txn(4, ["r", "a", [1]], ["r", "c", [1]]),
    )
    r = check_list_append(h)
    # the same cycle is found by the G2 search and, as its own class, by the
    # G-nonadjacent search
    assert types(r) == {"G2", "G-nonadjacent"}
    rec = only_cycle(r, "G2")
    assert len(rec["steps"]) == 4 and rec["nonadjacent"] is True
    nonadj = only_cycle(r, "G-nonadjacent")
    assert [s["rel"] for s in nonadj["steps"]].count("rw") == 2
    assert "snapshot-isolation" in r.details["consistency"]["ruled_out"]


def test_g1a_aborted_read():
    h = H(
        *txn(0, ["append", "x", 1], t="fail"),
        *txn(1, ["r", "x", [1]]),
    )
    r = check_list_append(h)
    assert types(r) == {"G1a"}
    [rec] = r.details["anomalies"]["G1a"]
    assert rec["ops"] == [1, 3]
    assert "failed" in rec["explanation"]


def test_g1b_intermediate_read():
    h = H(
        (0, "invoke", [["append", "x", 1], ["append", "x", 2]]),
        *txn(1, ["r", "x", [1]]),
        (0, "ok", [["append", "x", 1], ["append", "x", 2]]),
        *txn(2, ["r", "x", [1, 2]]),
    )
    r = check_list_append(h)
    assert "G1b" in types(r)
    [rec] = r.details["anomalies"]["G1b"]
    assert rec["ops"] == [3, 2]


def test_own_intermediate_state_is_not_g1b():
    h = H(*txn(0, ["append", "x", 1], ["r", "x", [1]], ["append", "x", 2]), *txn(1, ["r", "x", [1, 2]]))
    assert check_list_append(h).valid is True


def test_g0_process_needs_process_order():
    # process 0 appends 1 then 2; a read shows 2 before 1.
    h = H(
        *txn(0, ["append", "x", 1]),
        *txn(0, ["append", "x", 2]),
        *txn(1, ["r", "x", [2, 1]]),
    )
    r = check_list_append(h)
    assert {"G0-process", "G0-realtime"} <= types(r)
    assert "G0" not in types(r)
    rec = only_cycle(r, "G0-process")
    assert sorted(s["rel"] for s in rec["steps"]) == ["process", "ww"]
    proc = next(s for s in rec["steps"] if s["rel"] == "process")
    assert "ran on process 0" in proc["why"]
    c = r.details["consistency"]
    assert c["weakest_ruled_out"] == ["strong-session-serializable"]
    assert "serializable" in c["not_ruled_out"]


def test_stale_read_is_g_single_realtime_only():
    h = H(
        *txn(0, ["append", "x", 1]),
        *txn(1, ["r", "x", [1]]),
        *txn(2, ["r", "x", []]),
    )
    r = check_list_append(h)
    assert types(r) == {"G-single-realtime"}
    rec = only_cycle(r, "G-single-realtime")
    rt = next(s for s in rec["steps"] if s["rel"] == "realtime")
    assert "completed (op" in rt["why"] and "began (op" in rt["why"]
    assert r.details["consistency"]["ruled_out"] == ["strict-serializable"]
    assert r.valid is False
    assert check_list_append(h, consistency_model="serializable").valid is True


def test_realtime_edges_go_through_barriers_transitively():
    # T1 completes before T2 begins, T2 before T3; T3's stale read of x must
    # still be ordered after T1 (two barriers apart).
    h = H(
        *txn(0, ["append", "x", 1]),
        (1, "invoke", [["append", "y", 1]]),
        (1, "ok", [["append", "y", 1]]),
        (2, "invoke", [["r", "x", None]]),
        (3, "invoke", [["r", "x", None]]),
        (3, "ok", [["r", "x", [1]]]),
        (2, "ok", [["r", "x", []]]),
    )
    r = check_list_append(h)
    assert types(r) == {"G-single-realtime"}
    assert sorted(only_cycle(r, "G-single-realtime")["ops"]) == [1, 7]


def test_concurrent_stale_read_is_fine():
    h = H(
        (0, "invoke", [["append", "x", 1]]),
        (2, "invoke", [["r", "x", None]]),
        (0, "ok", [["append", "x", 1]]),
        *txn(1, ["r", "x", [1]]),
        (2, "ok", [["r", "x", []]]),
    )
    assert check_list_append(h).valid is True


def test_duplicate_elements():
    h = H(*txn(0, ["append", "x", 1]), *txn(1, ["r", "x", [1, 1]]))
    r = check_list_append(h)
    assert types(r) == {"duplicate-elements"}
    assert r.details["anomalies"]["duplicate-elements"][0]["elements"] == [1]


def test_incompatible_order():
    h = H(
        *txn(0, ["append", "x", 1]),
        *txn(1, ["append", "x", 2]),
        *txn(2, ["r", "x", [1, 2]]),
        *txn(3, ["r", "x", [2]]),
    )
    r = check_list_append(h)
    assert "incompatible-order" in types(r)
    rec = r.details["anomalies"]["incompatible-order"][0]
    assert sorted(rec["ops"]) == [5, 7]
    assert "disagree at position 0" in rec["explanation"]


def test_garbage_read():
    h = H(*txn(0, ["append", "x", 1]), *txn(1, ["r", "x", [1, 7]]))
    r = check_list_append(h)
    assert types(r) == {"garbage-read"}
    assert r.details["anomalies"]["garbage-read"][0]["element"] == 7


def test_lost_append():
    h = H(
        *txn(0, ["append", "x", 1]),
        *txn(0, ["append", "x", 2]),
        *txn(1, ["r", "x", [1]]),
    )
    r = check_list_append(h)
    # the unobserved append also came after the read that missed it (rw), which
    # began after the append completed (realtime): a G-single-realtime cycle
    assert types(r) == {"lost-append", "G-single-realtime"}
    rec = r.details["anomalies"]["lost-append"][0]
    assert rec["elements"] == [2] and rec["ops"] == [3, 5]


def test_append_not_yet_completed_may_be_missing():
    h = H(
        (0, "invoke", [["append", "x", 1]]),
        *txn(1, ["r", "x", []]),
        (0, "ok", [["append", "x", 1]]),
    )
    assert check_list_append(h).valid is True


def test_info_append_observed_becomes_a_node():
    # The info txn's append of 1 was read, so it happened; T3 then missed it
    # after T2 (which saw it) completed: a real-time cycle through the info op.
    h = H(
        (0, "invoke", [["append", "x", 1]]),
        (0, "info", [["append", "x", 1]]),
        *txn(1, ["r", "x", [1]]),
        *txn(2, ["r", "x", []]),
    )
    r = check_list_append(h)
    assert "G-single-realtime" in types(r)
    assert r.details["stats"]["nodes"] == 3


def test_info_append_unobserved_is_allowed_to_vanish():
    h = H(
        (0, "invoke", [["append", "x", 1]]),
        (0, "info", [["append", "x", 1]]),
        *txn(1, ["r", "x", []]),
    )
    r = check_list_append(h)
    assert r.valid is True
    assert r.details["stats"]["nodes"] == 1


def test_single_append_and_read_ops():
    h = H(
        (0, "invoke", "append", "x", 1),
        (0, "ok", "append", "x", 1),
        (1, "invoke", "read", "x", None),
        (1, "ok", "read", "x", []),
    )
    r = check_history(h, "list-append")
    # nobody ever saw the acknowledged append, and a later read missed it
    assert types(r) == {"lost-append", "G-single-realtime"}


def test_ok_read_of_null_means_empty_list():
    h = H(
        (0, "invoke", "append", "x", 1),
        (0, "ok", "append", "x", 1),
        (1, "invoke", "read", "x", None),
        (1, "ok", "read", "x", None),
    )
    assert check_list_append(h).valid is False


def test_nemesis_and_other_ops_are_ignored():
    ops = [
        dict(index=0, time=0, process="nemesis", type="invoke", f="start-partition", value=None),
        dict(index=1, time=1, process="nemesis", type="info", f="start-partition", value=None),
        dict(index=2, time=2, process=0, type="invoke", f="noop", value=None),
        dict(index=3, time=3, process=0, type="ok", f="noop", value=None),
    ]
    r = check_list_append(History.from_ops(ops))
    assert r.valid is True
    assert r.details["ignored_fs"] == {"noop": 1}


def test_bad_micro_op_names_the_op():
    h = H(*txn(0, ["inc", "x", 1]))
    with pytest.raises(HistoryError, match="op 1.*'inc'"):
        check_list_append(h)


def test_unknown_model_is_a_config_error():
    h = H(*txn(0, ["append", "x", 1]))
    with pytest.raises(ConfigError, match="'queue'.*list-append, register, cas-register"):
        check_history(h, "queue")
    with pytest.raises(ConfigError, match="consistency model"):
        check_list_append(h, consistency_model="linearisable")
    with pytest.raises(ConfigError, match=r"\.dot"):
        check_history(h, "list-append", graph_out="out.png")


def test_explanation_is_readable_text():
    h = H(
        (0, "invoke", [["append", "x", 1], ["r", "y", None]]),
        (1, "invoke", [["append", "y", 2], ["r", "x", None]]),
        (0, "ok", [["append", "x", 1], ["r", "y", [2]]]),
        (1, "ok", [["append", "y", 2], ["r", "x", [1]]]),
    )
    text = check_list_append(h).explanation
    assert text.startswith("list-append: found G1c. Not read-committed")
    assert "Let T1 = op" in text and "T1 < T2 because" in text


def test_internal_read_must_see_own_appends():
    h = H(*txn(0, ["r", "x", []], ["append", "x", 1], ["r", "x", []]))
    r = check_list_append(h)
    assert types(r) == {"internal"}
    assert "appends imply [1]" in r.details["anomalies"]["internal"][0]["explanation"]


def test_internal_read_of_own_future_append():
    h = H(*txn(0, ["r", "x", [1]], ["append", "x", 1]))
    r = check_list_append(h)
    # Elle names this future-read (a trivial wr self-cycle, so G1c-like)
    assert "future-read" in types(r)
    assert "only appends later" in r.details["anomalies"]["future-read"][0]["explanation"]


def test_repeated_reads_in_a_txn_must_agree():
    h = H(*txn(1, ["append", "x", 1]), *txn(0, ["r", "x", [1]], ["r", "x", []]))
    assert "internal" in types(check_list_append(h))


def test_details_are_json_serialisable():
    import json

    h = H(
        *txn(0, ["append", "x", 1], t="fail"),
        (1, "invoke", [["append", "x", 2], ["r", "y", None]]),
        (2, "invoke", [["append", "y", 3], ["r", "x", None]]),
        (1, "ok", [["append", "x", 2], ["r", "y", [3]]]),
        (2, "ok", [["append", "y", 3], ["r", "x", [1, 2]]]),
    )
    r = check_list_append(h)
    assert {"G1a", "G1c"} <= types(r)
    json.dumps(r.to_dict())


def test_unhashable_read_element_is_a_history_error():
    h = H(*txn(0, ["r", "x", [[1]]]))
    with pytest.raises(HistoryError, match="op 1"):
        check_list_append(h)


def test_list_append_with_initial_lists_is_refused():
    from jepsenlike.checkers.specs import get_spec

    h = H(*txn(0, ["append", "x", 1]))
    with pytest.raises(ConfigError, match="starts empty"):
        check_history(h, "list-append", spec=get_spec("list-append", {"x": [0]}))
    assert check_history(h, "list-append", spec=get_spec("list-append")).valid is True


def test_cycles_are_reported_even_without_search_time():
    h = H(
        (0, "invoke", [["append", "x", 1], ["r", "y", None]]),
        (1, "invoke", [["append", "y", 2], ["r", "x", None]]),
        (0, "ok", [["append", "x", 1], ["r", "y", [2]]]),
        (1, "ok", [["append", "y", 2], ["r", "x", [1]]]),
    )
    r = check_list_append(h, cycle_search_timeout=0)
    assert r.valid is False
    assert r.details["anomaly_types"] == ["G1c"]
    assert r.details["cycle_search_timed_out"] is True
