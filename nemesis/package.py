"""Fault packages, the registry of nemeses by name, and the fault schedule.

Theory of operation
-------------------
A :class:`NemesisPackage` bundles what one named fault needs: the nemesis,
its *cycles* (``(start_f, stop_f)`` pairs, e.g. ``("kill", "start")``), the
target specs a start op draws from, and the *final* ops that heal everything
it may have done. The runner always runs every package's final ops at the end
of the chaos phase, whatever happened before.

:func:`plan_schedule` turns the packages into a timed plan, drawn entirely
from an rng: starting at the end of warm-up, a package and one of its cycles
are chosen, the start op fires with a chosen target spec, the stop op fires
``interval * U(0.5, 1.5)`` seconds later, and the next fault starts
``interval * U(0.5, 1.5)`` after that. A stop that would fall after the end of
the chaos phase is left to the final ops. The plan is a plain list, so the
same seed gives the same plan and tests can look at it.

Lanes. Each package belongs to a *lane*. Packages of one lane take turns:
start, stop, gap, start, ... -- so the faults that take nodes away (``kill``,
``pause``, ``partition``; lane ``main``) never pile up and the cluster keeps a
chance to make progress. Packages of different lanes run on their own
timelines, in parallel: ``clock`` (lane ``clock``), ``slow`` and ``flaky``
(lane ``links``) degrade a cluster rather than cut it, and some bugs only show
when a degradation overlaps a cut (a clock stepped back *while* its node is
partitioned away). Within a lane the package comes from a shuffled deck: every
package of the lane fires once before any fires twice. When the chaos phase is
too short for every package of a lane to start once at ``interval`` (each start
and stop gap can be 1.5 intervals long), that lane's gaps shrink to fit
(:func:`lane_step`), down to :data:`MIN_STEP`; so the default settings fire every
requested fault at least once even in a short run, and
:func:`min_chaos_seconds` says how long a chaos phase must be for that.

Adding a nemesis
----------------
1. Subclass :class:`~jepsenlike.nemesis.core.Nemesis` (``name``, ``fs``,
   ``requires``, ``invoke`` answering an ``info`` completion that says which
   nodes it touched).
2. Register a package factory under its name::

       @register_nemesis("partition")
       def partition_package(options: PackageOptions) -> NemesisPackage:
           return NemesisPackage("partition", PartitionNemesis(),
                                 cycles=(("start-partition", "stop-partition"),),
                                 final=(FaultOp("stop-partition"),),
                                 targets=options.targets)

3. Import the module in :mod:`jepsenlike.nemesis` so the registration runs.
   ``--nemesis partition`` then works, is validated, and is refused with a
   reason on backends that lack its ``requires``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.nemesis.clock import CLOCK_FAULTS, ClockNemesis
from jepsenlike.nemesis.core import FaultOp, Nemesis, compose
from jepsenlike.nemesis.kill import KillNemesis
from jepsenlike.nemesis.links import FlakyNemesis, SlowNemesis
from jepsenlike.nemesis.partition import EXPLICIT, SHAPES, PartitionNemesis
from jepsenlike.nemesis.pause import PauseNemesis

MAIN_LANE = "main"


@dataclass(frozen=True)
class PackageOptions:
    """What the test config says about faults, for package factories.

    Plugins receive the same object; :attr:`extra` carries any setting a
    plugin's users put in the config's ``[nemesis-options]`` table.
    """

    targets: tuple[str, ...] = ("one", "minority", "leader")
    #: Partition shapes ``start-partition`` draws from.
    partition_shapes: tuple[str, ...] = SHAPES
    #: An explicit grudge; when given, every partition is exactly this one.
    grudge: Mapping[str, Sequence[str]] | None = None
    #: Clock faults ``clock`` draws from (bump, strobe, drift).
    clock_faults: tuple[str, ...] = CLOCK_FAULTS
    #: Largest clock bump / strobe delta, seconds.
    clock_skew: float = 10.0
    #: Latency and jitter of ``slow``, milliseconds.
    slow_latency_ms: float = 50.0
    slow_jitter_ms: float = 25.0
    #: Chance that a chunk aborts its connection under ``flaky``.
    flaky_probability: float = 0.05
    #: Mean seconds a fault lasts (plugins may use it to size their faults).
    interval: float = 3.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> PackageOptions:
        """Options from a :class:`~jepsenlike.config.TestConfig`."""
        return cls(targets=config.targets, partition_shapes=config.partition_shapes,
                   grudge=config.grudge, clock_faults=config.clock_faults, clock_skew=config.clock_skew,
                   slow_latency_ms=config.slow_latency_ms, slow_jitter_ms=config.slow_jitter_ms,
                   flaky_probability=config.flaky_probability, interval=config.nemesis_interval)


@dataclass(frozen=True)
class NemesisPackage:
    """One named fault: the nemesis, its start/stop cycles, target specs, final heal ops.

    ``targets`` are the values start ops draw from (target specs for most
    faults, shape names for ``partition``); ``lane`` is its scheduling lane.
    """

    name: str
    nemesis: Nemesis
    cycles: tuple[tuple[str, str], ...]
    final: tuple[FaultOp, ...]
    targets: tuple[str, ...] = ("one",)
    lane: str = MAIN_LANE

    def check(self, where: str = "") -> None:
        """Raise ValueError if the package does not fit together (fs, cycles, final)."""
        problems = []
        if not isinstance(self.nemesis, Nemesis):
            problems.append(f"nemesis is {type(self.nemesis).__name__}, not a jepsenlike.nemesis.Nemesis")
        else:
            fs = self.nemesis.fs
            if not self.cycles:
                problems.append("no cycles")
            for start, stop in self.cycles:
                for f in (start, stop):
                    if f not in fs:
                        problems.append(f"cycle f {f!r} is not handled by the nemesis (fs: {sorted(fs)})")
            for op in self.final:
                if not isinstance(op, FaultOp) or op.f not in fs:
                    problems.append(f"final op {op!r} is not a FaultOp the nemesis handles")
            if not self.targets:
                problems.append("no targets")
        if problems:
            raise ValueError(f"{where}{'; '.join(problems)}")

    @property
    def start_fs(self) -> frozenset[str]:
        return frozenset(start for start, _ in self.cycles)

    @property
    def stop_fs(self) -> frozenset[str]:
        return frozenset(stop for _, stop in self.cycles) | frozenset(op.f for op in self.final)


PackageFactory = Callable[[PackageOptions], NemesisPackage]

#: Built-in package factories by name (also published as ``jepsenlike.nemesis`` entry points).
NEMESES: dict[str, PackageFactory] = {}


def register_nemesis(name: str) -> Callable[[PackageFactory], PackageFactory]:
    """Decorator: a built-in package factory under ``name`` (plugins use entry points)."""

    def deco(factory: PackageFactory) -> PackageFactory:
        if name in NEMESES:
            raise ValueError(f"nemesis {name!r} is registered twice")
        NEMESES[name] = factory
        return factory

    return deco


def nemesis_names() -> list[str]:
    """Every name ``--nemesis`` accepts: built-ins and plugins."""
    from jepsenlike.plugins import names

    return names("nemesis")


@register_nemesis("kill")
def kill_package(options: PackageOptions) -> NemesisPackage:
    """SIGKILL nodes, restart them on the same data."""
    return NemesisPackage("kill", KillNemesis(), (("kill", "start"),), (FaultOp("start"),), options.targets)


@register_nemesis("pause")
def pause_package(options: PackageOptions) -> NemesisPackage:
    """SIGSTOP nodes, SIGCONT them."""
    return NemesisPackage("pause", PauseNemesis(), (("pause", "resume"),), (FaultOp("resume"),), options.targets)


@register_nemesis("partition")
def partition_package(options: PackageOptions) -> NemesisPackage:
    """Cut peer traffic by a grudge (one, halves, majority, majorities-ring, bridge, asymmetric, leader)."""
    shapes = (EXPLICIT,) if options.grudge is not None else tuple(options.partition_shapes)
    return NemesisPackage("partition", PartitionNemesis(options.grudge),
                          (("start-partition", "stop-partition"),), (FaultOp("stop-partition"),), shapes)


@register_nemesis("clock")
def clock_package(options: PackageOptions) -> NemesisPackage:
    """Bump, strobe or drift nodes' wall clocks (libfaketime), reset them."""
    cycles = tuple((f"{kind}-clock", "reset-clock") for kind in CLOCK_FAULTS if kind in options.clock_faults)
    return NemesisPackage("clock", ClockNemesis(options.clock_skew), cycles,
                          (FaultOp("reset-clock"),), options.targets, lane="clock")


