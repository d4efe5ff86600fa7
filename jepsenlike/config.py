"""Test configuration: one frozen record, built from defaults, a TOML file and flags.

Theory of operation
-------------------
:func:`build_config` layers three sources, later ones winning: the defaults
of :class:`TestConfig`, a TOML file (``--config``; keys are the field names,
``-`` or ``_`` alike), and the flags the user actually typed. Every value is
then validated *before* anything starts, and every error names where the bad
value came from (``--nemesis`` or ``run.toml: nemesis``) and what is allowed::

    --nemesis: unknown nemesis 'partiton'; available: kill, pause, partition, clock, slow, flaky

A missing seed is drawn once here, so the record always holds the seed that
the run used; :meth:`TestConfig.to_dict` is what ``test.json`` stores and
:meth:`TestConfig.reproduce_command` the command line that replays the run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jepsenlike.client import ROUTINGS
from jepsenlike.errors import ConfigError, JepsenlikeError, PluginError
from jepsenlike.nemesis.grudge import PARTITION_SHAPES

LEADER_SHAPE = "leader"
"""The partition shape that isolates the current leader (see jepsenlike.nemesis.partition)."""
GROUP_SHAPE = "group"
"""The partition shape that cuts one replica group off the others (systems with --groups)."""

DEFAULT_NEMESES = ("kill", "pause", "partition", "clock")
"""What ``jepsenlike run`` injects with no flags: every fault that cuts or skews.
``slow`` and ``flaky`` exist too but are opt-in (see docs/running.md)."""


@dataclass(frozen=True)
class TestConfig:
    """Everything that defines a test run. Field docs are the flag docs."""

    __test__ = False  # not a pytest test class

    #: Name of the test; the store groups runs under it. Default: ``<system>-<workload>``.
    name: str = ""
    #: The system under test: raft, paxos, memory, or a plugin name.
    system: str = "raft"
    #: Where nodes run: local.
    backend: str = "local"
    #: Number of nodes.
    nodes: int = 5
    #: Workload: register, append, set.
    workload: str = "register"
    #: Faults to inject (empty: none).
    nemesis: tuple[str, ...] = DEFAULT_NEMESES
    #: Mean seconds a fault lasts, and between faults (jittered 0.5x-1.5x).
    nemesis_interval: float = 3.0
    #: Target specs faults draw from: one, minority, majority, all, leader, n1+n3.
    targets: tuple[str, ...] = ("one", "minority", "leader")
    #: Seconds of client load (warm-up + chaos); recovery and final reads come after.
    time_limit: float = 30.0
    #: Client ops per second over all workers; 0 means as fast as possible.
    rate: float = 100.0
    #: Client worker threads (each a logical process in the history).
    concurrency: int = 5
    #: The seed every random choice is drawn from (drawn at random if not given).
    seed: int | None = None
    #: Number of runs (run i uses seed + i).
    test_count: int = 1
    #: Seeded bug passed to every node (``--bug``), if any.
    bug: str | None = None
    #: Store directory.
    store: str = "store"
    #: How workers choose a node per op: random, round-robin, weighted, leader.
    routing: str = "random"
    #: Node weights for ``weighted`` routing, ``node=weight`` (nodes not listed weigh 1).
    routing_weights: tuple[str, ...] = ()
    #: Replica groups of a sharded system (0: not given; ``--groups G`` alone means 3G nodes).
    groups: int = 0
    #: Keys in use at any one time.
    keys: int = 3
    #: Upper bound on ops per key (keys rotate to keep checks cheap).
    ops_per_key: int = 100
    #: Client timeout per op, seconds (a timeout records ``info``).
    op_timeout: float = 2.0
    #: Seconds without faults at the start.
    warmup: float = 3.0
    #: Seconds of load after healing (after the cluster answers again).
    recovery: float = 2.0
    #: Seconds to wait for every node to become ready.
    ready_timeout: float = 20.0
    #: Budget of the linearizability search, seconds (then "unknown").
    check_timeout: float = 60.0
    #: Partition shapes the partition nemesis draws from.
    partition_shapes: tuple[str, ...] = (*PARTITION_SHAPES, LEADER_SHAPE)
    #: An explicit grudge ``{node: [nodes it drops traffic from]}``; every partition is this one.
    grudge: dict[str, list[str]] | None = None
    #: Clock faults the clock nemesis draws from: bump, strobe, drift.
    clock_faults: tuple[str, ...] = ("bump", "strobe", "drift")
    #: Largest clock bump / strobe delta of the clock nemesis, seconds.
    clock_skew: float = 10.0
    #: Latency and jitter the slow nemesis adds to a link, milliseconds.
    slow_latency_ms: float = 50.0
    slow_jitter_ms: float = 25.0
    #: Chance that a chunk on a flaky link aborts its connection.
    flaky_probability: float = 0.05
    #: Options passed to every node of the system, ``key=value`` (e.g. ``read-mode=lease``).
    system_options: tuple[str, ...] = ()
    #: Checkers run in addition to the workload's own (e.g. a plugin).
    checkers: tuple[str, ...] = ()
    #: Replay this fault schedule instead of the packages' plan: JSON Lines of
    #: ``{"at": seconds, "f": ..., "value": ...}``, or an earlier run's ``history.jsonl``.
    schedule: str | None = None
    #: Plugins' own settings ``{plugin: {key: value}}`` (``--option NAME.KEY=VALUE``, a config
    #: file's ``[options.NAME]`` table); after :func:`build_config`, every option of every plugin
    #: in use, typed, defaults filled in.
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def test_name(self) -> str:
        return self.name or f"{self.system}-{self.workload}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in LIST_FIELDS:
            d[k] = list(getattr(self, k))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TestConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in LIST_FIELDS:
            if k in kw and kw[k] is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def system_option_map(self) -> dict[str, str]:
        """``system_options`` as a mapping."""
        return dict(item.split("=", 1) for item in self.system_options)

    def reproduce_command(self) -> str:
        """The ``jepsenlike run`` command line that replays this run exactly."""
        parts = ["jepsenlike", "run"]
        defaults = TestConfig()
        for f in fields(self):
            if f.name in ("test_count", "store", "plugin_options"):
                continue
            v = getattr(self, f.name)
            if f.name != "seed" and v == getattr(defaults, f.name):
                continue
            if v is None:
                continue
            flag = "--" + f.name.replace("_", "-")
            if f.name == "grudge":
                v = format_grudge(v)
            if isinstance(v, tuple):
                v = ",".join(v) if v else "none"
            parts += [flag, _shell_word(str(v if not isinstance(v, float) else f"{v:g}"))]
        for name, settings in sorted(self.plugin_options.items()):
            for key, value in sorted(settings.items()):
                parts += ["--option", _shell_word(f"{name}.{key}={format_option_value(value)}")]
        if self.store != defaults.store:
            parts += ["--store", _shell_word(self.store)]
        return " ".join(parts)


def _shell_word(s: str) -> str:
    return s if re.fullmatch(r"[\w.,+/:=@-]+", s) else "'" + s.replace("'", "'\\''") + "'"


LIST_FIELDS = ("nemesis", "targets", "partition_shapes", "clock_faults", "system_options", "checkers",
               "routing_weights")
FIELD_NAMES = tuple(f.name for f in fields(TestConfig))


def format_option_value(value: Any) -> str:
    """A plugin option's value as ``--option`` spells it (parsed back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def parse_plugin_options(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """``{plugin: {key: value}}`` from ``--option`` strings (``NAME.KEY=VALUE``) or a TOML ``options`` table."""
    out: dict[str, dict[str, Any]] = {}
    if isinstance(value, Mapping):
        for name, table in value.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where}.{name}: expected a table of KEY = VALUE, e.g. "
                                  f"[options.{name}] spare = 1, got {table!r}")
            out[str(name)] = {str(k): v for k, v in table.items()}
        return out
    items = [value] if isinstance(value, str) else list(value or ())
    for item in items:
        target, sep, raw = str(item).partition("=")
        name, dot, key = target.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise ConfigError(f"{where}: expected NAME.KEY=VALUE, e.g. crash-all.spare=1, got {item!r}")
        out.setdefault(name, {})[key] = raw.strip()
    return out


