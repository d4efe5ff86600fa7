"""The one reader: format sniffing, the fast path agreeing with HistoryBuilder, exact types."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jepsenlike.history_io as hio
from jepsenlike.checkers.synth import generate
from jepsenlike.edn import write_edn_history
from jepsenlike.errors import HistoryError
from jepsenlike.history import History, Op
from jepsenlike.history_io import read_history, read_history_prefix, sniff_format, write_history


def ev(i, p, t, f, value=None, **extra):
    return {"index": i, "time": i * 10, "process": p, "type": t, "f": f, "value": value, **extra}


def write_lines(path, events, blank_every=0):
    out = []
    for n, e in enumerate(events):
        out.append(json.dumps(e) + "\n")
        if blank_every and n % blank_every == 0:
            out.append("\n")
    path.write_text("".join(out))


def test_format_by_extension_then_by_first_bytes(tmp_path):
    h = generate("cas-register", 1, n_ops=10)
    j = tmp_path / "history"  # no extension
    write_history(j, h.ops)
    e = tmp_path / "history.txt"
    write_edn_history(e, h)
    assert sniff_format(j) == "jsonl" and sniff_format(e) == "edn"
    assert read_history(j).ops == read_history(e).ops == h.ops
    v = tmp_path / "vector"
    v.write_text("; a Jepsen history\n[{:type :invoke, :f :read, :process 0, :value nil}]\n")
    assert sniff_format(v) == "edn" and read_history(v)[0].f == "read"
    empty = tmp_path / "empty"
    empty.write_text("")
    assert sniff_format(empty) == "jsonl" and len(read_history(empty)) == 0


def test_values_keep_their_json_types(tmp_path):
    path = tmp_path / "h.jsonl"
    big = 2**80
    write_lines(path, [ev(0, 0, "invoke", "write", True), ev(1, 0, "ok", "write", True),
                       ev(2, 0, "invoke", "write", 1), ev(3, 0, "ok", "write", 1.0),
                       ev(4, 0, "invoke", "write", big), ev(5, 0, "ok", "write", big)])
    h = read_history(path)
    assert [type(op.value) for op in h] == [bool, bool, int, float, int, int]
    assert h[4].value == big


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_naming_the_field(tmp_path, token):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(ev(0, 0, "invoke", "write", 1)) + "\n"
                    + json.dumps(ev(1, 0, "ok", "write", 1))[:-1] + f', "error": [{token}]}}\n')
    with pytest.raises(HistoryError) as e:
        read_history(path)
    assert str(e.value).startswith(f"{path}:2: field 'error' holds {token}, which is not a JSON")


def test_process_may_be_any_nonclient_name_but_not_empty(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [ev(0, "monitor", "info", "probe"), ev(1, "nemesis", "invoke", "kill"),
                       ev(2, 0, "invoke", "read"), ev(3, 0, "ok", "read", 1)])
    h = read_history(path)
    assert [op.process for op in h.nemesis_ops()] == ["monitor", "nemesis"]
    assert [(i.index, c.index) for i, c in h.pairs()] == [(2, 3)]
    write_lines(path, [ev(0, "", "info", "probe")])
    with pytest.raises(HistoryError, match=r":1: field 'process' must be"):
        read_history(path)


def test_nonclient_pairing_is_loose(tmp_path):
    path = tmp_path / "h.jsonl"
    write_lines(path, [
        ev(0, "nemesis", "info", "kill"),             # lone info
        ev(1, "nemesis", "invoke", "start"),          # never completed ...
        ev(2, "nemesis", "invoke", "pause"),          # ... because another invoke came
        ev(3, "nemesis", "info", "pause", "n1"),      # completes the pause
        ev(4, "nemesis", "ok", "resume"),             # a completion with no invocation
    ])
    h = read_history(path)
    assert h.completion == {1: None, 2: 3}
    assert h.invocation == {3: 2}


def reference(events) -> History:
    """What HistoryBuilder.add alone makes of the events (the rule book)."""
    return History.from_ops(events, "ref")


def quirky_events(seed: int) -> list[dict]:
    rng = random.Random(seed)
    h = generate(rng.choice(["cas-register", "list-append", "kv"]), seed, n_ops=60,
                 processes=rng.randint(1, 6), keys=[1, 2, 3])
    out = []
    for op in h:
        if rng.random() < 0.1:
            out.append({"process": "nemesis", "type": rng.choice(["invoke", "info", "ok"]),
                        "f": rng.choice(["kill", "start"]), "value": None})
        d = op.to_dict()
        out.append(d)
    for i, d in enumerate(out):
        d["index"] = i
        d["time"] = rng.randrange(0, 1000)
    return out


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([64, 300, 4096, 1 << 22]))
def test_the_fast_path_agrees_with_the_builder(tmp_path, monkeypatch, seed, chunk):
    monkeypatch.setattr(hio, "_CHUNK", chunk)  # small chunks: lines cut across reads
    events = quirky_events(seed)
    path = tmp_path / "h.jsonl"
    write_lines(path, events, blank_every=random.Random(seed).choice([0, 7]))
    got = read_history(path)
    ref = reference(events)
    assert got.ops == ref.ops
    assert got.completion == ref.completion and got.invocation == ref.invocation
    assert got.time_backwards == ref.time_backwards
    assert not got.torn_tail


@pytest.mark.parametrize("chunk", [64, 1 << 22])
def test_errors_far_into_the_file_name_their_line(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(hio, "_CHUNK", chunk)
    events = quirky_events(3)
    bad = len(events) - 5
    events[bad] = {**events[bad], "index": 10_000}
    path = tmp_path / "h.jsonl"
    write_lines(path, events, blank_every=9)  # blank lines shift line numbers
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if '"index": 10000' in text)
    with pytest.raises(HistoryError) as e:
        read_history(path)
    assert str(e.value).startswith(f"{path}:{line}: field 'index' is 10000, expected {bad}")
    # and a line that does not decode, late in the file
    events[bad] = {**events[bad], "index": bad, "type": "done"}
    write_lines(path, events, blank_every=9)
    with pytest.raises(HistoryError) as e:
        read_history(path)
    assert str(e.value).startswith(f"{path}:{line}: field 'type' is 'done'")


@pytest.mark.parametrize("chunk", [64, 1 << 22])
def test_a_torn_tail_after_many_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(hio, "_CHUNK", chunk)
    events = quirky_events(5)
    path = tmp_path / "h.jsonl"
    text = "".join(json.dumps(e) + "\n" for e in events)
    last = json.dumps({"index": len(events), "time": 1, "process": 0, "type": "invoke",
                       "f": "read", "value": "caf\u00e9"}, ensure_ascii=False).encode()
    for cut in (5, len(last) - 4, len(last) - 1):
        path.write_bytes(text.encode() + last[:cut])
        h = read_history(path)
        assert h.torn_tail and len(h) == len(events)
        assert h.ops == reference(events).ops
        assert any(f":{len(events) + 1}: the last line is incomplete" in n for n in h.notes)


def test_prefix_reader_keeps_what_is_good(tmp_path):
    events = quirky_events(9)
    path = tmp_path / "h.jsonl"
    write_lines(path, events[:20] + [{"index": 20, "nope": 1}] + events[21:])
    h, error = read_history_prefix(path)
    assert len(h) == 20 and h.ops == reference(events[:20]).ops
    assert error is not None and error.startswith(f"{path}:21: missing field 'time'")
    write_lines(path, events)
    h, error = read_history_prefix(path)
    assert error is None and len(h) == len(events)
    h, error = read_history_prefix(tmp_path / "missing.jsonl")
    assert len(h) == 0 and "no such file" in error


def test_the_dead_helpers_are_gone():
    import jepsenlike.history as history

    for name in ("iter_jsonl", "_Pairer", "read_history", "HistoryWriter"):
        assert not hasattr(history, name), name
    assert not hasattr(History, "invocation_of") and not hasattr(History, "client_ops")
    assert not hasattr(Op, "is_invoke") and not hasattr(Op, "is_client")


def test_op_is_still_usable_as_the_dataclass_it_was():
    import dataclasses
    import gc
    import pickle

    op = Op(3, 40, 1, "ok", "read", key="k", value=[1, 2])
    assert dataclasses.replace(op, value=[3]) == Op(3, 40, 1, "ok", "read", key="k", value=[3])
    assert dataclasses.asdict(op)["value"] == [1, 2]
    assert [f.name for f in dataclasses.fields(op)][:5] == ["index", "time", "process", "type",
                                                             "f"]
    assert pickle.loads(pickle.dumps(op)) == op
    with pytest.raises(AttributeError):
        op.value = 1  # type: ignore[misc]
    assert not gc.is_tracked(op)  # millions of them cost the collector nothing
    assert op.to_dict() == {"index": 3, "time": 40, "process": 1, "type": "ok", "f": "read",
                            "key": "k", "value": [1, 2]}
