"""Fault packages, the registry of nemeses by name, and the fault schedule.

Theory of operation
-------------------
A :class:`NemesisPackage` bundles what one named fault needs: the nemesis,
its *cycles* (``(start_f, stop_f)`` pairs, e.g. ``("kill", "start")``), the
target specs a start op draws from, and the *final* ops that heal everything
it may have done. The runner always runs every package's final ops at the end
of the chaos phase, whatever happened before.

A package is a generator plus its final heal and its options. Its generator
is either its own (``generator(rng, interval)``, any generator of the
:mod:`jepsenlike.gen` protocol, on a timeline of its own: it chooses its ops
and their timing) or, by default, its lane's start/stop cycles: starting at
the end of warm-up, a package and one of its cycles are chosen, the start op
fires with a chosen target spec, the stop op fires ``interval * U(0.5, 1.5)``
seconds later, and the next fault starts ``interval * U(0.5, 1.5)`` after
that. A stop that would fall after the end of the chaos phase is left to the
final ops. :mod:`jepsenlike.nemesis.schedule` builds the run's generator from
the packages; ``plan_schedule`` shows its plan (same seed, same plan).

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
(:func:`jepsenlike.nemesis.schedule.lane_step`), down to half a second; so the default settings fire every
requested fault at least once even in a short run, and
:func:`~jepsenlike.nemesis.schedule.min_chaos_seconds` says how long a chaos phase must be for that.

Adding a nemesis
----------------
1. Subclass :class:`~jepsenlike.nemesis.core.Nemesis` (``name``, ``fs``,
   ``requires``, ``invoke`` answering an ``info`` completion that says which
   nodes it touched).
2. Write a package factory::

       def partition_package(options: PackageOptions) -> NemesisPackage:
           return NemesisPackage("partition", PartitionNemesis(),
                                 cycles=(("start-partition", "stop-partition"),),
                                 final=(FaultOp("stop-partition"),),
                                 targets=options.targets)

   Typed settings of its own are declared on the factory
   (``partition_package.plugin_options = (Option("count", int, 1, "..."),)``,
   see :mod:`jepsenlike.registry`) and arrive in ``options.settings``.
3. Register it under its name as a ``jepsenlike.nemesis`` entry point in
   ``pyproject.toml`` (the built-ins are registered there too; see
   :mod:`jepsenlike.nemesis.registry`). ``--nemesis partition`` then works, is
   validated, and is refused with a reason on backends that lack its ``requires``.
"""

from __future__ import annotations

import dataclasses
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
from jepsenlike.nemesis.registry import REGISTRY

MAIN_LANE = "main"


@dataclass(frozen=True)
class PackageOptions:
    """What the test config says about faults, for package factories.

    Plugins receive the same object; :attr:`settings` holds the typed values of
    the options the factory declares (``--option NAME.KEY=VALUE`` or the
    config's ``[options.NAME]`` table; defaults filled in).
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
    #: This package's own typed settings (set per factory by :func:`build_packages`).
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Every plugin's raw settings from the config, by plugin name.
    plugin_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Any) -> PackageOptions:
        """Options from a :class:`~jepsenlike.config.TestConfig`."""
        return cls(targets=config.targets, partition_shapes=config.partition_shapes,
                   grudge=config.grudge, clock_faults=config.clock_faults, clock_skew=config.clock_skew,
                   slow_latency_ms=config.slow_latency_ms, slow_jitter_ms=config.slow_jitter_ms,
                   flaky_probability=config.flaky_probability, interval=config.nemesis_interval,
                   plugin_options=config.plugin_options)


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
    #: Optional: ``generator(rng, interval) -> Generator`` of this package's chaos ops
    #: (:mod:`jepsenlike.gen`); it then runs on a timeline of its own and chooses its own
    #: timing instead of the lane's start/stop cycles (see :mod:`jepsenlike.nemesis.schedule`).
    generator: Callable[[random.Random, float], Any] | None = None

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
            if self.generator is not None and not callable(self.generator):
                problems.append("generator must be a callable generator(rng, interval) -> Generator")
        if problems:
            raise ValueError(f"{where}{'; '.join(problems)}")

    @property
    def start_fs(self) -> frozenset[str]:
        return frozenset(start for start, _ in self.cycles)

    @property
    def stop_fs(self) -> frozenset[str]:
        return frozenset(stop for _, stop in self.cycles) | frozenset(op.f for op in self.final)


PackageFactory = Callable[[PackageOptions], NemesisPackage]


def kill_package(options: PackageOptions) -> NemesisPackage:
    """SIGKILL nodes, restart them on the same data."""
    return NemesisPackage("kill", KillNemesis(), (("kill", "start"),), (FaultOp("start"),), options.targets)


def pause_package(options: PackageOptions) -> NemesisPackage:
    """SIGSTOP nodes, SIGCONT them."""
    return NemesisPackage("pause", PauseNemesis(), (("pause", "resume"),), (FaultOp("resume"),), options.targets)


def partition_package(options: PackageOptions) -> NemesisPackage:
    """Cut peer traffic by a grudge (one, halves, majority, majorities-ring, bridge, asymmetric, leader)."""
    shapes = (EXPLICIT,) if options.grudge is not None else tuple(options.partition_shapes)
    return NemesisPackage("partition", PartitionNemesis(options.grudge),
                          (("start-partition", "stop-partition"),), (FaultOp("stop-partition"),), shapes)


def clock_package(options: PackageOptions) -> NemesisPackage:
    """Bump, strobe or drift nodes' wall clocks (libfaketime), reset them."""
    cycles = tuple((f"{kind}-clock", "reset-clock") for kind in CLOCK_FAULTS if kind in options.clock_faults)
    return NemesisPackage("clock", ClockNemesis(options.clock_skew), cycles,
                          (FaultOp("reset-clock"),), options.targets, lane="clock")


def slow_package(options: PackageOptions) -> NemesisPackage:
    """Latency and jitter on the peer links of some nodes."""
    return NemesisPackage("slow", SlowNemesis(options.slow_latency_ms, options.slow_jitter_ms),
                          (("start-slow", "stop-slow"),), (FaultOp("stop-slow"),), options.targets,
                          lane="links")


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
    options = options or PackageOptions()
    out = []
    for name in names:
        plugin = REGISTRY.load(name)
        mine = dataclasses.replace(options, settings=plugin.settings(options.plugin_options))
        try:
            pkg = plugin.obj(mine)
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
