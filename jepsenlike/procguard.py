"""Node processes that die with the harness, and a cleanup for what a killed harness left.

Theory of operation
-------------------
A harness killed with SIGKILL runs no ``finally`` and no ``atexit``: the nodes
it started would keep running, ports bound, some of them frozen by a pause.
Three layers make sure they do not outlive it:

1. **Parent-death signal.** :func:`spawn` starts each node with a
   ``preexec_fn`` that calls ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (through
   ``ctypes``; Linux only) and then exits at once if its parent is already not
   the harness (the harness died between ``fork`` and ``prctl``). The kernel
   sends that signal when the *thread* that forked the child ends, not the
   process, so every node is forked by one long-lived daemon thread (the
   *spawner*): a node restarted from the nemesis thread, which ends with the
   chaos phase, must not die with it. SIGKILL also ends a stopped (paused)
   process.
2. **Environment markers.** Every node gets ``JEPSENLIKE_DIE_WITH_PARENT=<harness
   pid>`` (a node may set the same parent-death signal itself, e.g. after
   re-executing, and exits if its parent already changed),
   ``JEPSENLIKE_HARNESS_START=<harness start time>`` and ``JEPSENLIKE_RUN=<run
   dir>``. Children of a node inherit them, so a node's own helpers, which the
   parent-death signal does not reach, are still recognisable as part of the run.
3. **Pid files and** ``jepsenlike clean``. Each spawned node gets a small JSON file
   in :func:`runtime_dir` (``$XDG_RUNTIME_DIR/jepsenlike`` or
   ``/tmp/jepsenlike-<uid>``) holding the harness's pid and start time and the
   node's pid, process group and start time; the backend removes it when it
   reaps the node (:func:`forget`). :func:`clean` kills what earlier, killed
   runs left: a recorded node whose pid still has the recorded start time (a
   reused pid has another), and every process whose environment carries the
   markers of a harness that is gone. Files of live harnesses are left alone.

Start times are field 22 of ``/proc/<pid>/stat`` (clock ticks since boot): a pid
and its start time name one process for the life of the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIE_WITH_PARENT = "JEPSENLIKE_DIE_WITH_PARENT"
HARNESS_START = "JEPSENLIKE_HARNESS_START"
RUN_MARKER = "JEPSENLIKE_RUN"
RUNTIME_ENV = "JEPSENLIKE_RUNTIME_DIR"
PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``started`` (and not a zombie)."""
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    if not fields or fields[0] in ("Z", "X"):
        return False
    return started is None or start_time(pid) == started


