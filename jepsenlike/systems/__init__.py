"""Systems under test, by name: built-ins plus the ``jepsenlike.systems`` entry points.

A third-party package makes its system available to ``--system NAME`` with::

    [project.entry-points."jepsenlike.systems"]
    mydb = "mydb_jepsen:MyDBSystem"

where ``MyDBSystem`` is a :class:`~jepsenlike.systems.base.System` subclass
(or a zero-argument factory returning an instance). The built-ins are
registered the same way (see :mod:`jepsenlike.plugins`); a name registered by
two distributions is refused, naming both. ``JEPSENLIKE_NO_PLUGINS=1`` keeps
only jepsenlike's own.
See ``docs/testing-your-system.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from jepsenlike.errors import ConfigError
from jepsenlike.systems.base import ContainerRecipe, NodeSpec, System
from jepsenlike.systems.memory import MemorySystem
from jepsenlike.systems.raft import PaxosSystem, RaftSystem

__all__ = ["ContainerRecipe", "NodeSpec", "System", "ENTRY_POINT_GROUP", "get_system", "system_names"]

ENTRY_POINT_GROUP = "jepsenlike.systems"

BUILTIN: dict[str, Callable[[], System]] = {
    "raft": RaftSystem,
    "paxos": PaxosSystem,
    "memory": MemorySystem,
}


def system_names() -> list[str]:
    """Every name ``--system`` accepts: built-ins first, then plugins."""
    from jepsenlike.plugins import names

    return names("systems")


def get_system(name: str) -> System:
    """A fresh instance of the named system.

    Raises:
        ConfigError: the name is unknown, or the system is not available here.
        PluginError: an entry point fails to load or is not a System.
    """
    from jepsenlike.plugins import instantiate, load

    plugin = load("systems", name)
    system = instantiate(plugin, System)
    system.name = system.name or name
    reason = system.unavailable_reason()
    if reason:
        raise ConfigError(f"--system: system {name!r} is not available yet: {reason}")
    return system
