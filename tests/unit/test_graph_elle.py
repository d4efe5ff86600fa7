"""Elle's own list-append examples, written out by hand, with the verdicts Elle gives.

Sources (read, not copied): the anomaly cases of Elle's test suite
(``test/elle/list_append_test.clj``: checker, unobserved-write, repeatable-read,
G-nonadjacent, lost-update, wr-process, future-read cases), the G-single
example of issue 14, and cycles Elle printed for real databases (Kyle
Kingsbury's published cycle gists), completed with the appends their reads need.

Histories use Elle's shorthand: ``"ax1ry12"`` is ``[append x 1], [r y [1, 2]]``
and ``"ry"`` is a read of y that returned nothing. Three ways to lay them out:

* :func:`concurrent` invokes every txn before any completes (each on its own
  process): only data edges, as in Elle's checker tests of bare completions;
* :func:`sequential` runs them one after another on distinct processes
  (real-time edges, no process edges);
* explicit events where the process order matters.

Where Elle names an anomaly ``X-item`` (G-single-item, G2-item,
G-nonadjacent-item) we say ``X``: every rw edge of a list-append history is an
item anti-dependency. Elle's ``:not`` is our ``consistency["not"]``.
"""

from __future__ import annotations

import re

import pytest

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.checkers.graph.core import RW, WR, WW, DepGraph
from jepsenlike.checkers.graph.listappend import ListAppendAnalysis
from jepsenlike.history import History

_MOP = re.compile(r"([ar])([a-z])(\d*)")


def mops(spec: str) -> list[list]:
    """Elle's shorthand: ``ax1`` append 1 to x; ``rx12`` read x = [1, 2]; ``rx`` read x = []."""
    out: list[list] = []
    for f, k, digits in _MOP.findall(spec):
        if f == "a":
            out.append(["append", k, int(digits)])
        else:
            out.append(["r", k, [int(d) for d in digits]])
    assert "".join("".join(m) for m in _MOP.findall(spec)) == spec, spec
    return out


def _inv(ms: list[list]) -> list[list]:
    return [[f, k, None if f == "r" else v] for f, k, v in ms]


def _txn_spec(s):
    return ("ok", s) if isinstance(s, str) else s


def _history(events) -> History:
    return History.from_ops(
        [dict(index=i, time=i, process=p, type=t, f="txn", value=v)
         for i, (p, t, v) in enumerate(events)]
    )


def concurrent(*specs) -> History:
    """All invocations, then all completions: no real-time or process order."""
    specs = [_txn_spec(s) for s in specs]
    events = [(i, "invoke", _inv(mops(s))) for i, (_, s) in enumerate(specs)]
    for i, (t, s) in enumerate(specs):
        ms = mops(s)
        events.append((i, t, ms if t == "ok" else _inv(ms)))
    return _history(events)


def sequential(*specs) -> History:
    """One txn after another, each on its own process."""
    events = []
    for i, spec in enumerate(specs):
        t, s = _txn_spec(spec)
        ms = mops(s)
        events += [(i, "invoke", _inv(ms)), (i, t, ms if t == "ok" else _inv(ms))]
    return _history(events)


def check(h: History, model: str = "strict-serializable"):
    r = check_list_append(h, consistency_model=model)
    # every edge of every cycle is explained by a sentence, never the generic fallback
    for records in r.details["anomalies"].values():
        for rec in records:
            for step in rec.get("steps", ()):
                assert not re.search(r"by a \d+ dependency", step["why"]), step
    return r


def types(r) -> set[str]:
    return set(r.details["anomaly_types"])


def not_(r) -> set[str]:
    return set(r.details["consistency"]["not"])


def edges(h: History) -> dict[tuple[int, int], int]:
    """The data edges between ops, keyed by the ops' completion indices."""
    an = ListAppendAnalysis(h)
    g = DepGraph(len(an.txns))
    an.add_data_edges(g)
    out = {}
    for u, d in enumerate(g.adj):
        for v, m in d.items():
            out[(an.txns[u].index, an.txns[v].index)] = m
    return out


# ---------------------------------------------------------------- the issue's example