@register_nemesis("slow")
def slow_package(options: PackageOptions) -> NemesisPackage:
    """Latency and jitter on the peer links of some nodes."""
    return NemesisPackage("slow", SlowNemesis(options.slow_latency_ms, options.slow_jitter_ms),
                          (("start-slow", "stop-slow"),), (FaultOp("stop-slow"),), options.targets,
                          lane="links")


@register_nemesis("flaky")
def flaky_package(options: PackageOptions) -> NemesisPackage:
    """Random connection drops on the peer links of some nodes."""
    return NemesisPackage("flaky", FlakyNemesis(options.flaky_probability),
                          (("start-flaky", "stop-flaky"),), (FaultOp("stop-flaky"),), options.targets,
                          lane="links")


def build_packages(names: Sequence[str], options: PackageOptions | None = None) -> list[NemesisPackage]:
    """Packages for the named faults (built-in or plugin), in the order given.

    Raises:
        ConfigError: an unknown name, listing the available ones.
        PluginError: a plugin that fails to load or builds a bad package.
    """
    from jepsenlike.plugins import load
    from jepsenlike.plugins import names as plugin_names

    options = options or PackageOptions()
    out = []
    for name in names:
        available = plugin_names("nemesis")
        if name not in available:
            raise ConfigError(f"--nemesis: unknown nemesis {name!r}; available: {', '.join(available)}")
        plugin = load("nemesis", name)
        try:
            pkg = plugin.obj(options)
            if not isinstance(pkg, NemesisPackage):
                raise ValueError(f"factory returned {type(pkg).__name__}, not a NemesisPackage")
            pkg.check()
        except ConfigError:
            raise
        except Exception as e:
            raise PluginError(f"nemesis plugin {name!r} ({plugin.where}) built a bad package: "
                              f"{type(e).__name__}: {e}") from e
        out.append(pkg)
    compose(p.nemesis for p in out)  # refuses overlapping fs now, not mid-run
    return out


