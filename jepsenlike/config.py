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
import math
import os
import random
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from jepsenlike.client import ROUTINGS
from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.grudge import PARTITION_SHAPES

LEADER_SHAPE = "leader"
"""The partition shape that isolates the current leader (see jepsenlike.nemesis.partition)."""

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
    #: How workers choose a node per op: random, round-robin, leader.
    routing: str = "random"
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

    def with_seed(self, seed: int) -> TestConfig:
        return dataclasses.replace(self, seed=seed)

    def reproduce_command(self) -> str:
        """The ``jepsenlike run`` command line that replays this run exactly."""
        parts = ["jepsenlike", "run"]
        defaults = TestConfig()
        for f in fields(self):
            if f.name in ("test_count", "store"):
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
        if self.store != defaults.store:
            parts += ["--store", _shell_word(self.store)]
        return " ".join(parts)


def _shell_word(s: str) -> str:
    return s if re.fullmatch(r"[\w.,+/:=@-]+", s) else "'" + s.replace("'", "'\\''") + "'"


LIST_FIELDS = ("nemesis", "targets", "partition_shapes", "clock_faults", "system_options", "checkers")
FIELD_NAMES = tuple(f.name for f in fields(TestConfig))


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
    if isinstance(doc.get("run"), dict) and len(doc) == 1:
        doc = doc["run"]
    out: dict[str, Any] = {}
    for k, v in doc.items():
        name = k.replace("-", "_")
        if name not in FIELD_NAMES:
            raise ConfigError(
                f"{p}: unknown key {k!r}; known keys: {', '.join(n.replace('_', '-') for n in FIELD_NAMES)}"
            )
        out[name] = v
    return out


def _coerce(name: str, value: Any, where: str) -> Any:
    """Turn a flag string or TOML value into the field's type, or explain why not."""
    kind = _TYPES[name]
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
    if name == "bug":
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
    if config_file is not None:
        for k, v in load_toml(config_file).items():
            values[k] = _coerce(k, v, f"{config_file}: {k.replace('_', '-')}")
            where[k] = f"{config_file}: {k.replace('_', '-')}"
    for k, v in (flags or {}).items():
        if v is None:
            continue
        if k not in FIELD_NAMES:
            raise ConfigError(f"unknown setting {k!r}")
        values[k] = _coerce(k, v, _flag(k))
        where[k] = _flag(k)
    if values.get("seed") is None:
        values["seed"] = random.SystemRandom().randrange(2**31)
    config = TestConfig(**values)
    validate(config, where)
    return config


def validate(config: TestConfig, where: Mapping[str, str] | None = None) -> None:
    """Check every field and the combinations; raises ConfigError naming the source."""
    from jepsenlike.backends import BACKENDS
    from jepsenlike.nemesis import PackageOptions, build_packages, nemesis_names, parse_target_spec
    from jepsenlike.nemesis.clock import CLOCK_FAULTS
    from jepsenlike.nemesis.grudge import partition_shape, validate_grudge
    from jepsenlike.plugins import load
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
    if config.backend not in BACKENDS:
        raise ConfigError(f"{src('backend')}: unknown backend {config.backend!r}; available: {', '.join(BACKENDS)}")
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
            load("checkers", name)
        except ConfigError as e:
            raise ConfigError(str(e).replace("--checker:", f"{src('checkers')}:", 1)) from None
    check_store(config.store, src("store"))
    # Unknown names and incompatible combinations fail here; a fault the backend
    # cannot inject is not an error: the run records it as refused (verdict unknown).
    build_packages(config.nemesis, PackageOptions.from_config(config))
