"""Systems under test, by name: built-ins plus the ``jepsenlike.systems`` entry points.

A third-party package makes its system available to ``--system NAME`` with::

    [project.entry-points."jepsenlike.systems"]
    mydb = "mydb_jepsen:MyDBSystem"

where ``MyDBSystem`` is a :class:`~jepsenlike.systems.base.System` subclass
(or a zero-argument factory returning an instance). Built-in names win over
entry points; ``JEPSENLIKE_NO_PLUGINS=1`` skips entry points altogether.
See ``docs/testing-your-system.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import entry_points

from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.systems.base import NodeSpec, System
from jepsenlike.systems.memory import MemorySystem
from jepsenlike.systems.raft import PaxosSystem, RaftSystem

__all__ = ["NodeSpec", "System", "ENTRY_POINT_GROUP", "get_system", "system_names"]

ENTRY_POINT_GROUP = "jepsenlike.systems"

BUILTIN: dict[str, Callable[[], System]] = {
    "raft": RaftSystem,
    "paxos": PaxosSystem,
    "memory": MemorySystem,
}


def _plugins() -> dict[str, object]:
    if os.environ.get("JEPSENLIKE_NO_PLUGINS"):
        return {}
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN}


def system_names() -> list[str]:
    """Every name ``--system`` accepts: built-ins first, then plugins."""
    return [*BUILTIN, *sorted(_plugins())]


def get_system(name: str) -> System:
    """A fresh instance of the named system.

    Raises:
        ConfigError: the name is unknown, or the system is not available here.
        PluginError: an entry point fails to load or is not a System.
    """
    if name in BUILTIN:
        system = BUILTIN[name]()
    else:
        ep = _plugins().get(name)
        if ep is None:
            raise ConfigError(
                f"--system: unknown system {name!r}; available: {', '.join(system_names())}"
            )
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        try:
            factory = ep.load()  # type: ignore[attr-defined]
            system = factory()
        except Exception as e:
            raise PluginError(
                f"system plugin {name!r} ({ep.value}, distribution {dist}) failed to load: "  # type: ignore[attr-defined]
                f"{type(e).__name__}: {e}"
            ) from e
        if not isinstance(system, System):
            raise PluginError(
                f"system plugin {name!r} (distribution {dist}) gave {type(system).__name__}, "
                "not a jepsenlike.systems.base.System subclass instance"
            )
        system.name = system.name or name
    reason = system.unavailable_reason()
    if reason:
        raise ConfigError(f"--system: system {name!r} is not available yet: {reason}")
    return system
