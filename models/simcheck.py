"""Check a simulated history with the project's checkers (the one place that calls them).

The simulator records histories in the project's JSONL format; this module turns
them into a :class:`~jepsenlike.history.History` and runs the checker that fits the
workload: WGL linearizability against the ``cas-register`` model for the register
workload (read/write/cas on one key), the graph (Elle-style) checker at
strict-serializable for list-append transactions. Keeping every call to the checkers
here means a renamed checker entry point is fixed in one place.
"""

from __future__ import annotations

from typing import Any

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.result import Result
from jepsenlike.checkers.specs import get_spec
from jepsenlike.history import History

__all__ = ["check_history", "checker_name"]


def checker_name(workload: str) -> str:
    """The checker :func:`check_history` runs for ``workload``."""
    return "linearizable/cas-register" if workload == "register" else "list-append/graph"


def check_history(ops: list[dict[str, Any]], workload: str, timeout: float = 10.0) -> Result:
    """Check ``ops`` (history dicts); valid True, False or "unknown"."""
    history = History.from_ops(ops, source="<simulated history>")
    if workload == "register":
        return check_linearizable(history, get_spec("cas-register"), timeout=timeout)
    return check_list_append(
        history, consistency_model="strict-serializable", cycle_search_timeout=timeout
    )
