"""Translate a simulated schedule into wall-clock nemesis ops for ``jepsenlike run --schedule``.

How it works
------------
*Time.* The simulator counts ticks; its Raft and Paxos cores time out elections after
:data:`SIM_ELECTION_TICKS` ticks, the reference nodes after ``--election-ticks 50``
ticks of ``--tick-ms 10``. One simulated tick therefore becomes ``tick_seconds =
0.01 * 50 / 10 = 0.05`` s of real time (:data:`DEFAULT_TICK_SECONDS`): one election
timeout maps onto one election timeout, and so do heartbeats, leases and client
timeouts, which the cores count in the same ticks. Clock steps are simulated seconds
(a tick is :data:`~jepsenlike.models.simulator.TICK_NS` = 10 ms of simulated time), so
their deltas scale by the same factor (``tick_seconds / 0.01``, i.e. 5): a step of
-1 s, 100 simulated ticks, becomes -5 s, 100 real ticks' worth of election timeouts.

*Roles.* The schedule is replayed in the simulator while it is translated (it is
deterministic), so each fault's target is known as the simulation resolved it: a
crash, clock step or partition that hit the simulated leader becomes a fault on the
real ``leader`` (whatever its id there), one that hit another node becomes ``one``
(a node chosen by the nemesis; the notes say so, since it may be the leader). A step
whose selector matched no node in the simulation (``crash leader`` with no leader) did
nothing there and is left out here.

*Holding faults.* A fault needs time to act on real processes: a partition is in
place only once its links are confirmed (a fraction of a second), a killed node
takes a second to come back. A heal (``stop-partition``) or restart (``start``) comes
at least :data:`MIN_HOLD_SECONDS` after the fault it ends; when the simulated one
came sooner, it and every later op move later by the difference.

*One instant.* Ops that fall on the same simulated instant commute in the simulation
(nothing is delivered between them); on real processes they fire one after another
while the cluster keeps talking. Clock steps therefore fire inside the instant's cut:
after its partitions and kills, before its heals (a leader whose clock steps back
*before* it is cut off renews its lease from one more acknowledgement in the new time).

*End.* After the last step the simulator heals and restarts everyone
(:meth:`~jepsenlike.models.simulator.Simulator.finish`); the translation does the same
at that time, so the real cluster is not left partitioned longer than the simulated
one.

==================================  ===========================================
simulated step                      nemesis op
==================================  ===========================================
``crash`` node (id or selector)     ``kill`` ``leader`` / ``one`` (role in the sim)
``restart``                         ``start`` (restarts every killed node)
``partition`` isolating the leader  ``start-partition`` ``"leader"``
``partition`` of another one node   ``start-partition`` ``"one"`` (a random node)
``partition`` of several nodes      ``start-partition`` ``"majority"``/``"halves"``
``heal``                            ``stop-partition``
``clock`` node delta                ``bump-clock`` ``{"target": role, "delta":
                                    delta * tick_seconds / 0.01}``
==================================  ===========================================

Steps with no real counterpart -- single messages (``deliver``, ``drop``,
``duplicate``, ``flush``), lossy or reordering rounds, ``compact``, explicit client
ops -- are left out, and :func:`translate` lists them in ``notes``: the real cluster
runs its own workload and its own network, so a failure that depends on them is
timing-dependent and may not reproduce. The output is JSON Lines, one op per line.

*Clients.* :func:`run_command` gives the real clients what the simulated ones have:
the schedule's workload on one key (``--keys 1``) and their timeout
(:data:`~jepsenlike.models.simulator.CLIENT_TIMEOUT` ticks, 0.25 s). With the default
2 s, every worker that sent an op to a node cut off by the partition waits for it
while the failure window (for ``lease-without-bound`` without a clock step: from the
new leader's election to the old lease's end, 0 to ~300 ms) passes unobserved; and
10 workers instead of 5, since at any time some wait out the timeout at the cut-off
node.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jepsenlike.models.simulator import CLIENT_TIMEOUT, TICK_NS

__all__ = [
    "DEFAULT_TICK_SECONDS",
    "MIN_HOLD_SECONDS",
    "client_timeout",
    "run_command",
    "translate",
    "write_run_schedule",
]

#: election timeout of the simulated Raft and Paxos cores, in ticks
SIM_ELECTION_TICKS = 10
#: the reference nodes' defaults: ``--tick-ms 10`` and ``--election-ticks 50``
REAL_TICK_SECONDS = 0.01
REAL_ELECTION_TICKS = 50
#: real seconds per simulated tick: one election timeout onto one election timeout
DEFAULT_TICK_SECONDS = REAL_TICK_SECONDS * REAL_ELECTION_TICKS / SIM_ELECTION_TICKS
#: simulated seconds per tick (the unit of a ``clock`` step's delta)
SIM_TICK_SECONDS = TICK_NS / 1e9
#: seconds of warm-up before the schedule's time 0 (clients and leader are up)
DEFAULT_START_AT = 5.0
#: shortest real time a partition or kill is held before its heal or restart
MIN_HOLD_SECONDS = 1.0
#: seconds the real run goes on after the last op
TAIL_SECONDS = 5.0
#: client workers of the real run: twice the default, so that the workers waiting out
#: the timeout on ops at a cut-off node leave enough free to see a short window
CONCURRENCY = 10


def client_timeout(tick_seconds: float = DEFAULT_TICK_SECONDS) -> float:
    """The real client timeout matching the simulated clients' (seconds)."""
    return round(CLIENT_TIMEOUT * tick_seconds, 3)


