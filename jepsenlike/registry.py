"""The plugin registry machinery shared by every plugin kind, and typed plugin options.

Theory of operation
-------------------
Each plugin kind owns one :class:`Registry` in its own module
(:data:`jepsenlike.systems.REGISTRY`, :data:`jepsenlike.backends.REGISTRY`,
:data:`jepsenlike.nemesis.REGISTRY`, :data:`jepsenlike.workloads.REGISTRY`,
:data:`jepsenlike.checkers.plugins.REGISTRY`). A registry reads one entry-point
group (``jepsenlike.systems``, ...); built-ins are declared there too, in
jepsenlike's own ``pyproject.toml``, and nowhere else. This module imports no
plugin kind, so kinds depend on it and never the other way round.

:meth:`Registry.entries` lists a group without importing anything (an error in
one plugin does not hide the others): jepsenlike's own entries first, in the
order ``pyproject.toml`` gives them, then the others sorted by name. A name
that two distributions register is refused, naming both.
:meth:`Registry.load` imports one plugin and validates it at once against its
kind's interface; every error is a one-line
:class:`~jepsenlike.errors.PluginError` naming the entry point and its
distribution.

Options. A plugin declares typed options with a ``plugin_options`` attribute
on the object its entry point names (a package factory, a class)::

    plugin_options = (
        Option("count", int, 1, "how many nodes to crash at once"),
        Option("mode", str, "kill", "kill or pause", choices=("kill", "pause")),
    )

Users set them with ``--option NAME.KEY=VALUE`` or an ``[options.NAME]``
table in the ``--config`` file; :func:`resolve_settings` turns those raw
values into typed ones (defaults filled in), and refuses a misspelt key or a
bad value with a one-line error naming the valid keys. The resolved values
are stored in the run's config, so ``test.json`` and the ``Reproduce:``
command carry every one of them.

``JEPSENLIKE_NO_PLUGINS=1`` keeps only the entry points of jepsenlike itself.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from jepsenlike.errors import ConfigError, PluginError

OWN_DISTRIBUTION = "jepsenlike"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One typed setting a plugin accepts (``--option NAME.KEY=VALUE``)."""

    name: str
    type: type
    """``int``, ``float``, ``bool`` or ``str``."""
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def parse(self, value: Any, where: str) -> Any:
        """``value`` (a flag string or a TOML value) as :attr:`type`, or a ConfigError naming ``where``."""
        t = self.type
        try:
            if t is bool:
                if isinstance(value, bool):
                    out: Any = value
                elif str(value).strip().lower() in _TRUE:
                    out = True
                elif str(value).strip().lower() in _FALSE:
                    out = False
                else:
                    raise ValueError
            elif t is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out = int(value)
            elif t is float:
                if isinstance(value, bool):
                    raise ValueError
                out = float(value)
            else:
                out = t(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {t.__name__}, got {value!r}") from None
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"{where}: {out!r} is not one of {', '.join(map(str, self.choices))}")
        return out

    def describe(self) -> str:
        """``count=1 (int): how many nodes``, as ``jepsenlike list`` shows it."""
        choices = f" [{'|'.join(map(str, self.choices))}]" if self.choices else ""
        return f"{self.name}={self.default!r} ({self.type.__name__}{choices}){': ' + self.help if self.help else ''}"


def declared_options(obj: Any) -> tuple[Option, ...]:
    """The options a plugin object declares (``plugin_options``), checked for shape."""
    opts = getattr(obj, "plugin_options", ())
    return tuple(opts or ())


def _check_options(obj: Any) -> str | None:
    opts = getattr(obj, "plugin_options", ())
    if not isinstance(opts, list | tuple) or not all(isinstance(o, Option) for o in opts):
        return "plugin_options must be a tuple of jepsenlike.registry.Option"
    seen = [o.name for o in opts]
    if len(set(seen)) != len(seen):
        return f"plugin_options declares a key twice: {', '.join(seen)}"
    for o in opts:
        if o.type not in (int, float, bool, str):
            return f"option {o.name!r}: type must be int, float, bool or str, got {o.type!r}"
    return None