def resolve_plugin_options(config: TestConfig, where: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Every option of every plugin the run uses, typed, ``config.plugin_options`` over the defaults.

    Raises:
        ConfigError: options for a plugin the run does not use, a key the plugin does not
            declare (naming the valid ones), or a value of the wrong type.
    """
    from jepsenlike.backends import REGISTRY as BACKENDS
    from jepsenlike.checkers.plugins import REGISTRY as CHECKERS
    from jepsenlike.nemesis.registry import REGISTRY as NEMESES
    from jepsenlike.registry import Option, resolve_settings
    from jepsenlike.systems import REGISTRY as SYSTEMS
    from jepsenlike.workloads import REGISTRY as WORKLOADS

    def src(name: str, key: str) -> str:
        return (where or {}).get(f"plugin_options.{name}.{key}", f"--option {name}.{key}")

    used = [(SYSTEMS, config.system), (BACKENDS, config.backend), (WORKLOADS, config.workload)]
    used += [(NEMESES, n) for n in config.nemesis] + [(CHECKERS, c) for c in config.checkers]
    declared: dict[str, dict[str, Option]] = {}
    for reg, name in used:
        for opt in reg.load(name).options:
            declared.setdefault(name, {}).setdefault(opt.name, opt)
    in_use = [name for _, name in used]
    out: dict[str, dict[str, Any]] = {}
    for name, raw in config.plugin_options.items():
        if name not in in_use:
            key = next(iter(raw), "KEY")
            raise ConfigError(f"{src(name, key)}: no plugin {name!r} in this run; plugins in use: "
                              f"{', '.join(dict.fromkeys(in_use))}")
    for name, opts in declared.items():
        settings = resolve_settings(name, tuple(opts.values()), config.plugin_options.get(name, {}),
                                    lambda key, name=name: src(name, key))
        if settings:
            out[name] = settings
    for name, raw in config.plugin_options.items():
        if name not in declared and raw:  # in use, but it declares no options
            resolve_settings(name, (), raw, lambda key, name=name: src(name, key))
    return out


def parse_routing_weights(items: tuple[str, ...], node_ids: list[str], where: str) -> dict[str, float]:
    """``("n1=3", "n2=0.5")`` as ``{node: weight}``; raises ConfigError naming ``where``."""
    out: dict[str, float] = {}
    for item in items:
        node, sep, raw = item.partition("=")
        node = node.strip()
        if not sep or node not in node_ids:
            raise ConfigError(f"{where}: expected NODE=WEIGHT with NODE one of {', '.join(node_ids)}, "
                              f"e.g. n1=3, got {item!r}")
        try:
            weight = float(raw)
        except ValueError:
            weight = -1.0
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{where}: the weight of {node} must be a number >= 0, got {raw!r}")
        out[node] = weight
    if out and not any(out.get(n, 1.0) > 0 for n in node_ids):
        raise ConfigError(f"{where}: every node weighs 0; give at least one node a positive weight")
    return out


def format_grudge(grudge: Mapping[str, Any]) -> str:
    """A grudge as the ``--grudge`` flag spells it: ``n1=n2+n3;n2=n1``."""
    return ";".join(f"{node}={'+'.join(drops)}" for node, drops in sorted(grudge.items()) if drops)


def parse_grudge(value: Any, where: str) -> dict[str, list[str]]:
    """A grudge from a TOML table (``{n1 = ["n2"]}``) or the flag form ``n1=n2+n3;n2=n1``."""
    if isinstance(value, Mapping):
        out: dict[str, list[str]] = {}
        for node, drops in value.items():
            if isinstance(drops, str) or not isinstance(drops, list | tuple):
                raise ConfigError(f"{where}: the entry for {node!r} must be a list of nodes, got {drops!r}")
            out[str(node)] = [str(d) for d in drops]
        return out
    if isinstance(value, str):
        out = {}
        for part in filter(None, (p.strip() for p in value.split(";"))):
            node, sep, drops = part.partition("=")
            if not sep or not node.strip():
                raise ConfigError(f"{where}: expected NODE=SENDER+SENDER;..., e.g. n1=n2+n3;n2=n1, got {value!r}")
            out[node.strip()] = [d.strip() for d in drops.split("+") if d.strip()]
        return out
    raise ConfigError(f"{where}: expected a table of node -> list of nodes, got {value!r}")
_TYPES = {f.name: f.type for f in fields(TestConfig)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file; keys may use ``-`` or ``_``; a ``[run]`` table is allowed.

    Raises:
        ConfigError: the file is missing, not TOML, or has unknown keys.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config: {p} is not valid TOML: {e}") from None
    options = doc.pop("options", None)
    if isinstance(doc.get("run"), dict) and len(doc) == 1:
        doc = doc["run"]
    out: dict[str, Any] = {}
    if options is not None:
        out["plugin_options"] = options
    for k, v in doc.items():
        name = k.replace("-", "_")
        if name == "plugin_options":
            name = ""  # spelt [options.NAME] in a file
        if name not in FIELD_NAMES:
            raise ConfigError(
                f"{p}: unknown key {k!r}; known keys: {', '.join(n.replace('_', '-') for n in FIELD_NAMES)}"
            )
        out[name] = v
    return out


def _coerce(name: str, value: Any, where: str) -> Any:
    """Turn a flag string or TOML value into the field's type, or explain why not."""
    kind = _TYPES[name]
    if name == "plugin_options":
        return parse_plugin_options(value, where)
    if name == "grudge":
        return None if value in (None, "", "none") else parse_grudge(value, where)
    if name in LIST_FIELDS:
        if isinstance(value, str):
            items = [p.strip() for p in value.split(",") if p.strip()]
        elif isinstance(value, list | tuple):
            items = [str(p).strip() for p in value]
        else:
            raise ConfigError(f"{where}: expected a comma-separated list, got {value!r}")
        if name in ("nemesis", "system_options", "checkers") and items in (["none"], []):
            return ()
        return tuple(items)
    if name == "seed":
        if value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer seed, got {value!r}") from None
    if name in ("bug", "schedule"):
        return None if value in (None, "", "none") else str(value)
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if kind == "float":
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(str(value).rstrip("s")) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number (seconds), got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def build_config(
    flags: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> TestConfig:
    """Defaults, then the file, then the flags the user gave (None = not given); validated.

    Raises:
        ConfigError: the first bad value, naming its flag or file key.
    """
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    plugin_options: dict[str, dict[str, Any]] = {}
    if config_file is not None:
        for k, v in load_toml(config_file).items():
            if k == "plugin_options":
                for name, table in _coerce(k, v, f"{config_file}: options").items():
                    for key, value in table.items():
                        plugin_options.setdefault(name, {})[key] = value
                        where[f"plugin_options.{name}.{key}"] = f"{config_file}: options.{name}.{key}"
                continue
            values[k] = _coerce(k, v, f"{config_file}: {k.replace('_', '-')}")
            where[k] = f"{config_file}: {k.replace('_', '-')}"
    for k, v in (flags or {}).items():
        if v is None:
            continue
        if k not in FIELD_NAMES:
            raise ConfigError(f"unknown setting {k!r}")
        if k == "plugin_options":
            for name, table in _coerce(k, v, "--option").items():
                for key, value in table.items():
                    plugin_options.setdefault(name, {})[key] = value
                    where[f"plugin_options.{name}.{key}"] = f"--option {name}.{key}"
            continue
        values[k] = _coerce(k, v, _flag(k))
        where[k] = _flag(k)
    if values.get("seed") is None:
        values["seed"] = random.SystemRandom().randrange(2**31)
    if values.get("schedule") and "nemesis" not in values:
        values["nemesis"] = _schedule_nemeses(values["schedule"])
    if "backend" not in values:
        values["backend"] = _default_backend(str(values.get("system", TestConfig.system)))
    if values.get("groups") and "nodes" not in values:
        values["nodes"] = 3 * values["groups"]  # three nodes per group unless --nodes says otherwise
    config = TestConfig(**values, plugin_options=plugin_options)
    validate(config, where)
    return dataclasses.replace(config, plugin_options=resolve_plugin_options(config, where))


def _default_backend(system: str) -> str:
    """The backend ``system`` runs on when ``--backend`` is not given (``local`` if it is unknown:
    :func:`validate` then reports the unknown system)."""
    from jepsenlike.systems import get_system

    try:
        return get_system(system).default_backend
    except (ConfigError, PluginError):
        return TestConfig.backend


def _schedule_run_config(path: str) -> list[str] | None:
    """The ``nemesis`` list of the run whose ``history.jsonl`` ``path`` is, if it is one."""
    p = Path(path)
    try:
        first = p.read_text(encoding="utf-8").lstrip().split("\n", 1)[0]
        is_history = '"process"' in first and '"at"' not in first
        doc = json.loads((p.parent / "test.json").read_text(encoding="utf-8")) if is_history else None
    except (OSError, ValueError):
        return None
    names = ((doc or {}).get("config") or {}).get("nemesis")
    return list(names) if isinstance(names, list) and names else None


def _schedule_nemeses(path: str) -> tuple[str, ...]:
    """The nemeses a ``--schedule`` file needs (when ``--nemesis`` is not given)."""
    from jepsenlike.nemesis import PackageOptions, build_packages, nemesis_names
    from jepsenlike.nemesis.schedule import load_schedule, packages_for

    run_config = _schedule_run_config(path)
    if run_config is not None:
        return tuple(run_config)  # a run's history: the same faults, in the same order
    available: dict[str, frozenset[str]] = {}
    for name in nemesis_names():
        try:
            available[name] = build_packages([name], PackageOptions())[0].nemesis.fs
        except JepsenlikeError:
            continue  # a plugin that needs settings: name it with --nemesis
    return tuple(packages_for(load_schedule(path), available, path))


def validate(config: TestConfig, where: Mapping[str, str] | None = None) -> None:
    """Check every field and the combinations; raises ConfigError naming the source."""
    from jepsenlike.backends import backend_names, backend_refusals
    from jepsenlike.checkers.plugins import REGISTRY as CHECKERS
    from jepsenlike.nemesis import PackageOptions, build_packages, nemesis_names, parse_target_spec
    from jepsenlike.nemesis.clock import CLOCK_FAULTS
    from jepsenlike.nemesis.grudge import partition_shape, validate_grudge
    from jepsenlike.store import check_store
    from jepsenlike.systems import get_system
    from jepsenlike.workloads import workload_names

    def src(name: str) -> str:
        return (where or {}).get(name, _flag(name))

    def positive(name: str, minimum: float = 0, strict: bool = True) -> None:
        v = getattr(config, name)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{src(name)}: expected a finite number, got {v!r}")
        if (v <= minimum) if strict else (v < minimum):
            rel = ">" if strict else ">="
            raise ConfigError(f"{src(name)}: must be {rel} {minimum:g}, got {v!r}")

    if config.name and not re.fullmatch(r"[\w.+-]+", config.name):
        raise ConfigError(f"{src('name')}: {config.name!r} may only use letters, digits, '.', '+', '-', '_'")
    backends = backend_names()
    if config.backend not in backends:
        raise ConfigError(f"{src('backend')}: unknown backend {config.backend!r}; available: {', '.join(backends)}")
    workloads = workload_names()
    if config.workload not in workloads:
        raise ConfigError(f"{src('workload')}: unknown workload {config.workload!r}; available: {', '.join(workloads)}")
    if config.routing not in ROUTINGS:
        raise ConfigError(f"{src('routing')}: unknown routing {config.routing!r}; available: {', '.join(ROUTINGS)}")
    nemeses = nemesis_names()
    for n in config.nemesis:
        if n not in nemeses:
            raise ConfigError(f"{src('nemesis')}: unknown nemesis {n!r}; available: {', '.join(nemeses)}")
    if len(set(config.nemesis)) != len(config.nemesis):
        raise ConfigError(f"{src('nemesis')}: a nemesis is listed twice: {', '.join(config.nemesis)}")
    positive("nodes", 1, strict=False)
    positive("groups", 0, strict=False)
    if config.groups and config.nodes % config.groups:
        raise ConfigError(f"{src('groups')}: {config.nodes} nodes cannot form {config.groups} equal "
                          f"groups; use --nodes {3 * config.groups} (or another multiple of {config.groups})")
    if config.nodes > 99:
        raise ConfigError(f"{src('nodes')}: at most 99 nodes on one host, got {config.nodes}")
    positive("concurrency", 1, strict=False)
    positive("test_count", 1, strict=False)
    positive("keys", 1, strict=False)
    positive("ops_per_key", 1, strict=False)
    positive("time_limit")
    positive("rate", 0, strict=False)
    positive("op_timeout")
    positive("nemesis_interval")
    positive("warmup", 0, strict=False)
    positive("recovery", 0, strict=False)
    positive("ready_timeout")
    positive("check_timeout")
    if config.seed is not None and not 0 <= config.seed < 2**63:
        raise ConfigError(f"{src('seed')}: must be in [0, 2**63), got {config.seed}")
    # Fault options are validated only for the faults asked for: `--nodes 1
    # --nemesis none` must not fail on the default partition shapes.
    asked = set(config.nemesis)
    if not config.targets:
        raise ConfigError(f"{src('targets')}: needs at least one target spec")
    node_ids = [f"n{i + 1}" for i in range(config.nodes)]
    try:
        for t in config.targets if asked else ():
            parse_target_spec(t, node_ids)
    except ConfigError as e:
        raise ConfigError(str(e).replace("--targets", src("targets"), 1)) from None

    try:
        system = get_system(config.system)
    except ConfigError as e:
        raise ConfigError(str(e).replace("--system", src("system"), 1)) from None
    if config.groups and not getattr(system, "grouped", False):
        raise ConfigError(f"{src('groups')}: system {config.system!r} does not run replica groups; "
                          "leave --groups out (shardkv takes it)")
    system.groups = config.groups or 1
    weights = parse_routing_weights(config.routing_weights, node_ids, src("routing_weights"))
    if weights and config.routing != "weighted":
        raise ConfigError(f"{src('routing_weights')}: weights only apply to --routing weighted, "
                          f"not {config.routing!r}")
    known_bugs = system.bugs
    if config.bug is not None and known_bugs is not None:
        for bug in config.bug.split(","):
            if bug.strip() not in known_bugs:
                raise ConfigError(
                    f"{src('bug')}: system {config.system!r} has no bug {bug.strip()!r}; "
                    f"available: {', '.join(known_bugs) or '(none)'}"
                )
    if config.routing == "leader" and not system.can_tell_leader:
        raise ConfigError(
            f"{src('routing')}: 'leader' routing needs a system that can tell its leader; "
            f"{config.system!r} cannot; use random or round-robin"
        )
    for item in config.system_options:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{src('system_options')}: expected KEY=VALUE, e.g. read-mode=lease, got {item!r}")
    try:
        system.configure(config.system_option_map(), config.bug)
    except ConfigError as e:
        raise ConfigError(f"{src('system_options')}: {e}") from None

    if "partition" in asked and config.nodes < 2:
        others = ",".join(n for n in config.nemesis if n != "partition") or "none"
        raise ConfigError(f"{src('nemesis')}: partition needs at least 2 nodes, got {config.nodes}; "
                          f"leave it out, e.g. --nemesis {others}")
    for shape in config.partition_shapes if "partition" in asked else ():
        if shape == GROUP_SHAPE:
            if not getattr(system, "grouped", False) or config.groups < 2:
                raise ConfigError(f"{src('partition_shapes')}: shape 'group' cuts one replica group off "
                                  "the others; it needs a system run with --groups 2 or more")
            continue
        if shape == LEADER_SHAPE:
            if len(node_ids) < 2:
                raise ConfigError(f"{src('partition_shapes')}: shape 'leader' needs at least 2 nodes")
            continue
        try:
            partition_shape(shape)(node_ids, random.Random(0))
        except ConfigError as e:
            msg = str(e).replace("; available: ", "; available: leader, ", 1)
            raise ConfigError(f"{src('partition_shapes')}: {msg}") from None
    if "partition" in asked and not config.partition_shapes and config.grudge is None:
        raise ConfigError(f"{src('partition_shapes')}: needs at least one shape "
                          f"({', '.join(PARTITION_SHAPES)}) or a --grudge")
    if config.grudge is not None and "partition" in asked:
        try:
            grudge = validate_grudge(config.grudge, node_ids)
        except ConfigError as e:
            raise ConfigError(f"{src('grudge')}: {e}") from None
        if not any(grudge.values()):
            raise ConfigError(f"{src('grudge')}: the grudge cuts nothing: {config.grudge!r}")
    for kind in config.clock_faults if "clock" in asked else ():
        if kind not in CLOCK_FAULTS:
            raise ConfigError(f"{src('clock_faults')}: unknown clock fault {kind!r}; available: {', '.join(CLOCK_FAULTS)}")
    if "clock" in asked and not config.clock_faults:
        raise ConfigError(f"{src('clock_faults')}: needs at least one of {', '.join(CLOCK_FAULTS)}")
    positive("clock_skew")
    positive("slow_latency_ms", 0, strict=False)
    positive("slow_jitter_ms", 0, strict=False)
    if not math.isfinite(config.flaky_probability) or not 0.0 <= config.flaky_probability <= 1.0:
        raise ConfigError(f"{src('flaky_probability')}: must be in [0, 1], got {config.flaky_probability!r}")
    for name in config.checkers:
        try:
            CHECKERS.load(name)
        except ConfigError as e:
            raise ConfigError(str(e).replace("--checkers:", f"{src('checkers')}:", 1)) from None
    try:
        backend_refusals(config.backend, system, config.nodes)  # the system runs on this backend
    except ConfigError as e:
        raise ConfigError(str(e).replace(f"--backend {config.backend}", src("backend"), 1)) from None
    resolve_plugin_options(config, where)
    check_store(config.store, src("store"))
    # Unknown names and incompatible combinations fail here; a fault the backend
    # cannot inject is not an error: the run records it as refused (verdict unknown).
    packages = build_packages(config.nemesis, PackageOptions.from_config(config))
    if config.schedule:
        from jepsenlike.nemesis.schedule import check_schedule, load_schedule

        check_schedule(config.schedule, load_schedule(config.schedule), packages, config.time_limit)
