"""Histories as Jepsen writes them: a hand-written corpus, and generated ones with quirks injected.

The corpus (``tests/corpus/jepsen/*.edn``) holds small histories whose verdict was worked out by
hand (see each file's header). The generated histories are linearizable by construction
(:func:`jepsenlike.checkers.synth.simulate`), or mutated and judged by the brute-force oracle; the
quirks Jepsen's files have -- ``:time`` going backwards between events, nemesis ops as lone
``:info`` events, ``:info`` pairs or invocations that never complete, no ``:index`` -- are then
injected, and the verdict must not change.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import check_bruteforce
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import generate, mutate, render, simulate
from jepsenlike.cli import main
from jepsenlike.edn import dumps
from jepsenlike.history import History, Op
from jepsenlike.history_io import read_history, write_history

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "jepsen"
FILES = sorted(CORPUS.glob("*.edn"))
VERDICT = {"valid": "linearizable", "invalid": "not-linearizable"}


def header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith(";"):
            break
        name, _, value = line[1:].strip().partition(":")
        if name in ("model", "verdict", "time_backwards"):
            out[name] = value.strip()
    return out


def check_json(capsys, path: Path, model: str) -> dict:
    code = main(["check", str(path), "--model", model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == {"linearizable": 0, "not-linearizable": 1}.get(out["verdict"], -1), out
    return out


def test_the_corpus_covers_both_verdicts_and_the_shapes():
    assert len(FILES) >= 12
    verdicts = [header(p)["verdict"] for p in FILES]
    assert verdicts.count("valid") >= 5 and verdicts.count("invalid") >= 5
    text = "".join(p.read_text() for p in FILES)
    for shape in (":process :nemesis", "#{", "1/3", "N,", "M,", "#jepsen.history.Op{", "^{",
                  "#_", ":txn", "[:append", "[:r", "[:w", ":error {", ":error [", "[0 [3 4]]"):
        assert shape in text, shape


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_history_gets_its_known_verdict(capsys, path):
    h = header(path)
    out = check_json(capsys, path, h["model"])
    assert out["verdict"] == VERDICT[h["verdict"]], out
    assert out["time_backwards"] == int(h.get("time_backwards", 0))
    assert out["torn_tail"] is False


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_history_as_json_lines_gets_the_same_verdict(capsys, tmp_path, path):
    h = header(path)
    hist = read_history(path)
    try:
        lines = [op.to_json() for op in hist]
    except TypeError:
        # ratios and BigDecimals have no JSON form; only the numbers files hold them
        assert path.stem.startswith("numbers-")
        return
    out_path = tmp_path / f"{path.stem}.jsonl"
    out_path.write_text("".join(line + "\n" for line in lines))
    assert read_history(out_path).ops == hist.ops
    out = check_json(capsys, out_path, h["model"])
    assert out["verdict"] == VERDICT[h["verdict"]]


def test_corpus_details_the_reader_must_get_right():
    h = read_history(CORPUS / "cas-register-nemesis.edn")
    nem = list(h.nemesis_ops())
    assert [(op.type, op.f) for op in nem] == [
        ("invoke", "start"), ("info", "start"), ("invoke", "stop"), ("info", "stop")]
    assert nem[1].value == ["isolated", {"n1": ["n2", "n3"]}]
    assert h[7].error == ["timeout", "client timed out"]
    assert h[13].error == {"type": "not-leader", "node": "n2"}
    h = read_history(CORPUS / "cas-register-stale-read.edn")
    lone = [op for op in h.nemesis_ops()]
    assert [(op.type, op.f) for op in lone] == [("invoke", "kill"), ("invoke", "start")]
    assert all(h.completion[op.index] is None for op in lone)
    h = read_history(CORPUS / "numbers-register.edn")
    values = [op.value for op in h if op.type == "ok"]
    from decimal import Decimal
    from fractions import Fraction

    assert values[0] == Fraction(1, 3) and isinstance(values[0], Fraction)
    assert values[2] == 123456789012345678901234567890 and isinstance(values[2], int)
    assert values[4] == Decimal("1.5") and isinstance(values[4], Decimal)
    h = read_history(CORPUS / "tagged-and-metadata.edn")
    assert [(op.type, op.f, op.value) for op in h] == [
        ("invoke", "write", 2), ("ok", "write", 2), ("invoke", "read", None), ("ok", "read", 2)]
    h = read_history(CORPUS / "list-append-valid.edn")
    assert h[2].value == [["append", "x", 1], ["r", "y", []]]
    assert [op.index for op in h] == list(range(len(h)))


# ----------------------------------------------------------------------------- quirks


def _edn_op(op: Op, rng: random.Random, with_index: bool, with_time: bool) -> str:
    kw = rng.random() < 0.7  # keywords mostly, strings sometimes, for :f
    fields = []
    if with_index:
        fields.append(f":index {op.index}")
    if with_time:
        fields.append(f":time {op.time}")
    fields.append(f":type :{op.type}")
    fields.append(":process :nemesis" if op.process == "nemesis" else f":process {op.process}")
    fields.append(f":f :{op.f}" if kw else f":f {dumps(op.f)}")
    if op.key is not None:
        fields.append(f":key {dumps(op.key)}")
    fields.append(f":value {dumps(op.value)}")
    if op.error is not None:
        fields.append(f":error {dumps(op.error)}")
    return "{" + ", ".join(fields) + "}"


NEMESIS_SHAPES = ("lone-info", "info-pair", "invoke-only", "invoke-info")


def inject_quirks(h: History, rng: random.Random) -> tuple[list[Op], list[tuple], int]:
    """The history's events with nemesis events spliced in and times scrambled.

    Returns the new events (renumbered), their JSON-Lines-level nemesis events as
    (type, f) written, and how many times ``time`` steps backwards.
    """
    events: list[tuple] = []  # (process, type, f, key, value, error)
    for op in h:
        while rng.random() < 0.15:
            shape = rng.choice(NEMESIS_SHAPES)
            f = rng.choice(("kill", "start-partition", "pause", "bump-clock"))
            if shape == "lone-info":
                events.append(("nemesis", "info", f, None, ["n1"], None))
            elif shape == "info-pair":
                events += [("nemesis", "info", f, None, None, None),
                           ("nemesis", "info", f, None, ["n2", "n3"], None)]
            elif shape == "invoke-only":
                events.append(("nemesis", "invoke", f, None, None, None))
            else:
                events += [("nemesis", "invoke", f, None, None, None),
                           ("nemesis", "info", f, None, "done", None)]
        events.append((op.process, op.type, op.f, op.key, op.value, op.error))
    times = [rng.randrange(0, 10_000) for _ in events]
    backwards = sum(1 for a, b in zip(times, times[1:], strict=False) if b < a)
    ops = [Op(i, times[i], p, t, f, k, v, None, e) for i, (p, t, f, k, v, e) in enumerate(events)]
    return ops, events, backwards


def client_view(h: History) -> list[tuple]:
    return [(op.process, op.type, op.f, op.key, op.value) for op in h if type(op.process) is int]


MODELS = ("register", "cas-register", "kv")


def quirky_files(tmp_path: Path, ops: list[Op], rng: random.Random) -> tuple[Path, Path]:
    jsonl = tmp_path / "quirky.jsonl"
    write_history(jsonl, ops)
    edn = tmp_path / "quirky.edn"
    with_index = rng.random() < 0.5
    lines = [_edn_op(op, rng, with_index, True) for op in ops]
    if rng.random() < 0.5:
        text = "[" + "\n ".join(lines) + "]\n"
    else:
        text = "\n".join(lines) + "\n"
    edn.write_text(text)
    return jsonl, edn


QUIRK_SETTINGS = settings(max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])


@QUIRK_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), model=st.sampled_from(MODELS))
def test_quirks_do_not_change_a_linearizable_verdict(tmp_path, seed, model):
    rng = random.Random(seed)
    h = generate(model, seed, n_ops=rng.randint(5, 40), processes=rng.randint(1, 5),
                 keys=[1, 2] if model != "register" else None)
    spec = get_spec(model)
    assert check_linearizable(h, spec).valid is True  # by construction
    ops, _, backwards = inject_quirks(h, rng)
    jsonl, edn = quirky_files(tmp_path, ops, rng)
    for path in (jsonl, edn):
        q = read_history(path, independent=False) if path.suffix == ".edn" else read_history(path)
        assert client_view(q) == client_view(h), path.suffix
        assert q.time_backwards == backwards
        assert check_linearizable(q, spec).valid is True, path.suffix


@QUIRK_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), model=st.sampled_from(MODELS))
def test_quirks_do_not_change_the_oracles_verdict_on_mutated_histories(tmp_path, seed, model):
    rng = random.Random(seed)
    records = simulate(model, rng, n_ops=rng.randint(3, 8), processes=rng.randint(1, 3),
                       p_never=0.1)
    h = render(mutate(records, rng))
    spec = get_spec(model)
    expected = check_bruteforce(h, spec)  # the oracle, independent of the search
    ops, _, _ = inject_quirks(h, rng)
    jsonl, edn = quirky_files(tmp_path, ops, rng)
    for path in (jsonl, edn):
        q = read_history(path, independent=False) if path.suffix == ".edn" else read_history(path)
        assert client_view(q) == client_view(h)
        assert check_linearizable(q, spec).valid is expected, path.suffix
