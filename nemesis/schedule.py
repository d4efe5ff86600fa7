"""Fault schedules as generators: the packages' plan, and explicit schedules from a file.

Theory of operation
-------------------
The nemesis side of a run is one generator (:mod:`jepsenlike.gen`), built
by :func:`chaos_generator` from the packages:

* packages without a generator of their own join their *lane*: a
  :class:`LaneGen` deals them from a shuffled deck (every package of the lane
  fires once before any fires twice), fires a start op with a target drawn
  from the package's ``targets``, the matching stop op ``interval * U(0.5,
  1.5)`` seconds later, and the next start after another such gap (a lane
  with too many packages for the chaos phase gets shorter gaps, see
  :func:`lane_step`, so that each starts at least once). Lanes run
  in parallel (:func:`~jepsenlike.gen.any_of`); the first lane starts at the
  end of warm-up, the others up to half an interval later;
* a package with a ``generator`` factory runs that generator on a timeline of
  its own from the end of warm-up: it chooses its own ops and timing (a
  restart a fixed delay after a kill is an op of its generator, hence in the
  history);
* everything stops at the end of the chaos phase
  (:func:`~jepsenlike.gen.until`), and then the *final* part runs: every
  package's final (heal) ops, in package order, whatever happened before.

:func:`plan_schedule` interprets the chaos part on a fake clock
(:func:`~jepsenlike.gen.simulate`): the planned ops and times, drawn only from
the rng, so the same seed gives the same plan.

*Explicit schedules* (``jepsenlike run --schedule FILE``): :func:`load_schedule`
reads JSON Lines of ``{"at": seconds, "f": ..., "value": ...}`` (optionally
``"nodes": [...]`` to restrict the targets; a nemesis may take a richer value,
e.g. ``bump-clock``'s ``{"target": "leader", "delta": -5.0}``), or an earlier run's
``history.jsonl``, whose nemesis invocations are taken (``at`` = the op's
``time`` in seconds); when that run's ``test.json`` sits beside it, the
invocations of its heal phase are left out, since the new run heals by
itself. :func:`schedule_generator` replays the entries at their times, then
the packages' heal.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jepsenlike.errors import ConfigError
from jepsenlike.gen import (
    GenContext,
    Generator,
    Wait,
    any_of,
    at_times,
    final,
    seq,
    simulate,
    until,
)
from jepsenlike.nemesis.core import FaultOp

if TYPE_CHECKING:
    from jepsenlike.nemesis.package import NemesisPackage


@dataclass(frozen=True)
class ScheduledFault:
    """One fault op and when to fire it (seconds since the test started)."""

    at: float
    op: FaultOp


class LaneGen:
    """Start/stop cycles of the packages of one lane, on absolute times (see the module doc)."""

    def __init__(self, packages: Sequence[NemesisPackage], interval: float, first: float,
                 rng: random.Random) -> None:
        self.packages, self.interval, self.rng = list(packages), interval, rng
        self.t = first
        self.deck: list[NemesisPackage] = []
        self.stop_f: str | None = None

    def next_op(self, ctx: GenContext) -> Any:
        if ctx.stopping:
            return None
        if ctx.time < self.t:
            return Wait(self.t)
        if self.stop_f is not None:
            op, self.stop_f = FaultOp(self.stop_f), None
        else:
            if not self.deck:
                self.deck = list(self.packages)
                self.rng.shuffle(self.deck)
            pkg = self.deck.pop()
            start_f, self.stop_f = pkg.cycles[self.rng.randrange(len(pkg.cycles))]
            op = FaultOp(start_f, pkg.targets[self.rng.randrange(len(pkg.targets))])
        self.t += self.interval * self.rng.uniform(0.5, 1.5)
        return op

    def update(self, ctx: GenContext, event: Any) -> None:
        return None


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
        if pkg.generator is None:  # a package's own generator keeps its own timing
            lanes[pkg.lane] = lanes.get(pkg.lane, 0) + 1
    step = min(interval, MIN_STEP)
    need = 0.0
    for i, k in enumerate(lanes.values()):
        offset = 0.0 if i == 0 else 0.5 * step
        need = max(need, offset + 1.5 * (2 * k - 2) * step)
    return need


def heal_ops(packages: Sequence[NemesisPackage]) -> list[FaultOp]:
    """Every package's final ops, in package order."""
    return [op for pkg in packages for op in pkg.final]


