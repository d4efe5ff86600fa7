"""Checkers by name: the ``jepsenlike.checkers`` entry points, and the built-in ones.

A checker is any object (or class with a no-argument constructor) with a
``name``, a one-line ``description`` and ``check(history, test) -> Result``,
where ``test`` is the run's ``test.json`` document (config, phases, ...).
``--checkers NAME,...`` runs these in addition to the workload's own checker;
the verdicts merge (false > unknown > true). The built-ins below are
registered in jepsenlike's own ``pyproject.toml`` exactly as a plugin's are;
:data:`REGISTRY` reads the group (:mod:`jepsenlike.registry`). A checker
class that declares ``plugin_options`` is made with ``settings=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.result import UNKNOWN, Result
from jepsenlike.checkers.set_full import check_set
from jepsenlike.checkers.specs import get_spec
from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.history import History
from jepsenlike.registry import Registry
from jepsenlike.workloads import get_workload


def _check_checker(obj: Any) -> str | None:
    check = getattr(obj, "check", None)
    if not callable(check):
        return "a checker needs a check(history, test) method returning a Result"
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        return "a checker needs a non-empty name attribute"
    return None


REGISTRY = Registry("checker", "jepsenlike.checkers", "--checkers", _check_checker, "checkers")
"""Every checker, by name."""


def make_checker(name: str, plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """The named checker, ready to ``check`` (a class is instantiated, with its settings).

    Raises:
        ConfigError: unknown name.
        PluginError: it fails to load, to start, or does not fit the interface.
    """
    plugin = REGISTRY.load(name)
    obj = plugin.obj
    if not isinstance(obj, type):
        return obj
    kwargs = {"settings": plugin.settings(plugin_options)} if plugin.options else {}
    return REGISTRY.instantiate(plugin, obj, **kwargs)


class LinearizableChecker:
    """Linearizability search (WGL) per key, with the sequential model of the run's workload."""

    name = "linearizable"
    description = "linearizability search (WGL) per key with the workload's model (e.g. cas-register)"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        config = (test or {}).get("config") or {}
        timeout = float(config.get("check_timeout") or 60.0)
        model = _workload_model(config.get("workload"))
        if model is None:
            why = f"workload {config.get('workload')!r} declares no sequential model to check against"
            return Result(UNKNOWN, {"error": why}, why)
        return check_linearizable(history, get_spec(model), timeout=timeout)


def _workload_model(name: Any) -> str | None:
    """The ``model`` the named workload declares (``cas-register`` when the test does not say)."""
    if not name:
        return "cas-register"
    try:
        return get_workload(str(name)).model
    except (ConfigError, PluginError):  # an unknown or broken workload plugin: no model to use
        return None


class ListAppendChecker:
    """Dependency-graph cycle search over list-append transactions."""

    name = "list-append"
    description = "dependency-graph cycle search over list-append transactions (strict serializability)"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        return check_list_append(history)


class SetChecker:
    """Lost, unexpected, stale and duplicated elements of sets, against final reads."""

    name = "set"
    description = "set anomalies: lost, unexpected, stale, duplicated elements"

    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        phases = (test or {}).get("phases") or {}
        return check_set(history, final_from_ns=phases.get("final"))