def test_issue_14_g_single_from_an_unobserved_append():
    # T0 appends x 1, y 1; T1 appends x 2 and reads y empty; T2 reads x = [1, 2].
    # No read ever sees y = [1], yet T0's append committed, so T1 read before it.
    h = concurrent("ax1ay1", "ax2ry", "rx12")
    r = check(h)
    assert r.valid is False
    assert types(r) == {"G-single"}
    [rec] = r.details["anomalies"]["G-single"]
    assert sorted(s["rel"] for s in rec["steps"]) == ["rw", "ww"]
    rw = next(s for s in rec["steps"] if s["rel"] == "rw")
    assert "no read of 'y' lists 1" in rw["why"]
    assert not_(r) == {"repeatable-read", "snapshot-isolation"}
    assert check(h, "read-committed").valid is True
    assert check(h, "serializable").valid is False


# ---------------------------------------------------------------- Elle's checker cases


def test_g0():
    r = check(concurrent("ax1ay1", "ax2ay2", "rx12ry21"))
    assert types(r) == {"G0"}
    assert not_(r) == {"read-uncommitted"}
    assert r.valid is False


def test_g1a_aborted_read():
    h = concurrent(("fail", "ax1"), "rx1")
    r = check(h)
    assert types(r) == {"G1a"}
    assert not_(r) == {"read-committed"}
    # read uncommitted permits it; the verdict follows the chosen model
    assert check(h, "read-uncommitted").valid is True
    assert check(h, "read-committed").valid is False
    assert check(h, "repeatable-read").valid is False


def test_g1b_intermediate_read_is_also_g_single():
    # rx1 sees T1's intermediate append of 1 and misses its append of 2
    r = check(sequential("ax1ax2", "rx1"))
    assert {"G1b", "G-single"} <= types(r)
    assert not_(r) == {"read-committed"}


def test_g1c_circular_information_flow():
    h = concurrent("ax1ry1", "ax2ay1", "rx12ry1")
    r = check(h)
    assert types(r) == {"G1c"}
    assert not_(r) == {"read-committed"}
    assert check(h, "read-uncommitted").valid is True


def test_g_single_elle_checker_case():
    h = concurrent("ax1ay1", "ax2ry", "rx12")
    r = check(h, "repeatable-read")
    assert r.valid is False and types(r) == {"G-single"}
    assert not_(r) == {"repeatable-read", "snapshot-isolation"}


def test_g2_pure_anti_dependency_cycle():
    # each txn reads the key the other appends to as empty: write skew
    h = concurrent("ax1ry", "ay1rx")
    r = check(h)
    assert types(r) == {"G2"}
    [rec] = r.details["anomalies"]["G2"]
    assert [s["rel"] for s in rec["steps"]] == ["rw", "rw"]
    assert not_(r) == {"repeatable-read"}
    assert check(h, "read-committed").valid is True
    assert check(h, "snapshot-isolation").valid is True  # SI permits write skew
    assert check(h, "repeatable-read").valid is False
    assert check(h, "serializable").valid is False


def test_strong_si_violation_is_g_single_realtime():
    # x: 1 then 2 complete; a later read sees only [1]
    h = sequential("ax1", "ax2", "rx1", "rx12")
    r = check(h)
    assert types(r) == {"G-single-realtime"}
    assert not_(r) == {"strict-serializable"}
    assert check(h, "serializable").valid is True
    assert check(h, "strict-serializable").valid is False


def test_strong_session_violation_is_g_single_process():
    # as above, but the append of 2 and the stale read share process 1
    h = _history([
        (0, "invoke", [["append", "x", None]]), (0, "ok", [["append", "x", 1]]),
        (1, "invoke", [["append", "x", 2]]), (1, "ok", [["append", "x", 2]]),
        (1, "invoke", [["r", "x", None]]), (1, "ok", [["r", "x", [1]]]),
        (2, "invoke", [["r", "x", None]]), (2, "ok", [["r", "x", [1, 2]]]),
    ])
    r = check(h)
    assert "G-single-process" in types(r)
    assert "G-single" not in types(r)
    assert check(h, "serializable").valid is True
    assert check(h, "strong-session-serializable").valid is False