def chaos_part(packages: Sequence[NemesisPackage], interval: float, start: float, end: float,
               rng: random.Random) -> Generator:
    """The chaos phase's generator (no heal): lanes and own generators, until ``end``."""
    lanes: dict[str, list[NemesisPackage]] = {}
    own = []
    for pkg in packages:
        if pkg.generator is not None:
            own.append(pkg)
        else:
            lanes.setdefault(pkg.lane, []).append(pkg)
    gens: list[Generator] = []
    if interval > 0:
        for i, members in enumerate(lanes.values()):
            lane_rng = random.Random(rng.getrandbits(64))
            # A lane too full for the chaos phase gets shorter gaps (see lane_step).
            step = lane_step(len(members), interval, end - start)
            first = start if i == 0 else start + step * lane_rng.uniform(0.0, 0.5)
            gens.append(LaneGen(members, step, first, lane_rng))
    for pkg in own:
        assert pkg.generator is not None
        own_rng = random.Random(rng.getrandbits(64))
        gens.append(seq(_sleep_until(start), pkg.generator(own_rng, interval)))
    return until(end, any_of(*gens))


class _SleepUntil:
    def __init__(self, t: float) -> None:
        self.t = t

    def next_op(self, ctx: GenContext) -> Any:
        return None if ctx.time >= self.t or ctx.stopping else Wait(self.t)

    def update(self, ctx: GenContext, event: Any) -> None:
        return None


def _sleep_until(t: float) -> Generator:
    return _SleepUntil(t)


def chaos_generator(packages: Sequence[NemesisPackage], interval: float, start: float, end: float,
                    rng: random.Random) -> Generator:
    """The whole nemesis generator of a run: chaos until ``end``, then every package's heal."""
    return final(chaos_part(packages, interval, start, end, rng), heal_ops(packages))


def plan_schedule(
    packages: Sequence[NemesisPackage],
    interval: float,
    start: float,
    end: float,
    rng: random.Random,
) -> list[ScheduledFault]:
    """The timed fault plan for the chaos phase ``[start, end)`` (the chaos part, simulated).

    Pure: depends only on its arguments (and consumes ``rng``).
    """
    if not packages or interval <= 0:
        return []
    gen = chaos_part(packages, interval, start, end, rng)
    return [ScheduledFault(round(t, 6), op) for t, op in simulate(gen)]


# -- explicit schedules -----------------------------------------------------------


def _bad(path: Path, lineno: int, field: str, why: str) -> ConfigError:
    return ConfigError(f"--schedule: {path} line {lineno}: field {field!r}: {why}")


def _heal_start_s(path: Path) -> float | None:
    """The heal phase start of the run whose history this is (from its test.json), if known."""
    test = path.parent / "test.json"
    try:
        phases = json.loads(test.read_text(encoding="utf-8")).get("phases") or {}
    except (OSError, ValueError, AttributeError):
        return None
    heal = phases.get("heal") if isinstance(phases, dict) else None
    return heal / 1e9 if isinstance(heal, int | float) else None


