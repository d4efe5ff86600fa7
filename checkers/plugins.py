"""The built-in checkers, as ``jepsenlike.checkers`` plugins see them.

A checker is any object (or class with a no-argument constructor) with a
``name``, a one-line ``description`` and ``check(history, test) -> Result``,
where ``test`` is the run's ``test.json`` document (config, phases, ...).
``--checkers NAME,...`` runs these in addition to the workload's own checker;
the verdicts merge (false > unknown > true).
"""

from __future__ import annotations

from typing import Any

from jepsenlike.checkers.result import UNKNOWN, Result
from jepsenlike.history import History


class LinearizableChecker:
    """Linearizability search (WGL) of a register history, per key, cas-register spec."""

    name = "linearizable"
    description = "linearizability search (WGL) per key with the cas-register spec"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        from jepsenlike.checkers.linearizable import check_linearizable
        from jepsenlike.checkers.specs import get_spec

        timeout = float(((test or {}).get("config") or {}).get("check_timeout") or 60.0)
        return check_linearizable(history, get_spec("cas-register"), timeout=timeout)


class ListAppendChecker:
    """Dependency-graph cycle search over list-append transactions."""

    name = "list-append"
    description = "dependency-graph cycle search over list-append transactions (strict serializability)"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        try:
            from jepsenlike.checkers.graph import check_list_append
        except ImportError as e:
            return Result(UNKNOWN, {"error": str(e)}, f"graph checker not available: {e}")
        return check_list_append(history)


class SetChecker:
    """Lost, unexpected, stale and duplicated elements of sets, against final reads."""

    name = "set"
    description = "set anomalies: lost, unexpected, stale, duplicated elements"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        from jepsenlike.checkers.set_full import check_set

        phases = (test or {}).get("phases") or {}
        return check_set(history, final_from_ns=phases.get("final"))


CHECKERS: dict[str, Any] = {
    "linearizable": LinearizableChecker,
    "list-append": ListAppendChecker,
    "set": SetChecker,
}
"""Built-in checkers by name (also published as ``jepsenlike.checkers`` entry points)."""
