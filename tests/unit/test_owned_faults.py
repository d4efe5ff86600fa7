"""Owned faults (each nemesis heals only what it started), packages with their own generator,
and a raising nemesis leaving its traceback in the run directory. Fake backend: no processes."""

from __future__ import annotations

import random

from jepsenlike.backends.owned import FaultLedger
from jepsenlike.config import TestConfig
from jepsenlike.gen import cycle, once, seq, sleep
from jepsenlike.history import HistoryWriter, read_history
from jepsenlike.nemesis import FaultOp, Nemesis, NemesisPackage, Validate, compose, plan_schedule
from jepsenlike.nemesis.clock import ClockNemesis
from jepsenlike.nemesis.kill import KillNemesis
from jepsenlike.nemesis.partition import PartitionNemesis
from jepsenlike.nemesis.pause import PauseNemesis
from jepsenlike.runner import NemesisDriver, RunContext
from tests.unit.test_fault_nemeses import FakeNetBackend


class IsolateN1(Nemesis):
    """A plugin-style nemesis that cuts n1 off and heals with heal_network()."""

    name = "isolate-n1"
    fs = frozenset({"isolate", "unisolate"})

    def invoke(self, test, op):
        if op.f == "isolate":
            others = [n for n in test.node_ids if n != "n1"]
            test.backend.apply_grudge({"n1": set(others), **{n: {"n1"} for n in others}})
        else:
            test.backend.heal_network()
        return op.complete({"nodes": ["n1"]})


class SkewN2(Nemesis):
    name = "skew-n2"
    fs = frozenset({"skew", "unskew"})

    def invoke(self, test, op):
        if op.f == "skew":
            test.backend.clock("n2").bump(5.0)
        else:
            test.backend.clock("n2").reset()
        return op.complete({"nodes": ["n2"]})


def context(backend, ledger=True):
    return RunContext(TestConfig(system="memory"), None, backend, random.Random(1), None,
                      backend.node_ids, FaultLedger(backend) if ledger else None)


def test_the_backend_gets_the_union_of_grudges_and_each_owner_lifts_only_its_own():
    backend = FakeNetBackend(5)
    ledger = FaultLedger(backend)
    a, b = ledger.view("a"), ledger.view("b")
    a.apply_grudge({"n1": {"n2"}})
    b.apply_grudge({"n3": {"n4"}, "n1": {"n5"}})
    assert backend.grudge == {"n1": {"n2", "n5"}, "n3": {"n4"}}
    a.heal_network()
    assert backend.grudge == {"n1": {"n5"}, "n3": {"n4"}} and backend.heals == 0
    b.heal_network()
    assert backend.grudge is None and backend.heals == 1
    assert a.node_ids == backend.node_ids  # everything else passes through


def test_a_clock_reset_keeps_the_other_owners_offsets_rates_and_strobe():
    backend = FakeNetBackend(3)
    ledger = FaultLedger(backend)
    a, b = ledger.view("a"), ledger.view("b")
    a.clock("n1").bump(3.0)
    b.clock("n1").bump(-1.0)
    b.clock("n1").set_rate(2.0)
    a.clock("n1").set_rate(0.5)
    b.clock("n1").strobe(4.0, 0.1, 60.0)
    calls = backend.clocks["n1"].calls
    assert calls == [("bump", (3.0,)), ("bump", (-1.0,)), ("rate", (2.0,)), ("rate", (1.0,)),
                     ("strobe", (4.0, 0.1, 60.0))]
    calls.clear()
    a.clock("n1").reset()
    assert calls == [("reset", ()), ("bump", (-1.0,)), ("rate", (2.0,)), ("strobe", (4.0, 0.1, 60.0))]
    calls.clear()
    b.clock("n1").reset()
    assert calls == [("reset", ())]


