"""--schedule files: parsing, history replay, one-line errors naming file, line and field."""

from __future__ import annotations

import json

import pytest

from jepsenlike.errors import ConfigError
from jepsenlike.gen import simulate
from jepsenlike.nemesis import FaultOp, NemesisPackage, load_schedule
from jepsenlike.nemesis.kill import KillNemesis
from jepsenlike.nemesis.pause import PauseNemesis
from jepsenlike.nemesis.schedule import (
    check_schedule,
    packages_for,
    schedule_generator,
    schedule_json,
)


def test_schedule_lines_become_timed_fault_ops(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"at": 2, "f": "kill", "value": "one", "nodes": ["n1", "n2"]}\n'
                 "# a comment\n\n"
                 '{"at": 0.5, "f": "pause", "value": "n3"}\n')
    entries = load_schedule(f)
    assert [(e.at, e.op) for e in entries] == [(2.0, FaultOp("kill", "one", nodes=("n1", "n2"))),
                                               (0.5, FaultOp("pause", "n3"))]
    assert schedule_json(entries)[0] == {"at": 2.0, "f": "kill", "value": "one", "nodes": ["n1", "n2"]}
    pkgs = [NemesisPackage("kill", KillNemesis(), (("kill", "start"),), (FaultOp("start"),)),
            NemesisPackage("pause", PauseNemesis(), (("pause", "resume"),), (FaultOp("resume"),))]
    trace = simulate(schedule_generator(entries, pkgs, end=10.0), stop_at=10.0)
    assert [(t, op.f) for t, op in trace] == [(0.5, "pause"), (2.0, "kill"), (10.0, "start"), (10.0, "resume")]
    assert packages_for(entries, {"pause": frozenset({"pause", "resume"}),
                                  "kill": frozenset({"kill", "start"})}, f) == ["kill", "pause"]


def test_a_history_gives_its_nemesis_invocations_without_its_heal(tmp_path):
    h = tmp_path / "history.jsonl"
    lines = [
        {"index": 0, "time": 10, "process": 0, "type": "invoke", "f": "read", "key": 1, "value": None},
        {"index": 1, "time": 1_500_000_000, "process": "nemesis", "type": "invoke", "f": "kill", "value": "one"},
        {"index": 2, "time": 1_600_000_000, "process": "nemesis", "type": "info", "f": "kill",
         "value": {"nodes": ["n2"]}},
        {"index": 3, "time": 3_000_000_000, "process": "nemesis", "type": "invoke", "f": "start", "value": None},
        {"index": 4, "time": 9_000_000_000, "process": "nemesis", "type": "invoke", "f": "start", "value": None},
    ]
    h.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert [(e.at, e.op.f) for e in load_schedule(h)] == [(1.5, "kill"), (3.0, "start"), (9.0, "start")]
    (tmp_path / "test.json").write_text(json.dumps({"phases": {"heal": 8_000_000_000}}))
    assert [(e.at, e.op.f) for e in load_schedule(h)] == [(1.5, "kill"), (3.0, "start")]


@pytest.mark.parametrize("line, message", [
    ("not json", "line 1: field '(line)': not JSON"),
    ("[1, 2]", "line 1: field '(line)': expected a JSON object, got list"),
    ('{"f": "kill"}', "line 1: field 'at': expected seconds >= 0, got None"),
    ('{"at": -1, "f": "kill"}', "line 1: field 'at': expected seconds >= 0, got -1"),
    ('{"at": true, "f": "kill"}', "line 1: field 'at': expected seconds >= 0, got True"),
    ('{"at": 1}', "line 1: field 'f': expected a fault name such as 'kill', got None"),
    ('{"at": 1, "f": "kill", "nodes": "n1"}', "line 1: field 'nodes': expected a list of node ids, got 'n1'"),
    ('{"process": "nemesis", "type": "invoke", "f": "kill", "time": 1.5}',
     "line 1: field 'time': expected nanoseconds >= 0, got 1.5"),
])
def test_bad_lines_are_one_line_errors_naming_file_line_and_field(tmp_path, line, message):
    f = tmp_path / "s.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(ConfigError) as e:
        load_schedule(f)
    assert str(e.value).startswith(f"--schedule: {f} {message}")
    assert "\n" not in str(e.value)


def test_faults_the_run_does_not_have_or_too_late_are_named(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"at": 1, "f": "kill"}\n\n{"at": 2, "f": "pause"}\n{"at": 40, "f": "kill"}\n')
    kill = [NemesisPackage("kill", KillNemesis(), (("kill", "start"),), (FaultOp("start"),))]
    with pytest.raises(ConfigError, match=r"line 3: field 'f': no fault in --nemesis handles 'pause'; "
                                          r"handled: kill, start"):
        check_schedule(f, load_schedule(f), kill, 30.0)
    f.write_text('{"at": 1, "f": "kill"}\n{"at": 40, "f": "kill"}\n')
    with pytest.raises(ConfigError, match=r"line 2: field 'at': 40 s is past the chaos phase"):
        check_schedule(f, load_schedule(f), kill, 30.0)
    with pytest.raises(ConfigError, match="cannot read"):
        load_schedule(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("value, message", [
    ('{"target": "leader", "delta": "x"}', "'delta' must be a number of seconds, got 'x'"),
    ('{"target": "leader", "delta": true}', "'delta' must be a number of seconds, got True"),
    ('{"target": "leader", "delta": -1, "rate": 2}', "unknown key(s) ['rate']"),
    ('{"target": "boss", "delta": -1}', "unknown target 'boss'"),
    ("7", "expected a target spec such as 'leader' or {\"target\": spec, \"delta\": seconds}, got 7"),
])
def test_a_scheduled_clock_bump_value_is_checked_before_the_run(tmp_path, value, message):
    from jepsenlike.nemesis import PackageOptions, build_packages

    f = tmp_path / "s.jsonl"
    clock = build_packages(["clock"], PackageOptions())
    f.write_text('{"at": 1, "f": "bump-clock", "value": {"target": "leader", "delta": -2.5}}\n'
                 '{"at": 2, "f": "bump-clock", "value": "n1+n2"}\n{"at": 3, "f": "reset-clock"}\n')
    check_schedule(f, load_schedule(f), clock, 30.0)  # the good ones pass
    f.write_text('{"at": 1, "f": "reset-clock"}\n{"at": 2, "f": "bump-clock", "value": ' + value + "}\n")
    with pytest.raises(ConfigError) as e:
        check_schedule(f, load_schedule(f), clock, 30.0)
    assert str(e.value).startswith(f"--schedule: {f} line 2: field 'value': ")
    assert message in str(e.value) and "\n" not in str(e.value)
