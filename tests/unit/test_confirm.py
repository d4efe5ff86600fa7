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


def test_a_slow_reading_of_a_strobing_clock_decides_nothing():
    class Strobing(FakeClock):
        def strobing(self) -> bool:
            return True

    class Slow(FakeObserver):
        def wall_clock(self, node_id: str) -> float | None:
            time.sleep(0.06)  # longer than a strobe period: the flips in between cannot be seen
            return time.time()

    ctx = Ctx(FakeBackend({"n2": Strobing(5.0)}, Slow()))
    ok, _ = confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.2)
    assert ok is None
    ctx.backend.obs = FakeObserver(skew=0.0)  # a quick reading of the same clock does decide
    assert confirm_clock(ctx, ctx.backend.obs, "n2", budget=0.2)[0] is False


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


# -- the docker observer, against a fake Docker API (the real one: tests/docker) ----------


class FakeAPI:
    """Canned container states and exec outputs, by container id and argv[0]."""

    def __init__(self, states: dict[str, dict], outputs: dict[tuple[str, str], tuple[int, bytes]]) -> None:
        self.states, self.outputs, self.execs = states, outputs, {}

    def inspect_container(self, cid: str) -> dict:
        return {"State": self.states[cid]}

    def exec_create(self, cid: str, argv: list[str], **kw: Any) -> dict:
        eid = f"{cid}/{len(self.execs)}"
        self.execs[eid] = (cid, argv, kw.get("environment"))
        return {"Id": eid}

    def exec_start(self, eid: str, demux: bool = False) -> bytes:
        cid, argv, _ = self.execs[eid]
        return self.outputs[(cid, argv[0])][1]

    def exec_inspect(self, eid: str) -> dict:
        cid, argv, _ = self.execs[eid]
        return {"ExitCode": self.outputs[(cid, argv[0])][0]}


def _docker_backend(api: FakeAPI) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(client=SimpleNamespace(api=api), containers={"n1": "c1", "n2": "c2"},
                           container_name=lambda n: f"jl-{n}", ip={"n1": "10.9.0.2", "n2": "10.9.0.3"}.get,
                           iptables="nft", clocks={"n1": object()})


def test_the_docker_observer_reads_container_state_rules_and_the_preload():
    from jepsenlike.confirm import DockerObserver

    rules = b"-P INPUT ACCEPT\n-N JEPSENLIKE\n-A INPUT -j JEPSENLIKE\n-A JEPSENLIKE -s 10.9.0.3/32 -j DROP\n"
    api = FakeAPI({"c1": {"Running": True, "Paused": False}, "c2": {"Running": True, "Paused": True}},
                  {("c1", "iptables"): (0, rules), ("c1", "cat"): (0, b"7f00 r-xp /opt/jepsenlike/lib/libfaketimeMT.so.1\n"),
                   ("c1", "date"): (0, b"1700000000.5\n")})
    obs = DockerObserver(_docker_backend(api))
    assert obs.process_state("n1")[0] == "running" and obs.process_state("n2")[0] == "stopped"
    seen = obs.links_pass([("n2", "n1"), ("n1", "n2")])
    assert seen[("n2", "n1")][0] is False and "drops 10.9.0.3" in seen[("n2", "n1")][1]
    assert ("n1", "n2") not in seen  # n2 is paused: its rules load when it resumes, nothing to look at
    assert obs.preload_loaded("n1")[0] is True
    assert obs.wall_clock("n1") == 1700000000.5
    iptables_env = [env for cid, argv, env in api.execs.values() if argv[0] == "iptables"]
    assert iptables_env == [{"LD_PRELOAD": ""}]
    api.outputs[("c1", "cat")] = (0, b"55 r-xp /usr/local/bin/etcd\n")  # a static binary: nothing preloaded
    ok, why = obs.preload_loaded("n1")
    assert ok is False and "static binary" in why
    api.outputs[("c1", "iptables")] = (0, b"-A INPUT -j JEPSENLIKE\n")
    assert obs.links_pass([("n2", "n1")])[("n2", "n1")][0] is True
