"""Search fault schedules with Hypothesis, shrink a failure, replay a schedule.

Theory of operation
-------------------
A *schedule* is data: ``{"system", "bug", "nodes", "seed", "workload", "steps"}``
where ``steps`` is a list of :class:`~jepsenlike.models.simulator.Simulator` step
objects. :func:`run_schedule` builds the system, runs the steps on a fresh
simulator, settles the cluster (:meth:`Simulator.finish`) and checks the recorded
history with :mod:`jepsenlike.models.simcheck`. The outcome is invalid when an
invariant broke (the claim is named) or the checker found the history invalid.
Nothing reads a clock or a global random source, so one schedule always gives the
same history, byte for byte.

:func:`search` lets Hypothesis generate step lists (:func:`steps_strategy`) in
batches of examples, each batch seeded ``seed + k`` so a run is reproducible, until
a schedule fails or the budget (seconds or examples) is spent. On a failure,
Hypothesis shrinks the step list (fewer steps, smaller arguments, earlier step kinds)
while it still fails; the last failing call is the minimal example Hypothesis
reports, and is what :func:`search` returns.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from jepsenlike.models.simulator import InvariantViolation, Simulator

__all__ = [
    "Outcome",
    "SearchResult",
    "load_system",
    "run_schedule",
    "search",
    "steps_strategy",
]

BUILTIN_SYSTEMS = ("raft", "paxos")
MAX_EPISODES = 15


def load_system(name: str, bugs: frozenset[str], nodes: int) -> Any:
    """The :class:`~jepsenlike.models.simulator.System` called ``name``.

    ``raft`` and ``paxos`` are built in; ``module:Factory`` or ``path/file.py:Factory``
    names a user's system, built as ``Factory(bugs=..., nodes=...)``.
    """
    if name == "raft":
        from jepsenlike.models.raft.sim import RaftSystem

        return RaftSystem(bugs)
    if name == "paxos":
        from jepsenlike.models.paxos.sim import PaxosSystem

        return PaxosSystem(bugs, nodes)
    if ":" not in name:
        raise ValueError(
            f"unknown system {name!r}; use raft, paxos, module:Factory or file.py:Factory"
        )
    where, attr = name.rsplit(":", 1)
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"system file {where!r} not found; give an existing .py path")
        mod_name = f"_jepsenlike_sim_{path.stem.replace('-', '_')}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f"{where} has no {attr!r}; name the System factory after the colon")
    return factory(bugs=bugs, nodes=nodes)


@dataclass
class Outcome:
    """What one schedule did."""

    valid: Any  # True, False or "unknown"
    failure: str | None  # one line: the invariant claim or the checker's verdict
    claim: str | None  # invariant name, or "history" for a checker failure
    history: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    checker: dict[str, Any] = field(default_factory=dict)
    sim_ops: int = 0  # client ops completed + messages delivered


def run_schedule(schedule: dict[str, Any], check_timeout: float = 10.0) -> Outcome:
    """Run ``schedule`` from scratch (deterministic) and check it."""
    from jepsenlike.models.simcheck import check_history

    bugs = frozenset(b for b in str(schedule.get("bug") or "").split(",") if b)
    nodes = int(schedule.get("nodes", 3))
    workload = schedule.get("workload", "register")
    system = load_system(schedule["system"], bugs, nodes)
    sim = Simulator(system, nodes=nodes, seed=int(schedule.get("seed", 0)), workload=workload)
    steps = list(schedule.get("steps", []))
    try:
        sim.run(steps)
    except AssertionError as e:
        # An invariant, or a core's own assertion (e.g. "would truncate committed entry").
        claim = e.claim if isinstance(e, InvariantViolation) else "core assertion"
        return Outcome(
            False,
            f"{claim}: {e}" if not isinstance(e, InvariantViolation) else str(e),
            claim,
            sim.history,
            steps,
            sim_ops=sim.ops_done + sim.delivered,
        )
    result = check_history(sim.history, workload, timeout=check_timeout)
    failure = None
    if result.valid is not True:
        failure = (result.explanation or "").splitlines()[0] if result.explanation else None
    return Outcome(
        result.valid,
        failure,
        "history" if result.valid is False else None,
        sim.history,
        steps,
        checker=result.to_dict(),
        sim_ops=sim.ops_done + sim.delivered,
    )


def steps_strategy(ids: list[str], max_episodes: int = MAX_EPISODES) -> st.SearchStrategy:
    """Hypothesis strategy for step lists over nodes ``ids``.

    A schedule is a list of *episodes*, each one action (a fault, a client op, a
    message-level step, or nothing) followed by an ``elapse`` of 5..40 ticks under
    background client load, optionally on a lossy, duplicating or reordering network
    -- a Jepsen nemesis schedule in miniature. Role selectors (``leader``, ``follower``, ``crashed``) are
    resolved when the step runs, so a fault aimed at the leader hits whoever leads.
    Earlier alternatives are what the shrinker moves towards.
    """
    node = st.sampled_from(["leader", "follower", "leader", *ids])
    down = st.sampled_from(["crashed", *ids])
    target = st.sampled_from(["leader", "all", "follower", *ids])
    d = st.fixed_dictionaries
    j = st.just
    elapse = d(
        {"do": j("elapse"), "ticks": st.sampled_from([5, 10, 20, 40]), "load": j(True)},
        optional={
            "loss": st.sampled_from([0.1, 0.3]),
            "dup": st.sampled_from([0.1, 0.3]),
            "reorder": j(True),
        },
    )
    client = d(
        {
            "do": j("client"),
            "f": st.sampled_from(["write", "read", "cas"]),
            "node": target,
            "arg": st.integers(0, 7),
        }
    )
    message = st.one_of(
        d({"do": j("tick"), "node": node, "ticks": st.integers(1, 15)}),
        d({"do": j("deliver"), "msg": st.integers(0, 63)}),
        d({"do": j("drop"), "msg": st.integers(0, 63)}),
        d({"do": j("duplicate"), "msg": st.integers(0, 63)}),
    )
    isolate = st.lists(node, min_size=1, max_size=max(1, len(ids) - 1), unique=True)
    action = st.one_of(
        st.none(),
        d({"do": j("crash"), "node": node}),
        d({"do": j("restart"), "node": down}),
        d({"do": j("partition"), "isolate": isolate}),
        d({"do": j("heal")}),
        d({"do": j("clock"), "node": node, "delta": st.sampled_from([-10.0, -1.0, 1.0, 10.0])}),
        client,
        d({"do": j("compact"), "node": node}),
        message,
    )
    episode = st.tuples(action, elapse)
    return st.lists(episode, max_size=max_episodes).map(
        lambda eps: [s for ep in eps for s in ep if s is not None]
    )


@dataclass
class SearchResult:
    found: Outcome | None
    schedule: dict[str, Any] | None
    schedules: int
    seconds: float
    sim_ops: int
    first_failure_s: float | None = None
    unknown: int = 0


class _Found(Exception):
    pass


def search(
    system: str,
    bugs: frozenset[str] = frozenset(),
    nodes: int = 3,
    seed: int = 0,
    time_limit: float | None = 60.0,
    examples: int | None = None,
    workload: str = "register",
    batch: int = 200,
    shrink_limit: float = 20.0,
    progress: Callable[[SearchResult], None] | None = None,
) -> SearchResult:
    """Generate schedules until one fails or the budget runs out; shrink a failure.

    Shrinking gets ``shrink_limit`` seconds on top of the budget; the result is the
    smallest failing schedule seen (fewest steps, then shortest JSON), which is the
    one Hypothesis reports when it finishes shrinking in time.
    """
    load_system(system, bugs, nodes)  # fail early on a bad name or bug
    base = {
        "system": system,
        "bug": ",".join(sorted(bugs)) or None,
        "nodes": nodes,
        "seed": seed,
        "workload": workload,
    }
    ids = [f"n{k + 1}" for k in range(nodes)]
    t0 = time.monotonic()
    res = SearchResult(None, None, 0, 0.0, 0)
    state: dict[str, Any] = {"best": None, "shrinking": False, "found_at": 0.0}

    def out_of_budget() -> bool:
        if examples is not None:
            return res.schedules >= examples
        return time_limit is not None and time.monotonic() - t0 >= time_limit

    def one(steps: list[dict[str, Any]]) -> None:
        if not state["shrinking"] and out_of_budget():
            return
        if state["shrinking"] and time.monotonic() - state["found_at"] > shrink_limit:
            return  # out of shrinking time: keep the smallest failure seen so far
        schedule = {**base, "steps": steps}
        o = run_schedule(schedule)
        res.schedules += 1
        res.sim_ops += o.sim_ops
        if o.valid == "unknown":
            res.unknown += 1
        if progress is not None and res.schedules % 25 == 0:
            res.seconds = time.monotonic() - t0
            progress(res)
        if o.valid is False:
            if res.first_failure_s is None:
                res.first_failure_s = time.monotonic() - t0
                state["found_at"] = time.monotonic()
            state["shrinking"] = True
            size = (len(steps), len(json.dumps(steps)))
            if state["best"] is None or size <= state["best"][0]:
                state["best"] = (size, schedule, o)
            raise _Found(o.failure)

    k = 0
    while not out_of_budget():
        n = batch if examples is None else min(batch, examples - res.schedules)
        test = settings(
            max_examples=n,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
            verbosity=Verbosity.quiet,
        )(given(steps_strategy(ids))(one))
        test = hypothesis_seed(seed * 1_000_003 + k)(test)
        k += 1
        try:
            test()
        except Exception:  # noqa: BLE001 - _Found, or Flaky once the shrink budget ran out
            if state["best"] is None:
                raise
        if state["best"] is not None:
            _, schedule, o = state["best"]
            res.found, res.schedule = o, schedule
            break
    res.seconds = time.monotonic() - t0
    return res
