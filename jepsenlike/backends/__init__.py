"""Backends by name. ``local`` runs nodes as processes here (or in-process for
``in_process`` systems); ``docker`` arrives in a later issue."""

from __future__ import annotations

import os

from jepsenlike.backends.base import CAPABILITIES, KILL, PAUSE, Backend, NodeStartError
from jepsenlike.errors import ConfigError
from jepsenlike.systems.base import System

__all__ = [
    "BACKENDS", "CAPABILITIES", "KILL", "PAUSE", "Backend", "NodeStartError",
    "backend_capabilities", "make_backend",
]

BACKENDS = ("local",)


def backend_capabilities(name: str, system: System) -> frozenset[str]:
    """What the named backend can do for ``system``, without starting anything."""
    if name == "local":
        from jepsenlike.backends.local import LocalBackend

        return LocalBackend.capabilities
    raise ConfigError(f"--backend: unknown backend {name!r}; available: {', '.join(BACKENDS)}")


def make_backend(
    name: str,
    system: System,
    n_nodes: int,
    run_dir: str | os.PathLike[str],
    *,
    bug: str | None = None,
    seed: int = 0,
    ready_timeout: float = 20.0,
) -> Backend:
    """Build (not start) the named backend for ``system``."""
    if name != "local":
        raise ConfigError(f"--backend: unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    if system.in_process:
        from jepsenlike.backends.inprocess import InProcessBackend

        return InProcessBackend(system, n_nodes, bug=bug, seed=seed)
    from jepsenlike.backends.local import LocalBackend

    return LocalBackend(system, n_nodes, run_dir, bug=bug, seed=seed, ready_timeout=ready_timeout)
