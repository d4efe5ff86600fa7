"""Fault confirmation logic (jepsenlike.confirm) and how coverage counts it, with fake nodes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.confirm import confirm_clock, confirm_completion
from jepsenlike.coverage import coverage_verdict, describe_coverage, fault_coverage
from jepsenlike.history import History
from jepsenlike.nemesis import FaultOp
from jepsenlike.systems.base import NodeSpec


class FakeClock:
    def __init__(self, offset: float) -> None:
        self.offset = offset


@dataclass
class FakeObserver:
    """A node whose clock reads real time plus ``skew`` (what libfaketime really did)."""

    skew: float = 0.0
    states: dict[str, str] = field(default_factory=dict)

    def process_state(self, node_id: str) -> tuple[str, str] | None:
        return (self.states[node_id], "fake") if node_id in self.states else None

    def wall_clock(self, node_id: str) -> float | None:
        return time.time() + self.skew

    def links_pass(self, links):
        return None


@dataclass
class FakeBackend:
    clocks: dict[str, FakeClock]
    obs: FakeObserver

    def clock(self, node_id: str) -> FakeClock:
        return self.clocks[node_id]

    def observer(self) -> FakeObserver:
        return self.obs

    def node(self, node_id: str) -> NodeSpec:
        return NodeSpec(node_id, "", "", "")


@dataclass
class Ctx:
    backend: Any
    system: Any = None


def test_a_clock_that_did_not_move_is_unconfirmed_with_how_far_it_moved():
    ctx = Ctx(FakeBackend({"n2": FakeClock(5.0)}, FakeObserver(skew=0.0)))
    ok, why = confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.1)
    assert ok is False
    assert why.startswith("clock fault on n2 not confirmed") and "+0.0 s of +5.0 s" in why
    assert "is libfaketime loaded?" in why


def test_a_clock_that_moved_as_driven_is_confirmed_and_a_wrong_amount_is_not():
    ctx = Ctx(FakeBackend({"n2": FakeClock(-3.0)}, FakeObserver(skew=-3.0)))
    assert confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.1)[0] is True
    ctx.backend.obs.skew = -1.0
    assert confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.1)[0] is False


def test_an_offset_too_small_to_tell_is_unobservable_not_confirmed():
    ctx = Ctx(FakeBackend({"n2": FakeClock(0.01)}, FakeObserver(skew=0.0)))
    ok, why = confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.1)
    assert ok is None and "too small" in why


def test_the_systems_own_clock_is_asked_first():
    class System:
        def wall_clock(self, node: NodeSpec, timeout: float = 0.3) -> float:
            return time.time() + 2.0

    ctx = Ctx(FakeBackend({"n1": FakeClock(2.0)}, FakeObserver(skew=0.0)), System())
    ok, why = confirm_clock(ctx, ctx.backend.obs, "n1", budget=0.1)
    assert ok is True and "own clock" in why


def test_confirm_completion_marks_each_target_and_leaves_other_ops_alone():
    ctx = Ctx(FakeBackend({}, FakeObserver(states={"n1": "stopped", "n2": "running"})))
    op = FaultOp("pause", "minority")
    value = confirm_completion(ctx, op, op.complete({"nodes": ["n1", "n2", "n3"]})).value
    assert set(value["confirmed"]) == {"n1"}
    assert set(value["unconfirmed"]) == {"n2"} and "pause fault on n2 not confirmed" in value["unconfirmed"]["n2"]
    assert set(value["unobservable"]) == {"n3"}
    resume = FaultOp("resume")
    assert confirm_completion(ctx, resume, resume.complete({"nodes": ["n1"]})).value == {"nodes": ["n1"]}
    failed = op.complete(None, error="RuntimeError: x")
    assert confirm_completion(ctx, op, failed) is failed


def _history(events: list[tuple[float, str, Any]]) -> History:
    ops = []
    for i, (t, f, value) in enumerate(events):
        ops.append({"index": 2 * i, "time": int(t * 1e9) - 1, "process": "nemesis", "type": "invoke", "f": f})
        ops.append({"index": 2 * i + 1, "time": int(t * 1e9), "process": "nemesis", "type": "info", "f": f,
                    "value": value})
    return History.from_ops(ops)


FAULTS = {"requested": ["clock", "pause"],
          "packages": {"clock": {"start": ["bump-clock"], "stop": ["reset-clock"]},
                       "pause": {"start": ["pause"], "stop": ["resume"]}},
          "refused": {}}


def test_coverage_counts_only_confirmed_faults_and_an_unconfirmed_one_makes_the_run_unknown():
    why = "clock fault on n2 not confirmed: the node's own clock moved +0.0 s of +5.0 s requested"
    hist = _history([
        (1.0, "bump-clock", {"nodes": ["n2"], "unconfirmed": {"n2": why}}),
        (2.0, "reset-clock", {"nodes": ["n2"]}),
        (3.0, "pause", {"nodes": ["n1"], "confirmed": {"n1": "state T"}}),
        (4.0, "resume", {"nodes": ["n1"]}),
    ])
    cov = fault_coverage(hist, FAULTS)
    assert cov["clock"]["status"] == "unconfirmed" and cov["clock"]["fired"] == 0
    assert cov["clock"]["reason"] == why
    assert cov["pause"]["status"] == "fired" and cov["pause"]["confirmed"] == 1
    valid, reasons = coverage_verdict(cov)
    assert valid == UNKNOWN and reasons == [f"fault 'clock' did not take effect on the node: {why}"]
    assert describe_coverage(cov) == "clock UNCONFIRMED x1, pause x1 (1.0 s)"
