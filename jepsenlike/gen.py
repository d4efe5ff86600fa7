"""Generators as a protocol: what to do next, as data the runner interprets.

Theory of operation
-------------------
A *generator* answers one question, again and again: given the test's
current time, what op comes next? It is any object with two methods
(:class:`Generator`)::

    next_op(ctx)        -> an op | Wait(at) | None
    update(ctx, event)  -> None

``next_op`` returns an op to perform *now*; ``Wait(at)`` when nothing is due
before time ``at`` (``PENDING``, i.e. ``Wait(None)``, when nothing is due
until some event arrives); ``None`` when the generator is exhausted (it
will not be asked again). ``update`` hands the generator every completion
of an op it emitted (and, through combinators, of its siblings), so a
generator can wait for an outcome before choosing its next op -- e.g. a
kill package that restarts its node a fixed delay after the kill
*completed*.

``ctx`` (:class:`GenContext`) carries ``time`` (seconds since the history
started, the same clock as the ``at`` of a schedule and the ``time`` of the
history's ops) and ``stopping``: True once the phase the generator serves
has ended. A generator that owns a *final* part (a heal) switches to it when
``stopping`` is set; everything else just ends.

The runner never looks inside a generator: its interpreter
(:func:`run_generator`) asks for ops, performs them, waits as told, and
feeds completions back. :func:`simulate` is the same loop on a fake clock
with instant completions; it gives the planned ops of a seeded generator
without running anything (used by ``plan_schedule``, by tests, and by
anyone who wants to see a schedule before it runs).

Ops are opaque to the combinators, except :func:`on_nodes` (it sets the op's
``nodes`` field, which restricts the nodes a fault may target) and the time
stamps :func:`simulate` adds. Randomness comes only from the rngs handed in
(derive them from the seed with :func:`jepsenlike.generator.derive_rng`),
so the same seed gives the same ops.

Combinators (each a small class; all deterministic given their rng):

==================  ==========================================================
``once(op)``        emits ``op`` once
``ops(*ops)``       emits these ops in order, one per ask
``sleep(dt)``       nothing for ``dt`` seconds from its first ask, then ends
``seq(*gens)``      each generator until it ends, then the next
``mix(gens, rng)``  each op from a generator chosen at random among those
                    with an op due (Jepsen's ``mix``)
``any_of(*gens)``   all in parallel: the first with an op due wins (ties go
                    to the earlier one); waits for the soonest
``time_limit(s, g)`` ``g`` until ``s`` seconds after its first ask
``until(t, g)``     ``g`` until absolute time ``t``
``stagger(dt, g, rng)`` ops of ``g`` spaced ``dt * U(lo, hi)`` apart
``delay(dt, g)``    ops of ``g`` spaced exactly ``dt`` apart
``at_times(items)`` ``(at, op)`` pairs, each op at its time (a schedule)
``on_nodes(ns, g)`` ops of ``g`` restricted to the nodes ``ns``
``final(g, heal)``  ``g`` until it ends or the phase stops, then ``heal``
                    (run whatever happened before; the heal is not cut short)
``cycle(f)``        ``f()`` again each time the previous generator ends
``fn(f)``           ``f(ctx)`` is asked each time (a plain function)
==================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Wait:
    """Nothing is due before ``at`` (seconds); ``at=None``: until some event."""

    at: float | None = None


PENDING = Wait(None)


@dataclass
class GenContext:
    """What a generator may know: the test's time and whether its phase has ended."""

    time: float = 0.0
    stopping: bool = False


@runtime_checkable
class Generator(Protocol):
    """The generator protocol (see the module docstring)."""

    def next_op(self, ctx: GenContext) -> Any:
        """An op to perform now, :class:`Wait`, or None when exhausted."""
        ...

    def update(self, ctx: GenContext, event: Any) -> None:
        """A completion of an op emitted by this generator (or a sibling)."""
        ...


def _soonest(waits: Iterable[Wait]) -> Wait:
    times = [w.at for w in waits if w.at is not None]
    return Wait(min(times)) if times else PENDING


