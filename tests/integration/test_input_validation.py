"""Bad input through the CLI: one line naming the flag and the fix, exit 255, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

JEPSENLIKE = [sys.executable, "-P", "-m", "jepsenlike"]


def cli(*args: str, timeout: float = 120, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert p.returncode == 255, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


NUMERIC_FLAGS = ["--time-limit", "--nemesis-interval", "--rate", "--op-timeout", "--warmup", "--recovery",
                 "--ready-timeout", "--check-timeout", "--clock-skew", "--slow-latency-ms",
                 "--slow-jitter-ms", "--flaky-probability"]


@pytest.mark.parametrize("flag", NUMERIC_FLAGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_for_every_numeric_flag(tmp_path, flag, value):
    p = cli("run", f"{flag}={value}", "--store", str(tmp_path / "store"))
    one_line_error(p, flag, "finite")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("flag", [*NUMERIC_FLAGS, "--nodes", "--concurrency", "--keys", "--ops-per-key",
                                  "--test-count", "--seed"])
def test_negative_numbers_are_refused_for_every_numeric_flag(tmp_path, flag):
    p = cli("run", f"{flag}=-1", "--store", str(tmp_path / "store"))
    one_line_error(p, flag)
    assert not (tmp_path / "store").exists()


def test_a_store_naming_a_file_is_one_line(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    one_line_error(cli("run", "--store", str(f)), "--store", "is a file")
    one_line_error(cli("run", "--store", str(f / "sub")), "--store", "which is a file")


def test_a_store_under_proc_is_one_line():
    one_line_error(cli("run", "--store", "/proc/jepsenlike-store"), "--store", "/proc")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only filesystem needs root")
def test_a_store_on_a_read_only_filesystem_is_one_line(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        one_line_error(cli("run", "--store", str(mnt / "store")), "--store", "read-only")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_one_node_without_faults_runs(tmp_path):
    """Partition shapes and targets are validated only when a fault is asked for."""
    p = cli("run", "--system", "memory", "--nodes", "1", "--nemesis", "none", "--time-limit", "1",
            "--warmup", "0.2", "--recovery", "0.2", "--quiet", "--store", str(tmp_path / "s"))
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "Verdict: VALID" in p.stdout
    # ... but a partition asked of one node is still refused, naming the flag.
    one_line_error(cli("run", "--nodes", "1", "--store", str(tmp_path / "s")),
                   "--nemesis: partition needs at least 2 nodes, got 1; leave it out, e.g. --nemesis kill,pause,clock")


def _stored_run(tmp_path: Path) -> Path:
    p = cli("run", "--system", "memory", "--nemesis", "none", "--time-limit", "1", "--warmup", "0.2",
            "--recovery", "0.2", "--quiet", "--store", str(tmp_path / "s"))
    assert p.returncode == 0, p.stderr
    return (tmp_path / "s" / "latest").resolve()


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"config": 7}',
                                     '{"config": {"workload": 7}}', ""])
def test_analyze_with_a_malformed_test_json_is_one_line(tmp_path, content):
    run = _stored_run(tmp_path)
    (run / "test.json").write_text(content)
    one_line_error(cli("analyze", str(run)), "test.json")
    json.loads((run / "results.json").read_text())  # the stored results are left alone


@pytest.mark.parametrize("args, flag", [
    (["analyze", "RUN", "--check-timeout", "nan"], "--check-timeout"),
    (["analyze", "RUN", "--check-timeout=-1"], "--check-timeout"),
    (["check", "H", "--model", "register", "--timeout", "inf"], "--timeout"),
    (["check", "H", "--model", "register", "--timeout", "nan"], "--timeout"),
    (["check", "H", "--model", "register", "--max-states", "0"], "--max-states"),
    (["serve", "--port=-5"], "--port"),
    (["serve", "--port", "70000"], "--port"),
])
def test_numeric_flags_of_the_other_commands_are_checked_too(tmp_path, args, flag):
    args = [str(tmp_path) if a == "RUN" else str(tmp_path / "h.jsonl") if a == "H" else a for a in args]
    one_line_error(cli(*args), flag)
