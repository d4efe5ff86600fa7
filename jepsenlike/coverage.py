"""Fault coverage: did every requested fault fire, how often, and for how long.

Theory of operation
-------------------
A run that asked for a fault and never injected it proves nothing about that
fault, so it must not pass as valid. At the start of a run the runner writes
into ``test.json`` a ``faults`` document::

    {"requested": ["kill", "partition", "clock"],
     "packages": {"kill": {"start": ["kill"], "stop": ["start"], "lane": "main"}, ...},
     "refused":  {"clock": "nemesis 'clock' needs backend capability clock, ...: libfaketime not found ..."}}

:func:`fault_coverage` reads the ``nemesis`` completions of the history (the
file, not memory, so ``jepsenlike analyze`` gets the same answer) and, per
requested fault, counts the start ops that *took effect* -- completed without
an error, did not report an empty node set (``"nodes": []``, e.g. a pause
whose targets were all down), and were not found out of force on a node
(``"unconfirmed"``, written by :mod:`jepsenlike.confirm`, which looks at the
node after each start op) -- and adds up the seconds from each such start
completion to the next stop (or final heal) completion of the same fault.
A fault with any unconfirmed start op gets status ``unconfirmed`` and the
first reason (``clock fault on n2 not confirmed: ...``).

:func:`coverage_verdict` turns that into ``True`` or ``"unknown"`` plus the
reasons: a requested fault that was refused (by the backend or by the system's
declared capabilities), that never took effect, or that was not confirmed on
a node, makes the run ``unknown``, whatever the checker said (an anomaly found
still makes it invalid: false beats unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.history import History


def took_effect(value: Any, error: str | None) -> bool:
    """Whether a fault completion changed anything (and nothing of it was found not in force)."""
    if error:
        return False
    if isinstance(value, Mapping) and value.get("unconfirmed"):
        return False
    return not (isinstance(value, Mapping) and value.get("nodes") == [])


def unconfirmed(value: Any) -> list[str]:
    """The reasons :mod:`jepsenlike.confirm` wrote for targets where the fault was not in force."""
    if not isinstance(value, Mapping) or not isinstance(value.get("unconfirmed"), Mapping):
        return []
    return [str(why) for why in value["unconfirmed"].values()]


def fault_coverage(history: History, faults: Mapping[str, Any], end_ns: int | None = None) -> dict[str, Any]:
    """Per requested fault: ``status`` (fired, never-fired, refused), ``fired``, ``seconds``, ...

    Args:
        history: the run's history.
        faults: the ``faults`` document of ``test.json`` (see the module doc).
        end_ns: when a fault still in force at the end of the history ends
            (default: the last event's time).
    """
    packages: Mapping[str, Any] = faults.get("packages") or {}
    refused: Mapping[str, str] = faults.get("refused") or {}
    requested: Iterable[str] = faults.get("requested") or [*packages, *refused]
    start_of = {f: name for name, p in packages.items() for f in p.get("start", [])}
    stop_of = {f: name for name, p in packages.items() for f in p.get("stop", [])}
    stats = {name: {"fired": 0, "attempts": 0, "seconds": 0.0, "errors": 0, "last_error": None,
                    "confirmed": 0, "unconfirmed": [], "unobservable": 0}
             for name in packages}
    open_at: dict[str, int] = {}
    last = 0
    for op in history.nemesis_ops():
        last = max(last, op.time)
        if op.type == "invoke":
            continue
        if op.f in start_of:
            name = start_of[op.f]
            s = stats[name]
            s["attempts"] += 1
            if op.error:
                s["errors"] += 1
                s["last_error"] = op.error
            s["unconfirmed"].extend(unconfirmed(op.value))
            if took_effect(op.value, op.error):
                s["fired"] += 1
                open_at.setdefault(name, op.time)
                if isinstance(op.value, Mapping) and op.value.get("confirmed"):
                    s["confirmed"] += 1
                if isinstance(op.value, Mapping) and op.value.get("unobservable"):
                    s["unobservable"] += 1
        elif op.f in stop_of:
            name = stop_of[op.f]
            began = open_at.pop(name, None)
            if began is not None:
                stats[name]["seconds"] += (op.time - began) / 1e9
    end = end_ns if end_ns is not None else last
    for name, began in open_at.items():
        stats[name]["seconds"] += max(0, end - began) / 1e9
    out: dict[str, Any] = {}
    for name in requested:
        if name in refused:
            out[name] = {"status": "refused", "fired": 0, "seconds": 0.0, "reason": refused[name]}
            continue
        s = stats.get(name)
        if s is None:
            out[name] = {"status": "never-fired", "fired": 0, "seconds": 0.0,
                         "reason": "no package was built for it"}
            continue
        entry: dict[str, Any] = {"status": "fired" if s["fired"] else "never-fired",
                                 "fired": s["fired"], "seconds": round(s["seconds"], 3),
                                 "attempts": s["attempts"]}
        if s["errors"]:
            entry["errors"] = s["errors"]
            entry["last_error"] = s["last_error"]
        if s["confirmed"]:
            entry["confirmed"] = s["confirmed"]
        if s["unobservable"]:
            entry["unobservable"] = s["unobservable"]
        if s["unconfirmed"]:
            entry["status"] = "unconfirmed"
            entry["unconfirmed"] = len(s["unconfirmed"])
            entry["reason"] = s["unconfirmed"][0] + (
                f" (and {len(s['unconfirmed']) - 1} more)" if len(s["unconfirmed"]) > 1 else "")
        elif not s["fired"]:
            if not s["attempts"]:
                need = faults.get("min_time_limit")
                above = f" above {need:g} s" if isinstance(need, int | float) else ""
                entry["reason"] = ("never scheduled: the chaos phase was too short for every fault to "
                                   f"get a turn; raise --time-limit{above} or lower --nemesis-interval")
            elif s["errors"]:
                entry["reason"] = f"{s['attempts']} attempt(s), none took effect; last error: {s['last_error']}"
            else:
                entry["reason"] = f"{s['attempts']} attempt(s), none took effect (no target was up)"
        out[name] = entry
    return out


def coverage_verdict(coverage: Mapping[str, Mapping[str, Any]]) -> tuple[Any, list[str]]:
    """``(True, [])`` when every requested fault fired, else ``("unknown", reasons)``."""
    reasons = []
    for name, c in coverage.items():
        if c["status"] == "refused":
            reasons.append(f"fault {name!r} was refused: {c['reason']}")
        elif c["status"] == "unconfirmed":
            reasons.append(f"fault {name!r} did not take effect on the node: {c['reason']}")
        elif c["status"] != "fired":
            reasons.append(f"fault {name!r} never fired: {c.get('reason', '')}".rstrip(": "))
    return (UNKNOWN if reasons else True), reasons


def describe_coverage(coverage: Mapping[str, Mapping[str, Any]]) -> str:
    """One line for the summary: ``kill x2 (3.1 s), clock refused, pause never fired``."""
    parts = []
    for name, c in coverage.items():
        if c["status"] == "fired":
            parts.append(f"{name} x{c['fired']} ({c['seconds']:.1f} s)")
        elif c["status"] == "refused":
            parts.append(f"{name} REFUSED")
        elif c["status"] == "unconfirmed":
            parts.append(f"{name} UNCONFIRMED x{c.get('unconfirmed', 0)}"
                         + (f", confirmed x{c['fired']}" if c.get("fired") else ""))
        else:
            parts.append(f"{name} NEVER FIRED")
    return ", ".join(parts)
