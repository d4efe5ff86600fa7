"""Backends by name. ``local`` runs nodes as processes here (or in-process for
``in_process`` systems); ``docker`` runs each node in its own container on a
private bridge network (:mod:`jepsenlike.docker`)."""

from __future__ import annotations

import os
from collections.abc import Callable

from jepsenlike.backends.base import CAPABILITIES, CLOCK, KILL, NET, PAUSE, Backend, NodeStartError
from jepsenlike.errors import ConfigError
from jepsenlike.systems.base import System

__all__ = [
    "BACKENDS", "CAPABILITIES", "CLOCK", "KILL", "NET", "PAUSE", "Backend", "NodeStartError",
    "backend_capabilities", "backend_refusals", "make_backend",
]

BACKENDS = ("local", "docker")


def _check_name(name: str, system: System) -> None:
    if name not in BACKENDS:
        raise ConfigError(f"--backend: unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    if name == "docker" and system.in_process:
        raise ConfigError(
            f"--backend docker: system {system.name!r} runs inside the harness process and cannot "
            "run in containers; use --backend local, or a system with a node command (raft, paxos)"
        )


def backend_refusals(name: str, system: System, n_nodes: int = 2) -> tuple[frozenset[str], dict[str, str]]:
    """What the named backend can do for ``system`` here, and why not the rest.

    Nothing is started; the answer depends on the machine (libfaketime) and the
    system (in-process systems have no network and no clocks).
    """
    _check_name(name, system)
    if name == "docker":
        from jepsenlike.docker.backend import DockerBackend

        return DockerBackend.capabilities_here(n_nodes)
    if system.in_process:
        from jepsenlike.backends.inprocess import REFUSALS, InProcessBackend

        return InProcessBackend.capabilities, dict(REFUSALS)
    from jepsenlike.backends.local import LocalBackend

    return LocalBackend.capabilities_here(n_nodes)


def backend_capabilities(name: str, system: System, n_nodes: int = 2) -> frozenset[str]:
    """What the named backend can do for ``system``, without starting anything."""
    return backend_refusals(name, system, n_nodes)[0]


def make_backend(
    name: str,
    system: System,
    n_nodes: int,
    run_dir: str | os.PathLike[str],
    *,
    bug: str | None = None,
    seed: int = 0,
    ready_timeout: float = 20.0,
    clocks: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Backend:
    """Build (not start) the named backend for ``system``; ``clocks``: preload clock control.

    ``progress`` receives lines worth showing a person (the docker image build).
    """
    _check_name(name, system)
    if name == "docker":
        from jepsenlike.docker.backend import DockerBackend

        return DockerBackend(system, n_nodes, run_dir, bug=bug, seed=seed,
                             ready_timeout=max(ready_timeout, 30.0), clocks=clocks,
                             progress=progress)
    if system.in_process:
        from jepsenlike.backends.inprocess import InProcessBackend

        return InProcessBackend(system, n_nodes, bug=bug, seed=seed)
    from jepsenlike.backends.local import LocalBackend

    return LocalBackend(system, n_nodes, run_dir, bug=bug, seed=seed, ready_timeout=ready_timeout,
                        clocks=clocks)
