"""The generator: who does what, when -- client workers, rate limits, phases.

Theory of operation
-------------------
*Randomness.* Every choice is drawn from the run's seed through
:func:`derive_rng`, which gives an independent ``random.Random`` per purpose
and worker (``derive_rng(seed, "ops", 3)``). Streams never share state, so
the op plan of worker 3 is the same whatever the other workers, the routing,
the nemesis or the timing do: same seed, same plan (see
:func:`plan_ops`). Timing jitter, routing and fault targets have streams of
their own.

*Workers and processes.* ``concurrency`` worker threads each run one op at a
time: pick a node (:class:`~jepsenlike.client.Router`), record the
invocation, call the client, record the completion. Worker ``w`` starts as
process ``w``; when an op ends in ``info`` (timeout, connection lost) the
process may still have that op in flight, so the worker continues as a fresh
process, ``w + k * concurrency`` for its k-th incarnation.

*Rate.* With ``rate > 0`` each worker waits ``U(0, 2 * concurrency / rate)``
seconds between ops (Jepsen's *stagger*: the mean is the target rate, the
spread avoids lock-step); a worker that falls behind does not burst to catch
up. ``rate == 0`` means as fast as the system answers.

*Phases* (seconds from the first op; :class:`Phases`)::

    warmup  [0, warmup)           clients only
    chaos   [warmup, time_limit)  clients + nemesis schedule
    heal    at time_limit         every package's final ops heal every fault
    recover until the cluster answers again, then ``recovery`` more seconds
    final   each worker runs its share of the workload's final ops, retried
            until ok or the deadline

*Generators.* A worker's load is a generator of the protocol of
:mod:`jepsenlike.gen`, as the nemesis's faults are: :class:`ClientGen` asks
the workload's plan for the next op (resolving it against what the worker
has seen) and learns from each completion through ``update``; :class:`Paced`
spaces its ops by the stagger above; :class:`UntilOk` retries each final op
until it is ok. :meth:`Worker.run_load` and :meth:`Worker.run_final` only
interpret those generators (:func:`jepsenlike.gen.run_generator`).

The runner (:mod:`jepsenlike.runner`) drives the phases; this module holds
the pieces that run inside them.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.client import Router
from jepsenlike.gen import GenContext, Generator, Wait, run_generator, until
from jepsenlike.history import HistoryWriter
from jepsenlike.workloads.base import Invocation, PlanParams, Workload


def derive_rng(seed: int, stream: str, index: int = 0) -> random.Random:
    """An independent rng for one purpose (and worker), fixed by the seed."""
    return random.Random(f"jepsenlike/{seed}/{stream}/{index}")


def plan_params(config: Any) -> PlanParams:
    return PlanParams(concurrency=config.concurrency, keys=config.keys, ops_per_key=config.ops_per_key)


def op_plan(workload: Workload, config: Any, worker: int) -> Iterator[Invocation]:
    """Worker ``worker``'s endless op plan for this config and seed."""
    return workload.plan(worker, plan_params(config), derive_rng(config.seed, "ops", worker))


def plan_ops(workload: Workload, config: Any, n: int) -> list[list[Invocation]]:
    """The first ``n`` planned ops of every worker (for tests and dry runs)."""
    return [list(itertools.islice(op_plan(workload, config, w), n)) for w in range(config.concurrency)]


@dataclass(frozen=True)
class Phases:
    """Phase boundaries in seconds since the first op."""

    warmup_end: float
    chaos_end: float

    @classmethod
    def for_config(cls, config: Any) -> Phases:
        # Warm-up never takes more than a quarter of a short run.
        warm = min(config.warmup, config.time_limit / 4)
        return cls(warmup_end=warm, chaos_end=config.time_limit)


class Stagger:
    """Per-worker pacing for a total ``rate`` over ``concurrency`` workers."""

    def __init__(self, rate: float, concurrency: int, rng: random.Random) -> None:
        self.mean = concurrency / rate if rate > 0 else 0.0
        self.rng = rng
        self.next: float | None = None

    def slot(self, now: float) -> float:
        """The time of the next op, given the time ``now`` (on any one clock)."""
        last = now if self.next is None else self.next
        self.next = max(last + self.rng.uniform(0, 2 * self.mean), now - self.mean)
        return self.next

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next slot; False if ``stop`` was set meanwhile."""
        if self.mean <= 0:
            return not stop.is_set()
        now = time.monotonic()
        delay = self.slot(now) - now
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()


class ClientGen:
    """One worker's planned ops as a generator: the plan, resolved against what it saw."""

    def __init__(self, workload: Workload, config: Any, worker: int) -> None:
        self.workload = workload
        self.plan = op_plan(workload, config, worker)
        self.seen: dict[Any, Any] = {}

    def next_op(self, ctx: GenContext) -> Invocation | None:
        if ctx.stopping:
            return None
        return self.workload.resolve(next(self.plan), self.seen)

    def update(self, ctx: GenContext, event: Any) -> None:
        """``event`` is ``(invocation, completion)``."""
        inv, res = event
        self.workload.observe(inv, res, self.seen)


