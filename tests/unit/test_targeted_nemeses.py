"""The targeted nemeses (leader-clock, kill-elected, flip-partition, leader-pause): what each
does to a recording fake backend, their plans, their confirmation kinds and their heal."""

from __future__ import annotations

import random
from typing import Any

import pytest

from jepsenlike.confirm import START_FS, _confirm
from jepsenlike.gen import simulate
from jepsenlike.nemesis import (
    FaultOp,
    PackageOptions,
    Validate,
    build_packages,
    nemesis_names,
    plan_schedule,
)
from jepsenlike.nemesis.grudge import visible_sets
from jepsenlike.nemesis.targeted import (
    FlipPartitionNemesis,
    KillClusterNemesis,
    KillElectedNemesis,
    LeaderClockNemesis,
    LeaderPauseNemesis,
)
from tests.unit.test_fault_nemeses import Ctx, FakeNetBackend

TARGETED = ("leader-clock", "kill-elected", "flip-partition", "leader-pause", "kill-cluster")


class ProcBackend(FakeNetBackend):
    """The fake backend with process states (kill, restart, pause, resume)."""

    def __init__(self, n: int = 5) -> None:
        super().__init__(n)
        self.states = {n.id: "up" for n in self.nodes}
        self.calls: list[tuple[str, str]] = []

    def kill(self, node_id: str) -> None:
        self.states[node_id] = "killed"
        self.calls.append(("kill", node_id))

    def restart(self, node_id: str) -> None:
        self.states[node_id] = "up"
        self.calls.append(("restart", node_id))

    def pause(self, node_id: str) -> None:
        self.states[node_id] = "paused"
        self.calls.append(("pause", node_id))

    def resume(self, node_id: str) -> None:
        self.states[node_id] = "up"
        self.calls.append(("resume", node_id))

    def node_state(self, node_id: str) -> str:
        return self.states[node_id]


class Leaders(Ctx):
    """A context whose leader answers come from a script (then the last one repeats)."""

    def __init__(self, backend: Any, answers: list[str | None]) -> None:
        super().__init__(backend)
        self.answers = list(answers)

    def leader(self) -> str | None:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_every_targeted_nemesis_is_registered_and_builds_a_valid_package():
    assert set(TARGETED) <= set(nemesis_names())
    pkgs = build_packages(list(TARGETED), PackageOptions(interval=2.0))
    assert [p.name for p in pkgs] == list(TARGETED)
    for p in pkgs:
        assert p.generator is not None  # each runs on a timeline of its own
        for f in p.start_fs:
            assert f in START_FS, f"{f} is not confirmed"


def test_leader_clock_isolates_the_leader_and_steps_its_clock_back_then_forward():
    b = FakeNetBackend(5)
    nem = Validate(LeaderClockNemesis(skew=4.0, direction="both"))
    ctx = Ctx(b, leader="n3")
    done = nem.invoke(ctx, FaultOp("start-leader-clock"))
    assert done.value["nodes"] == ["n3"] and done.value["offsets"] == {"n3": -4.0}
    seen = visible_sets(b.grudge, b.node_ids)
    assert seen["n3"] == {"n3"} and all(seen[n] == set(b.node_ids) - {"n3"} for n in b.node_ids if n != "n3")
    assert b.clocks["n3"].calls == [("bump", (-4.0,))]
    stop = nem.invoke(ctx, FaultOp("stop-leader-clock"))
    assert b.grudge is None and b.clocks["n3"].calls[-1] == ("reset", ())
    assert stop.value["nodes"] == ["n3"] and stop.value["healed"]["n3"]
    again = nem.invoke(ctx, FaultOp("start-leader-clock"))
    assert again.value["offsets"] == {"n3": 4.0}  # alternates: back, forward
    only_back = LeaderClockNemesis(skew=2.0, direction="back")
    assert [only_back._offset() for _ in range(3)] == [-2.0, -2.0, -2.0]
    with pytest.raises(ValueError, match="direction"):
        LeaderClockNemesis(direction="sideways")


def test_leader_clock_without_a_known_leader_picks_a_node_and_says_so():
    b = FakeNetBackend(3)
    done = LeaderClockNemesis().invoke(Ctx(b, leader=None), FaultOp("start-leader-clock"))
    assert done.value["note"].startswith("no leader known") and len(done.value["nodes"]) == 1


def test_kill_elected_waits_for_a_leader_kills_it_and_restart_brings_back_every_killed_node():
    b = ProcBackend(3)
    nem = Validate(KillElectedNemesis(wait=1.0))
    ctx = Leaders(b, [None, None, "n2"])  # no leader twice, then n2 is elected
    done = nem.invoke(ctx, FaultOp("kill-elected"))
    assert done.value["nodes"] == ["n2"] and b.states["n2"] == "killed"
    assert done.value["elected_after_s"] > 0 and "note" not in done.value
    # n2 is down: a stale answer naming it is not a live leader; n1 is the next one.
    ctx.answers = ["n2", "n1"]
    nem.invoke(ctx, FaultOp("kill-elected"))
    assert b.states == {"n1": "killed", "n2": "killed", "n3": "up"}
    restart = nem.invoke(ctx, FaultOp("restart-elected"))
    assert restart.value["nodes"] == ["n1", "n2"] and set(b.states.values()) == {"up"}