class _Base:
    def update(self, ctx: GenContext, event: Any) -> None:
        return None


class Once(_Base):
    def __init__(self, op: Any) -> None:
        self.op, self.done = op, False

    def next_op(self, ctx: GenContext) -> Any:
        if self.done or ctx.stopping:
            return None
        self.done = True
        return self.op


def once(op: Any) -> Once:
    """Emit ``op`` once."""
    return Once(op)


class Ops(_Base):
    def __init__(self, items: Sequence[Any]) -> None:
        self.items, self.i = list(items), 0

    def next_op(self, ctx: GenContext) -> Any:
        if self.i >= len(self.items) or ctx.stopping:
            return None
        self.i += 1
        return self.items[self.i - 1]


def ops(*items: Any) -> Ops:
    """Emit these ops in order, one per ask."""
    return Ops(items)


class Sleep(_Base):
    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, None

    def next_op(self, ctx: GenContext) -> Any:
        if ctx.stopping:
            return None
        if self.end is None:
            self.end = ctx.time + self.seconds
        return None if ctx.time >= self.end else Wait(self.end)


def sleep(seconds: float) -> Sleep:
    """Nothing for ``seconds`` from the first ask, then end."""
    return Sleep(seconds)


class Seq(_Base):
    def __init__(self, gens: Sequence[Generator]) -> None:
        self.gens, self.i = list(gens), 0

    def next_op(self, ctx: GenContext) -> Any:
        while self.i < len(self.gens):
            r = self.gens[self.i].next_op(ctx)
            if r is not None:
                return r
            self.i += 1
        return None

    def update(self, ctx: GenContext, event: Any) -> None:
        if self.i < len(self.gens):
            self.gens[self.i].update(ctx, event)


def seq(*gens: Generator) -> Seq:
    """Each generator until it ends, then the next."""
    return Seq(gens)


class AnyOf(_Base):
    def __init__(self, gens: Sequence[Generator]) -> None:
        self.gens: list[Generator | None] = list(gens)

    def _ask(self, ctx: GenContext, order: Sequence[int]) -> Any:
        waits = []
        for i in order:
            g = self.gens[i]
            if g is None:
                continue
            r = g.next_op(ctx)
            if r is None:
                self.gens[i] = None
            elif isinstance(r, Wait):
                waits.append(r)
            else:
                return r
        return _soonest(waits) if any(g is not None for g in self.gens) else None

    def next_op(self, ctx: GenContext) -> Any:
        return self._ask(ctx, range(len(self.gens)))

    def update(self, ctx: GenContext, event: Any) -> None:
        for g in self.gens:
            if g is not None:
                g.update(ctx, event)


def any_of(*gens: Generator) -> AnyOf:
    """All in parallel: the first with an op due wins; waits for the soonest."""
    return AnyOf(gens)


class Mix(AnyOf):
    def __init__(self, gens: Sequence[Generator], rng: random.Random) -> None:
        super().__init__(gens)
        self.rng = rng

    def next_op(self, ctx: GenContext) -> Any:
        order = list(range(len(self.gens)))
        self.rng.shuffle(order)
        return self._ask(ctx, order)


def mix(gens: Sequence[Generator], rng: random.Random) -> Mix:
    """Each op from a generator chosen at random among those with an op due."""
    return Mix(gens, rng)


class Until(_Base):
    def __init__(self, gen: Generator, end: float | None, seconds: float | None = None) -> None:
        self.gen, self.end, self.seconds = gen, end, seconds

    def next_op(self, ctx: GenContext) -> Any:
        if self.end is None:
            self.end = ctx.time + (self.seconds or 0.0)
        if ctx.time >= self.end:
            return None
        r = self.gen.next_op(ctx)
        if isinstance(r, Wait):
            if r.at is not None and r.at >= self.end:
                return Wait(self.end)  # wake at the limit to end cleanly
            return r if r.at is not None else Wait(self.end)
        return r

    def update(self, ctx: GenContext, event: Any) -> None:
        self.gen.update(ctx, event)


