"""Targeted faults: the fault combinations that seeded bugs need to meet.

The general nemeses (``kill``, ``pause``, ``partition``, ``clock``) fire one fault
at a random target at random times; a bug that needs two faults at once on the
same node (a clock jump *of the isolated leader*), or a fault at a precise moment
(*right after* an election), meets its fault only by luck. Each package here
builds one such combination and runs it on a timeline of its own (a package
generator, :mod:`jepsenlike.gen`), so every cycle of the fault is one chance to
catch the bug it targets (see ``docs/faults.md``).

==========================  ==============================================================
``leader-clock``            cut the leader off from every peer *and* step its wall clock
                            (back, forward, or alternating); heal both together.
                            Targets raft ``lease-without-bound`` (a jump back stretches a
                            wall-clock lease past the election of the next leader).
``kill-elected``            kill the leader, restart it ``down`` seconds later, and kill
                            the leader elected meanwhile at once: every leader dies a moment
                            after its election. Targets ``volatile-vote``, ``early-ack``,
                            ``commit-old-term``, ``volatile-acceptor``, ``no-adopt``.
``flip-partition``          bursts of majority partitions (each node sees a majority, the
                            majorities overlap) that change every ``period`` seconds, faster
                            than an election times out. Targets ``non-unique-ballots``
                            (concurrent campaigns) and leader churn bugs.
``leader-pause``            cut the leader off and SIGSTOP it for ``seconds`` (longer than any
                            lease or election timeout), then SIGCONT it still cut off for
                            ``cutoff`` seconds: it wakes up believing it still leads. Targets
                            ``stale-read`` (a leader that serves reads without confirming it
                            leads) and ``early-ack`` (it acknowledges writes it cannot commit).
``kill-cluster``            kill every node (the leader ``tail`` seconds after its followers,
                            so it holds writes nobody else has), restart all but the old leader,
                            and the old leader ``lag`` seconds later. Targets ``volatile-vote``: every node forgets
                            its term, so terms are reused, and the old leader comes back to a
                            leader of the *same* term that wrote other entries at its indices.
==========================  ==============================================================

Fault ops and their completions (every start op is confirmed on the node by
:mod:`jepsenlike.confirm`, like the built-in faults):

* ``start-leader-clock`` -- ``{"nodes": [leader], "isolated": leader, "grudge": {...},
  "offsets": {leader: -5.0}, "text": ...}``; ``stop-leader-clock`` heals that grudge
  and resets the clock: ``{"nodes": [...], "healed": {...}}``.
* ``kill-elected`` -- ``{"nodes": [killed], "elected_after_s": 0.41}`` (how long it
  waited for a leader to be known); ``restart-elected`` restarts every node this
  nemesis killed.
* ``start-flip`` / ``flip-partition`` -- a majorities grudge, as ``start-partition``
  reports it; ``stop-flip`` heals it.
* ``pause-leader`` -- as ``pause``, plus the grudge that cuts the leader off (with
  ``isolate``); ``resume-leader`` SIGCONTs it; ``heal-leader`` lifts the grudge.
* ``kill-cluster`` -- ``{"nodes": [every node], "leader": "n2"}``; ``restart-cluster``
  restarts all but that leader (``{"nodes": [...], "held_back": "n2"}``);
  ``restart-leader`` restarts the rest.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from jepsenlike.backends.base import CLOCK, KILL, NET, PAUSE
from jepsenlike.gen import Generator, cycle, once, seq, sleep
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.grudge import complete_grudge, describe, majorities_ring, validate_grudge
from jepsenlike.nemesis.package import NemesisPackage, PackageOptions
from jepsenlike.nemesis.partition import grudge_as_lists
from jepsenlike.registry import Option

DIRECTIONS = ("back", "forward", "both")
"""Which way ``leader-clock`` steps the isolated leader's clock (``both``: alternate, back first)."""
LEADER_POLL = 0.05
"""Seconds between leader look-ups while ``kill-elected`` waits for an election."""


def _leader_or_any(test: NemesisContext, value: dict[str, Any], among: list[str] | None = None) -> str:
    nodes = among if among is not None else list(test.node_ids)
    leader = test.leader()
    if leader not in nodes:
        leader = test.rng.choice(sorted(nodes))
        value["note"] = "no leader known; chose one node"
    return leader


