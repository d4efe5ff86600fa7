"""The store: one directory per run, and how to find runs again.

Layout::

    <store>/<test-name>/<YYYYmmddTHHMMSS.mmm>/
        test.json       the full config (seed included), versions, command, nodes, phases
        history.jsonl   every event, appended and flushed as it happened
        results.json    the verdict, the checker's details, statistics
        nemesis.log     one line per fault op, human-readable
        nodes/<id>.log  each node's stdout and stderr
    <store>/latest      symlink to the newest run directory
    <store>/<test-name>/latest

JSON files are written to a temporary name and renamed, so a reader never
sees half a file; the history is the exception (it is append-only and its
reader reports a torn last line with file and line number).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from jepsenlike import __version__
from jepsenlike.errors import ConfigError

TEST_FILE = "test.json"
HISTORY_FILE = "history.jsonl"
RESULTS_FILE = "results.json"
NEMESIS_LOG = "nemesis.log"


def timestamp(now: float | None = None) -> str:
    t = time.time() if now is None else now
    return time.strftime("%Y%m%dT%H%M%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"


KERNEL_FILESYSTEMS = ("/proc", "/sys", "/dev")


def check_store(store: str | os.PathLike[str], where: str = "--store") -> None:
    """Refuse a store the run could not write, before anything starts; creates nothing.

    Raises:
        ConfigError: one line naming the store and the problem: a file, not a
        directory; under a kernel filesystem; on a read-only filesystem; not writable.
    """
    p = Path(store)
    absolute = Path(os.path.abspath(p))
    fix = "give a writable directory, e.g. --store ./store"
    for kernel in KERNEL_FILESYSTEMS:
        if absolute == Path(kernel) or Path(kernel) in absolute.parents:
            raise ConfigError(f"{where}: {p} is under {kernel}, a kernel filesystem; {fix}")
    existing = absolute
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == absolute else f"is under {existing}, which is a file"
        raise ConfigError(f"{where}: {p} {what}, not a directory; {fix}")
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise ConfigError(f"{where}: {p} is on a read-only filesystem ({existing}); {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {p} is not writable ({existing}: permission denied); {fix}")


def new_run_dir(store: str | os.PathLike[str], test_name: str, now: float | None = None) -> Path:
    """Create and return a fresh run directory (never reuses an existing one).

    Raises:
        ConfigError: the directory cannot be created (one line, with the OS's reason).
    """
    base = Path(store) / test_name
    stamp = timestamp(now)
    try:
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            run = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                run.mkdir()
                return run
            except FileExistsError:
                continue
    except OSError as e:
        raise ConfigError(f"--store: cannot create a run directory under {base}: "
                          f"{e.strerror or e}; give a writable directory") from None
    raise ConfigError(f"--store: cannot create a fresh run directory under {base}")


def _symlink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)


def update_latest(store: str | os.PathLike[str], run_dir: Path) -> None:
    """Point ``<store>/latest`` and ``<store>/<test>/latest`` at ``run_dir``."""
    _symlink(Path(store) / "latest", run_dir)
    _symlink(run_dir.parent / "latest", run_dir)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_jsonable)
        fh.write("\n")
    os.replace(tmp, p)


def _jsonable(o: Any) -> Any:
    if isinstance(o, set | frozenset | tuple):
        return sorted(o, key=repr) if isinstance(o, set | frozenset) else list(o)
    return repr(o)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def versions() -> dict[str, str]:
    """What produced a run: our version, Python, the platform."""
    return {
        "jepsenlike": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def resolve_run_dir(path: str | os.PathLike[str]) -> Path:
    """A run directory from a path: the run itself, ``latest``, or a test dir (its latest).

    Raises:
        ConfigError: no run there, naming what is missing.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"RUN_DIR: no such directory: {p}")
    if not (p / HISTORY_FILE).exists() and (p / "latest").exists():
        p = p / "latest"
    if not (p / HISTORY_FILE).exists():
        raise ConfigError(f"RUN_DIR: {p} is not a run directory (no {HISTORY_FILE})")
    if not (p / TEST_FILE).exists():
        raise ConfigError(f"RUN_DIR: {p} has no {TEST_FILE}; cannot tell which workload to check")
    return p.resolve()