def test_in_a_composed_nemesis_one_members_heal_leaves_the_others_faults():
    backend = FakeNetBackend(5)
    nem = Validate(compose([PartitionNemesis(), IsolateN1(), ClockNemesis(2.0), SkewN2()]))
    ctx = context(backend)
    nem.invoke(ctx, FaultOp("isolate"))
    cut_n1 = {k: set(v) for k, v in backend.grudge.items()}
    nem.invoke(ctx, FaultOp("start-partition", "halves"))
    nem.invoke(ctx, FaultOp("stop-partition"))
    assert backend.grudge == cut_n1  # the partition's heal did not lift n1's isolation
    nem.invoke(ctx, FaultOp("unisolate"))
    assert backend.grudge is None

    nem.invoke(ctx, FaultOp("skew"))
    nem.invoke(ctx, FaultOp("bump-clock", "n2"))
    calls = backend.clocks["n2"].calls
    calls.clear()
    nem.invoke(ctx, FaultOp("reset-clock"))
    assert calls == [("reset", ()), ("bump", (5.0,))]  # skew-n2's +5 s survives the clock heal

    # Without a ledger (a test context of its own) the nemeses act on the backend directly.
    plain = context(FakeNetBackend(5), ledger=False)
    nem.invoke(plain, FaultOp("isolate"))
    nem.invoke(plain, FaultOp("start-partition", "one"))
    nem.invoke(plain, FaultOp("stop-partition"))
    assert plain.backend.grudge is None


def leader_killer() -> NemesisPackage:
    def gen(rng, interval):
        return cycle(lambda: seq(once(FaultOp("kill", "leader")), sleep(1.0), once(FaultOp("start")),
                                 sleep(interval)))

    return NemesisPackage("leader-killer", KillNemesis(), (("kill", "start"),), (FaultOp("start"),),
                          generator=gen)


def test_a_package_with_its_own_generator_chooses_its_timing_and_runs_beside_the_lanes():
    pause = NemesisPackage("pause", PauseNemesis(), (("pause", "resume"),), (FaultOp("resume"),))
    plan = plan_schedule([leader_killer(), pause], 3.0, 2.0, 12.0, random.Random(4))
    own = [(s.at, s.op.f) for s in plan if s.op.f in ("kill", "start")]
    assert own == [(2.0, "kill"), (3.0, "start"), (6.0, "kill"), (7.0, "start"), (10.0, "kill"),
                   (11.0, "start")]
    lane = [s for s in plan if s.op.f in ("pause", "resume")]
    assert [s.op.f for s in lane][:2] == ["pause", "resume"] and lane[0].at == 2.0
    assert plan == plan_schedule([leader_killer(), pause], 3.0, 2.0, 12.0, random.Random(4))


class Boom(Nemesis):
    name = "boom"
    fs = frozenset({"boom"})

    def invoke(self, test, op):
        raise RuntimeError("boom")


def test_a_raising_nemesis_is_an_info_op_with_the_error_and_a_traceback_on_disk(tmp_path):
    backend = FakeNetBackend(3)
    hist = HistoryWriter(tmp_path / "history.jsonl")
    with open(tmp_path / "nemesis.log", "w") as log:
        driver = NemesisDriver(Validate(compose([Boom()])), context(backend), hist, log,
                               tmp_path / "nemesis-errors.log")
        done = driver.fire(FaultOp("boom", "one"))
    hist.close()
    assert done.type == "info" and done.error == "RuntimeError: boom"
    ops = read_history(tmp_path / "history.jsonl").ops
    assert [(o.type, o.f, o.error) for o in ops] == [("invoke", "boom", None), ("info", "boom", "RuntimeError: boom")]
    text = (tmp_path / "nemesis-errors.log").read_text()
    assert "nemesis op boom value='one'" in text and "Traceback" in text
    assert 'raise RuntimeError("boom")' in text


def test_on_nodes_restricts_the_targets_a_fault_may_pick(tmp_path):
    backend = FakeNetBackend(5)
    hist = HistoryWriter(tmp_path / "history.jsonl")
    with open(tmp_path / "nemesis.log", "w") as log:
        driver = NemesisDriver(Validate(compose([KillNemesis()])), context(backend), hist, log)
        backend.kill = lambda n: None
        picks = {tuple(driver.fire(FaultOp("kill", "one", nodes=("n4", "n5"))).value["nodes"])
                 for _ in range(20)}
    hist.close()
    assert picks == {("n4",), ("n5",)}
