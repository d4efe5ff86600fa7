"""``set``: add unique elements to a few sets, read them back at the end.

Plan: ``add`` (90%) of an element unique in the run to one of ``keys`` sets,
or ``read`` (10%) of a set. On the wire a set is a list: ``add`` is the
node's ``append``. After the faults are healed every set is read once more
(the final reads, retried until ok).

Check: :func:`jepsenlike.checkers.set_full.check_set` -- elements acknowledged
but missing from the final read are *lost*; elements read that nobody added
are *unexpected*; acknowledged elements missing from a read that began after
the add completed are *stale* reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from jepsenlike.checkers.result import Result
from jepsenlike.checkers.set_full import check_set
from jepsenlike.history import History
from jepsenlike.workloads.base import Invocation, PlanParams, Workload, unique_value


class SetWorkload(Workload):
    name = "set"
    description = "add unique elements, then final reads; reports lost and unexpected elements"
    model = "set"

    def plan(self, worker: int, params: PlanParams, rng: random.Random) -> Iterator[Invocation]:
        k = 0
        while True:
            key = rng.randrange(params.keys)
            if rng.random() < 0.1:
                yield Invocation("read", key, None)
            else:
                yield Invocation("add", key, unique_value(worker, k, params))
            k += 1

    def request(self, inv: Invocation) -> tuple[str, Any, Any]:
        if inv.f == "add":
            return "append", inv.key, inv.value
        return inv.f, inv.key, inv.value

    def completion_value(self, inv: Invocation, completion: dict[str, Any]) -> Any:
        if inv.f == "read":
            if completion.get("type") == "ok":
                return completion.get("value")  # as the system said it: null is the empty set
            return None
        return inv.value

    def final_ops(self, keys: list[Any]) -> list[Invocation]:
        return [Invocation("read", k, None) for k in sorted(keys, key=repr)]

    def missing_evidence(self, history: History, test: dict[str, Any] | None = None) -> list[str]:
        from jepsenlike.evidence import set_missing

        phases = (test or {}).get("phases")
        final = phases.get("final") if isinstance(phases, dict) else None
        return set_missing(history, final if isinstance(final, int) else None)

    def shape_errors(self, history: History) -> list[str]:
        from jepsenlike.evidence import set_shape_errors

        return set_shape_errors(history)

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        final_from = None
        if test and isinstance(test.get("phases"), dict):
            final_from = test["phases"].get("final")
        return check_set(history, final_from_ns=final_from)
