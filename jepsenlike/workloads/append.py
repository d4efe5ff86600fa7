"""``append``: list-append transactions, checked for dependency cycles.

Plan: each op is a ``txn`` of 1-4 micro-ops over the worker's current key
group, each ``["r", k, None]`` or ``["append", k, v]`` with ``v`` unique in
the run, so every read names the exact appends it saw, in order.

Check: :func:`jepsenlike.checkers.graph.check_list_append` (Elle-style
cycles). Its sequential model, for ``--checkers linearizable``, is the
``list-append`` spec.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.checkers.result import Result
from jepsenlike.history import History
from jepsenlike.workloads.base import Invocation, PlanParams, Workload, key_for, unique_value


class AppendWorkload(Workload):
    name = "append"
    description = "list-append transactions over rotating keys; checked for dependency cycles"
    model = "list-append"

    def __init__(self, check_timeout: float | None = 60.0) -> None:
        self.check_timeout = check_timeout

    def plan(self, worker: int, params: PlanParams, rng: random.Random) -> Iterator[Invocation]:
        k = 0
        serial = 0
        while True:
            mops = []
            for _ in range(rng.randint(1, 4)):
                key = key_for(k, params, rng)
                if rng.random() < 0.5:
                    mops.append(["r", key, None])
                else:
                    mops.append(["append", key, unique_value(worker, serial, params)])
                    serial += 1
            yield Invocation("txn", None, mops)
            k += 1

    def completion_value(self, inv: Invocation, completion: dict[str, Any]) -> Any:
        if completion.get("type") == "ok":
            return completion.get("value")  # as the system said it; a wrong shape is reported
        return inv.value

    def missing_evidence(self, history: History, test: dict[str, Any] | None = None) -> list[str]:
        from jepsenlike.evidence import append_missing

        return append_missing(history)

    def shape_errors(self, history: History) -> list[str]:
        from jepsenlike.evidence import append_shape_errors

        return append_shape_errors(history)

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        return check_list_append(history)