def test_g_nonadjacent_process_needs_the_unobserved_append():
    # Elle issue 17: t0 reads x empty and sees z = [1]; t1 appends x 1 (never
    # read); t2, on t1's process, reads z empty; t3 appends z 1.
    # t2 -rw-> t3 -wr-> t0 -rw-> t1 -process-> t2
    h = _history([
        (0, "invoke", [["r", "x", None], ["r", "z", None]]),
        (0, "ok", [["r", "x", []], ["r", "z", [1]]]),
        (1, "invoke", [["append", "x", 1]]), (1, "ok", [["append", "x", 1]]),
        (1, "invoke", [["r", "z", None]]), (1, "ok", [["r", "z", []]]),
        (2, "invoke", [["append", "z", 1]]), (2, "ok", [["append", "z", 1]]),
    ])
    r = check(h, "serializable")
    assert r.valid is True
    assert "G-nonadjacent-process" in types(r)
    [rec] = r.details["anomalies"]["G-nonadjacent-process"]
    assert [s["rel"] for s in rec["steps"]].count("rw") == 2
    assert check(h, "strong-session-serializable").valid is False


def test_contradictory_read_orders():
    h = concurrent("ax1ry1", "ax2", "ax3ay1", "rx13", "rx123")
    r = check(h)
    assert types(r) == {"G1c", "incompatible-order"}
    assert not_(r) == {"read-committed"}


def test_dirty_update_direct():
    r = check(concurrent(("fail", "ax1"), "ax2", "rx12"))
    assert "dirty-update" in types(r) and "G1a" in types(r)
    assert not_(r) == {"read-committed"}
    [rec] = r.details["anomalies"]["dirty-update"]
    assert rec["elements"] == [1, 2]


def test_dirty_update_through_an_indeterminate_append():
    r = check(concurrent(("fail", "ax1"), ("info", "ax2"), "ax3", "rx123"))
    assert "dirty-update" in types(r)
    assert not_(r) == {"read-committed"}


def test_no_dirty_update_without_a_failed_append():
    assert check(concurrent("ax1", "ax2", "rx12")).valid is True


def test_duplicated_elements():
    r = check(concurrent("ax1ry1", "ax2ay1", "rx121"))
    assert "duplicate-elements" in types(r)
    assert not_(r) == {"read-uncommitted"}


def test_internal_consistency_violation_with_g0():
    # t2 appends 3 and then reads x = [1, 2, 3, 4]: its own append is not last
    r = check(concurrent("ax1ax2ax4", "ax3rx1234"))
    assert {"internal", "G0"} <= types(r)
    assert not_(r) == {"read-uncommitted"}


def test_internal_alone_rules_out_snapshot_isolation_but_not_repeatable_read():
    h = concurrent("ax1", "ax2rx1", "rx1")  # t2 reads x without its own append
    r = check(h)
    assert types(r) == {"internal"}
    assert not_(r) == {"snapshot-isolation"}
    assert check(h, "repeatable-read").valid is True
    assert check(h, "serializable").valid is False


def test_future_read():
    r = check(concurrent("rx1ax1"))
    assert types(r) == {"future-read"}
    assert not_(r) == {"read-committed"}


# ---------------------------------------------------------------- unobserved writes


def test_unobserved_writes_give_g_single_and_g0():
    # w1, w2, w3 append 1, 2, 3 to both x and y; x is read [1, 2], y only [2].
    # w1 -ww-> w2 (x); w2 -ww-> w1 (y: 1 is unobserved, so after 2);
    # ry -rw-> w1 (its read of y misses the unobserved 1)
    h = concurrent("ax1ay1", "ax2ay2", "ax3ay3", "rx12", "ry2")
    r = check(h, "serializable")
    assert {"G0", "G-single"} <= types(r)
    assert not_(r) == {"read-uncommitted"}
    e = edges(h)
    w1, w2, w3, rx, ry = 5, 6, 7, 8, 9
    assert e[(w1, w2)] & WW and e[(w2, w1)] & WW
    assert e[(ry, w1)] & RW and e[(ry, w3)] & RW and e[(rx, w3)] & RW
    assert e[(w2, w3)] & WW