class _Replay:
    """The schedule run step by step in the simulator, to see whom selectors hit."""

    def __init__(self, schedule: dict[str, Any]) -> None:
        from jepsenlike.models.simsearch import load_system
        from jepsenlike.models.simulator import Simulator

        bugs = frozenset(b for b in str(schedule.get("bug") or "").split(",") if b)
        nodes = int(schedule.get("nodes", 3))
        system = load_system(str(schedule["system"]), bugs, nodes)
        self.sim: Any = Simulator(system, nodes=nodes, seed=int(schedule.get("seed", 0)),
                                  workload=schedule.get("workload", "register"))

    def resolve(self, node: Any, s: dict[str, Any]) -> str | None:
        return self.sim._resolve(node, s)

    def role(self, node: str) -> str:
        return "leader" if node == self.sim.leader() else "one"

    def step(self, s: dict[str, Any]) -> bool:
        """Apply ``s``; False once the simulation stopped (the failure, or a bad step)."""
        try:
            self.sim.step(s)
        except (AssertionError, ValueError, RuntimeError):
            return False
        return True


def translate(
    schedule: dict[str, Any],
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    start_at: float = DEFAULT_START_AT,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The nemesis ops for ``schedule`` and notes on what could not be translated."""
    nodes = int(schedule.get("nodes", 3))
    ops: list[dict[str, Any]] = []
    notes: list[str] = []
    scale = tick_seconds / SIM_TICK_SECONDS
    t = 0  # ticks
    shift = 0.0  # seconds later than the ticks say, to hold faults long enough
    partitioned_at: float | None = None
    killed_at: float | None = None
    try:
        replay: _Replay | None = _Replay(schedule)
    except Exception as e:  # noqa: BLE001 - a system we cannot build: translate by name only
        replay = None
        notes.append(f"could not replay the schedule to see roles ({e}); targets by name only")

    def at() -> float:
        return round(start_at + t * tick_seconds + shift, 3)

    def hold(since: float | None) -> None:
        nonlocal shift
        if since is not None and at() < since + MIN_HOLD_SECONDS:
            shift += since + MIN_HOLD_SECONDS - at()

    def role_of(k: int, s: dict[str, Any], node: Any) -> str | None:
        """``leader``/``one`` for the node ``node`` resolved to in the simulation;
        None when it resolved to nobody (the step did nothing there)."""
        if replay is None:
            if node in ("leader", None):
                return "leader"
            notes.append(f"step {k}: {s.get('do')} of {node!r} became target 'one' (a random node)")
            return "one"
        i = replay.resolve(node, s)
        if i is None:
            notes.append(f"step {k}: {s.get('do')} {node!r} hit no node in the simulation; left out")
            return None
        role = replay.role(i)
        if role == "one":
            notes.append(
                f"step {k}: {s.get('do')} hit {i}, not the leader, in the simulation; "
                "target 'one' (a random node, possibly the leader)"
            )
        return role

    def stop_partition() -> None:
        nonlocal partitioned_at
        if partitioned_at is not None:
            hold(partitioned_at)
            ops.append({"at": at(), "f": "stop-partition", "value": None})
        partitioned_at = None

    for k, s in enumerate(schedule.get("steps", []), 1):
        do = s.get("do")
        if do == "elapse":
            if s.get("loss") or s.get("dup") or s.get("reorder"):
                notes.append(f"step {k}: lossy/duplicating/reordering network not translated")
        elif do == "tick":
            notes.append(f"step {k}: a single node's ticks without delivery not translated")
        elif do == "crash":
            hit = replay.resolve(s.get("node"), s) if replay is not None else None
            if replay is not None and hit is not None and hit not in replay.sim.up():
                notes.append(f"step {k}: crash of {hit}, already down in the simulation; left out")
                role = None
            else:
                role = role_of(k, s, s.get("node"))
            if role is not None:
                ops.append({"at": at(), "f": "kill", "value": role})
                killed_at = at() if killed_at is None else killed_at
        elif do == "restart":
            if killed_at is not None:
                hold(killed_at)
                ops.append({"at": at(), "f": "start", "value": None})
                killed_at = None
                notes.append(f"step {k}: restart became 'start' (restarts every killed node)")
        elif do == "partition":
            isolate = list(s.get("isolate") or [])
            if replay is not None:
                side = sorted({replay.resolve(n, s) for n in isolate} - {None})
                lead = replay.sim.leader()
            else:
                side = ["leader"] if isolate == ["leader"] else isolate
                lead = "leader"
            stop_partition()
            if not side:
                notes.append(f"step {k}: partition of {isolate} isolated nobody in the simulation; a heal")
            else:
                if side == [lead]:
                    shape = "leader"
                elif len(side) == 1:
                    shape = "one"
                    notes.append(f"step {k}: isolating {side[0]} (not the leader) became shape 'one'")
                elif len(side) != nodes - len(side):
                    shape = "majority"
                    notes.append(f"step {k}: isolating {side} became shape 'majority'")
                else:
                    shape = "halves"
                    notes.append(f"step {k}: isolating {side} became shape 'halves'")
                ops.append({"at": at(), "f": "start-partition", "value": shape})
                partitioned_at = at()
        elif do == "heal":
            stop_partition()
        elif do == "clock":
            role = role_of(k, s, s.get("node"))
            if role is not None:
                delta = round(float(s.get("delta", 0.0)) * scale, 3)
                ops.append({"at": at(), "f": "bump-clock", "value": {"target": role, "delta": delta}})
        else:
            notes.append(f"step {k}: {do!r} has no nemesis counterpart; left out")
        if replay is not None and not replay.step(s):
            replay = None  # the simulation failed here; later steps by name only
        if do in ("elapse", "tick"):
            t += int(s.get("ticks", 1))
    # The simulator heals and restarts everyone after the last step.
    stop_partition()
    if killed_at is not None:
        hold(killed_at)
        ops.append({"at": at(), "f": "start", "value": None})
    return _clock_steps_inside_cuts(ops), notes


CUTS = ("start-partition", "kill")
HEALS = ("stop-partition", "start")


def _clock_steps_inside_cuts(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order the ops of one instant so that clock steps fire while the instant's cut is
    in place: after its last partition or kill, before the heals that follow.

    Adjacent clock and partition/crash steps commute in the simulation (neither
    delivers a message), but on real processes the ops fire one after another and the
    cluster talks in between: a leader whose clock is stepped back and *then* cut off
    renews its lease from one more acknowledgement in the new time, which undoes the
    step. Firing the clock step inside the cut keeps what the simulation did.
    """
    out: list[dict[str, Any]] = []
    k = 0
    while k < len(ops):
        j = k
        while j < len(ops) and ops[j]["at"] == ops[k]["at"]:
            j += 1
        group = ops[k:j]
        clocks = [o for o in group if o["f"] == "bump-clock"]
        rest = [o for o in group if o["f"] != "bump-clock"]
        cuts = [n for n, o in enumerate(rest) if o["f"] in CUTS]
        if cuts:
            at = cuts[-1] + 1
        else:
            at = next((n for n, o in enumerate(rest) if o["f"] in HEALS), len(rest))
        out += rest[:at] + clocks + rest[at:]
        k = j
    return out


def write_run_schedule(
    schedule: dict[str, Any],
    path: str | Path,
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    start_at: float = DEFAULT_START_AT,
) -> list[str]:
    """Write the translated ops to ``path`` (JSON Lines); return the notes."""
    ops, notes = translate(schedule, tick_seconds, start_at)
    with open(path, "w", encoding="utf-8") as fh:
        for op in ops:
            fh.write(json.dumps(op, separators=(",", ":")) + "\n")
    return notes


def run_command(
    schedule: dict[str, Any],
    path: str | Path,
    ops: list[dict[str, Any]],
    tick_seconds: float = DEFAULT_TICK_SECONDS,
) -> str:
    """The ``jepsenlike run`` command line that replays ``path`` on real processes.

    The simulated Raft runs lease reads when the bug is ``lease-without-bound``, so
    the real nodes get ``read-mode=lease`` too. The clients run the schedule's
    workload on one key at a time (``--keys 1``), as the simulated ones do, time out
    as they do (:func:`client_timeout`), and are :data:`CONCURRENCY`; the run lasts
    :data:`TAIL_SECONDS` past the last op (at least past the warm-up).
    """
    system = str(schedule.get("system"))
    parts = ["jepsenlike", "run", "--system", system, "--nodes", str(schedule.get("nodes", 3))]
    bug = schedule.get("bug")
    if bug:
        parts += ["--bug", str(bug)]
    if system == "raft" and bug and "lease-without-bound" in str(bug):
        parts += ["--system-options", "read-mode=lease"]
    workload = str(schedule.get("workload") or "register")
    if workload != "register":
        parts += ["--workload", workload]
    last = max((op["at"] for op in ops), default=DEFAULT_START_AT)
    parts += ["--keys", "1", "--concurrency", str(CONCURRENCY),
              "--op-timeout", f"{client_timeout(tick_seconds):g}"]
    parts += ["--schedule", str(path), "--time-limit", str(math.ceil(last + TAIL_SECONDS))]
    return " ".join(parts)
