"""Translate a simulated schedule into wall-clock nemesis ops for ``jepsenlike run --schedule``.

How it works: the simulator's time is counted in ticks; the reference nodes tick
every 10 ms and time out elections after 50 ticks, the simulated ones after 10, so by
default one simulated tick is ``tick_seconds = 0.05`` s of real time (one election
timeout maps onto one election timeout). Walking the steps, ``elapse``/``tick`` advance
the clock; each fault step becomes one line ``{"at": seconds, "f": ..., "value": ...}``
at the current time plus ``start_at`` (the real run's warm-up, when its clients and
leader are up):

==================================  ===========================================
simulated step                      nemesis op
==================================  ===========================================
``crash`` node (id or ``leader``)   ``kill`` with that target spec
``restart``                         ``start`` (restarts every killed node)
``partition`` isolate ``[leader]``  ``start-partition`` ``"leader"``
``partition`` of one node id        ``start-partition`` ``"one"`` (a random node)
``partition`` of a minority         ``start-partition`` ``"majority"``
``heal``                            ``stop-partition``
``clock`` node/leader delta         ``bump-clock`` with that target spec (the real
                                    nemesis draws its own offset)
==================================  ===========================================

Steps with no real counterpart -- single messages (``deliver``, ``drop``,
``duplicate``, ``flush``), lossy or reordering rounds, ``compact``, explicit client
ops -- are left out, and :func:`translate` lists them in ``notes``: the real cluster
runs its own workload and its own network, so a failure that depends on them is
timing-dependent and may not reproduce. The output is JSON Lines, one op per line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["run_command", "translate", "write_run_schedule"]

DEFAULT_TICK_SECONDS = 0.05
DEFAULT_START_AT = 5.0


def _target(node: Any) -> str:
    if node in ("leader", None):
        return "leader"
    if node in ("follower", "crashed"):
        return "one"
    return str(node)


def translate(
    schedule: dict[str, Any],
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    start_at: float = DEFAULT_START_AT,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The nemesis ops for ``schedule`` and notes on what could not be translated."""
    nodes = int(schedule.get("nodes", 3))
    ops: list[dict[str, Any]] = []
    notes: list[str] = []
    t = 0  # ticks
    partitioned = False

    def at() -> float:
        return round(start_at + t * tick_seconds, 3)

    for k, s in enumerate(schedule.get("steps", []), 1):
        do = s.get("do")
        if do == "elapse":
            if s.get("loss") or s.get("dup") or s.get("reorder"):
                notes.append(f"step {k}: lossy/duplicating/reordering network not translated")
            t += int(s.get("ticks", 1))
        elif do == "tick":
            notes.append(f"step {k}: a single node's ticks without delivery not translated")
            t += int(s.get("ticks", 1))
        elif do == "crash":
            ops.append({"at": at(), "f": "kill", "value": _target(s.get("node"))})
        elif do == "restart":
            ops.append({"at": at(), "f": "start", "value": None})
        elif do == "partition":
            iso = list(s.get("isolate") or [])
            if iso == ["leader"]:
                shape = "leader"
            elif len(iso) == 1:
                shape = "one"
                notes.append(f"step {k}: isolating {iso[0]} became shape 'one' (a random node)")
            elif len(iso) < nodes / 2 or len(iso) > nodes / 2:
                shape = "majority"
                notes.append(f"step {k}: isolating {iso} became shape 'majority'")
            else:
                shape = "halves"
                notes.append(f"step {k}: isolating {iso} became shape 'halves'")
            if partitioned:
                ops.append({"at": at(), "f": "stop-partition", "value": None})
            ops.append({"at": at(), "f": "start-partition", "value": shape})
            partitioned = True
        elif do == "heal":
            if partitioned:
                ops.append({"at": at(), "f": "stop-partition", "value": None})
            partitioned = False
        elif do == "clock":
            ops.append({"at": at(), "f": "bump-clock", "value": _target(s.get("node"))})
            notes.append(
                f"step {k}: clock delta {s.get('delta')} s; the real bump-clock draws its own "
                "offset within its max skew"
            )
        else:
            notes.append(f"step {k}: {do!r} has no nemesis counterpart; left out")
    return ops, notes


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


def run_command(schedule: dict[str, Any], path: str | Path, ops: list[dict[str, Any]]) -> str:
    """The ``jepsenlike run`` command line that replays ``path`` on real processes.

    The simulated Raft runs lease reads when the bug is ``lease-without-bound``, so
    the real nodes get ``read-mode=lease`` too; the run lasts until 10 s after the
    last fault.
    """
    system = str(schedule.get("system"))
    parts = ["jepsenlike", "run", "--system", system, "--nodes", str(schedule.get("nodes", 3))]
    bug = schedule.get("bug")
    if bug:
        parts += ["--bug", str(bug)]
    if system == "raft" and bug and "lease-without-bound" in str(bug):
        parts += ["--system-options", "read-mode=lease"]
    last = max((op["at"] for op in ops), default=0.0)
    parts += ["--schedule", str(path), "--time-limit", str(int(last + 10))]
    return " ".join(parts)
