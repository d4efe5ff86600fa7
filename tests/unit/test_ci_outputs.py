"""CI outputs: JUnit XML, the Markdown summary and the --pass-policy rule."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jepsenlike.ci import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_UNKNOWN,
    EXIT_VALID,
    PassPolicy,
    RunRecord,
    finish_suite,
    summary_markdown,
    write_junit_xml,
    write_summary_md,
)
from jepsenlike.errors import ConfigError
from jepsenlike.report.samples import write_sample_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    store = tmp_path_factory.mktemp("store")
    return {
        "valid": write_sample_run(store, "valid-register", seed=7),
        "invalid": write_sample_run(store, "invalid-register", seed=7),
        "graph": write_sample_run(store, "graph-g1c", seed=3),
    }


def _rec(outcome: str) -> RunRecord:
    if outcome == "crashed":
        return RunRecord.crashed("t", 1, "boom")
    return RunRecord("t", {"valid": True, "invalid": False, "unknown": "unknown"}[outcome])


# -- pass policy ---------------------------------------------------------------------


@pytest.mark.parametrize("text, kind, amount", [
    ("all", "all", 0), ("ANY", "any", 0), ("3", "count", 3), ("80%", "percent", 80), ("12.5 %", "percent", 12.5),
    (None, "all", 0),
])
def test_policy_forms_parse(text, kind, amount):
    p = PassPolicy.parse(text)
    assert (p.kind, p.amount) == (kind, amount)


@pytest.mark.parametrize("text", ["most", "0", "-1", "0%", "101%", "1.5", "%"])
def test_bad_policies_are_refused_with_the_forms(text):
    with pytest.raises(ConfigError, match=r"--pass-policy .*(all, any, N|percentage|count)"):
        PassPolicy.parse(text)


def test_a_count_larger_than_the_test_count_is_refused():
    PassPolicy.parse("3").validate_for(3)
    with pytest.raises(ConfigError, match="needs 4 valid runs but --test-count is 3"):
        PassPolicy.parse("4").validate_for(3)


@pytest.mark.parametrize("policy, outcomes, passed, code", [
    ("all", ["valid", "valid"], True, EXIT_VALID),
    ("all", ["valid", "invalid"], False, EXIT_INVALID),
    ("all", ["valid", "unknown"], False, EXIT_UNKNOWN),
    ("all", ["valid", "crashed", "unknown"], False, EXIT_ERROR),
    ("all", ["invalid", "crashed"], False, EXIT_INVALID),
    ("any", ["invalid", "valid"], True, EXIT_VALID),
    ("any", ["invalid", "unknown"], False, EXIT_INVALID),
    ("2", ["valid", "unknown", "valid"], True, EXIT_VALID),
    ("2", ["valid", "unknown", "crashed"], False, EXIT_ERROR),
    ("50%", ["valid", "invalid"], True, EXIT_VALID),
    ("51%", ["valid", "invalid"], False, EXIT_INVALID),
    ("34%", ["valid", "unknown", "unknown"], False, EXIT_UNKNOWN),  # needs ceil(1.02) = 2
    ("all", [], False, EXIT_ERROR),
])
def test_policy_outcome_and_exit_code(policy, outcomes, passed, code):
    out = PassPolicy.parse(policy).evaluate([_rec(o) for o in outcomes])
    assert (out.passed, out.exit_code) == (passed, code)
    assert ("PASSED" if passed else "FAILED") in out.message


# -- records ---------------------------------------------------------------------------


def test_records_read_back_from_run_dirs(runs):
    v = RunRecord.from_run_dir(runs["valid"])
    i = RunRecord.from_run_dir(runs["invalid"])
    assert (v.outcome, i.outcome) == ("valid", "invalid")
    assert i.seed == 7 and i.run_dir == runs["invalid"].resolve()
    # the minimal witness comes first: the stale read in one sentence
    assert i.headline.startswith("INVALID: witness (key 0, ") and "stale read" in i.headline
    assert i.anomaly.endswith("cannot be linearized")
    assert i.faults == {"kill": 1, "start": 1, "pause": 1}


def test_a_run_dir_without_results_is_crashed(tmp_path, runs):
    d = tmp_path / "r"
    d.mkdir()
    (d / "test.json").write_text((runs["valid"] / "test.json").read_text())
    r = RunRecord.from_run_dir(d)
    assert r.outcome == "crashed" and "results.json is missing" in r.crash


# -- JUnit XML -----------------------------------------------------------------------------


def test_junit_xml_one_testcase_per_run_with_failure_and_properties(tmp_path, runs):
    recs = [RunRecord.from_run_dir(runs[k]) for k in ("valid", "invalid", "graph")]
    recs.append(RunRecord.crashed("raft-register", 11, "NodeStartError: n1 never became ready"))
    path = write_junit_xml(tmp_path / "out" / "junit.xml", recs, policy=PassPolicy.parse("any"))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "1")
    cases = suite.findall("testcase")
    assert len(cases) == 4
    assert len({c.get("name") for c in cases}) == 4, "names are unique"
    valid, invalid, graph, crashed = cases
    assert valid.find("failure") is None and valid.find("error") is None
    props = {p.get("name"): p.get("value") for p in invalid.find("properties")}
    assert props["seed"] == "7" and props["run_dir"] == str(runs["invalid"].resolve())
    assert props["verdict"] == "invalid"
    fail = invalid.find("failure")
    assert fail.get("type") == "invalid"
    assert fail.get("message").startswith("INVALID: witness (key 0, ")
    assert "key 0: not linearizable" in fail.text
    assert "longest partial linearization" in fail.text and "Run dir: " in fail.text
    assert graph.find("failure").get("message").startswith("INVALID: list-append: found")
    err = crashed.find("error")
    assert err.get("type") == "crashed" and "NodeStartError" in err.get("message")
    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert suite_props["pass_policy"] == "any" and "PASSED" in suite_props["pass_policy_result"]


def test_junit_xml_drops_characters_xml_forbids(tmp_path):
    rec = RunRecord("t", False, seed=1, explanation="read \x00\x07\x1b[31mred\x1b[0m <&> \"q\" ]]>")
    path = write_junit_xml(tmp_path / "j.xml", [rec])
    case = ET.parse(path).getroot().find("testsuite/testcase")
    assert case.find("failure").text == 'read [31mred[0m <&> "q" ]]>'


def test_junit_xml_is_read_by_a_ci_consumer(tmp_path, runs):
    """junitparser, the library CI reporters build on, reads the same counts."""
    junitparser = pytest.importorskip("junitparser", reason="pip install junitparser to run this check")
    recs = [RunRecord.from_run_dir(runs[k]) for k in ("valid", "invalid")]
    xml = junitparser.JUnitXml.fromfile(str(write_junit_xml(tmp_path / "j.xml", recs)))
    suites = list(xml)
    assert suites[0].tests == 2 and suites[0].failures == 1
    results = [[type(r).__name__ for r in case.result] for case in suites[0]]
    assert results == [[], ["Failure"]]


# -- Markdown --------------------------------------------------------------------------------


def test_summary_md_table_and_details_for_each_bad_run(runs):
    recs = [RunRecord.from_run_dir(runs[k]) for k in ("valid", "invalid")]
    recs.append(RunRecord.crashed("x|y", 9, "boom | bang"))
    md = summary_markdown(recs, policy=PassPolicy.parse("all"))
    lines = md.splitlines()
    assert lines[0].startswith("## ❌ jepsenlike: FAILED")
    table = [ln for ln in lines if ln.startswith("| ")]
    assert len(table) == 1 + 3
    assert all(len(re.split(r"(?<!\\)\|", ln)) == 10 for ln in table), "8 cells; pipes in cells escaped"
    assert "x\\|y" in md
    assert md.count("<details>") == 2, "one block per run that is not valid"
    assert "```text\nwitness (key 0, " in md and "key 0: not linearizable" in md
    assert f"Run dir: `{runs['invalid'].resolve()}`" in md


def test_summary_md_appends_to_the_github_step_summary(tmp_path, monkeypatch, runs):
    recs = [RunRecord.from_run_dir(runs["valid"])]
    gh = tmp_path / "step_summary.md"
    gh.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(gh))
    write_summary_md(gh, recs)
    assert gh.read_text().startswith("# earlier step\n## ✅ jepsenlike: passed")
    other = tmp_path / "summary.md"
    other.write_text("old\n")
    write_summary_md(other, recs)
    assert not other.read_text().startswith("old")


def test_finish_suite_writes_both_files_and_returns_the_policy_outcome(tmp_path, runs):
    recs = [RunRecord.from_run_dir(runs[k]) for k in ("valid", "invalid")]
    out = finish_suite(recs, pass_policy="all", junit_xml_path=tmp_path / "j.xml",
                       summary_md_path=tmp_path / "s.md")
    assert (out.passed, out.exit_code) == (False, EXIT_INVALID)
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("failures") == "1"
    assert "FAILED" in (tmp_path / "s.md").read_text()