def test_kill_elected_without_any_leader_kills_a_live_node_after_waiting():
    b = ProcBackend(3)
    done = KillElectedNemesis(wait=0.1).invoke(Leaders(b, [None]), FaultOp("kill-elected"))
    assert "no leader known" in done.value["note"] and len(done.value["nodes"]) == 1


def test_flip_partition_every_flip_is_a_majorities_grudge_and_stop_heals():
    b = FakeNetBackend(5)
    nem = Validate(FlipPartitionNemesis())
    ctx = Ctx(b)
    grudges = []
    for f in ["start-flip"] + ["flip-partition"] * 6:
        done = nem.invoke(ctx, FaultOp(f))
        seen = visible_sets(b.grudge, b.node_ids)
        assert all(len(s) >= 3 and n in s for n, s in seen.items())  # each node sees a majority
        assert len({frozenset(s) for s in seen.values()}) > 1  # ... not the same one
        grudges.append(done.value["text"])
    assert len(set(grudges)) > 1  # it flips
    nem.invoke(ctx, FaultOp("stop-flip"))
    assert b.grudge is None


def test_leader_pause_pauses_and_cuts_off_the_leader_resume_keeps_it_cut_heal_reconnects():
    b = ProcBackend(5)
    nem = Validate(LeaderPauseNemesis(isolate=True))
    ctx = Ctx(b, leader="n4")
    done = nem.invoke(ctx, FaultOp("pause-leader"))
    assert done.value["nodes"] == ["n4"] and b.states["n4"] == "paused"
    assert visible_sets(b.grudge, b.node_ids)["n4"] == {"n4"}
    nem.invoke(ctx, FaultOp("resume-leader"))
    assert b.states["n4"] == "up" and b.grudge is not None  # awake, still cut off
    nem.invoke(ctx, FaultOp("heal-leader"))
    assert b.grudge is None
    plain = LeaderPauseNemesis(isolate=False)
    assert "net" not in plain.requires
    plain.invoke(Ctx(b, leader="n1"), FaultOp("pause-leader"))
    assert b.grudge is None and b.states["n1"] == "paused"


@pytest.mark.parametrize("name", TARGETED)
def test_each_plan_fires_its_start_op_repeatedly_and_every_start_is_followed_by_its_stop(name):
    (pkg,) = build_packages([name], PackageOptions(interval=2.0))
    plan = plan_schedule([pkg], 2.0, 1.0, 40.0, random.Random(7))
    fs = [s.op.f for s in plan]
    starts = [f for f in fs if f in pkg.start_fs]
    assert len(starts) >= 5, fs
    assert all(s.at >= 1.0 for s in plan)
    assert plan == plan_schedule([pkg], 2.0, 1.0, 40.0, random.Random(7))  # same seed, same plan
    # Heal: simulated with a stop in the middle, the final ops run after the chaos.
    from jepsenlike.nemesis.schedule import chaos_generator

    ops = simulate(chaos_generator([pkg], 2.0, 1.0, 10.0, random.Random(7)), stop_at=10.0)
    tail = [op.f for t, op in ops if t >= 10.0]
    assert tail == [op.f for op in pkg.final]


def test_kill_elected_keeps_killed_leaders_down_about_down_seconds():
    (pkg,) = build_packages(["kill-elected"], PackageOptions(interval=2.0,
                                                            plugin_options={"kill-elected": {"down": 1.0}}))
    plan = plan_schedule([pkg], 2.0, 0.0, 20.0, random.Random(1))
    kills = [s.at for s in plan if s.op.f == "kill-elected"]
    restarts = [s.at for s in plan if s.op.f == "restart-elected"]
    gaps = [r - k for k, r in zip(kills, restarts, strict=False)]
    assert gaps and all(0.5 <= g <= 1.5 for g in gaps)


def test_combined_faults_are_confirmed_part_by_part():
    class Obs:
        def links_pass(self, links):
            return {link: (False, "held") for link in links}

        def process_state(self, node_id):
            return ("stopped", "state T")

    class B:
        def observer(self):
            return Obs()

    class C:
        backend = B()

    value = {"nodes": ["n1"], "grudge": {"n1": ["n2"], "n2": ["n1"]}}
    assert START_FS["pause-leader"] == "pause+partition"
    got = _confirm("pause+partition", C(), value)
    assert got == {"n1": (True, "state T"), "n2->n1": (True, "held"), "n1->n2": (True, "held")}


def test_kill_cluster_kills_every_node_and_brings_the_old_leader_back_last():
    b = ProcBackend(5)
    nem = Validate(KillClusterNemesis())
    ctx = Ctx(b, leader="n2")
    done = nem.invoke(ctx, FaultOp("kill-cluster"))
    assert done.value["nodes"] == b.node_ids and done.value["leader"] == "n2"
    assert set(b.states.values()) == {"killed"}
    first = nem.invoke(ctx, FaultOp("restart-cluster"))
    assert first.value["nodes"] == ["n1", "n3", "n4", "n5"] and b.states["n2"] == "killed"
    last = nem.invoke(ctx, FaultOp("restart-leader"))
    assert last.value["nodes"] == ["n2"] and set(b.states.values()) == {"up"}
    assert [c for c in b.calls if c[0] == "restart"][-1] == ("restart", "n2")
