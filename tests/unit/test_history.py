"""The JSON Lines history: round trip, pairing, and file:line errors for bad input."""

from __future__ import annotations

import json

import pytest

from jepsenlike.checkers.synth import generate
from jepsenlike.errors import HistoryError
from jepsenlike.history import History, Op
from jepsenlike.history_io import HistoryWriter, read_history, write_history


def lines(*events):
    return "".join(json.dumps(e) + "\n" for e in events)


def ev(i, p, t, f, value=None, **extra):
    return {"index": i, "time": i * 10, "process": p, "type": t, "f": f, "value": value, **extra}


GOOD = [
    ev(0, 0, "invoke", "write", 1, key="a"),
    ev(1, "nemesis", "invoke", "start-partition"),
    ev(2, 0, "ok", "write", 1, key="a", node="n1"),
    ev(3, 1, "invoke", "read", None, key="a"),
    ev(4, "nemesis", "info", "start-partition", "majority"),
    ev(5, 1, "info", "read", None, key="a", error="timeout"),
    ev(6, 2, "invoke", "cas", [1, 2], key="a"),
]


def test_round_trip_keeps_every_field_and_the_pairing(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(lines(*GOOD))
    h = read_history(path)
    assert len(h) == 7
    assert h[2].node == "n1" and h[5].error == "timeout" and h[0].key == "a"
    assert h.completion[0] == 2 and h.invocation[2] == 0
    assert h.completion[6] is None, "a never-completed invocation pairs with None"
    assert [op.index for op in h.nemesis_ops()] == [1, 4]
    assert [(i.index, c.index if c else None) for i, c in h.pairs()] == [(0, 2), (3, 5), (6, None)]
    out = tmp_path / "out.jsonl"
    write_history(out, h.ops)
    assert read_history(out).ops == h.ops
    # optional fields that are None are left out of the file
    assert "key" not in json.loads(out.read_text().splitlines()[1])


def test_generated_history_round_trips(tmp_path):
    h = generate("list-append", 3, n_ops=80, processes=4, keys=[1, 2])
    write_history(tmp_path / "g.jsonl", h.ops)
    assert read_history(tmp_path / "g.jsonl").ops == h.ops


@pytest.mark.parametrize(
    "content, line, message",
    [
        # a line cut short in the middle of the file (a torn *last* line is accepted, below)
        (lines(GOOD[0]) + json.dumps(GOOD[2])[:-9] + "\n" + lines(GOOD[3]), 2, "not valid JSON"),
        (lines(GOOD[0], {k: v for k, v in GOOD[2].items() if k != "process"}), 2,
         "missing field 'process'"),
        (lines(GOOD[0], {**GOOD[2], "type": "done"}), 2, "field 'type' is 'done'"),
        (lines(GOOD[0], GOOD[2] | {"index": 1}, GOOD[2] | {"index": 2}), 3,
         "no pending invocation"),
        (lines(ev(0, 3, "ok", "read", 1)), 1, "no pending invocation"),
        (lines(GOOD[0], ev(1, 0, "invoke", "read")), 2, "while its invocation at index 0"),
        (lines(GOOD[0], GOOD[2] | {"index": 5}), 2, "field 'index' is 5, expected 1"),
        (lines(GOOD[0], GOOD[2] | {"index": 1, "f": "read"}), 2, "completion has f='read'"),
        (lines(GOOD[0] | {"colour": "red"}), 1, "unknown field(s) 'colour'"),
        ("[1, 2]\n", 1, "expected a JSON object"),
    ],
    ids=["truncated", "missing-field", "unknown-type", "duplicate-completion",
         "completion-without-invocation", "double-invoke", "index-gap", "f-mismatch",
         "unknown-field", "not-an-object"],
)
def test_malformed_histories_name_file_line_and_problem(tmp_path, content, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(HistoryError) as e:
        read_history(path)
    text = str(e.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text


def test_time_going_backwards_is_kept_and_counted_not_refused(tmp_path):
    # Jepsen's :time is a per-process reading: order of events is the truth
    path = tmp_path / "back.jsonl"
    path.write_text(lines(GOOD[0] | {"time": 50}, GOOD[2] | {"index": 1}, GOOD[3] | {"index": 2}))
    h = read_history(path)
    assert [op.time for op in h] == [50, 20, 30]
    assert h.time_backwards == 1
    assert h.completion[0] == 1
    assert any("time went backwards 1 time" in n for n in h.notes)


def test_torn_last_line_is_dropped_with_a_flag(tmp_path):
    # a crash mid-write leaves a last line with no newline: the complete lines stay checkable
    path = tmp_path / "cut.jsonl"
    path.write_text(lines(GOOD[0]) + json.dumps(GOOD[2])[:20])
    h = read_history(path)
    assert len(h) == 1 and h.torn_tail is True and h.completion[0] is None
    assert any(":2: the last line is incomplete" in n for n in h.notes)
    # a complete last line without its newline is not torn
    path.write_text(lines(GOOD[0]) + json.dumps(GOOD[2] | {"index": 1}))
    h = read_history(path)
    assert len(h) == 2 and h.torn_tail is False
    # and a bad last line that is not a cut-off object is still an error
    path.write_text(lines(GOOD[0]) + "garbage")
    with pytest.raises(HistoryError, match=r":2: not valid JSON"):
        read_history(path)


def test_missing_file_is_a_history_error(tmp_path):
    with pytest.raises(HistoryError, match="no such file"):
        read_history(tmp_path / "nope.jsonl")


def test_writer_leaves_a_readable_prefix_after_every_event(tmp_path):
    path = tmp_path / "run.jsonl"
    w = HistoryWriter(path)
    w.record(0, "invoke", "write", key="x", value=1)
    # the run "crashes" here: the file already holds a valid history prefix
    h = read_history(path)
    assert [op.f for op in h] == ["write"] and h.completion[0] is None
    w.record(0, "ok", "write", key="x", value=1)
    w.record("nemesis", "invoke", "kill", value=["n1"])
    h = read_history(path)
    assert len(h) == 3 and h.completion[0] == 1
    assert all(h[i].time <= h[i + 1].time for i in range(2))
    w.close()
    assert read_history(path).ops == w.ops


def test_from_ops_validates_like_the_file_reader():
    ops = [Op(0, 0, 1, "invoke", "read"), Op(1, 5, 1, "ok", "read", value=3)]
    h = History.from_ops(ops)
    assert h.completion_of(ops[0]) == ops[1]
    with pytest.raises(HistoryError, match="no pending invocation"):
        History.from_ops([Op(0, 0, 1, "ok", "read")])