class LeaderClockNemesis(Nemesis):
    """Isolates the leader and steps its wall clock; the stop heals both (see the module doc)."""

    name = "leader-clock"
    fs = frozenset({"start-leader-clock", "stop-leader-clock"})
    requires = frozenset({NET, CLOCK})

    def __init__(self, skew: float = 5.0, direction: str = "both") -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"leader-clock direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
        self.skew, self.direction = skew, direction
        self.turn = 0
        self.isolated: str | None = None
        self.grudge: dict[str, set[str]] | None = None

    def _offset(self) -> float:
        if self.direction == "both":
            sign = -1.0 if self.turn % 2 == 0 else 1.0
        else:
            sign = -1.0 if self.direction == "back" else 1.0
        self.turn += 1
        return sign * self.skew

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "stop-leader-clock":
            touched = [self.isolated] if self.isolated else []
            lifted = self.grudge
            test.backend.heal_network()
            for n in touched:
                test.backend.clock(n).reset()
            self.isolated, self.grudge = None, None
            return op.complete({"nodes": touched, "healed": grudge_as_lists(lifted) if lifted else {}})
        value: dict[str, Any] = {}
        leader = _leader_or_any(test, value)
        grudge = complete_grudge([{leader}, set(test.node_ids) - {leader}])
        offset = self._offset()
        test.backend.apply_grudge(grudge)
        self.isolated, self.grudge = leader, grudge
        test.backend.clock(leader).bump(offset)
        value.update(nodes=[leader], isolated=leader, grudge=grudge_as_lists(grudge), text=describe(grudge),
                     offsets={leader: offset})
        return op.complete(value)

    def active(self) -> dict[str, list[str]]:
        return {"leader isolated, clock stepped": [self.isolated]} if self.isolated else {}


class KillElectedNemesis(Nemesis):
    """Kills the leader as soon as one is known; restarts what it killed."""

    name = "kill-elected"
    fs = frozenset({"kill-elected", "restart-elected"})
    requires = frozenset({KILL})

    def __init__(self, wait: float = 3.0) -> None:
        self.wait = wait
        self.killed: list[str] = []

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "restart-elected":
            restarted = [n for n in test.node_ids if n in self.killed]
            for n in restarted:
                test.backend.restart(n)
            self.killed = []
            return op.complete({"nodes": restarted})
        value: dict[str, Any] = {}
        began = time.monotonic()
        live = [n for n in test.node_ids if n not in self.killed]
        leader = test.leader()
        while leader not in live and time.monotonic() - began < self.wait:
            time.sleep(LEADER_POLL)
            leader = test.leader()
        value["elected_after_s"] = round(time.monotonic() - began, 3)
        if leader not in live:
            if not live:
                return op.complete({"nodes": [], "note": "every node is down"})
            leader = test.rng.choice(sorted(live))
            value["note"] = f"no leader known within {self.wait:g} s; chose one node"
        test.backend.kill(leader)
        self.killed.append(leader)
        value.update(nodes=[leader], targets="leader")
        return op.complete(value)

    def active(self) -> dict[str, list[str]]:
        return {"killed": list(self.killed)} if self.killed else {}


class FlipPartitionNemesis(Nemesis):
    """Majorities-ring grudges, a new one per flip; the stop heals (see the module doc)."""

    name = "flip-partition"
    fs = frozenset({"start-flip", "flip-partition", "stop-flip"})
    requires = frozenset({NET})

    def __init__(self) -> None:
        self.current: dict[str, set[str]] | None = None

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "stop-flip":
            lifted = self.current
            test.backend.heal_network()
            self.current = None
            return op.complete({"healed": grudge_as_lists(lifted) if lifted else {},
                                "nodes": sorted(n for n, d in (lifted or {}).items() if d)})
        nodes = list(test.node_ids)
        grudge = validate_grudge(majorities_ring(nodes, test.rng), nodes)
        if grudge == self.current and len(nodes) > 2:  # a flip must change something
            grudge = validate_grudge(majorities_ring(nodes, test.rng), nodes)
        test.backend.apply_grudge(grudge)
        self.current = grudge
        value: dict[str, Any] = {"shape": "majorities-ring", "grudge": grudge_as_lists(grudge),
                                 "text": describe(grudge)}
        if not any(grudge.values()):
            value["nodes"] = []
        return op.complete(value)

    def active(self) -> dict[str, list[str]]:
        return {"flipping": [describe(self.current)]} if self.current else {}