def test_single_and_multiple_appends_without_reads():
    # a read of x = [] precedes every append of x that no read lists
    e = edges(concurrent("rx", "ax1", "ax2"))
    assert e == {(3, 4): RW, (3, 5): RW}
    assert check(concurrent("rx", "ax1", "ax2")).valid is True


def test_read_empty_append_read():
    e = edges(concurrent("rx", "ax1", "rx1"))
    assert e == {(3, 4): RW, (4, 5): WR}


def test_adya_figure_3_is_serializable():
    h = concurrent("az1ax1ay1", "rx1ay2", "ry12az3", "rz13")
    assert check(h, "serializable").valid is True
    assert check(h).valid is True


def test_info_read_says_nothing():
    # an info txn's read of y is unknown: it must not yield T1 -rw-> T2
    h = concurrent(("info", "ax2ry"), "ax1ay1", "rx12ry1")
    r = check(h)
    assert r.valid is True, r.explanation
    e = edges(h)
    info, t2, t3 = 3, 4, 5
    assert e[(t2, info)] & WW and e[(info, t3)] & WR
    assert (info, t2) not in e


def test_info_append_observed_on_one_key_takes_effect_on_the_other():
    # the info txn's append to y was read, so its append to x happened too:
    # the read of x = [] came before it, and that read saw y = [1] after it
    h = concurrent(("info", "ax1ay1"), "rxry1")
    r = check(h)
    assert types(r) == {"G-single"}
    why = next(s["why"] for s in r.details["anomalies"]["G-single"][0]["steps"]
               if s["rel"] == "rw")
    assert "indeterminate but took effect" in why


def test_unobserved_info_append_may_not_have_happened():
    assert check(concurrent(("info", "ax1ay1"), "rxry")).valid is True


# ---------------------------------------------------------------- RR, G-nonadjacent, lost update


def test_repeatable_read_g2():
    h = concurrent("rxay1", "ryax1")
    assert check(h, "read-committed").valid is True
    r = check(h, "repeatable-read")
    assert r.valid is False and types(r) == {"G2"}
    assert not_(r) == {"repeatable-read"}


def test_rr_g_single_item():
    h = concurrent("ax1ay1", "rx1ry")
    r = check(h, "repeatable-read")
    assert r.valid is False and types(r) == {"G-single"}


def test_g_nonadjacent():
    # t1 -wr-> t2 -rw-> t3 -wr-> t4 -rw-> t1
    h = concurrent("ax1", "rx1ry", "ay1", "ry1rx")
    r = check(h)
    assert "G-nonadjacent" in types(r)
    assert not_(r) == {"repeatable-read", "snapshot-isolation"}
    assert check(h, "snapshot-isolation").valid is False
    assert check(h, "read-committed").valid is True


def test_adjacent_rw_edges_are_not_g_nonadjacent():
    # Elle runs these five one after another on one process:
    # t1 -process-> t2 -rw-> t1 ... the only cycles need process order, and
    # their rw edges touch, so snapshot isolation allows the history
    specs = ["rx5ay1", "ryaz2", "rzat3", "rt3au4", "ruax5"]
    events = []
    for s in specs:
        events += [(0, "invoke", _inv(mops(s))), (0, "ok", mops(s))]
    h = _history(events)
    r = check(h, "snapshot-isolation")
    assert r.valid is True, r.explanation
    assert "G-nonadjacent" not in types(r)
    assert "G-single-process" in types(r)
    # concurrently, the same txns form no cycle at all
    assert check(concurrent(*specs)).valid is True


def test_rr_g_nonadjacent_item():
    h = concurrent("ax1at1", "rx1ry", "ay1az2", "rz2rt")
    r = check(h, "repeatable-read")
    assert r.valid is False
    assert "G-nonadjacent" in types(r)
    assert not_(r) == {"repeatable-read", "snapshot-isolation"}


def test_lost_update():
    # two txns read x = [0] and both append: each overwrote what the other read
    h = concurrent("ax0", "rx0ax1", "rx0ax2")
    r = check(h)
    assert types(r) == {"G2", "lost-update"}
    [rec] = r.details["anomalies"]["G2"]
    assert [s["rel"] for s in rec["steps"]] == ["rw", "rw"]
    assert not_(r) == {"repeatable-read"}
    assert check(h, "read-committed").valid is True


