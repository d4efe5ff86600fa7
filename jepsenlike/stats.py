"""Run statistics from a history: counts, latencies, availability per phase.

Everything here is computed from the history alone (plus the phase
boundaries stored with the run), so ``jepsenlike analyze`` gets the same
figures as the run did.

* ``counts``: completions per ``f`` and type (``ok``/``fail``/``info``), plus
  invocations that never completed;
* ``latency_ms``: quantiles (p50, p90, p99, max) of invoke-to-completion time
  per ``f``, over ``ok`` completions;
* ``availability``: per phase, the share of ops invoked in that phase that
  completed ``ok`` (fail and info count against);
* ``faults``: each nemesis completion: when, what, which nodes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from jepsenlike.history import History

PHASE_ORDER = ("warmup", "chaos", "recover", "final")


def quantiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99, 1.0)) -> dict[str, float]:
    """Nearest-rank quantiles, keyed ``p50``.. and ``max``; empty input gives {}."""
    if not values:
        return {}
    s = sorted(values)
    out = {}
    for q in qs:
        name = "max" if q == 1.0 else f"p{q * 100:g}"
        out[name] = round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))], 3)
    return out


def phase_of(t_ns: int, phases: dict[str, int] | None) -> str:
    """The name of the phase containing ``t_ns`` (phases: name -> start ns)."""
    if not phases:
        return "all"
    current = "warmup"
    for name in PHASE_ORDER:
        start = phases.get(name)
        if start is not None and t_ns >= start:
            current = name
    return current


def compute_stats(history: History, phases: dict[str, int] | None = None) -> dict[str, Any]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    lat: dict[str, list[float]] = defaultdict(list)
    avail: dict[str, Counter[str]] = defaultdict(Counter)
    for inv, comp in history.pairs():
        typ = comp.type if comp is not None else "pending"
        counts[inv.f][typ] += 1
        avail[phase_of(inv.time, phases)][typ] += 1
        if comp is not None and comp.type == "ok":
            lat[inv.f].append((comp.time - inv.time) / 1e6)
    availability = {}
    for phase in [*PHASE_ORDER, "all"]:
        c = avail.get(phase)
        if not c:
            continue
        total = sum(c.values())
        availability[phase] = {"ops": total, "ok": c["ok"], "fail": c["fail"], "info": c["info"] + c["pending"],
                               "ok_fraction": round(c["ok"] / total, 4)}
    faults = []
    for op in history.nemesis_ops():
        if op.type != "invoke":
            faults.append({"time_s": round(op.time / 1e9, 3), "f": op.f, "value": op.value,
                           **({"error": op.error} if op.error else {})})
    totals: Counter[str] = Counter()
    for c in counts.values():
        totals.update(c)
    duration = history.ops[-1].time / 1e9 if history.ops else 0.0
    return {
        "ops": sum(totals.values()),
        "totals": dict(totals),
        "ok_per_second": round(totals["ok"] / duration, 1) if duration > 0 else None,
        "counts": {f: dict(c) for f, c in sorted(counts.items())},
        "latency_ms": {f: quantiles(v) for f, v in sorted(lat.items())},
        "availability": availability,
        "faults": faults,
    }
