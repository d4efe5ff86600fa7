"""Workloads by name: the ``jepsenlike.workloads`` entry points.

The built-ins (``register``, ``append``, ``set``) are registered in
jepsenlike's own ``pyproject.toml`` exactly as a plugin's are. An entry point
names a :class:`~jepsenlike.workloads.base.Workload` subclass or factory;
``check_timeout=`` is passed when it accepts it, and ``settings=`` (its typed
options, see :mod:`jepsenlike.registry`) when it declares ``plugin_options``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jepsenlike.registry import Registry, class_or_factory
from jepsenlike.workloads.base import Invocation, PlanParams, Workload

__all__ = ["REGISTRY", "Invocation", "PlanParams", "Workload", "get_workload", "workload_names"]

REGISTRY = Registry("workload", "jepsenlike.workloads", "--workload",
                    class_or_factory(Workload, "Workload"), "workload")
"""Every workload, by name."""


def workload_names() -> list[str]:
    """Every name ``--workload`` accepts: jepsenlike's own first, then plugins."""
    return REGISTRY.names()


def get_workload(name: str, check_timeout: float | None = 60.0,
                 plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> Workload:
    """The named workload.

    Raises:
        ConfigError: unknown name, listing the available ones.
        PluginError: a plugin that fails to load or is not a Workload.
    """
    plugin = REGISTRY.load(name)
    kwargs: dict[str, Any] = {"check_timeout": check_timeout}
    if plugin.options:
        kwargs["settings"] = plugin.settings(plugin_options)
    workload = REGISTRY.instantiate(plugin, Workload, **kwargs)
    workload.name = workload.name or name
    return workload
