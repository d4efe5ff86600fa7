"""Every plugin kind at once: the five registries side by side, for ``jepsenlike list``.

Theory of operation
-------------------
Each kind owns its registry (:mod:`jepsenlike.registry` has the shared
machinery); this module only gathers them, so it depends on the kinds and no
kind depends on it:

==========================  ======================================  ==========================================
group                       registry                                the entry point names
==========================  ======================================  ==========================================
``jepsenlike.nemesis``      :data:`jepsenlike.nemesis.REGISTRY`     a package factory ``f(PackageOptions) -> NemesisPackage``
``jepsenlike.systems``      :data:`jepsenlike.systems.REGISTRY`     a ``System`` subclass or factory
``jepsenlike.backends``     :data:`jepsenlike.backends.REGISTRY`    a ``Backend`` subclass
``jepsenlike.workloads``    :data:`jepsenlike.workloads.REGISTRY`   a ``Workload`` subclass or factory
``jepsenlike.checkers``     ``jepsenlike.checkers.plugins.REGISTRY`` an object or class with ``name``, ``description``, ``check(history, test)``
==========================  ======================================  ==========================================

Built-ins are declared once, as entry points in jepsenlike's own
``pyproject.toml``. :func:`list_installed` loads and validates every plugin
of every kind; a broken one is listed with its one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass

from jepsenlike.backends import REGISTRY as BACKENDS
from jepsenlike.checkers.plugins import REGISTRY as CHECKERS
from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.nemesis.registry import REGISTRY as NEMESES
from jepsenlike.registry import Option, Plugin, PluginEntry, Registry
from jepsenlike.systems import REGISTRY as SYSTEMS
from jepsenlike.workloads import REGISTRY as WORKLOADS

REGISTRIES: dict[str, Registry] = {
    "nemesis": NEMESES, "systems": SYSTEMS, "backends": BACKENDS, "workloads": WORKLOADS,
    "checkers": CHECKERS,
}
"""Each kind's registry; the entry-point group of kind K is ``jepsenlike.K``."""

KINDS = tuple(REGISTRIES)


def registry(kind: str) -> Registry:
    """The registry of ``kind``."""
    if kind not in REGISTRIES:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
    return REGISTRIES[kind]


def entries(kind: str) -> dict[str, PluginEntry]:
    """Every plugin of ``kind`` by name, nothing imported (see :meth:`Registry.entries`)."""
    return registry(kind).entries()


def load(kind: str, name: str) -> Plugin:
    """Import and validate one plugin of ``kind`` (see :meth:`Registry.load`)."""
    return registry(kind).load(name)


@dataclass(frozen=True)
class Listing:
    """One line of ``jepsenlike list``."""

    kind: str
    name: str
    distribution: str
    description: str
    error: str | None = None
    options: tuple[Option, ...] = ()


def list_installed() -> dict[str, list[Listing]]:
    """Every plugin of every kind, loaded and validated; a broken one is listed with its error."""
    out: dict[str, list[Listing]] = {}
    for kind, reg in REGISTRIES.items():
        rows: list[Listing] = []
        try:
            table = reg.entries()
        except PluginError as e:
            out[kind] = [Listing(kind, "?", "?", "", str(e))]
            continue
        for name, entry in table.items():
            try:
                plugin = reg.load(name)
                rows.append(Listing(kind, name, plugin.distribution, plugin.description,
                                    options=plugin.options))
            except (PluginError, ConfigError) as e:
                rows.append(Listing(kind, name, entry.distribution, "", str(e)))
        out[kind] = rows
    return out
