"""The report's first screen: the witness drawn, its faults in words, its cycle, the nodes' logs;
``jepsenlike show`` prints the same witness first; ``check --report`` gives the same page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jepsenlike import cli
from jepsenlike.history import Op
from jepsenlike.report import load_run, write_run_report
from jepsenlike.report.html import render_report
from jepsenlike.report.model import describe_fault, describe_grudge, fault_intervals
from jepsenlike.report.samples import write_sample_run
from jepsenlike.report.witness import node_log_excerpts, witness_of

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "jepsen"


@pytest.fixture(scope="module")
def invalid_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_run(tmp_path_factory.mktemp("store"), "invalid-register", seed=7)


def test_grudges_in_words():
    assert describe_grudge({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}) == \
        "n1 cut off from n2, n3 (sides {n1} | {n2, n3})"
    five = {"n1": ["n4", "n5"], "n2": ["n4", "n5"], "n3": ["n4", "n5"], "n4": ["n1", "n2", "n3"],
            "n5": ["n1", "n2", "n3"]}
    assert describe_grudge(five) == "network split into {n1, n2, n3} | {n4, n5}"
    # a bridge: n2 hears both sides, n1 and n3 do not hear each other (not a clean split)
    assert describe_grudge({"n1": ["n3"], "n2": [], "n3": ["n1"]}) == "n1 cut off from n3; n3 cut off from n1"
    assert describe_grudge({"n1": ["n2"]}) == "n1 hears nothing from n2"


def test_faults_in_words():
    assert describe_fault("bump-clock", {"nodes": ["n2"], "offsets": {"n2": -3.412}}) == \
        "clock bump: n2's clock moved -3.412 s"
    assert describe_fault("strobe-clock", {"strobe": {"n1": {"delta": 4.1, "period": 0.2}}}) == \
        "clock strobe: n1's clock flips +4.100 s every 0.2 s"
    assert describe_fault("drift-clock", {"rates": {"n3": 0.61}}) == "clock drift: n3's clock runs at 0.61x"
    assert describe_fault("kill", {"nodes": ["n2"]}, ["n2"]) == "n2 killed"
    ops = [
        Op(0, 10, "nemesis", "invoke", "start-partition", None, "one"),
        Op(1, 20, "nemesis", "info", "start-partition", None,
           {"grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}}),
        Op(2, 30, "nemesis", "invoke", "bump-clock", None, None),
        Op(3, 40, "nemesis", "info", "bump-clock", None, {"nodes": ["n1", "n2"], "offsets": {"n1": 2.5, "n2": -1}}),
    ]
    faults, _ = fault_intervals(ops, 100)
    texts = {iv.to_dict()["text"] for iv in faults}
    assert "partition: n1 cut off from n2, n3 (sides {n1} | {n2, n3})" in texts
    assert {"clock bump: n1's clock moved +2.500 s", "clock bump: n2's clock moved -1.000 s"} <= texts


def test_report_opens_with_the_witness(invalid_run):
    page = write_run_report(invalid_run, plots=False).report.read_text()
    run = load_run(invalid_run)
    w = witness_of(run)
    assert w is not None
    # the witness comes before the anomalies, the timeline and every table
    at = page.index('id="witness-title"')
    assert at < page.index('id="anomaly"') < page.index('id="timeline"') < page.index('id="stats-section"')
    section = page[at:page.index('id="anomaly"')]
    assert w["reason"].replace("'", "&#x27;") in section
    assert section.count('class="witness-op"') == len(w["ops"]) <= 10
    for d in w["details"]:
        assert f'data-index="{d["index"]}"' in section
    assert 'id="witness-faults"' in section
    assert 'class="witness-cycle"' in section and '<g class="cycle">' in section
    # the tables are folded; the header's details too
    assert '<details><summary><h2>Statistics</h2>' in page
    assert '<details id="run-details">' in page


def test_only_the_witness_key_is_expanded(tmp_path):
    # two bad keys: the witness's key open, the other folded with a count
    events = []
    t = 0

    def add(p, typ, f, key, v, node=None):
        nonlocal t
        t += 1_000_000
        events.append(Op(len(events), t, p, typ, f, key, v, node))

    for key in (0, 1):
        add(0, "invoke", "write", key, 1)
        add(0, "ok", "write", key, 1)
        add(0, "invoke", "write", key, 2)
        add(0, "ok", "write", key, 2)
        add(1, "invoke", "read", key, None, "n2")
        add(1, "ok", "read", key, 1, "n2")
    from jepsenlike.analysis import check_run
    from jepsenlike.history_io import write_history
    from jepsenlike.workloads import get_workload

    write_history(tmp_path / "history.jsonl", events)
    doc = {"name": "two-keys", "config": {"workload": "register", "check_timeout": 10}}
    (tmp_path / "test.json").write_text(json.dumps(doc))
    res = check_run(tmp_path, get_workload("register"), doc)
    assert res["witness"]["key"] == 0
    # the search stops at the first bad key; the report lists what the checkers named
    res["workload"]["failures"].append(dict(res["workload"]["failures"][0], key=1))
    (tmp_path / "results.json").write_text(json.dumps(res))
    page = render_report(load_run(tmp_path))
    assert '<details class="anomaly-group" open><summary>key 0' in page
    assert '<details class="anomaly-group"><summary>key 1' in page
    assert "key 0 is expanded; 1 other group folded below" in page


def test_node_logs_around_the_witness_are_shown(tmp_path):
    import datetime

    events = [
        Op(0, 1_000_000_000, 0, "invoke", "write", 0, 1, "n1"), Op(1, 1_100_000_000, 0, "ok", "write", 0, 1, "n1"),
        Op(2, 1_200_000_000, 0, "invoke", "write", 0, 2, "n1"), Op(3, 1_300_000_000, 0, "ok", "write", 0, 2, "n1"),
        Op(4, 1_400_000_000, 1, "invoke", "read", 0, None, "n2"), Op(5, 1_500_000_000, 1, "ok", "read", 0, 1, "n2"),
    ]
    from jepsenlike.analysis import check_run
    from jepsenlike.history_io import write_history
    from jepsenlike.runner import wall_clock_doc
    from jepsenlike.workloads import get_workload

    start = 1_796_000_000_000_000_000
    write_history(tmp_path / "history.jsonl", events)
    doc = {"name": "logs", "config": {"workload": "register"}, "clock": wall_clock_doc(start)}
    (tmp_path / "test.json").write_text(json.dumps(doc))
    check_run(tmp_path, get_workload("register"), doc)
    (tmp_path / "nodes").mkdir()

    def stamp(offset_s: float) -> str:
        at = datetime.datetime.fromtimestamp(start / 1e9 + offset_s)  # local time, as logging writes it
        return at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"

    (tmp_path / "nodes" / "n2.log").write_text(
        f"{stamp(-5)} n2 INFO far before\n{stamp(1.45)} n2 INFO served read from local state\n"
        f"a continuation line\n{stamp(9)} n2 INFO far after\n")
    run = load_run(tmp_path)
    assert run.results["clock"]["history_start_unix_ns"] == start
    w = witness_of(run)
    ex = {e.node: e for e in node_log_excerpts(run, w, [])}
    assert list(ex["n2"].lines) == [f"{stamp(1.45)} n2 INFO served read from local state"]
    page = render_report(run)
    assert "served read from local state" in page and "far before" not in page


def test_show_prints_the_witness_first(invalid_run, capsys, monkeypatch):
    if "show" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "show"])
    assert cli.main(["show", str(invalid_run)]) == 0
    out = capsys.readouterr().out
    w = witness_of(load_run(invalid_run))
    assert out.index("witness: ") < out.index("explanation")
    assert w["reason"][:40] in out.replace("\n", " ")
    for i in w["ops"]:
        assert f"#{i} " in out
    assert "dependency cycle" in out


def test_check_report_writes_a_report_show_can_read(tmp_path):
    out = tmp_path / "out"
    edn = CORPUS / "cas-register-stale-read.edn"
    proc = subprocess.run([sys.executable, "-m", "jepsenlike", "check", str(edn), "--model", "cas-register",
                           "--report", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "witness (4 ops [0, 3, 5, 8]): stale read" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["valid"] is False and results["witness"]["ops"] == [0, 3, 5, 8]
    assert results["graph"]["valid"] is False
    page = (out / "report.html").read_text()
    assert page.index('id="witness-title"') < page.index('id="anomaly"')
    proc = subprocess.run([sys.executable, "-m", "jepsenlike", "show", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "witness: stale read, 4 ops" in proc.stdout
    assert "cas-register-stale-read.edn" in proc.stdout


def test_check_report_of_a_valid_history(tmp_path):
    out = tmp_path / "out"
    edn = CORPUS / "list-append-valid.edn"
    proc = subprocess.run([sys.executable, "-m", "jepsenlike", "check", str(edn), "--model", "list-append",
                           "--report", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["valid"] is True and "witness" not in results
    assert 'id="no-anomaly"' in (out / "report.html").read_text()
