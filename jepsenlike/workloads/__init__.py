"""Workloads by name: ``register``, ``append``, ``set``."""

from __future__ import annotations

from collections.abc import Callable

from jepsenlike.errors import ConfigError
from jepsenlike.workloads.base import Invocation, PlanParams, Workload

__all__ = ["WORKLOADS", "Invocation", "PlanParams", "Workload", "get_workload"]


def _register(**kw: object) -> Workload:
    from jepsenlike.workloads.register import RegisterWorkload

    return RegisterWorkload(**kw)  # type: ignore[arg-type]


def _append(**kw: object) -> Workload:
    from jepsenlike.workloads.append import AppendWorkload

    return AppendWorkload(**kw)  # type: ignore[arg-type]


def _set(**kw: object) -> Workload:
    from jepsenlike.workloads.set import SetWorkload

    return SetWorkload()


WORKLOADS: dict[str, Callable[..., Workload]] = {"register": _register, "append": _append, "set": _set}


def get_workload(name: str, check_timeout: float | None = 60.0) -> Workload:
    """The named workload. Raises ConfigError listing the available ones."""
    if name not in WORKLOADS:
        raise ConfigError(f"--workload: unknown workload {name!r}; available: {', '.join(WORKLOADS)}")
    return WORKLOADS[name](check_timeout=check_timeout)
