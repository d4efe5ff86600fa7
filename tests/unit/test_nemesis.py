"""The nemesis framework: contract validation, composition, packages, schedule, kill/pause."""

from __future__ import annotations

import random

import pytest

from jepsenlike.backends.base import KILL, PAUSE
from jepsenlike.backends.inprocess import InProcessBackend
from jepsenlike.errors import ConfigError
from jepsenlike.nemesis import (
    FaultOp,
    Nemesis,
    NemesisContractError,
    Validate,
    build_packages,
    compose,
    plan_schedule,
    refusal,
)
from jepsenlike.nemesis.kill import KillNemesis
from jepsenlike.nemesis.pause import PauseNemesis
from jepsenlike.systems.memory import MemorySystem


class Ctx:
    def __init__(self, backend, leader=None):
        self.backend = backend
        self.rng = random.Random(3)
        self.node_ids = backend.node_ids
        self._leader = leader

    def leader(self):
        return self._leader


def cluster(n=5):
    b = InProcessBackend(MemorySystem(), n)
    b.start()
    return b


class Liar(Nemesis):
    name = "liar"
    fs = frozenset({"boom"})

    def __init__(self, answer):
        self.answer = answer

    def invoke(self, test, op):
        return self.answer(op)


@pytest.mark.parametrize(
    "answer, problem",
    [
        (lambda op: FaultOp(op.f, type="ok"), "type must be 'info', got 'ok'"),
        (lambda op: FaultOp("other", type="info"), "f changed from 'boom' to 'other'"),
        (lambda op: FaultOp(op.f, type="info", process="p1"), "process changed"),
        (lambda op: {"type": "info"}, "completion must be a FaultOp"),
    ],
)
def test_validate_rejects_completions_that_break_the_contract(answer, problem):
    v = Validate(Liar(answer))
    with pytest.raises(NemesisContractError) as e:
        v.invoke(Ctx(cluster()), FaultOp("boom"))
    assert problem in str(e.value)
    assert e.value.problems


def test_validate_rejects_an_f_the_nemesis_does_not_handle():
    with pytest.raises(NemesisContractError, match="not one of"):
        Validate(KillNemesis()).invoke(Ctx(cluster()), FaultOp("pause", "one"))


def test_compose_routes_by_f_and_refuses_overlaps():
    c = compose([KillNemesis(), PauseNemesis()])
    assert c.fs == {"kill", "start", "pause", "resume"}
    assert c.requires == {KILL, PAUSE}
    with pytest.raises(ConfigError, match="nemeses 'kill' and 'kill' are mutually incompatible; both use f"):
        compose([KillNemesis(), KillNemesis()])


def test_refusal_names_the_missing_capability():
    assert refusal(KillNemesis(), {KILL, PAUSE}) is None
    assert refusal(PauseNemesis(), {KILL}, "backend 'docker'") == (
        "nemesis 'pause' needs backend capability pause, which backend 'docker' lacks")


def test_kill_then_start_reports_exactly_the_nodes():
    b = cluster()
    ctx = Ctx(b, leader="n2")
    k = Validate(KillNemesis())
    done = k.invoke(ctx, FaultOp("kill", "leader"))
    assert done.type == "info" and done.value["nodes"] == ["n2"]
    assert b.node_state("n2") == "killed"
    assert k.active() == {"killed": ["n2"]}
    done = k.invoke(ctx, FaultOp("kill", "n4"))
    assert done.value["nodes"] == ["n4"]
    done = k.invoke(ctx, FaultOp("start"))
    assert done.value == {"nodes": ["n2", "n4"]}
    assert all(b.node_state(n) == "up" for n in b.node_ids)
    assert k.active() == {}


def test_leader_target_without_a_leader_says_so():
    done = KillNemesis().invoke(Ctx(cluster(), leader=None), FaultOp("kill", "leader"))
    assert len(done.value["nodes"]) == 1 and "no leader known" in done.value["note"]


def test_pause_skips_nodes_that_are_down_and_resume_heals_all():
    b = cluster()
    ctx = Ctx(b)
    both = compose([KillNemesis(), PauseNemesis()])
    both.invoke(ctx, FaultOp("kill", "n1"))
    done = both.invoke(ctx, FaultOp("pause", "n1+n3"))
    assert done.value["nodes"] == ["n3"] and done.value["skipped"] == ["n1"]
    assert b.node_state("n3") == "paused"
    assert both.active() == {"killed": ["n1"], "paused": ["n3"]}
    assert both.invoke(ctx, FaultOp("resume")).value == {"nodes": ["n3"]}
    assert both.invoke(ctx, FaultOp("start")).value == {"nodes": ["n1"]}
    assert both.active() == {}


def test_paused_memory_node_holds_requests_and_killed_node_refuses():
    b = cluster(3)
    sys_ = b.system
    c1 = sys_.open_client(b.node("n1"), timeout=0.05)
    b.pause("n1")
    assert c1.invoke("read", 1, None)["type"] == "info"
    b.resume("n1")
    assert c1.invoke("write", 1, 5)["type"] == "ok"
    b.kill("n1")
    r = c1.invoke("write", 1, 6)
    assert r["type"] == "fail" and "refused" in r["error"]
    b.restart("n1")
    assert c1.invoke("read", 1, None) == {"type": "ok", "value": 5, "error": None}


def test_packages_by_name_and_unknown_names():
    pkgs = build_packages(["kill", "pause"])
    assert [p.name for p in pkgs] == ["kill", "pause"]
    assert [op.f for p in pkgs for op in p.final] == ["start", "resume"]
    with pytest.raises(ConfigError, match="unknown nemesis 'partiton'; available: clock, flaky, flip-partition, kill, kill-cluster, kill-elected, leader-clock, leader-pause, partition, pause, shard-move, slow"):
        build_packages(["partiton"])


def test_schedule_is_seeded_alternates_start_stop_and_stays_in_the_chaos_phase():
    pkgs = build_packages(["kill", "pause"])
    a = plan_schedule(pkgs, 2.0, 3.0, 30.0, random.Random(11))
    b = plan_schedule(pkgs, 2.0, 3.0, 30.0, random.Random(11))
    assert a == b and a != plan_schedule(pkgs, 2.0, 3.0, 30.0, random.Random(12))
    assert a[0].at == 3.0
    assert all(3.0 <= s.at < 30.0 for s in a)
    assert [s.at for s in a] == sorted(s.at for s in a)
    pairs = {"kill": "start", "pause": "resume"}
    for start, stop in zip(a[::2], a[1::2], strict=False):
        assert stop.op.f == pairs[start.op.f]
        assert start.op.value in ("one", "minority", "leader") and stop.op.value is None
        assert 1.0 <= stop.at - start.at <= 3.0
    assert {s.op.f for s in a} >= {"kill", "pause"}  # both packages get used over 27 s
    assert plan_schedule([], 2.0, 0, 10, random.Random(1)) == []