def test_one_txn_appending_twice_over_its_read_is_fine():
    assert check(sequential("rxax1ax2", "rx12")).valid is True


def test_wr_process_is_g1c_process():
    # t0 -wr-> t1 -process-> t2 -wr-> t0
    h = _history([
        (1, "invoke", [["r", "x", None], ["append", "y", 1]]),
        (1, "ok", [["r", "x", [1]], ["append", "y", 1]]),
        (2, "invoke", [["r", "y", None]]), (2, "ok", [["r", "y", [1]]]),
        (2, "invoke", [["append", "x", 1]]), (2, "ok", [["append", "x", 1]]),
    ])
    r = check(h)
    assert "G1c-process" in types(r)
    assert "G1c" not in types(r)
    assert check(h, "serializable").valid is True
    assert check(h, "strong-session-serializable").valid is False


# ---------------------------------------------------------------- cycles Elle printed for real databases


def test_real_g2_both_edges_from_unobserved_appends():
    # T1 = [append 1 4, r 0 nil]; T2 = [r 1 [2], r 1 [2], append 0 3], plus the
    # append of 2 to key 1 that T2's read needs. Neither 4 nor 3 is ever read.
    h = _history([
        (9, "invoke", [["append", 1, 2]]), (9, "ok", [["append", 1, 2]]),
        (3, "invoke", [["append", 1, 4], ["r", 0, None]]),
        (4, "invoke", [["r", 1, None], ["r", 1, None], ["append", 0, 3]]),
        (3, "ok", [["append", 1, 4], ["r", 0, None]]),
        (4, "ok", [["r", 1, [2]], ["r", 1, [2]], ["append", 0, 3]]),
    ])
    r = check(h)
    assert types(r) == {"G2"}
    assert check(h, "snapshot-isolation").valid is True


def test_real_g2_two_keys():
    # T1 = [r 0 [3 5 6], append 1 8]; T2 = [r 1 [2 4 6 7], append 0 7, append 0 8]
    setup = [["append", 0, 3], ["append", 0, 5], ["append", 0, 6],
             ["append", 1, 2], ["append", 1, 4], ["append", 1, 6], ["append", 1, 7]]
    h = _history([
        (0, "invoke", setup), (0, "ok", setup),
        (2, "invoke", [["r", 0, None], ["append", 1, 8]]),
        (3, "invoke", [["r", 1, None], ["append", 0, 7], ["append", 0, 8]]),
        (2, "ok", [["r", 0, [3, 5, 6]], ["append", 1, 8]]),
        (3, "ok", [["r", 1, [2, 4, 6, 7]], ["append", 0, 7], ["append", 0, 8]]),
    ])
    r = check(h)
    assert types(r) == {"G2"}
    assert not_(r) == {"repeatable-read"}


def test_real_g_single_through_two_ww_edges():
    # T1 < T2: T1 did not observe T2's append of 3 to 132;
    # T2 < T3: T3 appended 4 after T2 appended 1 to 134;
    # T3 < T1: T1 appended 2 after T3 appended 4 to 134.
    setup = [["append", 132, 1], ["append", 132, 2], ["append", 133, 1],
             ["append", 127, 1], ["append", 127, 2], ["append", 127, 3], ["append", 127, 6]]
    t1 = [["r", 132, [1, 2]], ["append", 134, 2], ["r", 127, [1, 2, 3, 6]]]
    t2 = [["append", 132, 3], ["r", 133, [1]], ["append", 134, 1], ["r", 132, [1, 2, 3]]]
    t3 = [["append", 134, 4], ["r", 127, [1, 2, 3, 6]]]
    final = [["r", 134, [1, 4, 2]], ["r", 132, [1, 2, 3]]]
    h = _history([
        (0, "invoke", setup), (0, "ok", setup),
        (13, "invoke", _inv(t1)), (14, "invoke", _inv(t2)), (15, "invoke", _inv(t3)),
        (13, "ok", t1), (14, "ok", t2), (15, "ok", t3),
        (16, "invoke", _inv(final)), (16, "ok", final),
    ])
    r = check(h)
    assert types(r) == {"G-single"}
    [rec] = r.details["anomalies"]["G-single"]
    assert sorted(s["rel"] for s in rec["steps"]) == ["rw", "ww", "ww"]