class LeaderPauseNemesis(Nemesis):
    """SIGSTOPs the leader (and, with ``isolate``, cuts it off); resume SIGCONTs it, heal reconnects it.

    With ``isolate`` the paused leader wakes up still cut off from its peers, so
    nothing tells it at once that another leader took over while it slept: it
    goes on believing it leads until its own check (if any) says otherwise.
    """

    name = "leader-pause"
    fs = frozenset({"pause-leader", "resume-leader", "heal-leader"})
    requires = frozenset({PAUSE})

    def __init__(self, isolate: bool = True) -> None:
        self.isolate = isolate
        if isolate:
            self.requires = frozenset({PAUSE, NET})
        self.paused: list[str] = []
        self.grudge: dict[str, set[str]] | None = None

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "heal-leader":
            lifted = self.grudge
            if self.isolate:
                test.backend.heal_network()
            self.grudge = None
            return op.complete({"healed": grudge_as_lists(lifted) if lifted else {},
                                "nodes": sorted(n for n, d in (lifted or {}).items() if d)})
        if op.f == "resume-leader":
            resumed = [n for n in test.node_ids if n in self.paused and test.backend.node_state(n) == "paused"]
            for n in resumed:
                test.backend.resume(n)
            self.paused = []
            return op.complete({"nodes": resumed})
        value: dict[str, Any] = {"targets": "leader"}
        up = [n for n in test.node_ids if test.backend.node_state(n) == "up"]
        if not up:
            return op.complete({**value, "nodes": [], "note": "no node is up"})
        leader = _leader_or_any(test, value, up)
        if self.isolate:
            grudge = complete_grudge([{leader}, set(test.node_ids) - {leader}])
            test.backend.apply_grudge(grudge)
            self.grudge = grudge
            value.update(isolated=leader, grudge=grudge_as_lists(grudge), text=describe(grudge))
        test.backend.pause(leader)
        self.paused.append(leader)
        value["nodes"] = [leader]
        return op.complete(value)

    def active(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.paused:
            out["paused"] = list(self.paused)
        if self.grudge:
            out["leader cut off"] = [describe(self.grudge)]
        return out


class KillClusterNemesis(Nemesis):
    """Kills every node; restarts them all but the old leader, which comes back ``lag`` s later."""

    name = "kill-cluster"
    fs = frozenset({"kill-cluster", "restart-cluster", "restart-leader"})
    requires = frozenset({KILL})

    def __init__(self, tail: float = 0.3) -> None:
        self.tail = tail
        self.killed: list[str] = []
        self.held: str | None = None

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "kill-cluster":
            value: dict[str, Any] = {}
            up = [n for n in test.node_ids if n not in self.killed]
            leader = _leader_or_any(test, value, up) if up else None
            # The followers first: the leader, alone for ``tail`` s, appends the writes
            # its clients send (never committed) before it dies too.
            for n in [n for n in up if n != leader] + ([leader] if leader else []):
                if n == leader and self.tail > 0:
                    time.sleep(self.tail)
                test.backend.kill(n)
                self.killed.append(n)
            self.held = leader
            value.update(nodes=up, leader=leader)
            return op.complete(value)
        if op.f == "restart-cluster":
            first = [n for n in test.node_ids if n in self.killed and n != self.held]
            for n in first:
                test.backend.restart(n)
            self.killed = [n for n in self.killed if n not in first]
            return op.complete({"nodes": first, "held_back": self.held})
        rest = [n for n in test.node_ids if n in self.killed]
        for n in rest:
            test.backend.restart(n)
        self.killed, self.held = [], None
        return op.complete({"nodes": rest})

    def active(self) -> dict[str, list[str]]:
        return {"killed": list(self.killed)} if self.killed else {}


# -- generators ----------------------------------------------------------------------


def hold_cycle(start: FaultOp, stop: FaultOp, hold: Callable[[], float],
               gap: Callable[[], float]) -> Generator:
    """start, ``hold()`` seconds, stop, ``gap()`` seconds, again (both drawn per cycle)."""
    return cycle(lambda: seq(once(start), sleep(hold()), once(stop), sleep(gap())))


def _jitter(rng: random.Random, mean: float) -> Callable[[], float]:
    return lambda: mean * rng.uniform(0.5, 1.5)


# -- packages ------------------------------------------------------------------------


def leader_clock_package(options: PackageOptions) -> NemesisPackage:
    """Isolate the leader and step its wall clock (back/forward) together; targets raft lease-without-bound."""
    s = options.settings
    nem = LeaderClockNemesis(float(s.get("skew", 5.0)), str(s.get("direction", "both")))
    hold, gap = float(s.get("hold", 3.0)), options.interval

    def gen(rng: random.Random, interval: float) -> Generator:
        return hold_cycle(FaultOp("start-leader-clock"), FaultOp("stop-leader-clock"),
                          lambda: hold, _jitter(rng, gap))

    return NemesisPackage("leader-clock", nem, (("start-leader-clock", "stop-leader-clock"),),
                          (FaultOp("stop-leader-clock"),), ("leader",), generator=gen)


leader_clock_package.plugin_options = (  # type: ignore[attr-defined]
    Option("skew", float, 5.0, "seconds the isolated leader's wall clock is stepped by"),
    Option("direction", str, "both", "back, forward, or both (alternating, back first)", DIRECTIONS),
    Option("hold", float, 3.0, "seconds the leader stays isolated and skewed"),
)


def kill_elected_package(options: PackageOptions) -> NemesisPackage:
    """Kill each leader right after its election (restart the last one meanwhile); targets vote/ack/commit bugs."""
    s = options.settings
    down, wait = float(s.get("down", 1.0)), float(s.get("wait", 3.0))

    def gen(rng: random.Random, interval: float) -> Generator:
        return hold_cycle(FaultOp("kill-elected"), FaultOp("restart-elected"), _jitter(rng, down),
                          lambda: 0.0)

    return NemesisPackage("kill-elected", KillElectedNemesis(wait), (("kill-elected", "restart-elected"),),
                          (FaultOp("restart-elected"),), ("leader",), generator=gen)


kill_elected_package.plugin_options = (  # type: ignore[attr-defined]
    Option("down", float, 1.0, "mean seconds a killed leader stays down (0.5x to 1.5x); "
                               "the next leader is killed as soon as it is known after the restart"),
    Option("wait", float, 3.0, "seconds to wait for a leader before killing a random live node"),
)


def flip_partition_package(options: PackageOptions) -> NemesisPackage:
    """Bursts of overlapping-majority partitions flipping faster than an election; targets ballot/election races."""
    s = options.settings
    period, flips = float(s.get("period", 0.3)), int(s.get("flips", 10))
    gap = options.interval

    def burst(rng: random.Random) -> Generator:
        parts: list[Generator] = [once(FaultOp("start-flip"))]
        for _ in range(max(0, flips - 1)):
            parts += [sleep(period * rng.uniform(0.7, 1.3)), once(FaultOp("flip-partition"))]
        parts += [sleep(period), once(FaultOp("stop-flip")), sleep(gap * rng.uniform(0.5, 1.5))]
        return seq(*parts)

    def gen(rng: random.Random, interval: float) -> Generator:
        return cycle(lambda: burst(rng))

    return NemesisPackage("flip-partition", FlipPartitionNemesis(),
                          (("start-flip", "stop-flip"), ("flip-partition", "stop-flip")),
                          (FaultOp("stop-flip"),), ("majorities-ring",), generator=gen)


flip_partition_package.plugin_options = (  # type: ignore[attr-defined]
    Option("period", float, 0.3, "mean seconds between flips (keep it under the election timeout)"),
    Option("flips", int, 10, "grudges per burst"),
)


def leader_pause_package(options: PackageOptions) -> NemesisPackage:
    """Pause the leader longer than a lease or election timeout; it wakes up cut off; targets stale-read."""
    s = options.settings
    seconds, cutoff, gap = float(s.get("seconds", 2.0)), float(s.get("cutoff", 1.5)), options.interval
    isolate = bool(s.get("isolate", True))

    def one(rng: random.Random) -> Generator:
        parts: list[Generator] = [once(FaultOp("pause-leader")), sleep(seconds), once(FaultOp("resume-leader"))]
        if isolate:
            parts += [sleep(cutoff), once(FaultOp("heal-leader"))]
        return seq(*parts, sleep(gap * rng.uniform(0.5, 1.5)))

    def gen(rng: random.Random, interval: float) -> Generator:
        return cycle(lambda: one(rng))

    return NemesisPackage("leader-pause", LeaderPauseNemesis(isolate), (("pause-leader", "resume-leader"),),
                          (FaultOp("resume-leader"), FaultOp("heal-leader")), ("leader",), generator=gen)


leader_pause_package.plugin_options = (  # type: ignore[attr-defined]
    Option("seconds", float, 2.0, "seconds the leader stays paused (longer than any lease or election timeout)"),
    Option("isolate", bool, True, "cut the leader off from its peers while paused, and for `cutoff` s after"),
    Option("cutoff", float, 1.5, "seconds the resumed leader stays cut off (with isolate)"),
)


def kill_cluster_package(options: PackageOptions) -> NemesisPackage:
    """Kill every node; restart all but the old leader, then it `lag` s later; targets raft volatile-vote."""
    s = options.settings
    down, lag, gap = float(s.get("down", 0.5)), float(s.get("lag", 1.5)), options.interval

    def one(rng: random.Random) -> Generator:
        return seq(once(FaultOp("kill-cluster")), sleep(down), once(FaultOp("restart-cluster")), sleep(lag),
                   once(FaultOp("restart-leader")), sleep(gap * rng.uniform(0.5, 1.5)))

    def gen(rng: random.Random, interval: float) -> Generator:
        return cycle(lambda: one(rng))

    return NemesisPackage("kill-cluster", KillClusterNemesis(float(s.get("tail", 0.3))), (("kill-cluster", "restart-leader"),),
                          (FaultOp("restart-cluster"), FaultOp("restart-leader")), ("all",), generator=gen)


kill_cluster_package.plugin_options = (  # type: ignore[attr-defined]
    Option("down", float, 0.5, "seconds every node stays down"),
    Option("lag", float, 1.5, "seconds the old leader stays down after the others restart"),
    Option("tail", float, 0.3, "seconds the leader lives on alone after its followers were killed"),
)