class UntilOk:
    """Each op again until it completes ``ok``, ``pause`` seconds between tries (final reads)."""

    def __init__(self, ops: list[Invocation], pause: float = 0.1) -> None:
        self.ops, self.pause = list(ops), pause
        self.i = 0
        self.retry_at: float | None = None

    def next_op(self, ctx: GenContext) -> Any:
        if self.i >= len(self.ops):
            return None
        if self.retry_at is not None and ctx.time < self.retry_at:
            return Wait(self.retry_at)
        return self.ops[self.i]

    def update(self, ctx: GenContext, event: Any) -> None:
        _, res = event
        if res.get("type") == "ok":
            self.i, self.retry_at = self.i + 1, None
        else:
            self.retry_at = ctx.time + self.pause


class Paced:
    """Ops of ``gen`` at the slots of a :class:`Stagger` (no pacing when its rate is 0)."""

    def __init__(self, gen: Generator, stagger: Stagger) -> None:
        self.gen, self.stagger = gen, stagger
        self.due: float | None = None

    def next_op(self, ctx: GenContext) -> Any:
        if self.stagger.mean > 0:
            if self.due is None:
                self.due = self.stagger.slot(ctx.time)
            if ctx.time < self.due:
                return Wait(self.due)
        r = self.gen.next_op(ctx)
        if r is not None and not isinstance(r, Wait):
            self.due = None
        return r

    def update(self, ctx: GenContext, event: Any) -> None:
        self.gen.update(ctx, event)


@dataclass
class Tally:
    """Live counts of completions, for the progress line and stats."""

    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, typ: str) -> None:
        with self.lock:
            self.counts[typ] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


class Worker:
    """One client worker: a plan, a router, and its current process id.

    Args:
        index: worker number ``w`` (also its first process id).
        workload: the workload (plan, translation).
        config: the test config (seed, concurrency, rate, timeouts).
        history: the shared writer.
        router: this worker's router (owns one client per node).
        tally: shared counters.
        keys_seen: shared set of keys this run touched (for final ops).
    """

    def __init__(
        self,
        index: int,
        workload: Workload,
        config: Any,
        history: HistoryWriter,
        router: Router,
        tally: Tally,
        keys_seen: set[Any],
        keys_lock: threading.Lock,
    ) -> None:
        self.index = index
        self.process = index
        self.workload = workload
        self.config = config
        self.history = history
        self.router = router
        self.tally = tally
        self.keys_seen = keys_seen
        self.keys_lock = keys_lock
        self.ops = ClientGen(workload, config, index)
        self.seen = self.ops.seen
        self.stagger = Stagger(config.rate, config.concurrency, derive_rng(config.seed, "stagger", index))
        #: The load this worker interprets (see the module docstring).
        self.gen: Generator = Paced(self.ops, self.stagger)
        self.error: BaseException | None = None

    def invoke(self, inv: Invocation) -> dict[str, Any]:
        """Run one op end to end and record both events; returns the completion."""
        node = self.router.pick()
        f, key, value = self.workload.request(inv)
        self.history.record(self.process, "invoke", inv.f, inv.key, inv.value, node=node)
        try:
            res = self.router.client(node).invoke(f, key, value)
        except Exception as e:  # a client that raises broke its contract: indefinite
            res = {"type": "info", "value": None, "error": f"client raised {type(e).__name__}: {e}"}
        typ = res.get("type")
        if typ not in ("ok", "fail", "info"):
            res = {"type": "info", "value": None, "error": f"client answered bad type {typ!r}"}
            typ = "info"
        self.history.record(
            self.process, typ, inv.f, inv.key, self.workload.completion_value(inv, res),
            node=node, error=res.get("error"),
        )
        self.tally.add(typ)
        self.router.observe(node, res)
        if typ == "info":
            self.process += self.config.concurrency
        return res

    def _note_keys(self, inv: Invocation) -> None:
        keys = [inv.key] if inv.key is not None else []
        if inv.f == "txn" and isinstance(inv.value, list):
            keys = [m[1] for m in inv.value]
        if keys:
            with self.keys_lock:
                self.keys_seen.update(keys)

    def _perform(self, inv: Invocation) -> tuple[Invocation, dict[str, Any]]:
        self._note_keys(inv)
        return inv, self.invoke(inv)

    def _now(self) -> float:
        return (time.monotonic_ns() - self.history.start_ns) / 1e9

    def run_load(self, stop: threading.Event) -> None:
        """Interpret this worker's generator (planned ops, paced) until ``stop`` is set."""
        try:
            run_generator(self.gen, self._perform, self._now, stop)
        except BaseException as e:  # reported by the runner; never silently lost
            self.error = e

    def run_final(self, ops: list[Invocation], deadline: float, stop: threading.Event) -> None:
        """Interpret :class:`UntilOk` of ``ops`` until it ends, the (monotonic) deadline passes,
        or ``stop`` is set."""
        try:
            end = self._now() + (deadline - time.monotonic())
            run_generator(until(end, UntilOk(ops)), lambda inv: (inv, self.invoke(inv)), self._now, stop)
        except BaseException as e:
            self.error = e


def start_thread(target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t
