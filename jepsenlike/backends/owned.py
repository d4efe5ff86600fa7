"""Owned faults: several nemeses on one backend, each healing only what it started.

Theory of operation
-------------------
A backend has one network grudge and one clock per node; two nemeses that
call it directly overwrite each other (``heal_network()`` lifts every
grudge, ``clock(n).reset()`` undoes every skew on ``n``). A
:class:`FaultLedger` sits between the nemeses and the backend and keeps, per
*owner* (a nemesis name):

* its grudge. The backend is given the union of every owner's grudge (``X in
  grudge[Y]`` if any owner has it); an owner's ``heal_network()`` removes only
  its own grudge, and the backend is healed for real when no grudge is left;
* per node, its clock state: the sum of its bumps, its rate and its strobe.
  Bumps and rates are applied to the real clock as they come (offsets add,
  rates multiply); an owner's ``reset()`` resets the real clock and re-applies
  what the other owners still hold on that node (their offsets, the product of
  their rates, the latest strobe). Drift already accumulated at a reset is not
  kept: the clock restarts from the others' offsets.

:meth:`FaultLedger.view` gives an owner a backend view (:class:`OwnedBackend`)
that behaves like the backend except for these calls. The runner hands each
nemesis such a view (see :class:`~jepsenlike.nemesis.core.Composed`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Grudge = dict[str, set[str]]


@dataclass
class _ClockHold:
    offset: float = 0.0
    rate: float = 1.0
    strobe: tuple[float, float, float] | None = None
    seq: int = 0

    @property
    def empty(self) -> bool:
        return self.offset == 0.0 and self.rate == 1.0 and self.strobe is None


class FaultLedger:
    """Who holds which grudge and clock change; applies their composition to ``backend``."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.grudges: dict[str, Grudge] = {}
        self.clocks: dict[str, dict[str, _ClockHold]] = {}
        self._lock = threading.RLock()
        self._seq = 0

    def view(self, owner: str) -> OwnedBackend:
        """The backend as ``owner`` sees it."""
        return OwnedBackend(self, owner)

    # -- network ---------------------------------------------------------------

    def union(self) -> Grudge:
        out: Grudge = {}
        for g in self.grudges.values():
            for node, drops in g.items():
                out.setdefault(node, set()).update(drops)
        return out

    def set_grudge(self, owner: str, grudge: Mapping[str, Iterable[str]] | None) -> None:
        with self._lock:
            if grudge is None or not any(grudge.values()):
                self.grudges.pop(owner, None)
            else:
                self.grudges[owner] = {n: set(d) for n, d in grudge.items()}
            union = self.union()
            if any(union.values()):
                self.backend.apply_grudge(union)
            else:
                self.backend.heal_network()

    # -- clocks ----------------------------------------------------------------

    def _hold(self, node: str, owner: str) -> _ClockHold:
        return self.clocks.setdefault(node, {}).setdefault(owner, _ClockHold())

    def bump(self, node: str, owner: str, seconds: float) -> None:
        with self._lock:
            self.backend.clock(node).bump(seconds)
            self._hold(node, owner).offset += seconds

    def set_rate(self, node: str, owner: str, rate: float) -> None:
        with self._lock:
            hold = self._hold(node, owner)
            hold.rate = rate
            self.backend.clock(node).set_rate(self._rate(node))

    def strobe(self, node: str, owner: str, delta: float, period: float, duration: float) -> None:
        with self._lock:
            self._seq += 1
            hold = self._hold(node, owner)
            hold.strobe, hold.seq = (delta, period, duration), self._seq
            self.backend.clock(node).strobe(delta, period, duration)

    def reset(self, node: str, owner: str) -> None:
        """Undo ``owner``'s changes to ``node``'s clock; the others' stay."""
        with self._lock:
            holds = self.clocks.get(node, {})
            holds.pop(owner, None)
            clock = self.backend.clock(node)
            clock.reset()
            others = [h for h in holds.values() if not h.empty]
            offset = sum(h.offset for h in others)
            if offset:
                clock.bump(offset)
            rate = self._rate(node)
            if rate != 1.0:
                clock.set_rate(rate)
            strobes = [h for h in others if h.strobe is not None]
            if strobes:
                clock.strobe(*max(strobes, key=lambda h: h.seq).strobe)  # type: ignore[misc]

    def _rate(self, node: str) -> float:
        rate = 1.0
        for h in self.clocks.get(node, {}).values():
            rate *= h.rate
        return rate


class OwnedClock:
    """One node's clock as one owner drives it (the :class:`ClockControl` protocol)."""

    def __init__(self, ledger: FaultLedger, owner: str, node: str) -> None:
        self.ledger, self.owner, self.node = ledger, owner, node

    def bump(self, seconds: float) -> None:
        self.ledger.bump(self.node, self.owner, seconds)

    def set_rate(self, rate: float) -> None:
        self.ledger.set_rate(self.node, self.owner, rate)

    def strobe(self, delta: float, period: float, duration: float) -> None:
        self.ledger.strobe(self.node, self.owner, delta, period, duration)

    def reset(self) -> None:
        self.ledger.reset(self.node, self.owner)


class OwnedBackend:
    """The backend as one owner sees it: grudges and clocks are owned, the rest passes through."""

    def __init__(self, ledger: FaultLedger, owner: str) -> None:
        self._ledger, self._owner = ledger, owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger.backend, name)

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        self._ledger.set_grudge(self._owner, grudge)

    def heal_network(self) -> None:
        self._ledger.set_grudge(self._owner, None)

    def clock(self, node_id: str) -> OwnedClock:
        self._ledger.backend.clock(node_id)  # raises as the backend would, when it has no clock
        return OwnedClock(self._ledger, self._owner, node_id)
