"""Per-process clock faults through libfaketime: bump, strobe, rate drift, reset.

Theory of operation
-------------------
libfaketime is an ``LD_PRELOAD`` library that answers a process's wall-clock
calls (``clock_gettime(CLOCK_REALTIME)``, ``gettimeofday``, ``time``) with a
faked time. Each node process gets its own preload and its own *control file*
(``FAKETIME_TIMESTAMP_FILE``); with ``FAKETIME_NO_CACHE=1`` the library rereads
that file on every clock call, so rewriting it changes the node's clock while it
runs. Only the wall clock moves: ``FAKETIME_DONT_FAKE_MONOTONIC=1`` leaves
``CLOCK_MONOTONIC`` alone, so asyncio timers, timeouts and ``time.monotonic()``
in the node keep real time, exactly as on a machine whose wall clock is stepped.

The control file holds one of two kinds of line, and nothing else:

* ``+12.500000000`` / ``-3.000000000`` -- *running*: the real time plus an
  offset. The result depends only on the real time at the moment of reading,
  not on when the process started, so a restarted node sees the same clock.
* ``1795673414.153071`` -- *frozen*: this absolute time (epoch seconds, read
  with ``FAKETIME_FMT=%s``) until the line changes.

libfaketime's own speed modifier (``x2``) is deliberately not used: it scales
time since *process start* (unknown to us, reset by every restart, so a rate
change makes the clock jump), and it also stretches ``sleep``/``poll``/
``epoll_wait`` timeouts by ``1/rate``, which would slow a node's monotonic
timers too. Instead :class:`FaketimeClock` keeps an ideal clock
``fake(t) = anchor_fake + rate * (t - anchor_real)`` (plus the strobe term) and
a driver thread realizes it every ``resolution`` seconds with the two line
kinds: for ``rate > 1`` it steps the offset forward (a staircase that stays at
most ``(rate - 1) * resolution`` behind the ideal line); for ``rate < 1`` it
alternates running and frozen stretches, so the clock never goes backwards and
stays within about two resolutions of the ideal line (a freeze is set one
resolution ahead, so that readers still on the running line cannot pass it
while the new line is being written). Bumps, resets and
strobe flips are written at once, as jumps. Lines are written to a temporary
file and renamed over the control file, so a reader sees the old line or the
new one, never half of one.

Finding the library (:func:`search_libfaketime`), in order: the path in
``$JEPSENLIKE_LIBFAKETIME``; the copy shipped inside the PyPI package
``libfaketime`` (python-libfaketime; an x86-64 Linux build that does not
intercept sleeps); the system library of the Debian/Ubuntu package
``libfaketime`` (``libfaketimeMT.so.1`` preferred, since it serializes the
library's internal state between threads). The Debian 0.9.10 build intercepts
``clock_nanosleep``, and in a preloaded CPython >= 3.11 ``time.sleep()`` then
fails with ``EINVAL`` (its absolute monotonic deadline is translated as if it
were a wall-clock one); asyncio and ``threading`` waits are not affected. The
search result says which kind it found.

Limits: statically linked programs and runtimes that read the clock without
libc (Go, anything calling the vDSO directly) do not see faked time;
``FAKETIME`` in the environment would override the control file, so
:meth:`FaketimeClock.env_for_process` removes it; file timestamps (``stat``)
are left real (``NO_FAKE_STAT=1``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jepsenlike.errors import ConfigError

LIBFAKETIME_ENV = "JEPSENLIKE_LIBFAKETIME"
"""Environment variable naming a libfaketime shared object to use."""

# Where distributions put the library; the multiarch directories come first.
_SYSTEM_DIRS = (
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib/faketime",
    "/usr/lib64/faketime",
    "/usr/local/lib/faketime",
    "/usr/lib",
    "/usr/local/lib",
)
_SYSTEM_NAMES = ("libfaketimeMT.so.1", "libfaketime.so.1")
_INSTALL_HINT = (
    "install it with `apt-get install libfaketime` (Debian/Ubuntu) or "
    "`pip install libfaketime` (x86-64 Linux), or point $JEPSENLIKE_LIBFAKETIME at libfaketime.so.1"
)

MAX_RATE = 1000.0


class FaketimeUnavailable(ConfigError):
    """No usable libfaketime: the message says where we looked and how to install one."""


@dataclass(frozen=True)
class LibfaketimeSearch:
    """What :func:`search_libfaketime` found, and why."""

    path: Path | None
    source: str
    """``env``, ``pypi``, ``system`` or ``""`` when nothing was found."""
    reason: str
    """Why this library, or why none: where we looked and how to install one."""
    intercepts_sleep: bool | None
    """Whether the library wraps ``clock_nanosleep``/``nanosleep`` (see module doc)."""


def _intercepts_sleep(path: Path) -> bool | None:
    # A build without FAKE_SLEEP never mentions clock_nanosleep: it neither
    # exports a wrapper nor looks the real one up by name. Reading the bytes
    # avoids dlopen()ing the library into this (the harness's) process.
    try:
        return b"clock_nanosleep" in path.read_bytes()
    except OSError:
        return None


def _pypi_library() -> Path | None:
    try:
        spec = importlib.util.find_spec("libfaketime")  # locates, does not import
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
        if candidate.is_file():
            return candidate
    return None


def search_libfaketime(environ: Mapping[str, str] | None = None) -> LibfaketimeSearch:
    """Find libfaketime (see the module doc for the order) and say why."""
    env = os.environ if environ is None else environ
    explicit = env.get(LIBFAKETIME_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            return LibfaketimeSearch(
                None, "", f"${LIBFAKETIME_ENV} is {explicit!r}, which is not a file", None
            )
        return LibfaketimeSearch(path, "env", f"from ${LIBFAKETIME_ENV}", _intercepts_sleep(path))
    pypi = _pypi_library()
    if pypi is not None:
        return LibfaketimeSearch(
            pypi, "pypi", "shipped by the PyPI package libfaketime", _intercepts_sleep(pypi)
        )
    looked: list[str] = []
    for directory in _SYSTEM_DIRS:
        for name in _SYSTEM_NAMES:
            candidate = Path(directory) / name
            looked.append(str(candidate))
            if candidate.is_file():
                sleeps = _intercepts_sleep(candidate)
                note = (
                    "; it intercepts sleeps, so time.sleep() fails with EINVAL in preloaded "
                    "Python >= 3.11 processes (asyncio is fine); the PyPI build does not"
                    if sleeps
                    else ""
                )
                return LibfaketimeSearch(candidate, "system", f"system library{note}", sleeps)
    return LibfaketimeSearch(
        None,
        "",
        f"libfaketime not found: ${LIBFAKETIME_ENV} is unset, the PyPI package libfaketime "
        f"is not installed, and none of {', '.join(looked[:4])}, ... exists; {_INSTALL_HINT}",
        None,
    )


def find_libfaketime() -> Path | None:
    """Path of the libfaketime to preload, or ``None`` (``search_libfaketime().reason`` says why)."""
    return search_libfaketime().path


def _running_line(offset: float) -> str:
    # Always signed and fixed-point: libfaketime reads "+-5" as 0, and a unit
    # letter ("e" of an exponent is not one, but "d", "m", "h", "y" are) would
    # scale the number.
    return f"{offset:+.9f}"


def _frozen_line(at: float) -> str:
    return f"{at:.6f}"


class FaketimeClock:
    """The wall clock of one node process, driven through its control file.

    Thread-safe. ``offset`` is the ideal fake-minus-real time now; the realized
    clock follows it as the module doc describes. Call :meth:`close` when the
    node is gone (the driver thread, if any, stops; the file stays unless asked).
    """

    def __init__(
        self,
        control_file: str | os.PathLike[str],
        *,
        library: str | os.PathLike[str] | None = None,
        resolution: float = 0.01,
    ) -> None:
        if resolution <= 0:
            raise ConfigError(f"resolution must be > 0 seconds; got {resolution}")
        self.control_file = Path(control_file)
        self.resolution = resolution
        self._library = Path(library) if library is not None else None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        now = time.time()
        self._anchor_real = now
        self._anchor_fake = now
        self._rate = 1.0
        self._strobe: tuple[float, float, float, float] | None = None  # start, delta, period, until
        self._strobe_phase: int | None = None
        self._frozen_at: float | None = None  # realized clock frozen at this value
        self._written_offset = 0.0
        self._driver: threading.Thread | None = None
        self._closed = False
        self.control_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._write_running(0.0)

    # -- for the process ------------------------------------------------------

    @property
    def library(self) -> Path:
        """The libfaketime this clock preloads; raises :class:`FaketimeUnavailable`."""
        if self._library is not None:
            return self._library
        found = search_libfaketime()
        if found.path is None:
            raise FaketimeUnavailable(f"clock faults need libfaketime: {found.reason}")
        return found.path

    def env_for_process(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment to start the node with: ``base`` (default ``os.environ``) plus the preload."""
        env = dict(os.environ if base is None else base)
        env.pop("FAKETIME", None)  # it would take precedence over the control file
        preload = str(self.library)
        env["LD_PRELOAD"] = f"{preload}:{env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else preload
        env["FAKETIME_TIMESTAMP_FILE"] = str(self.control_file.resolve())
        env["FAKETIME_NO_CACHE"] = "1"  # reread the file on every call: changes apply at once
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        env["DONT_FAKE_MONOTONIC"] = "1"  # the same switch, as spelled by older releases
        env["FAKETIME_FMT"] = "%s"  # frozen lines are epoch seconds
        env["NO_FAKE_STAT"] = "1"
        return env

    # -- faults ---------------------------------------------------------------

    @property
    def offset(self) -> float:
        """Ideal fake-minus-real seconds now (the strobe term included)."""
        with self._lock:
            now = time.time()
            return self._target(now) - now

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    def bump(self, seconds: float) -> None:
        """Step the clock by ``seconds`` (negative: backwards), on top of any drift."""
        if not math.isfinite(seconds):
            raise ConfigError(f"bump needs a finite number of seconds; got {seconds}")
        with self._lock:
            self._anchor_fake += seconds
            self._jump(time.time())

    def set_rate(self, rate: float) -> None:
        """Make the clock run at ``rate`` seconds per real second from now on (0 < rate)."""
        if not (0.0 < rate <= MAX_RATE) or not math.isfinite(rate):
            raise ConfigError(f"clock rate must be in (0, {MAX_RATE:g}]; got {rate}")
        with self._lock:
            now = time.time()
            # Start the new course where the realized clock is now, not where the
            # ideal one is: they differ by up to a step, and a rate change is no bump.
            self._anchor_fake = self._realized(now) - self._strobe_term(now)[0]
            self._anchor_real = now
            self._rate = rate
            self._jump(now)
            self._ensure_driver()

    def strobe(self, delta: float, period: float, duration: float) -> None:
        """For ``duration`` s, flip the clock between ``+delta`` and its course every ``period`` s.

        Returns at once; the driver thread flips the clock. The first half-period
        is shifted by ``delta``; after ``duration`` the clock is back on course.
        """
        if period <= 0 or duration < 0 or not all(map(math.isfinite, (delta, period, duration))):
            raise ConfigError(
                f"strobe needs period > 0 and duration >= 0 (seconds); got delta={delta}, "
                f"period={period}, duration={duration}"
            )
        with self._lock:
            now = time.time()
            self._strobe = (now, delta, period, now + duration)
            self._strobe_phase = None
            self._jump(now)
            self._ensure_driver()

    def strobing(self) -> bool:
        with self._lock:
            return self._strobe is not None and time.time() < self._strobe[3]

    def reset(self) -> None:
        """Back to real time: offset 0, rate 1, no strobe."""
        with self._lock:
            now = time.time()
            self._anchor_real = self._anchor_fake = now
            self._rate = 1.0
            self._strobe = None
            self._jump(now)
            self._wake.notify_all()

    def close(self, *, remove: bool = False) -> None:
        """Stop the driver thread; with ``remove``, delete the control file."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            driver = self._driver
        if driver is not None:
            driver.join()
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.control_file.unlink()

    def __enter__(self) -> FaketimeClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (call with the lock held) ----------------------------------

    def _ideal(self, now: float) -> float:
        return self._anchor_fake + self._rate * (now - self._anchor_real)

    def _strobe_term(self, now: float) -> tuple[float, int | None]:
        if self._strobe is None:
            return 0.0, None
        start, delta, period, until = self._strobe
        if now >= until:
            return 0.0, None
        phase = int((now - start) // period)
        return (delta if phase % 2 == 0 else 0.0), phase

    def _target(self, now: float) -> float:
        return self._ideal(now) + self._strobe_term(now)[0]

    def _realized(self, now: float) -> float:
        return self._frozen_at if self._frozen_at is not None else now + self._written_offset

    def _jump(self, now: float) -> None:
        """Put the realized clock on the target at once (a deliberate step)."""
        self._strobe_phase = self._strobe_term(now)[1]
        self._write_running(self._target(now) - now)

    def _track(self, now: float) -> None:
        """One driver tick: follow the target without stepping backwards."""
        term, phase = self._strobe_term(now)
        if phase != self._strobe_phase:  # a strobe flip (or its end) is a step
            self._strobe_phase = phase
            if phase is None:
                self._strobe = None
            self._write_running(self._target(now) - now)
            return
        target = self._ideal(now) + term
        if self._rate >= 1.0:
            if self._rate > 1.0 or self._frozen_at is not None:
                self._write_running(target - now)
            return
        realized = self._realized(now)
        if self._frozen_at is None and realized >= target:
            # Freeze a little ahead: until the rename lands, readers still see the
            # running line, which must not pass the frozen value (that would be a
            # step back). One resolution of headroom covers a slow write.
            frozen = realized + self.resolution
            self._write(_frozen_line(frozen))
            self._frozen_at = frozen
        elif self._frozen_at is not None and target >= self._frozen_at:
            # Resume a little ahead too: libfaketime reads the real time *before*
            # it rereads the file, so a reader that read the real time just before
            # `now` may combine it with this line.
            self._write_running(self._frozen_at - now + self.resolution)

    def _write_running(self, offset: float) -> None:
        self._write(_running_line(offset))
        self._written_offset = offset
        self._frozen_at = None

    def _write(self, line: str) -> None:
        tmp = self.control_file.with_name(f".{self.control_file.name}.tmp")
        tmp.write_text(line + "\n")
        os.replace(tmp, self.control_file)  # atomic: readers see old or new, never half

    def _needs_driver(self) -> bool:
        return self._rate != 1.0 or self._strobe is not None or self._frozen_at is not None

    def _ensure_driver(self) -> None:
        if self._driver is None or not self._driver.is_alive():
            self._driver = threading.Thread(
                target=self._drive, name=f"faketime-{self.control_file.name}", daemon=True
            )
            self._driver.start()
        self._wake.notify_all()

    def _drive(self) -> None:
        with self._lock:
            while not self._closed and self._needs_driver():
                self._track(time.time())
                self._wake.wait(self.resolution)
            self._driver = None