def time_limit(seconds: float, gen: Generator) -> Until:
    """``gen`` until ``seconds`` after the first ask."""
    return Until(gen, None, seconds)


def until(end: float, gen: Generator) -> Until:
    """``gen`` until the absolute time ``end`` (seconds since the history started)."""
    return Until(gen, end)


class Stagger(_Base):
    def __init__(self, gen: Generator, spacing: Callable[[], float]) -> None:
        self.gen, self.spacing, self.next_at = gen, spacing, None

    def next_op(self, ctx: GenContext) -> Any:
        if self.next_at is not None and ctx.time < self.next_at:
            return None if ctx.stopping else Wait(self.next_at)
        r = self.gen.next_op(ctx)
        if r is not None and not isinstance(r, Wait):
            self.next_at = (self.next_at if self.next_at is not None else ctx.time) + self.spacing()
        return r

    def update(self, ctx: GenContext, event: Any) -> None:
        self.gen.update(ctx, event)


def stagger(mean: float, gen: Generator, rng: random.Random, lo: float = 0.0, hi: float = 2.0) -> Stagger:
    """Ops of ``gen`` spaced ``mean * U(lo, hi)`` apart (default: mean ``mean``)."""
    return Stagger(gen, lambda: mean * rng.uniform(lo, hi))


def delay(seconds: float, gen: Generator) -> Stagger:
    """Ops of ``gen`` spaced exactly ``seconds`` apart."""
    return Stagger(gen, lambda: seconds)


class AtTimes(_Base):
    def __init__(self, items: Sequence[tuple[float, Any]]) -> None:
        self.items, self.i = sorted(items, key=lambda it: it[0]), 0

    def next_op(self, ctx: GenContext) -> Any:
        if self.i >= len(self.items) or ctx.stopping:
            return None
        at, op = self.items[self.i]
        if ctx.time < at:
            return Wait(at)
        self.i += 1
        return op


def at_times(items: Sequence[tuple[float, Any]]) -> AtTimes:
    """Each ``(at, op)`` at its time (stable order on ties): an explicit schedule."""
    return AtTimes(items)


class OnNodes(_Base):
    def __init__(self, nodes: Sequence[str], gen: Generator) -> None:
        self.nodes, self.gen = tuple(nodes), gen

    def next_op(self, ctx: GenContext) -> Any:
        r = self.gen.next_op(ctx)
        if r is None or isinstance(r, Wait):
            return r
        if dataclasses.is_dataclass(r) and any(f.name == "nodes" for f in dataclasses.fields(r)):
            return dataclasses.replace(r, nodes=self.nodes)
        raise TypeError(f"on_nodes: op {r!r} has no 'nodes' field to restrict")

    def update(self, ctx: GenContext, event: Any) -> None:
        self.gen.update(ctx, event)


def on_nodes(nodes: Sequence[str], gen: Generator) -> OnNodes:
    """Ops of ``gen`` restricted to ``nodes`` (the op's ``nodes`` field)."""
    return OnNodes(nodes, gen)


class Final(_Base):
    """``main`` until it ends or the phase stops, then ``heal`` to its end."""

    def __init__(self, main: Generator, heal: Generator) -> None:
        self.main: Generator | None = main
        self.heal = heal

    def next_op(self, ctx: GenContext) -> Any:
        if self.main is not None:
            r = self.main.next_op(ctx)
            if r is not None and not ctx.stopping:
                return r
            self.main = None
        if not ctx.stopping:
            return PENDING  # the heal waits for the end of the phase
        # The heal runs as a phase of its own: it is not itself "stopping".
        return self.heal.next_op(GenContext(ctx.time, stopping=False))

    def update(self, ctx: GenContext, event: Any) -> None:
        (self.main or self.heal).update(ctx, event)


def final(main: Generator, heal: Generator | Sequence[Any]) -> Final:
    """``main``, then (once the phase stops) ``heal``: a generator or a list of ops."""
    if not hasattr(heal, "next_op"):
        heal = Ops(list(heal))
    return Final(main, heal)


