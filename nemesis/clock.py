"""``clock``: skew the wall clocks of nodes -- bump, strobe, drift -- and reset them.

Fault ops (each start op's value is a target spec; see
:mod:`jepsenlike.nemesis.targets`):

* ``bump-clock`` steps each target's clock by its own offset, drawn uniformly
  from ``[-max_skew, +max_skew]`` seconds; completion
  ``{"nodes": [...], "targets": spec, "offsets": {"n2": -3.412}}``. A schedule
  (``jepsenlike run --schedule``) may fix the offset instead: the value
  ``{"target": spec, "delta": seconds}`` steps every target by exactly ``delta``
  (not bounded by ``max_skew``: the schedule chose it);
* ``strobe-clock`` makes each target's clock flip between ``+delta`` and its
  course every ``period`` seconds until reset; completion
  ``{"nodes": [...], "strobe": {"n2": {"delta": 4.1, "period": 0.2}}}``;
* ``drift-clock`` makes each target's clock run at a rate other than 1, drawn
  log-uniformly from ``[1/max_rate, max_rate]`` (and never within 10% of 1);
  completion ``{"nodes": [...], "rates": {"n2": 0.61}}``;
* ``reset-clock`` puts every clock this nemesis touched back on real time;
  completion ``{"nodes": [...reset...]}``.

Only the wall clock moves (``CLOCK_REALTIME``); monotonic clocks stay real, so
the faults test code that trusts wall time (leases, timestamps, TTLs). Needs the
backend capability ``clock``. Its final op is ``reset-clock``.
"""

from __future__ import annotations

import math
from typing import Any

from jepsenlike.backends.base import CLOCK
from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.targets import parse_target_spec, resolve_targets

CLOCK_FAULTS = ("bump", "strobe", "drift")
"""The kinds of clock fault; each is a ``<kind>-clock`` op undone by ``reset-clock``."""
STROBE_PERIODS = (0.05, 0.5)
"""Seconds between strobe flips are drawn from this range."""
STROBE_DURATION = 3600.0
"""A strobe lasts until ``reset-clock`` (this is only a backstop)."""


class ClockNemesis(Nemesis):
    """Drives :class:`~jepsenlike.backends.base.ClockControl` of each target node.

    Args:
        max_skew: largest bump or strobe delta, seconds.
        max_rate: drift rates are drawn from ``[1/max_rate, max_rate]``.
    """

    name = "clock"
    fs = frozenset({"bump-clock", "strobe-clock", "drift-clock", "reset-clock"})
    requires = frozenset({CLOCK})

    def __init__(self, max_skew: float = 10.0, max_rate: float = 2.0) -> None:
        self.max_skew = max_skew
        self.max_rate = max_rate
        self.touched: list[str] = []

    @staticmethod
    def check_value(f: str, value: Any) -> str | None:
        """Why ``value`` is no valid value of a scheduled ``f`` op (None: it is).

        Start ops take a target spec (or nothing: ``one``); ``bump-clock`` also takes
        ``{"target": spec, "delta": seconds}``.
        """
        if f == "reset-clock" or value is None:
            return None
        if isinstance(value, dict) and f == "bump-clock":
            extra = sorted(set(value) - {"target", "delta"})
            if extra:
                return f"unknown key(s) {extra}; expected 'target' and 'delta'"
            delta = value.get("delta")
            if isinstance(delta, bool) or not isinstance(delta, int | float) or not math.isfinite(delta):
                return f"'delta' must be a number of seconds, got {delta!r}"
            value = value.get("target")
            if value is None:
                return None
        if not isinstance(value, str):
            return ("expected a target spec such as 'leader'"
                    + (" or {\"target\": spec, \"delta\": seconds}" if f == "bump-clock" else "")
                    + f", got {value!r}")
        try:
            parse_target_spec(value)
        except ConfigError as e:
            return str(e).removeprefix("--targets: ")
        return None

    def _targets(self, test: NemesisContext, op: FaultOp) -> tuple[list[str], dict[str, Any]]:
        spec = op.value or "one"
        if isinstance(spec, dict):  # a scheduled bump: {"target": spec, "delta": seconds}
            spec = spec.get("target") or "one"
        leader = test.leader() if spec == "leader" else None
        nodes = resolve_targets(spec, test.node_ids, test.rng, leader)
        value: dict[str, Any] = {"nodes": nodes, "targets": spec}
        if spec == "leader" and leader is None:
            value["note"] = "no leader known; chose one node"
        for n in nodes:
            if n not in self.touched:
                self.touched.append(n)
        return nodes, value

    def _skew(self, test: NemesisContext) -> float:
        return round(test.rng.uniform(-self.max_skew, self.max_skew), 3)

    def _rate(self, test: NemesisContext) -> float:
        span = math.log(self.max_rate)
        while True:
            rate = round(math.exp(test.rng.uniform(-span, span)), 3)
            if abs(rate - 1.0) >= 0.1 or self.max_rate < 1.1:
                return rate

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "reset-clock":
            reset = [n for n in test.node_ids if n in self.touched]
            for n in reset:
                test.backend.clock(n).reset()
            self.touched = []
            return op.complete({"nodes": reset})
        nodes, value = self._targets(test, op)
        if op.f == "bump-clock":
            fixed = op.value.get("delta") if isinstance(op.value, dict) else None
            if fixed is not None:
                offsets = {n: round(float(fixed), 3) for n in nodes}
                value["scheduled"] = True
            else:
                offsets = {n: self._skew(test) for n in nodes}
            for n, off in offsets.items():
                test.backend.clock(n).bump(off)
            value["offsets"] = offsets
        elif op.f == "strobe-clock":
            strobe = {n: {"delta": self._skew(test), "period": round(test.rng.uniform(*STROBE_PERIODS), 3)}
                      for n in nodes}
            for n, s in strobe.items():
                test.backend.clock(n).strobe(s["delta"], s["period"], STROBE_DURATION)
            value["strobe"] = strobe
        else:
            rates = {n: self._rate(test) for n in nodes}
            for n, r in rates.items():
                test.backend.clock(n).set_rate(r)
            value["rates"] = rates
        return op.complete(value)

    def active(self) -> dict[str, list[str]]:
        return {"clock skewed": list(self.touched)} if self.touched else {}
