"""The generator protocol and its combinators, on a fake clock (jepsenlike.gen.simulate)."""

from __future__ import annotations

import random
import threading

import pytest

from jepsenlike.gen import (
    PENDING,
    GenContext,
    Generator,
    Wait,
    any_of,
    at_times,
    cycle,
    delay,
    final,
    fn,
    mix,
    on_nodes,
    once,
    ops,
    run_final,
    run_generator,
    seq,
    simulate,
    sleep,
    stagger,
    time_limit,
    until,
)
from jepsenlike.nemesis import FaultOp


def fs(trace):
    return [op for _, op in trace]


def test_once_and_ops_emit_in_order_then_end():
    assert simulate(once("a")) == [(0.0, "a")]
    assert simulate(ops("a", "b", "c")) == [(0.0, "a"), (0.0, "b"), (0.0, "c")]
    assert isinstance(once("a"), Generator)


def test_seq_runs_each_generator_to_its_end_and_sleep_moves_the_clock():
    trace = simulate(seq(once("a"), sleep(2.5), ops("b", "c"), sleep(1), once("d")))
    assert trace == [(0.0, "a"), (2.5, "b"), (2.5, "c"), (3.5, "d")]


def test_delay_spaces_ops_exactly_and_time_limit_cuts_it():
    trace = simulate(time_limit(3.5, delay(1.0, cycle(lambda: once("x")))))
    assert trace == [(0.0, "x"), (1.0, "x"), (2.0, "x"), (3.0, "x")]


def test_until_is_absolute_and_ends_a_waiting_generator():
    trace = simulate(until(5.0, seq(once("a"), sleep(10), once("late"))))
    assert fs(trace) == ["a"]


def test_stagger_is_seeded_and_has_the_requested_mean():
    def run(seed):
        return simulate(time_limit(1000, stagger(2.0, cycle(lambda: once("x")), random.Random(seed))))

    a, b, c = run(1), run(1), run(2)
    assert a == b and a != c
    gaps = [t2 - t1 for (t1, _), (t2, _) in zip(a, a[1:], strict=False)]
    assert all(0 <= g <= 4.0 for g in gaps)
    assert 1.8 < sum(gaps) / len(gaps) < 2.2  # U(0, 2 * mean) has mean `mean`


def test_mix_draws_from_every_generator_with_its_rng():
    def run(seed):
        return fs(simulate(mix([ops(*"aaaaaaaaaa"), ops(*"bbbbbbbbbb")], random.Random(seed))))

    a = run(3)
    assert sorted(a) == list("a" * 10 + "b" * 10)
    assert a == run(3) and a != run(4)
    assert a != sorted(a)  # interleaved, not one after the other


def test_any_of_runs_timelines_in_parallel_and_ties_go_to_the_first():
    left = delay(2.0, ops("L1", "L2", "L3"))
    right = seq(sleep(1.0), delay(2.0, ops("R1", "R2")))
    trace = simulate(any_of(left, right))
    assert trace == [(0.0, "L1"), (1.0, "R1"), (2.0, "L2"), (3.0, "R2"), (4.0, "L3")]
    tie = simulate(any_of(seq(sleep(1), once("first")), seq(sleep(1), once("second"))))
    assert fs(tie) == ["first", "second"]


def test_at_times_replays_a_schedule_in_time_order():
    trace = simulate(at_times([(3.0, "c"), (1.0, "a"), (1.0, "b"), (7.25, "d")]))
    assert trace == [(1.0, "a"), (1.0, "b"), (3.0, "c"), (7.25, "d")]


def test_on_nodes_sets_the_ops_node_restriction():
    trace = simulate(on_nodes(["n1", "n3"], ops(FaultOp("kill", "one"), FaultOp("start"))))
    assert [op.nodes for _, op in trace] == [("n1", "n3"), ("n1", "n3")]
    with pytest.raises(TypeError, match="no 'nodes' field"):
        simulate(on_nodes(["n1"], once("plain string")))