class Cycle(_Base):
    def __init__(self, make: Callable[[], Generator]) -> None:
        self.make, self.cur = make, make()

    def next_op(self, ctx: GenContext) -> Any:
        for _ in range(2):  # a fresh generator that ends at once ends the cycle
            r = self.cur.next_op(ctx)
            if r is not None or ctx.stopping:
                return r
            self.cur = self.make()
        return None

    def update(self, ctx: GenContext, event: Any) -> None:
        self.cur.update(ctx, event)


def cycle(make: Callable[[], Generator]) -> Cycle:
    """``make()`` again each time the previous generator ends."""
    return Cycle(make)


class Fn(_Base):
    def __init__(self, f: Callable[[GenContext], Any]) -> None:
        self.f = f

    def next_op(self, ctx: GenContext) -> Any:
        return self.f(ctx)


def fn(f: Callable[[GenContext], Any]) -> Fn:
    """A plain function of the context as a generator."""
    return Fn(f)


# -- interpreters ---------------------------------------------------------------


def simulate(
    gen: Generator,
    perform: Callable[[Any, float], Any] | None = None,
    *,
    start: float = 0.0,
    stop_at: float | None = None,
    max_ops: int = 100_000,
) -> list[tuple[float, Any]]:
    """Interpret ``gen`` on a fake clock; returns ``[(time, op), ...]``.

    Time jumps to each ``Wait``; ``perform(op, t)`` gives the completion fed
    back through ``update`` (default: the op itself). At ``stop_at`` the
    context switches to ``stopping`` and the generator runs to its end (its
    final part). A generator that waits on nothing (``PENDING``) with no
    stop ahead ends the simulation.
    """
    ctx = GenContext(time=start)
    out: list[tuple[float, Any]] = []
    while len(out) < max_ops:
        ctx.stopping = stop_at is not None and ctx.time >= stop_at
        r = gen.next_op(ctx)
        if r is None:
            break
        if isinstance(r, Wait):
            if ctx.stopping and r.at is None:
                break  # a heal waiting for an event: nothing else runs any more
            nxt = [t for t in (r.at, None if ctx.stopping else stop_at) if t is not None]
            if not nxt:
                break
            ctx.time = max(ctx.time, min(nxt))
            continue
        out.append((ctx.time, r))
        gen.update(ctx, perform(r, ctx.time) if perform else r)
    return out


def run_generator(
    gen: Generator,
    perform: Callable[[Any], Any],
    now: Callable[[], float],
    stop: threading.Event,
    *,
    poll: float = 0.25,
) -> None:
    """Interpret ``gen`` on the real clock until it ends or ``stop`` is set.

    ``perform(op)`` performs one op and returns its completion (fed back
    through ``update``). Waits are cut short by ``stop``. After ``stop`` this
    returns at once; run the generator again with :func:`run_final` to get
    its final part.
    """
    ctx = GenContext()
    while not stop.is_set():
        ctx.time = now()
        r = gen.next_op(ctx)
        if r is None:
            return
        if isinstance(r, Wait):
            left = poll if r.at is None else min(poll * 4, r.at - ctx.time)
            if left > 0:
                stop.wait(left)
            continue
        ctx.time = now()
        gen.update(ctx, perform(r))


def run_final(gen: Generator, perform: Callable[[Any], Any], now: Callable[[], float],
              max_ops: int = 10_000) -> None:
    """Ask ``gen`` with ``stopping`` set until it ends, performing each op (the heal).

    A heal may wait for a time (``Wait(at)``); one that waits for an event
    (``PENDING``) is over, since nothing else runs any more.
    """
    ctx = GenContext(time=now(), stopping=True)
    for _ in range(max_ops):
        r = gen.next_op(ctx)
        if r is None or r == PENDING:
            return
        if isinstance(r, Wait):
            time.sleep(max(0.0, min(1.0, r.at - now())))
        else:
            gen.update(ctx, perform(r))
        ctx.time = now()
