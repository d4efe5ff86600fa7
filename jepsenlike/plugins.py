"""Plugins: nemeses, systems, workloads and checkers found through entry points.

Theory of operation
-------------------
Four entry-point groups extend the toolkit; the built-ins are registered in
exactly the same way, in jepsenlike's own ``pyproject.toml``:

==========================  ==============================================  =====================
group                       the entry point names                            what it must load to
==========================  ==============================================  =====================
``jepsenlike.nemesis``      a package factory                                ``f(PackageOptions) -> NemesisPackage``
``jepsenlike.systems``      a :class:`~jepsenlike.systems.base.System`       a subclass, or a zero-argument factory
``jepsenlike.workloads``    a :class:`~jepsenlike.workloads.base.Workload`   a subclass or factory (``check_timeout=`` is passed if accepted)
``jepsenlike.checkers``     a checker                                        an object or class with ``name``, ``description``, ``check(history, test) -> Result``
==========================  ==============================================  =====================

:func:`entries` lists a group without importing anything (so an error in one
plugin does not hide the others) and refuses a name that two distributions
register, naming both. :func:`load` imports one plugin and checks it against
its interface; every error is a :class:`~jepsenlike.errors.PluginError` that
names the plugin, the object it points to and its distribution.

``JEPSENLIKE_NO_PLUGINS=1`` keeps only the entry points of jepsenlike itself.
If jepsenlike's own entry points are missing (metadata from an older install,
or a source tree on ``sys.path``) the built-in tables in the code stand in, so
the toolkit still works; ``pip install -e .`` refreshes the metadata.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from jepsenlike.errors import ConfigError, PluginError

KINDS = ("nemesis", "systems", "workloads", "checkers")
"""Plugin kinds; the entry-point group of kind K is ``jepsenlike.K``."""

OWN_DISTRIBUTION = "jepsenlike"


def group(kind: str) -> str:
    """The entry-point group of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
    return f"jepsenlike.{kind}"


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin, not yet imported."""

    kind: str
    name: str
    value: str
    """``module:attribute`` the entry point names."""
    distribution: str
    entry_point: EntryPoint | None = None
    builtin: Any = None
    """For a built-in without an entry point: the object itself."""

    @property
    def where(self) -> str:
        return f"{self.value}, distribution {self.distribution}"


@dataclass(frozen=True)
class Plugin:
    """A loaded, validated plugin."""

    kind: str
    name: str
    obj: Any
    distribution: str
    value: str
    description: str

    @property
    def where(self) -> str:
        return f"{self.value}, distribution {self.distribution}"


def _builtins(kind: str) -> dict[str, Any]:
    """The in-code tables of built-ins (the fallback when metadata lacks them)."""
    if kind == "nemesis":
        from jepsenlike.nemesis.package import NEMESES

        return dict(NEMESES)
    if kind == "systems":
        from jepsenlike.systems import BUILTIN

        return dict(BUILTIN)
    if kind == "workloads":
        from jepsenlike.workloads import WORKLOADS

        return dict(WORKLOADS)
    from jepsenlike.checkers.plugins import CHECKERS

    return dict(CHECKERS)


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def entries(kind: str) -> dict[str, PluginEntry]:
    """Every plugin of ``kind`` by name, built-ins first; nothing is imported.

    Raises:
        PluginError: two distributions register the same name (both are named).
    """
    no_plugins = bool(os.environ.get("JEPSENLIKE_NO_PLUGINS"))
    found: dict[str, PluginEntry] = {}
    for ep in entry_points(group=group(kind)):
        dist = _dist_name(ep)
        if no_plugins and dist != OWN_DISTRIBUTION:
            continue
        entry = PluginEntry(kind, ep.name, ep.value, dist, ep)
        old = found.get(ep.name)
        if old is not None:
            if (old.value, old.distribution) == (entry.value, entry.distribution):
                continue  # the same distribution seen twice on sys.path
            raise PluginError(
                f"{_singular(kind)} plugin {ep.name!r} is registered twice: by {old.where} and by "
                f"{entry.where}; uninstall one of them or rename its entry point"
            )
        found[ep.name] = entry
    builtin = _builtins(kind)
    out: dict[str, PluginEntry] = {}
    for name, obj in builtin.items():  # built-ins first, in their own order
        out[name] = found.pop(name, None) or PluginEntry(
            kind, name, f"{obj.__module__}:{obj.__qualname__}", OWN_DISTRIBUTION, None, obj)
    for name in sorted(found):
        out[name] = found[name]
    return out


def names(kind: str) -> list[str]:
    """Every registered name of ``kind``: built-ins first, then plugins, sorted."""
    return list(entries(kind))


def _singular(kind: str) -> str:
    return {"nemesis": "nemesis", "systems": "system", "workloads": "workload", "checkers": "checker"}[kind]


def _first_line(obj: Any) -> str:
    text = getattr(obj, "description", None)
    if not isinstance(text, str) or not text:
        text = inspect.getdoc(obj) or ""
    return text.strip().splitlines()[0] if text.strip() else ""


def load(kind: str, name: str) -> Plugin:
    """Import and validate one plugin.

    Raises:
        ConfigError: no plugin of that name (the message lists the available ones).
        PluginError: it does not import or does not fit its interface.
    """
    table = entries(kind)
    entry = table.get(name)
    if entry is None:
        flag = "--nemesis" if kind == "nemesis" else f"--{_singular(kind)}"
        raise ConfigError(f"{flag}: unknown {_singular(kind)} {name!r}; available: {', '.join(table)}")
    what = f"{_singular(kind)} plugin {name!r} ({entry.where})"
    if entry.builtin is not None:
        obj = entry.builtin
    else:
        assert entry.entry_point is not None
        try:
            obj = entry.entry_point.load()
        except Exception as e:
            raise PluginError(f"{what} failed to load: {type(e).__name__}: {e}") from e
    problem = VALIDATORS[kind](obj)
    if problem:
        raise PluginError(f"{what} does not fit the {kind} interface: {problem}")
    return Plugin(kind, name, obj, entry.distribution, entry.value, _describe(kind, obj))


def _describe(kind: str, obj: Any) -> str:
    return _first_line(obj)


def _is_factory(obj: Any) -> bool:
    return callable(obj)


def _check_nemesis(obj: Any) -> str | None:
    if not callable(obj):
        return f"expected a package factory f(PackageOptions) -> NemesisPackage, got {type(obj).__name__}"
    try:
        inspect.signature(obj).bind(object())
    except (TypeError, ValueError):
        return "the package factory must take one argument (the PackageOptions)"
    return None


def _check_system(obj: Any) -> str | None:
    from jepsenlike.systems.base import System

    if inspect.isclass(obj) and issubclass(obj, System):
        # Other classes are factories too; instantiate() checks what they make.
        if inspect.isabstract(obj):
            return f"{obj.__name__} leaves abstract methods unimplemented: {', '.join(sorted(obj.__abstractmethods__))}"
        return None
    return None if callable(obj) else f"expected a System subclass or factory, got {type(obj).__name__}"


def _check_workload(obj: Any) -> str | None:
    from jepsenlike.workloads.base import Workload

    if inspect.isclass(obj) and issubclass(obj, Workload):
        # Other classes are factories too; instantiate() checks what they make.
        if inspect.isabstract(obj):
            return f"{obj.__name__} leaves abstract methods unimplemented: {', '.join(sorted(obj.__abstractmethods__))}"
        return None
    return None if callable(obj) else f"expected a Workload subclass or factory, got {type(obj).__name__}"


def _check_checker(obj: Any) -> str | None:
    check = getattr(obj, "check", None)
    if not callable(check):
        return "a checker needs a check(history, test) method returning a Result"
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        return "a checker needs a non-empty name attribute"
    return None


VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "nemesis": _check_nemesis,
    "systems": _check_system,
    "workloads": _check_workload,
    "checkers": _check_checker,
}


def instantiate(plugin: Plugin, expected: type, **options: Any) -> Any:
    """Call a system/workload/checker factory (passing only the options it accepts) and check the result.

    Raises:
        PluginError: the factory raises or returns something else than ``expected``.
    """
    obj = plugin.obj
    if isinstance(obj, expected):
        return obj
    try:
        params = inspect.signature(obj).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kw = {k: v for k, v in options.items() if takes_any or k in params}
        made = obj(**kw)
    except Exception as e:
        raise PluginError(f"{_singular(plugin.kind)} plugin {plugin.name!r} ({plugin.where}) failed to "
                          f"start: {type(e).__name__}: {e}") from e
    if not isinstance(made, expected):
        raise PluginError(
            f"{_singular(plugin.kind)} plugin {plugin.name!r} (distribution {plugin.distribution}) gave "
            f"{type(made).__name__}, not a {expected.__module__}.{expected.__qualname__} subclass instance"
        )
    return made


@dataclass(frozen=True)
class Listing:
    """One line of ``jepsenlike list``."""

    kind: str
    name: str
    distribution: str
    description: str
    error: str | None = None


def list_installed() -> dict[str, list[Listing]]:
    """Every plugin of every kind, loaded and validated; a broken one is listed with its error."""
    out: dict[str, list[Listing]] = {}
    for kind in KINDS:
        rows: list[Listing] = []
        try:
            table = entries(kind)
        except PluginError as e:
            out[kind] = [Listing(kind, "?", "?", "", str(e))]
            continue
        for name, entry in table.items():
            try:
                plugin = load(kind, name)
                rows.append(Listing(kind, name, plugin.distribution, plugin.description))
            except (PluginError, ConfigError) as e:
                rows.append(Listing(kind, name, entry.distribution, "", str(e)))
        out[kind] = rows
    return out
