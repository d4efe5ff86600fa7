"""Workloads by name: ``register``, ``append``, ``set``, and ``jepsenlike.workloads`` plugins.

A plugin's entry point names a :class:`~jepsenlike.workloads.base.Workload`
subclass or factory; ``check_timeout=`` is passed when it accepts it.
"""

from __future__ import annotations

from collections.abc import Callable

from jepsenlike.workloads.base import Invocation, PlanParams, Workload

__all__ = ["WORKLOADS", "Invocation", "PlanParams", "Workload", "get_workload", "workload_names"]


def register_workload(**kw: object) -> Workload:
    """Reads, writes and compare-and-set on a few rotating keys; linearizability checked."""
    from jepsenlike.workloads.register import RegisterWorkload

    return RegisterWorkload(**kw)  # type: ignore[arg-type]


def append_workload(**kw: object) -> Workload:
    """Transactions of appends and reads on lists; dependency-graph cycles checked."""
    from jepsenlike.workloads.append import AppendWorkload

    return AppendWorkload(**kw)  # type: ignore[arg-type]


def set_workload(**kw: object) -> Workload:
    """Adds to sets and final reads; lost, stale and unexpected elements checked."""
    from jepsenlike.workloads.set import SetWorkload

    return SetWorkload()


WORKLOADS: dict[str, Callable[..., Workload]] = {
    "register": register_workload, "append": append_workload, "set": set_workload,
}
"""Built-in workloads (also published as ``jepsenlike.workloads`` entry points)."""


def workload_names() -> list[str]:
    """Every name ``--workload`` accepts: built-ins first, then plugins."""
    from jepsenlike.plugins import names

    return names("workloads")


def get_workload(name: str, check_timeout: float | None = 60.0) -> Workload:
    """The named workload.

    Raises:
        ConfigError: unknown name, listing the available ones.
        PluginError: a plugin that fails to load or is not a Workload.
    """
    from jepsenlike.plugins import instantiate, load

    workload = instantiate(load("workloads", name), Workload, check_timeout=check_timeout)
    workload.name = workload.name or name
    return workload