def load_schedule(path: str | Path) -> list[ScheduledFault]:
    """Read a schedule file (or a run's ``history.jsonl``); see the module docstring.

    Raises:
        ConfigError: one line naming the file, the line and the bad field.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--schedule: cannot read {p}: {e.strerror or e}") from None
    heal_at = None
    out: list[ScheduledFault] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise _bad(p, lineno, "(line)", f"not JSON: {e.msg}") from None
        if not isinstance(d, dict):
            raise _bad(p, lineno, "(line)", f"expected a JSON object, got {type(d).__name__}")
        if "at" not in d and "process" in d:  # a history line
            if d.get("process") != "nemesis" or d.get("type") != "invoke":
                continue
            t = d.get("time")
            if not isinstance(t, int) or isinstance(t, bool) or t < 0:
                raise _bad(p, lineno, "time", f"expected nanoseconds >= 0, got {t!r}")
            heal_at = _heal_start_s(p) if heal_at is None else heal_at
            if heal_at is not None and t / 1e9 >= heal_at:
                continue
            at: Any = round(t / 1e9, 6)
        else:
            at = d.get("at")
            if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
                raise _bad(p, lineno, "at", f"expected seconds >= 0, got {at!r}")
        f = d.get("f")
        if not isinstance(f, str) or not f:
            raise _bad(p, lineno, "f", f"expected a fault name such as 'kill', got {f!r}")
        nodes = d.get("nodes")
        if nodes is not None and (not isinstance(nodes, list)
                                  or not all(isinstance(n, str) for n in nodes)):
            raise _bad(p, lineno, "nodes", f"expected a list of node ids, got {nodes!r}")
        op = FaultOp(f, d.get("value"), nodes=tuple(nodes) if nodes is not None else None)
        out.append(ScheduledFault(float(at), op))
    return out


def check_schedule(path: str | Path, entries: Sequence[ScheduledFault],
                   packages: Sequence[NemesisPackage], time_limit: float) -> None:
    """Every entry's ``f`` is handled by a package in the run and fires before the end of
    chaos, and its value passes the nemesis's ``check_value(f, value)`` when it has one
    (returning why a value is bad, or None)."""
    fs = {f: pkg.name for pkg in packages for f in pkg.nemesis.fs}
    checks = {f: getattr(pkg.nemesis, "check_value", None) for pkg in packages for f in pkg.nemesis.fs}
    lines = _entry_lines(Path(path))
    for i, e in enumerate(entries):
        if e.op.f not in fs:
            raise _bad(Path(path), lines[i], "f",
                       f"no fault in --nemesis handles {e.op.f!r}; handled: {', '.join(sorted(fs)) or 'none'}")
        check = checks.get(e.op.f)
        why = check(e.op.f, e.op.value) if callable(check) else None
        if why:
            raise _bad(Path(path), lines[i], "value", why)
        if e.at >= time_limit:
            raise _bad(Path(path), lines[i], "at",
                       f"{e.at:g} s is past the chaos phase (--time-limit {time_limit:g}); raise --time-limit")


def _entry_lines(path: Path) -> list[int]:
    """The line number of each entry :func:`load_schedule` returns (same filtering)."""
    heal_at = _heal_start_s(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        d = json.loads(line)
        if "at" not in d and "process" in d:
            if d.get("process") != "nemesis" or d.get("type") != "invoke":
                continue
            if heal_at is not None and d["time"] / 1e9 >= heal_at:
                continue
        out.append(lineno)
    return out


def packages_for(entries: Sequence[ScheduledFault], available: dict[str, frozenset[str]],
                 path: str | Path) -> list[str]:
    """The nemesis names whose fs the schedule uses, in order of first use.

    ``available`` maps each nemesis name to the fs it handles.
    """
    by_f: dict[str, str] = {}
    for name, fs in available.items():
        for f in fs:
            by_f.setdefault(f, name)
    names: list[str] = []
    lines = _entry_lines(Path(path))
    for i, e in enumerate(entries):
        name = by_f.get(e.op.f)
        if name is None:
            raise _bad(Path(path), lines[i], "f",
                       f"no nemesis handles {e.op.f!r}; known: {', '.join(sorted(by_f))}")
        if name not in names:
            names.append(name)
    return names


def schedule_generator(entries: Sequence[ScheduledFault], packages: Sequence[NemesisPackage],
                       end: float) -> Generator:
    """Replay ``entries`` at their times until ``end``, then every package's heal."""
    return final(until(end, at_times([(e.at, e.op) for e in entries])), heal_ops(packages))


def schedule_json(entries: Sequence[ScheduledFault]) -> list[dict[str, Any]]:
    """The entries as schedule-file objects (for ``test.json``)."""
    out = []
    for e in entries:
        d: dict[str, Any] = {"at": e.at, "f": e.op.f, "value": e.op.value}
        if e.op.nodes is not None:
            d["nodes"] = list(e.op.nodes)
        out.append(d)
    return out


__all__ = ["LaneGen", "ScheduledFault", "chaos_generator", "chaos_part", "check_schedule",
           "heal_ops", "load_schedule", "packages_for", "plan_schedule", "schedule_generator",
           "schedule_json"]