def runtime_dir() -> Path:
    """Where pid files go: ``$JEPSENLIKE_RUNTIME_DIR``, ``$XDG_RUNTIME_DIR/jepsenlike`` or
    ``/tmp/jepsenlike-<uid>`` (created with mode 0700)."""
    explicit = os.environ.get(RUNTIME_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "jepsenlike"
    return Path(f"/tmp/jepsenlike-{os.getuid()}")


def _prepare_runtime_dir() -> Path | None:
    d = runtime_dir()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid():  # someone else's directory: do not trust or write it
        return None
    return d


def _load_prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with(parent: int) -> Callable[[], None]:
    """The child-side setup: SIGKILL when the forking thread ends; exit if already orphaned."""
    prctl = _PRCTL

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _Spawner:
    """One daemon thread that forks every node, so the parent-death signal is tied to it."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0

    def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="jepsenlike-spawner", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return fn()
        fut: Future[Any] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as e:  # handed to the caller
                fut.set_exception(e)


_SPAWNER = _Spawner()


@dataclass
class Guarded:
    """What :func:`spawn` recorded about one node process."""

    proc: subprocess.Popen[bytes]
    pid_file: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)


_GUARDED: dict[int, Guarded] = {}
_GUARDED_LOCK = threading.Lock()


def marker_env(run_dir: str | os.PathLike[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the markers of this harness and run."""
    env = dict(os.environ if base is None else base)
    env[DIE_WITH_PARENT] = str(os.getpid())
    env[HARNESS_START] = str(start_time(os.getpid()) or 0)
    env[RUN_MARKER] = os.path.abspath(run_dir)
    return env


def spawn(
    argv: list[str],
    *,
    run_dir: str | os.PathLike[str],
    node: str,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen)``, but the process dies with this harness (see the module doc).

    Args:
        argv: the command line.
        run_dir: the run's directory (the marker that names the run).
        node: the node id (recorded in the pid file).
        env: the environment (default: this process's), to which the markers are added.
        popen: further :class:`subprocess.Popen` arguments (not ``env`` or ``preexec_fn``).
    """
    full_env = marker_env(run_dir, env)
    parent = os.getpid()
    proc: subprocess.Popen[bytes] = _SPAWNER.run(
        lambda: subprocess.Popen(argv, env=full_env, preexec_fn=_die_with(parent), **popen))
    record = {
        "harness_pid": parent, "harness_start": start_time(parent),
        "pid": proc.pid, "start": start_time(proc.pid),
        "pgid": proc.pid if popen.get("start_new_session") else None,
        "node": node, "run_dir": full_env[RUN_MARKER], "argv": argv,
    }
    pid_file = None
    d = _prepare_runtime_dir()
    if d is not None:
        pid_file = d / f"{parent}.{proc.pid}.json"
        try:
            pid_file.write_text(json.dumps(record))
        except OSError:
            pid_file = None
    with _GUARDED_LOCK:
        _GUARDED[proc.pid] = Guarded(proc, pid_file, record)
    return proc


def forget(proc: subprocess.Popen[bytes]) -> None:
    """The backend reaped ``proc`` (or is tearing it down): drop its pid file."""
    with _GUARDED_LOCK:
        g = _GUARDED.pop(proc.pid, None)
    if g is not None and g.pid_file is not None:
        with contextlib.suppress(OSError):
            g.pid_file.unlink()


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep and k.startswith(b"JEPSENLIKE_"):
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def marked_processes() -> list[tuple[int, dict[str, str]]]:
    """Every process whose environment carries a run marker, with its markers."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            env = _environ(int(entry.name))
            if RUN_MARKER in env and DIE_WITH_PARENT in env:
                out.append((int(entry.name), env))
    return out


@dataclass
class CleanReport:
    """What :func:`clean` found and did."""

    killed: list[tuple[int, str]] = field(default_factory=list)  # (pid, run dir)
    pid_files_removed: int = 0
    live_runs: set[str] = field(default_factory=set)


def _kill(pid: int, pgid: int | None) -> None:
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _under(run_dir: str, store: str | os.PathLike[str] | None) -> bool:
    if store is None:
        return True
    root = Path(os.path.abspath(store))
    return Path(run_dir) == root or root in Path(run_dir).parents


def clean(dry_run: bool = False, store: str | os.PathLike[str] | None = None) -> CleanReport:
    """Kill node processes left by harnesses that are gone, and remove their pid files.

    Args:
        dry_run: only report.
        store: only runs whose directory is under this one.
    """
    report = CleanReport()
    d = runtime_dir()
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            rec = json.loads(f.read_text())
            harness, harness_start = int(rec["harness_pid"]), rec.get("harness_start")
            pid, started = int(rec["pid"]), rec.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _under(str(rec.get("run_dir")), store):
            continue
        if alive(harness, harness_start):
            report.live_runs.add(str(rec.get("run_dir")))
            continue
        if alive(pid, started):
            report.killed.append((pid, str(rec.get("run_dir"))))
            if not dry_run:
                _kill(pid, rec.get("pgid"))
        if not dry_run:
            with contextlib.suppress(OSError):
                f.unlink()
            report.pid_files_removed += 1
    for pid, env in marked_processes():
        try:
            harness = int(env[DIE_WITH_PARENT])
            harness_start = int(env.get(HARNESS_START) or 0) or None
        except ValueError:
            continue
        if not _under(env[RUN_MARKER], store):
            continue
        if alive(harness, harness_start) or any(p == pid for p, _ in report.killed):
            continue
        report.killed.append((pid, env[RUN_MARKER]))
        if not dry_run:
            _kill(pid, None)
    return report
