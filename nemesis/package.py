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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.core import FaultOp, Nemesis, compose
from jepsenlike.nemesis.kill import KillNemesis
from jepsenlike.nemesis.pause import PauseNemesis


@dataclass(frozen=True)
class PackageOptions:
    """What the test config says about faults, for package factories."""

    targets: tuple[str, ...] = ("one", "minority", "leader")


@dataclass(frozen=True)
class NemesisPackage:
    name: str
    nemesis: Nemesis
    cycles: tuple[tuple[str, str], ...]
    final: tuple[FaultOp, ...]
    targets: tuple[str, ...] = ("one",)


NEMESES: dict[str, Callable[[PackageOptions], NemesisPackage]] = {}


def register_nemesis(name: str) -> Callable[[Callable[[PackageOptions], NemesisPackage]], Callable[[PackageOptions], NemesisPackage]]:
    """Decorator: make a package factory available as ``--nemesis NAME``."""

    def deco(factory: Callable[[PackageOptions], NemesisPackage]) -> Callable[[PackageOptions], NemesisPackage]:
        if name in NEMESES:
            raise ValueError(f"nemesis {name!r} is registered twice")
        NEMESES[name] = factory
        return factory

    return deco


def nemesis_names() -> list[str]:
    return list(NEMESES)


@register_nemesis("kill")
def kill_package(options: PackageOptions) -> NemesisPackage:
    return NemesisPackage("kill", KillNemesis(), (("kill", "start"),), (FaultOp("start"),), options.targets)


@register_nemesis("pause")
def pause_package(options: PackageOptions) -> NemesisPackage:
    return NemesisPackage("pause", PauseNemesis(), (("pause", "resume"),), (FaultOp("resume"),), options.targets)


def build_packages(names: Sequence[str], options: PackageOptions | None = None) -> list[NemesisPackage]:
    """Packages for the named faults, in the order given.

    Raises:
        ConfigError: an unknown name, listing the available ones.
    """
    options = options or PackageOptions()
    out = []
    for name in names:
        if name not in NEMESES:
            raise ConfigError(f"--nemesis: unknown nemesis {name!r}; available: {', '.join(NEMESES)}")
        out.append(NEMESES[name](options))
    compose(p.nemesis for p in out)  # refuses overlapping fs now, not mid-run
    return out


@dataclass(frozen=True)
class ScheduledFault:
    """One fault op and when to fire it (seconds since the test started)."""

    at: float
    op: FaultOp


def plan_schedule(
    packages: Sequence[NemesisPackage],
    interval: float,
    start: float,
    end: float,
    rng: random.Random,
) -> list[ScheduledFault]:
    """The timed fault plan for the chaos phase ``[start, end)``.

    Pure: depends only on its arguments (and consumes ``rng``).
    """
    plan: list[ScheduledFault] = []
    if not packages or interval <= 0:
        return plan
    t = start
    while t < end:
        pkg = packages[rng.randrange(len(packages))]
        start_f, stop_f = pkg.cycles[rng.randrange(len(pkg.cycles))]
        target = pkg.targets[rng.randrange(len(pkg.targets))]
        plan.append(ScheduledFault(round(t, 6), FaultOp(start_f, target)))
        t += interval * rng.uniform(0.5, 1.5)
        if t >= end:
            break
        plan.append(ScheduledFault(round(t, 6), FaultOp(stop_f)))
        t += interval * rng.uniform(0.5, 1.5)
    return plan
