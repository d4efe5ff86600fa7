"""``register``: read, write and cas on a few keys, checked for linearizability.

Plan: per op, a key from the worker's current key group (see
:mod:`jepsenlike.workloads.base`) and ``read`` (50%), ``write`` (25%) or
``cas`` (25%). Every written value (a write's value, a cas's new value) is
unique in the run, so a read names the write it saw. A cas compares against
the last value the worker itself saw on that key (``None`` at first), which
makes some cas ops succeed and others fail.

Check: :func:`jepsenlike.checkers.linearizable.check_linearizable` with the
``cas-register`` spec; the search is P-compositional by key.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.result import Result
from jepsenlike.checkers.specs import get_spec
from jepsenlike.history import History
from jepsenlike.workloads.base import Invocation, PlanParams, Workload, key_for, unique_value

CAS_PENDING = "?"  # the cas's old value, filled from observation at invoke time


class RegisterWorkload(Workload):
    name = "register"
    description = "read/write/cas on a few keys; checked per key for linearizability (cas-register)"
    model = "cas-register"

    def __init__(self, check_timeout: float | None = 60.0) -> None:
        self.check_timeout = check_timeout

    def plan(self, worker: int, params: PlanParams, rng: random.Random) -> Iterator[Invocation]:
        k = 0
        while True:
            key = key_for(k, params, rng)
            r = rng.random()
            if r < 0.5:
                yield Invocation("read", key, None)
            elif r < 0.75:
                yield Invocation("write", key, unique_value(worker, k, params))
            else:
                yield Invocation("cas", key, [CAS_PENDING, unique_value(worker, k, params)])
            k += 1

    def resolve(self, inv: Invocation, seen: dict[Any, Any]) -> Invocation:
        if inv.f == "cas":
            return Invocation("cas", inv.key, [seen.get(inv.key), inv.value[1]])
        return inv

    def observe(self, inv: Invocation, completion: dict[str, Any], seen: dict[Any, Any]) -> None:
        if completion.get("type") != "ok":
            return
        if inv.f == "read":
            seen[inv.key] = completion.get("value")
        elif inv.f == "write":
            seen[inv.key] = inv.value
        elif inv.f == "cas":
            seen[inv.key] = inv.value[1]

    def completion_value(self, inv: Invocation, completion: dict[str, Any]) -> Any:
        if inv.f == "read":
            return completion.get("value") if completion.get("type") == "ok" else None
        return inv.value

    def missing_evidence(self, history: History, test: dict[str, Any] | None = None) -> list[str]:
        from jepsenlike.evidence import register_missing

        return register_missing(history)

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        return check_linearizable(history, get_spec(self.model), timeout=self.check_timeout)