@pytest.mark.parametrize("model", [
    "read-uncommitted", "read-committed", "repeatable-read", "snapshot-isolation",
    "serializable", "strong-session-serializable", "strict-serializable",
])
def test_serial_history_is_valid_under_every_model(model):
    h = sequential("ax1ay1", "rx1ry1ax2", "rx12ry1", "ay2", "rx12ry12")
    r = check(h, model)
    assert r.valid is True and r.details["anomaly_types"] == []


# ---------------------------------------------------------------- quirks of real histories


def test_duplicate_appends_are_flagged_not_trusted():
    # two committed txns append the same element: reads cannot tell them apart
    r = check(concurrent("ax1", "ax1", "rx1"))
    assert any("repeat an element" in w for w in r.details.get("warnings", []))


def test_failed_txn_reads_and_appends_say_nothing():
    # a failed txn's read of x = [] and its append to y never happened
    h = concurrent(("fail", "rxay1"), "ax1", "rx1ry")
    r = check(h)
    assert r.valid is True, r.explanation
    assert r.details["stats"]["nodes"] == 2


def test_info_without_completion_and_info_completion_are_alike():
    # invoked and never completed vs completed as info: both may or may not have happened
    never = _history([
        (0, "invoke", [["append", "x", 1], ["append", "y", 1]]),
        (1, "invoke", [["r", "x", None], ["r", "y", None]]),
        (1, "ok", [["r", "x", []], ["r", "y", [1]]]),
    ])
    info = concurrent(("info", "ax1ay1"), "rxry1")
    for h in (never, info):
        r = check(h)
        assert types(r) == {"G-single"}, r.explanation  # saw y's append, missed x's


def test_read_of_a_key_nobody_appended_to():
    assert check(concurrent("ax1", "rx1rz")).valid is True
    r = check(concurrent("ax1", "rx1rz3"))
    assert types(r) == {"garbage-read"}
    assert not_(r) == {"read-uncommitted"}


def test_unobserved_failed_append_orders_nothing():
    # only appends that took effect are placed after the observed ones
    h = concurrent(("fail", "ax2"), "ax1", "rx1", "rx1ay1")
    e = edges(h)
    assert e[(5, 6)] == WR  # ax1 -wr-> rx1: the observed append is placed
    assert not any(4 in pair for pair in e)  # nothing touches the failed txn (index 4)
    assert check(h).valid is True


def test_lost_append_with_a_later_read():
    # an acknowledged append that a read begun after it completed does not list
    h = sequential("ax1", "ax2", "rx1")
    r = check(h)
    assert {"lost-append", "G-single-realtime"} == types(r)
    assert check(h, "serializable").valid is True


def test_database_losing_every_append_is_bounded_and_sound(monkeypatch):
    # 100 acknowledged appends, each followed by a read of x = []: every read
    # misses every append. With the per-key edge budget lowered to 1,000 (it is
    # 200k; 100 x 100 reads would exceed it the same way) the rw edges to them
    # are capped; the history is still serializable (all reads first) and not
    # strict serializable (the appends completed before the reads began).
    import jepsenlike.checkers.graph.listappend as la

    monkeypatch.setattr(la, "UNOBSERVED_EDGE_BUDGET", 1000)
    events = []
    for j in range(100):
        events += [(j % 10, "invoke", [["append", "x", j]]), (j % 10, "ok", [["append", "x", j]])]
        events += [(10 + j % 10, "invoke", [["r", "x", None]]),
                   (10 + j % 10, "ok", [["r", "x", []]])]
    h = _history(events)
    r = check(h, "serializable")
    assert "unobserved_edges_capped" in r.details
    assert r.valid is True, r.explanation
    assert "lost-append" in types(r)
    strict = check(h, "strict-serializable")
    assert strict.valid is False
    assert "G-single-realtime" in types(strict)