@dataclass(frozen=True)
class ScheduledFault:
    """One fault op and when to fire it (seconds since the test started)."""

    at: float
    op: FaultOp


MIN_STEP = 0.5
"""Seconds: the shortest mean gap :func:`lane_step` shrinks a lane's interval to."""


def lane_step(n_packages: int, interval: float, span: float) -> float:
    """The mean gap a lane of ``n_packages`` uses in a chaos phase of ``span`` seconds:
    ``interval``, or less when that leaves no room for every package to start once."""
    if n_packages <= 0 or span <= 0:
        return interval
    fit = span / (1.5 * (2 * n_packages - 1))
    return max(min(interval, fit), min(interval, MIN_STEP))


def min_chaos_seconds(packages: Sequence[NemesisPackage], interval: float) -> float:
    """The shortest chaos phase in which :func:`plan_schedule` starts every package at
    least once, whatever the rng draws (0 without packages)."""
    lanes: dict[str, int] = {}
    for pkg in packages:
        lanes[pkg.lane] = lanes.get(pkg.lane, 0) + 1
    step = min(interval, MIN_STEP)
    need = 0.0
    for i, k in enumerate(lanes.values()):
        offset = 0.0 if i == 0 else 0.5 * step
        need = max(need, offset + 1.5 * (2 * k - 2) * step)
    return need


def plan_schedule(
    packages: Sequence[NemesisPackage],
    interval: float,
    start: float,
    end: float,
    rng: random.Random,
) -> list[ScheduledFault]:
    """The timed fault plan for the chaos phase ``[start, end)``: every lane's
    timeline, merged by time (see the module doc).

    Pure: depends only on its arguments (and consumes ``rng``).
    """
    if not packages or interval <= 0:
        return []
    lanes: dict[str, list[NemesisPackage]] = {}
    for pkg in packages:
        lanes.setdefault(pkg.lane, []).append(pkg)
    plan: list[ScheduledFault] = []
    for i, members in enumerate(lanes.values()):
        lane_rng = random.Random(rng.getrandbits(64))
        step = lane_step(len(members), interval, end - start)
        # The first lane starts at once; the others a little later, so that
        # lanes do not fire in lockstep.
        first = start if i == 0 else start + step * lane_rng.uniform(0.0, 0.5)
        plan.extend(_plan_lane(members, step, first, end, lane_rng))
    plan.sort(key=lambda s: s.at)  # stable: a lane's own order is kept on ties
    return plan


def _plan_lane(
    packages: Sequence[NemesisPackage], interval: float, start: float, end: float, rng: random.Random
) -> list[ScheduledFault]:
    plan: list[ScheduledFault] = []
    deck: list[NemesisPackage] = []
    t = start
    while t < end:
        if not deck:
            deck = list(packages)
            rng.shuffle(deck)
        pkg = deck.pop()
        start_f, stop_f = pkg.cycles[rng.randrange(len(pkg.cycles))]
        target = pkg.targets[rng.randrange(len(pkg.targets))]
        plan.append(ScheduledFault(round(t, 6), FaultOp(start_f, target)))
        t += interval * rng.uniform(0.5, 1.5)
        if t >= end:
            break
        plan.append(ScheduledFault(round(t, 6), FaultOp(stop_f)))
        t += interval * rng.uniform(0.5, 1.5)
    return plan
