"""What a system under test says it can take: workloads and fault kinds.

Theory of operation
-------------------
A :class:`~jepsenlike.systems.base.System` may declare two sets:

* ``workloads`` -- the workload names its API supports, e.g.
  ``frozenset({"register", "set", "append"})``. A run asking for another is
  refused before anything starts, with a one-line error
  (:func:`check_workload`): a set workload against a store without appends
  would only produce failed adds and prove nothing.
* ``faults`` -- the fault kinds that act on its nodes, from :data:`FAULT_KINDS`
  (``kill``, ``pause``, ``partition``, ``clock``, ``slow``, ``flaky``). A
  static Go binary reads the clock without libc, so libfaketime cannot move it:
  it would not declare ``clock``.

``None`` (the default of the base class) means *not declared*: everything is
tried, and fault confirmation (:mod:`jepsenlike.confirm`) and the vacuity checks
(:mod:`jepsenlike.evidence`) still catch faults that did not act and runs that
proved nothing.

For faults the rule is :func:`fault_refusal`: a built-in fault kind not in
``faults`` is refused; a plugin nemesis is refused when it needs a backend
capability whose fault kinds the system declares none of (``clock`` needs
``clock``; ``net`` needs one of ``partition``, ``slow``, ``flaky``; ``kill``
and ``pause`` need themselves). A refused fault that the user asked for is
recorded in ``test.json`` (``faults.refused``) and makes the verdict
``unknown``, like one the backend cannot inject. When the user asked for no
particular faults (``--nemesis`` is the default set), :func:`plan_faults` drops
the ones the system cannot take instead, and the run says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jepsenlike.errors import ConfigError

FAULT_KINDS = ("kill", "pause", "partition", "clock", "slow", "flaky")
"""The built-in fault kinds a system can declare in ``System.faults``."""

_KINDS_FOR_CAPABILITY = {"kill": {"kill"}, "pause": {"pause"}, "clock": {"clock"},
                         "net": {"partition", "slow", "flaky"}}


def declared(system: Any, attr: str) -> frozenset[str] | None:
    """``system.workloads`` or ``system.faults`` as a frozenset, or None when not declared."""
    value = getattr(system, attr, None)
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(value)


def check_workload(system: Any, workload: str) -> None:
    """Refuse a workload the system does not declare.

    Raises:
        ConfigError: one line naming the system, the workload, and what it supports.
    """
    supported = declared(system, "workloads")
    if supported is not None and workload not in supported:
        raise ConfigError(
            f"--workload: system {system.name!r} does not support workload {workload!r}; "
            f"it supports: {', '.join(sorted(supported)) or '(none)'}"
        )


def fault_refusal(system: Any, name: str, requires: Iterable[str] = ()) -> str | None:
    """Why ``system`` cannot take the fault package ``name`` (needing ``requires``), or None."""
    faults = declared(system, "faults")
    if faults is None:
        return None
    takes = ", ".join(sorted(faults)) or "none"
    if name in FAULT_KINDS:
        if name not in faults:
            return f"system {system.name!r} does not take {name} faults (it declares: {takes})"
        return None
    for cap in sorted(set(requires)):
        kinds = _KINDS_FOR_CAPABILITY.get(cap)
        if kinds is not None and not kinds & faults:
            return (f"nemesis {name!r} needs {cap}, and system {system.name!r} takes none of "
                    f"{', '.join(sorted(kinds))} (it declares: {takes})")
    return None


def plan_faults(system: Any, names: Sequence[str], default: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The fault names to build, and the dropped ones with why.

    Only the default set is trimmed (``names == default``): faults a user asked
    for by name are kept, so that a refusal makes the run ``unknown``.
    """
    if tuple(names) != tuple(default):
        return list(names), {}
    kept, dropped = [], {}
    for name in names:
        why = fault_refusal(system, name)
        if why:
            dropped[name] = why
        else:
            kept.append(name)
    return kept, dropped