def resolve_settings(name: str, options: tuple[Option, ...], raw: Mapping[str, Any],
                     where: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Typed settings of plugin ``name``: every declared option, ``raw`` over the defaults.

    Raises:
        ConfigError: a key the plugin does not declare (naming the valid ones) or a bad value.
    """
    src = where or (lambda key: f"--option {name}.{key}")
    known = {o.name: o for o in options}
    for key in raw:
        if key not in known:
            valid = ", ".join(known) if known else "(it takes no options)"
            raise ConfigError(f"{src(key)}: plugin {name!r} has no option {key!r}; valid: {valid}")
    return {o.name: (o.parse(raw[o.name], src(o.name)) if o.name in raw else o.default) for o in options}


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin, not yet imported."""

    kind: str
    name: str
    value: str
    """``module:attribute`` the entry point names."""
    distribution: str
    entry_point: EntryPoint

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
    options: tuple[Option, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.value}, distribution {self.distribution}"

    def settings(self, plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """This plugin's typed settings from a config's ``plugin_options`` (keys it declares)."""
        mine = (plugin_options or {}).get(self.name) or {}
        declared = {o.name for o in self.options}
        return resolve_settings(self.name, self.options, {k: v for k, v in mine.items() if k in declared})


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def first_line(obj: Any) -> str:
    """The plugin's one-line description: its ``description`` attribute or its docstring's first line."""
    text = getattr(obj, "description", None)
    if not isinstance(text, str) or not text:
        text = inspect.getdoc(obj) or ""
    return text.strip().splitlines()[0] if text.strip() else ""


class Registry:
    """The plugins of one kind, read from the entry-point group ``jepsenlike.<group>``."""

    def __init__(self, kind: str, group: str, flag: str, validate: Callable[[Any], str | None],
                 interface: str) -> None:
        self.kind = kind
        """Singular name for messages: ``nemesis``, ``system``, ``backend``, ..."""
        self.group = group
        self.flag = flag
        self._validate = validate
        self.interface = interface

    def entries(self) -> dict[str, PluginEntry]:
        """Every plugin by name, jepsenlike's own first; nothing is imported.

        Raises:
            PluginError: two distributions register the same name (both are named).
        """
        no_plugins = bool(os.environ.get("JEPSENLIKE_NO_PLUGINS"))
        own: dict[str, PluginEntry] = {}
        others: dict[str, PluginEntry] = {}
        for ep in entry_points(group=self.group):
            dist = _dist_name(ep)
            if no_plugins and dist != OWN_DISTRIBUTION:
                continue
            entry = PluginEntry(self.kind, ep.name, ep.value, dist, ep)
            old = own.get(ep.name) or others.get(ep.name)
            if old is not None:
                if (old.value, old.distribution) == (entry.value, entry.distribution):
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(
                    f"{self.kind} plugin {ep.name!r} is registered twice: by {old.where} and by "
                    f"{entry.where}; uninstall one of them or rename its entry point"
                )
            (own if dist == OWN_DISTRIBUTION else others)[ep.name] = entry
        return {**own, **{name: others[name] for name in sorted(others)}}

    def names(self) -> list[str]:
        """Every registered name: jepsenlike's own first, then the others, sorted."""
        return list(self.entries())

    def load(self, name: str) -> Plugin:
        """Import and validate one plugin.

        Raises:
            ConfigError: no plugin of that name (the message lists the available ones).
            PluginError: it does not import or does not fit its interface.
        """
        table = self.entries()
        entry = table.get(name)
        if entry is None:
            raise ConfigError(f"{self.flag}: unknown {self.kind} {name!r}; available: {', '.join(table)}")
        what = f"{self.kind} plugin {name!r} ({entry.where})"
        try:
            obj = entry.entry_point.load()
        except Exception as e:
            raise PluginError(f"{what} failed to load: {type(e).__name__}: {e}") from e
        problem = self._validate(obj) or _check_options(obj)
        if problem:
            raise PluginError(f"{what} does not fit the {self.interface} interface: {problem}")
        return Plugin(self.kind, name, obj, entry.distribution, entry.value, first_line(obj),
                      declared_options(obj))

    def instantiate(self, plugin: Plugin, expected: type, *args: Any, **kwargs: Any) -> Any:
        """Call the plugin's class/factory and check it made an ``expected``; an instance is
        returned as it is. Keyword arguments it does not accept are not passed (a workload
        need not take ``check_timeout``), except ``settings``: a plugin that declares options
        must take them.

        Raises:
            PluginError: the factory raises (a ConfigError it raises passes through as the
                user's error), cannot take its settings, or makes something else.
        """
        obj = plugin.obj
        if isinstance(obj, expected):
            return obj
        try:
            params = inspect.signature(obj).parameters
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            kw = {k: v for k, v in kwargs.items() if takes_any or k in params}
            if "settings" in kwargs and "settings" not in kw:
                raise PluginError(f"{self.kind} plugin {plugin.name!r} ({plugin.where}) declares "
                                  f"plugin_options but {getattr(obj, '__name__', obj)!r} takes no "
                                  f"settings= argument to receive them")
            made = obj(*args, **kw)
        except (ConfigError, PluginError):
            raise
        except Exception as e:
            raise PluginError(f"{self.kind} plugin {plugin.name!r} ({plugin.where}) failed to "
                              f"start: {type(e).__name__}: {e}") from e
        if not isinstance(made, expected):
            raise PluginError(
                f"{self.kind} plugin {plugin.name!r} (distribution {plugin.distribution}) gave "
                f"{type(made).__name__}, not a {expected.__module__}.{expected.__qualname__} subclass instance"
            )
        return made


def class_or_factory(base: type, what: str) -> Callable[[Any], str | None]:
    """A validator: ``obj`` is a concrete ``base`` subclass, or some other callable (a factory)."""

    def check(obj: Any) -> str | None:
        if inspect.isclass(obj) and issubclass(obj, base):
            if inspect.isabstract(obj):
                return (f"{obj.__name__} leaves abstract methods unimplemented: "
                        f"{', '.join(sorted(obj.__abstractmethods__))}")
            return None
        return None if callable(obj) else f"expected a {what} subclass or factory, got {type(obj).__name__}"

    return check