def test_final_runs_its_heal_once_the_phase_stops_even_if_main_was_cut_short():
    main = delay(1.0, cycle(lambda: once("fault")))
    trace = simulate(final(main, ["heal-1", "heal-2"]), stop_at=2.5)
    assert trace == [(0.0, "fault"), (1.0, "fault"), (2.0, "fault"), (2.5, "heal-1"), (2.5, "heal-2")]
    # A main that ends by itself leaves the heal waiting for the end of the phase.
    trace = simulate(final(once("fault"), ["heal"]), stop_at=9.0)
    assert trace == [(0.0, "fault"), (9.0, "heal")]


def test_a_heal_may_wait_for_its_own_time():
    trace = simulate(final(once("kill"), seq(sleep(1.5), once("start"))), stop_at=2.0)
    assert trace == [(0.0, "kill"), (3.5, "start")]


class WaitsForCompletion:
    """Kill, then restart ``hold`` seconds after the kill's completion arrived."""

    def __init__(self, hold: float) -> None:
        self.hold, self.state, self.restart_at = hold, "kill", None

    def next_op(self, ctx: GenContext):
        if self.state == "kill":
            self.state = "waiting"
            return "kill"
        if self.state == "waiting":
            return PENDING
        if self.state == "hold":
            if ctx.time < self.restart_at:
                return Wait(self.restart_at)
            self.state = "done"
            return "start"
        return None

    def update(self, ctx: GenContext, event) -> None:
        if event == "kill done":
            self.state, self.restart_at = "hold", ctx.time + self.hold


def test_update_feeds_completions_back_so_a_generator_can_react():
    trace = simulate(WaitsForCompletion(2.0), perform=lambda op, t: f"{op} done")
    assert trace == [(0.0, "kill"), (2.0, "start")]


def test_fn_asks_a_plain_function():
    calls = iter(["a", Wait(4.0), "b", None])
    assert simulate(fn(lambda ctx: next(calls))) == [(0.0, "a"), (4.0, "b")]


def test_run_generator_on_the_real_clock_performs_and_stops_promptly():
    done = []
    stop = threading.Event()
    clock = {"t": 0.0}

    def now():
        clock["t"] += 0.01
        return clock["t"]

    run_generator(seq(ops("a", "b"), once("c")), lambda op: done.append(op) or op, now, stop)
    assert done == ["a", "b", "c"]
    stop.set()
    run_generator(ops("never"), done.append, now, stop)
    assert done == ["a", "b", "c"]
    healed = []
    run_final(final(ops("x"), ["heal"]), lambda op: healed.append(op) or op, now)
    assert healed == ["heal"]


def test_client_workloads_are_generators_too_seeded_and_paced():
    from jepsenlike.config import TestConfig
    from jepsenlike.generator import ClientGen, Paced, Stagger, derive_rng, plan_ops
    from jepsenlike.workloads import get_workload

    config = TestConfig(system="memory", seed=9, concurrency=2, rate=20.0)
    w = get_workload("register")

    def load(worker):
        stagger = Stagger(config.rate, config.concurrency, derive_rng(config.seed, "stagger", worker))
        gen = Paced(ClientGen(w, config, worker), stagger)
        return simulate(time_limit(30.0, gen), perform=lambda inv, t: (inv, {"type": "fail"}))

    a = load(1)
    assert a == load(1)
    # The ops are the worker's seeded plan (a cas resolved against nothing seen: old value None).
    planned = plan_ops(w, config, len(a))[1]
    assert [(i.f, i.key) for _, i in a] == [(i.f, i.key) for i in planned]
    # 20 ops/s over 2 workers: each worker's mean gap is 0.1 s.
    assert 250 < len(a) < 350
    assert all(t2 >= t1 for (t1, _), (t2, _) in zip(a, a[1:], strict=False))


def test_final_ops_are_a_generator_that_retries_each_op_until_ok():
    from jepsenlike.generator import UntilOk

    answers = iter(["fail", "info", "ok", "ok"])
    trace = simulate(UntilOk(["read-a", "read-b"], pause=0.5),
                     perform=lambda op, t: (op, {"type": next(answers)}))
    assert trace == [(0.0, "read-a"), (0.5, "read-a"), (1.0, "read-a"), (1.0, "read-b")]
    # A deadline (until) ends the retries of an op that never succeeds.
    never = simulate(until(2.0, UntilOk(["read"], pause=0.5)), perform=lambda op, t: (op, {"type": "fail"}))
    assert [t for t, _ in never] == [0.0, 0.5, 1.0, 1.5]
