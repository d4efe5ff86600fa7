"""Systems under test, by name: the ``jepsenlike.systems`` entry points.

A package makes its system available to ``--system NAME`` with::

    [project.entry-points."jepsenlike.systems"]
    mydb = "mydb_jepsen:MyDBSystem"

where ``MyDBSystem`` is a :class:`~jepsenlike.systems.base.System` subclass
(or a factory returning an instance). The built-ins (``raft``, ``paxos``,
``memory``) are registered the same way, in jepsenlike's own
``pyproject.toml``, and nowhere else. :data:`REGISTRY` reads the group and
validates each system as it loads (:mod:`jepsenlike.registry`); a name
registered by two distributions is refused, naming both.
``JEPSENLIKE_NO_PLUGINS=1`` keeps only jepsenlike's own.

A system may declare typed ``plugin_options`` (:class:`~jepsenlike.registry.Option`);
it then receives them as ``settings=`` when it is made.
See ``docs/testing-your-system.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jepsenlike.errors import ConfigError
from jepsenlike.registry import Registry, class_or_factory
from jepsenlike.systems.base import ContainerRecipe, NodeSpec, System

__all__ = ["REGISTRY", "ContainerRecipe", "NodeSpec", "System", "get_system", "system_names"]

REGISTRY = Registry("system", "jepsenlike.systems", "--system", class_or_factory(System, "System"),
                    "system")
"""Every system, by name."""


def system_names() -> list[str]:
    """Every name ``--system`` accepts: jepsenlike's own first, then plugins."""
    return REGISTRY.names()


def get_system(name: str, plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> System:
    """A fresh instance of the named system (given its settings when it declares options).

    Raises:
        ConfigError: the name is unknown, or the system is not available here.
        PluginError: an entry point fails to load or is not a System.
    """
    plugin = REGISTRY.load(name)
    kwargs = {"settings": plugin.settings(plugin_options)} if plugin.options else {}
    system = REGISTRY.instantiate(plugin, System, **kwargs)
    system.name = system.name or name
    reason = system.unavailable_reason()
    if reason:
        raise ConfigError(f"--system: system {name!r} is not available yet: {reason}")
    return system
