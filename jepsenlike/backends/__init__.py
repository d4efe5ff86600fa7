"""Backends by name: the ``jepsenlike.backends`` entry points.

Built in (registered in jepsenlike's own ``pyproject.toml``, as a plugin's
are): ``local`` runs nodes as processes on this host
(:mod:`jepsenlike.backends.local`); ``docker`` runs each node in its own
container on a private bridge network (:mod:`jepsenlike.backends.docker`);
``in-process`` drives a cluster that lives inside the harness
(:mod:`jepsenlike.backends.inprocess`, for the ``memory`` system).

An entry point names a :class:`~jepsenlike.backends.base.Backend` subclass
that has ``capabilities_here(n_nodes) -> (capabilities, refusals)`` and is
built as ``cls(system, n_nodes, run_dir, bug=, seed=, ready_timeout=,
clocks=, progress=)`` (keywords it does not accept are dropped; ``settings=``
is added when it declares ``plugin_options``).

Which system runs where: a system names the backends it runs on
(:attr:`~jepsenlike.systems.base.System.backends`; None: every backend that
starts node commands, i.e. whose ``node_commands`` is true) and the one a run
uses when ``--backend`` is not given (``default_backend``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from jepsenlike.backends.base import CAPABILITIES, CLOCK, KILL, NET, PAUSE, Backend, NodeStartError
from jepsenlike.errors import ConfigError
from jepsenlike.registry import Registry
from jepsenlike.systems.base import System

__all__ = [
    "CAPABILITIES", "CLOCK", "KILL", "NET", "PAUSE", "REGISTRY", "Backend", "NodeStartError",
    "backend_capabilities", "backend_names", "backend_refusals", "make_backend",
]


def _check_backend(obj: Any) -> str | None:
    if not (inspect.isclass(obj) and issubclass(obj, Backend)):
        return f"expected a jepsenlike.backends.base.Backend subclass, got {type(obj).__name__}"
    if inspect.isabstract(obj):
        return f"{obj.__name__} leaves abstract methods unimplemented: {', '.join(sorted(obj.__abstractmethods__))}"
    if not callable(getattr(obj, "capabilities_here", None)):
        return f"{obj.__name__} needs capabilities_here(n_nodes) -> (capabilities, refusals)"
    return None


REGISTRY = Registry("backend", "jepsenlike.backends", "--backend", _check_backend, "backend")
"""Every backend, by name."""


def backend_names() -> list[str]:
    """Every name ``--backend`` accepts: jepsenlike's own first, then plugins."""
    return REGISTRY.names()


def _backend_class(name: str, system: System) -> Any:
    """The named backend's class, once it is known to run ``system``.

    Raises:
        ConfigError: unknown backend, or one the system cannot run on.
    """
    cls = REGISTRY.load(name).obj
    allowed = system.backends
    if allowed is not None and name not in allowed:
        raise ConfigError(f"--backend {name}: system {system.name!r} runs only on "
                          f"{', '.join(allowed)}; use --backend {allowed[0]}")
    if allowed is None and not cls.node_commands:
        raise ConfigError(f"--backend {name}: system {system.name!r} has no in-harness cluster; "
                          f"use a backend that starts node commands (local, docker)")
    return cls


def backend_refusals(name: str, system: System, n_nodes: int = 2) -> tuple[frozenset[str], dict[str, str]]:
    """What the named backend can do for ``system`` here, and why not the rest (nothing started)."""
    caps, refusals = _backend_class(name, system).capabilities_here(n_nodes)
    return frozenset(caps), dict(refusals)


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
    plugin_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Backend:
    """Build (not start) the named backend for ``system``; ``clocks``: preload clock control.

    ``progress`` receives lines worth showing a person (the docker image build).
    """
    _backend_class(name, system)
    plugin = REGISTRY.load(name)
    ready_timeout = max(ready_timeout, plugin.obj.min_ready_timeout)
    kwargs: dict[str, Any] = dict(bug=bug, seed=seed, ready_timeout=ready_timeout, clocks=clocks,
                                  progress=progress)
    if plugin.options:
        kwargs["settings"] = plugin.settings(plugin_options)
    return REGISTRY.instantiate(plugin, Backend, system, n_nodes, run_dir, **kwargs)
