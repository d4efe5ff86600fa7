"""Short runs: every requested fault gets a turn; the summary says what to raise; piped progress."""

from __future__ import annotations

import io
import random

import pytest

from jepsenlike.commands.run import ProgressLine
from jepsenlike.config import DEFAULT_NEMESES, TestConfig
from jepsenlike.coverage import fault_coverage
from jepsenlike.history import History
from jepsenlike.nemesis import PackageOptions, build_packages, min_chaos_seconds, plan_schedule
from jepsenlike.nemesis.schedule import MIN_STEP, lane_step


def started(plan, packages) -> set[str]:
    fs = {s.op.f for s in plan}
    return {p.name for p in packages if p.start_fs & fs}


@pytest.mark.parametrize("time_limit", [15.0, 10.0, 8.0])
def test_default_faults_all_start_in_a_short_default_run(time_limit):
    """The issue's case: 15 s at default settings left a fault unscheduled in most seeds."""
    d = TestConfig()
    pkgs = build_packages(DEFAULT_NEMESES, PackageOptions.from_config(d))
    for seed in range(300):
        plan = plan_schedule(pkgs, d.nemesis_interval, d.warmup, time_limit, random.Random(seed))
        assert started(plan, pkgs) == set(DEFAULT_NEMESES), seed
        assert all(d.warmup <= s.at < time_limit for s in plan)


def test_min_chaos_seconds_is_enough_and_tight():
    pkgs = build_packages(["kill", "pause", "partition", "clock", "slow"], PackageOptions.from_config(TestConfig()))
    need = min_chaos_seconds(pkgs, 3.0)
    assert need > 0
    for seed in range(300):
        plan = plan_schedule(pkgs, 3.0, 0.0, need + 1e-6, random.Random(seed))
        assert started(plan, pkgs) == {p.name for p in pkgs}, seed
    # Shorter than that and at least one seed leaves a fault out.
    misses = sum(started(plan_schedule(pkgs, 3.0, 0.0, need * 0.6, random.Random(s)), pkgs) != {p.name for p in pkgs}
                 for s in range(300))
    assert misses > 0


def test_lane_step_keeps_the_interval_when_there_is_room():
    assert lane_step(3, 3.0, 27.0) == 3.0
    assert lane_step(3, 3.0, 12.0) == pytest.approx(12.0 / 7.5)
    assert lane_step(3, 3.0, 1.0) == MIN_STEP
    assert lane_step(1, 0.2, 0.1) == 0.2


def test_a_never_scheduled_fault_says_how_far_to_raise_the_time_limit():
    faults = {"requested": ["kill"], "packages": {"kill": {"start": ["kill"], "stop": ["start"], "lane": "main"}},
              "refused": {}, "min_time_limit": 4.5}
    cov = fault_coverage(History.from_ops([]), faults)
    assert cov["kill"]["status"] == "never-fired"
    assert "raise --time-limit above 4.5 s or lower --nemesis-interval" in cov["kill"]["reason"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def snap(elapsed: float, phase: str = "chaos") -> dict:
    return {"phase": phase, "elapsed": elapsed, "remaining": 10 - elapsed, "counts": {"ok": 3}, "faults": {}}


def test_piped_progress_is_plain_lines_every_few_seconds(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("jepsenlike.commands.run.time.monotonic", lambda: now[0])
    out = io.StringIO()
    line = ProgressLine(out)
    for i in range(41):  # 10 s of updates, 4 a second
        line.update(snap(i / 4))
        now[0] += 0.25
    line.update(snap(10.0, "done"))
    line.finish()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 4  # at 0 s, 5 s, 10 s, and done
    assert all(ln.startswith("[") for ln in lines) and lines[-1].startswith("[done")


def test_a_terminal_gets_one_line_redrawn_in_place(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("jepsenlike.commands.run.time.monotonic", lambda: now[0])
    out = FakeTTY()
    line = ProgressLine(out)
    for i in range(8):
        line.update(snap(i / 4))
        now[0] += 0.25
    line.finish()
    text = out.getvalue()
    assert text.count("\r") == 8 and text.count("\n") == 1 and text.endswith("\n")
