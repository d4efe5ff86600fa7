"""The pytest plugin, used the way a project would: a pytest run of a test file.

The inner pytest runs in a subprocess (its own interpreter, like a CI job),
and each ``jepsenlike_run`` call starts ``jepsenlike run --system memory``:
the in-process store is linearizable, and with ``--bug stale-read`` it is not,
which the register workload's checker must catch.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jepsenlike.pytest_plugin import to_flags

pytestmark = pytest.mark.integration

TESTS = '''
def test_correct_system(jepsenlike_run):
    result = jepsenlike_run(system="memory", nemesis=["kill"], time_limit=3, warmup=1, recovery=0.5, seed=1)
    result.assert_valid()
    assert result.exit_code == 0 and result.report.exists()


def test_seeded_bug(jepsenlike_run):
    result = jepsenlike_run(system="memory", bug="stale-read", nemesis=["kill"], time_limit=4, warmup=1,
                            recovery=0.5, seed=2)
    result.assert_valid()


def test_seeded_bug_is_caught(jepsenlike_run):
    result = jepsenlike_run(system="memory", bug="stale-read", nemesis="none", time_limit=4, warmup=1,
                            recovery=0.5, seed=2)
    result.assert_invalid()


def test_several_runs_merge_their_verdicts(jepsenlike_run):
    result = jepsenlike_run(system="memory", bug="stale-read", nemesis="none", time_limit=3, warmup=1,
                            recovery=0.5, seed=2, test_count=2)
    assert len(result.run_dirs) == 2 and result.run_dir in result.run_dirs
    assert result.valid is False and result.exit_code == 1
    assert result.report.parent == result.run_dir


def test_bad_flag_fails_with_the_cli_message(jepsenlike_run):
    result = jepsenlike_run(system="memory", nemesis=["partiton"], time_limit=1)
    result.assert_valid()
'''


def _plugin_args() -> list[str]:
    """``-p`` the plugin unless its pytest11 entry point is installed already."""
    eps = importlib.metadata.entry_points(group="pytest11")
    if any(ep.value == "jepsenlike.pytest_plugin" for ep in eps):
        return []
    return ["-p", "jepsenlike.pytest_plugin"]


def test_flags_from_keyword_arguments():
    assert to_flags({"system": "raft", "nemesis": ["kill", "pause"], "time_limit": 10, "quiet": True,
                     "bug": None, "dry": False, "targets": ()}) == [
        "--system", "raft", "--nemesis", "kill,pause", "--time-limit", "10", "--quiet", "--targets", "none"]
    assert to_flags({"option": {"crash-all.spare": 1, "x.on": True}}) == [
        "--option", "crash-all.spare=1", "--option", "x.on=true"]


def test_plugin_passes_a_correct_system_and_fails_a_seeded_bug(tmp_path):
    (tmp_path / "test_chaos.py").write_text(TESTS)
    store = tmp_path / "kept-store"
    junit = tmp_path / "pytest-junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *_plugin_args(), "-p", "no:cacheprovider", "-q", "-rA",
         "--jepsenlike-store", str(store), f"--junitxml={junit}", "test_chaos.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"2 failed, 3 passed", out), out
    outcomes = {c.get("name"): ("failure" if c.find("failure") is not None else "pass")
                for c in ET.parse(junit).getroot().iter("testcase")}
    assert outcomes == {"test_correct_system": "pass", "test_seeded_bug": "failure",
                        "test_seeded_bug_is_caught": "pass", "test_several_runs_merge_their_verdicts": "pass",
                        "test_bad_flag_fails_with_the_cli_message": "failure"}

    # The failure of the seeded bug names the verdict, the anomaly and the report.
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == "test_seeded_bug")
    message = case.find("failure").text or case.find("failure").get("message")
    assert "jepsenlike run: INVALID (exit 1)" in message
    assert "cannot be linearized" in message
    report = Path(re.search(r"^report: (.+)$", message, re.M).group(1))
    assert report.is_file() and report.is_relative_to(store)
    assert json.loads((report.parent / "results.json").read_text())["valid"] is False
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["jepsenlike_report"] == str(report)

    # A bad flag fails with the CLI's own error, not a traceback from the plugin.
    bad = next(c for c in ET.parse(junit).getroot().iter("testcase")
               if c.get("name") == "test_bad_flag_fails_with_the_cli_message")
    assert "NO RUN (exit 255)" in bad.find("failure").text
    assert "partiton" in bad.find("failure").text

    # The end-of-session section lists the runs that were not valid.
    assert "jepsenlike runs" in out and "5 run(s), 1 valid" in out
    assert f"INVALID: test_chaos.py::test_seeded_bug: {report}" in out
