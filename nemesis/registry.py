"""Nemeses by name: the ``jepsenlike.nemesis`` entry points.

An entry point names a package factory ``f(PackageOptions) -> NemesisPackage``
(:mod:`jepsenlike.nemesis.package`). The built-ins (``kill``, ``pause``,
``partition``, ``clock``, ``slow``, ``flaky``, and the targeted ones of
:mod:`jepsenlike.nemesis.targeted`) are registered in jepsenlike's
own ``pyproject.toml`` exactly as a plugin's are, and nowhere else. A factory
may declare typed ``plugin_options`` (:class:`~jepsenlike.registry.Option`);
it then finds its settings in ``options.settings``.
"""

from __future__ import annotations

import inspect
from typing import Any

from jepsenlike.registry import Registry


def _check_nemesis(obj: Any) -> str | None:
    if not callable(obj):
        return f"expected a package factory f(PackageOptions) -> NemesisPackage, got {type(obj).__name__}"
    try:
        inspect.signature(obj).bind(object())
    except (TypeError, ValueError):
        return "the package factory must take one argument (the PackageOptions)"
    return None


REGISTRY = Registry("nemesis", "jepsenlike.nemesis", "--nemesis", _check_nemesis, "nemesis")
"""Every nemesis package factory, by name."""


def nemesis_names() -> list[str]:
    """Every name ``--nemesis`` accepts: jepsenlike's own first, then plugins."""
    return REGISTRY.names()
