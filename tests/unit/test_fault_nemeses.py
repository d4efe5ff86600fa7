"""The partition, clock, slow and flaky nemeses, their config, the lanes of the schedule,
and fault coverage accounting (against a recording fake backend: no processes)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from jepsenlike.backends import backend_refusals
from jepsenlike.backends.base import CLOCK, KILL, NET, PAUSE, Backend
from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.config import TestConfig, build_config, format_grudge, parse_grudge
from jepsenlike.coverage import coverage_verdict, describe_coverage, fault_coverage
from jepsenlike.errors import ConfigError
from jepsenlike.history import History
from jepsenlike.nemesis import FaultOp, PackageOptions, Validate, build_packages, plan_schedule
from jepsenlike.nemesis.clock import ClockNemesis
from jepsenlike.nemesis.links import FlakyNemesis, SlowNemesis, links_touching
from jepsenlike.nemesis.partition import PartitionNemesis
from jepsenlike.systems import get_system


class FakeClock:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[float, ...]]] = []

    def bump(self, seconds: float) -> None:
        self.calls.append(("bump", (seconds,)))

    def set_rate(self, rate: float) -> None:
        self.calls.append(("rate", (rate,)))

    def strobe(self, delta: float, period: float, duration: float) -> None:
        self.calls.append(("strobe", (delta, period, duration)))

    def reset(self) -> None:
        self.calls.append(("reset", ()))


class FakeNetBackend(Backend):
    """Records what the nemeses ask of the network and the clocks."""

    name = "fake"
    capabilities = frozenset({KILL, PAUSE, NET, CLOCK})

    def __init__(self, n: int = 5) -> None:
        super().__init__()
        from jepsenlike.systems.base import NodeSpec

        self.nodes = [NodeSpec(f"n{i + 1}", "", "", "") for i in range(n)]
        self.grudge: dict[str, set[str]] | None = None
        self.slow: dict[tuple[str, str] | None, tuple[float, float]] = {}
        self.flaky: dict[tuple[str, str] | None, float] = {}
        self.clocks = {n.id: FakeClock() for n in self.nodes}
        self.heals = 0

    def start(self) -> None:
        pass

    def teardown(self) -> None:
        pass

    def apply_grudge(self, grudge: Any) -> None:
        self.grudge = {k: set(v) for k, v in grudge.items()}

    def heal_network(self) -> None:
        self.grudge = None
        self.heals += 1

    def slow_links(self, links: Any, latency_ms: float, jitter_ms: float) -> None:
        for link in (links if links is not None else [None]):
            self.slow[link] = (latency_ms, jitter_ms)

    def flaky_links(self, links: Any, drop_probability: float) -> None:
        for link in (links if links is not None else [None]):
            self.flaky[link] = drop_probability

    def clock(self, node_id: str) -> FakeClock:
        return self.clocks[node_id]


class Ctx:
    def __init__(self, backend: Backend, leader: str | None = None, seed: int = 3) -> None:
        self.backend = backend
        self.rng = random.Random(seed)
        self.node_ids = backend.node_ids
        self._leader = leader

    def leader(self) -> str | None:
        return self._leader


# -- partition ------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["one", "halves", "majority", "majorities-ring", "bridge", "asymmetric"])
def test_partition_applies_the_shape_and_records_the_grudge_as_lists(shape):
    b = FakeNetBackend(5)
    nem = Validate(PartitionNemesis())
    done = nem.invoke(Ctx(b), FaultOp("start-partition", shape))
    assert done.type == "info" and done.value["shape"] == shape
    recorded = done.value["grudge"]
    assert set(recorded) == set(b.node_ids) and all(isinstance(v, list) for v in recorded.values())
    assert {k: set(v) for k, v in recorded.items()} == b.grudge  # exactly what was applied
    assert any(recorded.values())
    healed = nem.invoke(Ctx(b), FaultOp("stop-partition"))
    assert b.grudge is None and healed.value["healed"] == recorded


def test_partition_leader_shape_isolates_the_leader_or_says_it_guessed():
    b = FakeNetBackend(3)
    done = PartitionNemesis().invoke(Ctx(b, leader="n2"), FaultOp("start-partition", "leader"))
    assert done.value["isolated"] == "n2"
    assert done.value["grudge"] == {"n1": ["n2"], "n2": ["n1", "n3"], "n3": ["n2"]}
    guessed = PartitionNemesis().invoke(Ctx(b, leader=None), FaultOp("start-partition", "leader"))
    assert "no leader known" in guessed.value["note"] and guessed.value["isolated"] in b.node_ids


def test_partition_with_an_explicit_grudge_uses_exactly_it():
    b = FakeNetBackend(3)
    pkg = build_packages(["partition"], PackageOptions(grudge={"n1": ["n2"]}))[0]
    assert pkg.targets == ("grudge",)
    done = pkg.nemesis.invoke(Ctx(b), FaultOp("start-partition", "grudge"))
    assert done.value["grudge"] == {"n1": ["n2"], "n2": [], "n3": []}
    assert b.grudge == {"n1": {"n2"}, "n2": set(), "n3": set()}


# -- clock ----------------------------------------------------------------------


def test_a_scheduled_clock_bump_steps_its_targets_by_exactly_its_delta():
    # A schedule's {"target", "delta"} (jepsenlike run --schedule) fixes the offset,
    # even beyond max_skew; a plain target spec still draws one.
    b = FakeNetBackend(5)
    nem = Validate(ClockNemesis(max_skew=4.0))
    done = nem.invoke(Ctx(b, leader="n3"), FaultOp("bump-clock", {"target": "leader", "delta": -7.5}))
    assert done.value["nodes"] == ["n3"] and done.value["offsets"] == {"n3": -7.5}
    assert b.clocks["n3"].calls == [("bump", (-7.5,))]
    done = nem.invoke(Ctx(b, leader="n3"), FaultOp("bump-clock", {"target": "n1+n2", "delta": 2}))
    assert done.value["offsets"] == {"n1": 2.0, "n2": 2.0}
    drawn = nem.invoke(Ctx(b, leader="n3"), FaultOp("bump-clock", "n4"))
    assert -4.0 <= drawn.value["offsets"]["n4"] <= 4.0
    assert nem.invoke(Ctx(b), FaultOp("reset-clock")).value["nodes"] == ["n1", "n2", "n3", "n4"]


def test_clock_bump_strobe_drift_record_per_node_values_and_reset_heals_them():
    b = FakeNetBackend(5)
    nem = Validate(ClockNemesis(max_skew=4.0, max_rate=2.0))
    ctx = Ctx(b, leader="n3")
    bump = nem.invoke(ctx, FaultOp("bump-clock", "minority"))
    assert len(bump.value["nodes"]) == 2 and set(bump.value["offsets"]) == set(bump.value["nodes"])
    for n, off in bump.value["offsets"].items():
        assert -4.0 <= off <= 4.0 and b.clocks[n].calls == [("bump", (off,))]
    strobe = nem.invoke(ctx, FaultOp("strobe-clock", "leader"))
    assert strobe.value["nodes"] == ["n3"]
    s = strobe.value["strobe"]["n3"]
    assert b.clocks["n3"].calls[-1][0] == "strobe" and b.clocks["n3"].calls[-1][1][:2] == (s["delta"], s["period"])
    drift = nem.invoke(ctx, FaultOp("drift-clock", "n1"))
    rate = drift.value["rates"]["n1"]
    assert 0.5 <= rate <= 2.0 and abs(rate - 1) >= 0.1 and b.clocks["n1"].calls[-1] == ("rate", (rate,))
    touched = sorted({*bump.value["nodes"], "n3", "n1"})
    reset = nem.invoke(ctx, FaultOp("reset-clock"))
    assert sorted(reset.value["nodes"]) == touched
    assert all(b.clocks[n].calls[-1] == ("reset", ()) for n in touched)
    assert nem.invoke(ctx, FaultOp("reset-clock")).value["nodes"] == []  # nothing left to heal


# -- slow / flaky -----------------------------------------------------------------


def test_slow_and_flaky_touch_the_targets_links_and_stop_independently():
    b = FakeNetBackend(3)
    ctx = Ctx(b)
    slow, flaky = SlowNemesis(80, 10), FlakyNemesis(0.2)
    s = slow.invoke(ctx, FaultOp("start-slow", "n1"))
    assert s.value["links"] == [list(link) for link in links_touching(["n1"], b.node_ids)]
    assert s.value["latency_ms"] == 80 and s.value["jitter_ms"] == 10
    assert all(b.slow[tuple(link)] == (80, 10) for link in s.value["links"])
    assert ("n2", "n3") not in b.slow
    f = flaky.invoke(ctx, FaultOp("start-flaky", "n2"))
    assert f.value["drop_probability"] == 0.2 and b.flaky[("n2", "n1")] == 0.2
    stopped = slow.invoke(ctx, FaultOp("stop-slow"))
    assert stopped.value["nodes"] == ["n1"] and b.slow[None] == (0.0, 0.0)
    assert ("n2", "n1") in b.flaky and None not in b.flaky  # flaky still in force
    flaky.invoke(ctx, FaultOp("stop-flaky"))
    assert b.flaky[None] == 0.0


# -- config -----------------------------------------------------------------------


def test_grudge_flag_and_toml_forms_parse_to_the_same_and_round_trip():
    assert parse_grudge("n1=n2+n3; n2=n1", "--grudge") == {"n1": ["n2", "n3"], "n2": ["n1"]}
    assert parse_grudge({"n1": ["n2", "n3"], "n2": ["n1"]}, "f") == {"n1": ["n2", "n3"], "n2": ["n1"]}
    assert format_grudge({"n2": ["n1"], "n1": ["n2", "n3"], "n3": []}) == "n1=n2+n3;n2=n1"
    with pytest.raises(ConfigError, match="must be a list of nodes"):
        parse_grudge({"n1": "n2"}, "f")
    c = build_config({"system": "raft", "nodes": "3", "grudge": "n1=n2+n3", "seed": "1"})
    assert c.grudge == {"n1": ["n2", "n3"]}
    assert "--grudge 'n1=n2+n3'" in c.reproduce_command() or "--grudge n1=n2+n3" in c.reproduce_command()
    assert TestConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"partition_shapes": "halfs"}, "--partition-shapes: unknown partition shape 'halfs'"),
        ({"partition_shapes": "majority", "nodes": "2"}, "--partition-shapes: partition shape 'majority' needs at least 3 nodes"),
        ({"grudge": "n1=n9", "nodes": "3"}, "--grudge: grudge names unknown node 'n9'"),
        ({"grudge": "n1"}, "--grudge: expected NODE=SENDER+SENDER"),
        ({"flaky_probability": "1.5"}, "--flaky-probability: must be in [0, 1]"),
        ({"clock_skew": "0"}, "--clock-skew: must be > 0"),
        ({"clock_faults": "warp"}, "--clock-faults: unknown clock fault 'warp'; available: bump, strobe, drift"),
        ({"system_options": "read-mode"}, "--system-options: expected KEY=VALUE"),
        ({"system_options": "colour=red"}, "--system-options: system 'raft' has no option 'colour'"),
        ({"bug": "lease-without-bound"}, "add --system-options read-mode=lease"),
        ({"checkers": "nope"}, "--checkers: unknown checker 'nope'; available: linearizable, list-append, set"),
    ],
)
def test_bad_fault_settings_are_named(flags, message):
    with pytest.raises(ConfigError) as e:
        build_config({"system": "raft", **flags})
    assert message in str(e.value)


def test_system_options_reach_the_node_command_line():
    c = build_config({"system": "raft", "bug": "lease-without-bound", "system_options": "read-mode=lease"})
    system = get_system("raft")
    system.configure(c.system_option_map(), c.bug)
    from jepsenlike.systems.base import NodeSpec

    argv = system.node_command(NodeSpec("n1", "h:1", "h:2", "/d"), {"n2": "h:3"}, bug=c.bug, seed=1)
    assert argv[argv.index("--read-mode") + 1] == "lease" and "lease-without-bound" in argv


def test_memory_refuses_net_and_clock_with_reasons_and_local_raft_offers_them():
    caps, why = backend_refusals("in-process", get_system("memory"))
    assert caps == {KILL, PAUSE} and "no peer traffic" in why[NET] and "read no clock" in why[CLOCK]
    caps, why = backend_refusals("local", get_system("raft"), 3)
    assert {KILL, PAUSE, NET} <= caps
    assert (CLOCK in caps) != (CLOCK in why)  # either offered or refused with a reason


# -- schedule ---------------------------------------------------------------------


def test_lanes_run_in_parallel_and_each_lane_deals_every_package_before_repeating():
    pkgs = build_packages(["kill", "pause", "partition", "clock", "slow", "flaky"])
    lanes = {p.name: p.lane for p in pkgs}
    assert lanes == {"kill": "main", "pause": "main", "partition": "main", "clock": "clock",
                     "slow": "links", "flaky": "links"}
    plan = plan_schedule(pkgs, 1.0, 2.0, 20.0, random.Random(5))
    assert plan == plan_schedule(pkgs, 1.0, 2.0, 20.0, random.Random(5))
    assert [s.at for s in plan] == sorted(s.at for s in plan)
    start_to_pkg = {f: p for p in pkgs for f in p.start_fs}
    main_starts = [start_to_pkg[s.op.f].name for s in plan if s.op.f in start_to_pkg
                   and start_to_pkg[s.op.f].lane == "main"]
    assert sorted(main_starts[:3]) == ["kill", "partition", "pause"]  # a full deck first
    # clock faults overlap main-lane faults: some clock start falls inside a main fault
    open_main = False
    overlap = False
    for s in plan:
        pkg = start_to_pkg.get(s.op.f)
        if pkg and pkg.lane == "main":
            open_main = True
        elif s.op.f in ("start", "resume", "stop-partition"):
            open_main = False
        elif pkg and pkg.name == "clock" and open_main:
            overlap = True
    assert overlap
    partition = next(p for p in pkgs if p.name == "partition")
    assert {s.op.value for s in plan if s.op.f == "start-partition"} <= set(partition.targets)


# -- coverage ---------------------------------------------------------------------


def _history(events: list[tuple[float, str, Any, str | None]]) -> History:
    ops = []
    for i, (t, f, value, error) in enumerate(events):
        ops.append({"index": 2 * i, "time": int(t * 1e9) - 1, "process": "nemesis", "type": "invoke", "f": f})
        op = {"index": 2 * i + 1, "time": int(t * 1e9), "process": "nemesis", "type": "info", "f": f,
              "value": value}
        if error:
            op["error"] = error
        ops.append(op)
    return History.from_ops(ops)


FAULTS = {
    "requested": ["kill", "partition", "pause", "clock"],
    "packages": {
        "kill": {"start": ["kill"], "stop": ["start"]},
        "partition": {"start": ["start-partition"], "stop": ["stop-partition"]},
        "pause": {"start": ["pause"], "stop": ["resume"]},
    },
    "refused": {"clock": "nemesis 'clock' needs backend capability clock: libfaketime not found"},
}


def test_coverage_counts_firings_and_seconds_and_flags_refused_and_ineffective_faults():
    hist = _history([
        (1.0, "kill", {"nodes": ["n1"]}, None),
        (3.5, "start", {"nodes": ["n1"]}, None),
        (4.0, "start-partition", {"grudge": {"n1": ["n2"]}}, None),
        (5.0, "stop-partition", {"healed": {}}, None),
        (6.0, "kill", {"nodes": ["n2"]}, None),
        (7.0, "pause", {"nodes": []}, None),          # every target was down: no effect
        (7.5, "resume", {"nodes": []}, None),
        (8.0, "start-partition", None, "RuntimeError: proxy gone"),
        (9.0, "start", {"nodes": ["n2"]}, None),       # final heal
        (9.1, "stop-partition", {"healed": {}}, None),
    ])
    cov = fault_coverage(hist, FAULTS)
    assert cov["kill"] == {"status": "fired", "fired": 2, "seconds": 5.5, "attempts": 2}
    assert cov["partition"]["fired"] == 1 and cov["partition"]["seconds"] == 1.0
    assert cov["partition"]["errors"] == 1 and "proxy gone" in cov["partition"]["last_error"]
    assert cov["pause"]["status"] == "never-fired" and "none took effect" in cov["pause"]["reason"]
    assert cov["clock"]["status"] == "refused" and "libfaketime" in cov["clock"]["reason"]
    valid, reasons = coverage_verdict(cov)
    assert valid == UNKNOWN
    assert any(r.startswith("fault 'pause' never fired") for r in reasons)
    assert any(r.startswith("fault 'clock' was refused") for r in reasons)
    assert describe_coverage(cov) == "kill x2 (5.5 s), partition x1 (1.0 s), pause NEVER FIRED, clock REFUSED"


def test_coverage_is_valid_when_everything_fired_and_counts_open_faults_to_the_end():
    faults = {"requested": ["kill"], "packages": {"kill": {"start": ["kill"], "stop": ["start"]}}, "refused": {}}
    cov = fault_coverage(_history([(1.0, "kill", {"nodes": ["n1"]}, None)]), faults, end_ns=int(4e9))
    assert cov["kill"]["seconds"] == 3.0
    assert coverage_verdict(cov) == (True, [])
    never = fault_coverage(_history([]), faults)
    assert never["kill"]["status"] == "never-fired" and "never scheduled" in never["kill"]["reason"]


def test_fault_settings_come_from_a_toml_file_and_reach_the_packages(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text(
        'system = "raft"\nnodes = 3\nnemesis = ["partition", "clock", "slow", "flaky"]\n'
        'grudge = {n1 = ["n2", "n3"]}\nclock-skew = 2.5\nslow-latency-ms = 80\nflaky-probability = 0.2\n'
        'system-options = ["read-mode=lease"]\nbug = "lease-without-bound"\n'
    )
    c = build_config({}, conf)
    assert c.grudge == {"n1": ["n2", "n3"]} and c.system_option_map() == {"read-mode": "lease"}
    pkgs = {p.name: p for p in build_packages(c.nemesis, PackageOptions.from_config(c))}
    assert pkgs["partition"].targets == ("grudge",)
    assert pkgs["clock"].nemesis.max_skew == 2.5
    assert pkgs["slow"].nemesis.latency_ms == 80 and pkgs["flaky"].nemesis.drop_probability == 0.2
    drift = build_config({"clock_faults": "drift", "nemesis": "clock"})
    assert build_packages(drift.nemesis, PackageOptions.from_config(drift))[0].cycles == (("drift-clock", "reset-clock"),)
    shapes = build_config({"partition_shapes": "halves,leader", "nemesis": "partition"})
    assert build_packages(shapes.nemesis, PackageOptions.from_config(shapes))[0].targets == ("halves", "leader")
