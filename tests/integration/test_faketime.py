"""FaketimeClock against a real preloaded process: the offsets it actually sees."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jepsenlike.faketime import (
    LIBFAKETIME_ENV,
    FaketimeClock,
    FaketimeUnavailable,
    search_libfaketime,
)

pytestmark = pytest.mark.integration

FOUND = search_libfaketime()
needs_lib = pytest.mark.skipif(FOUND.path is None, reason=FOUND.reason)

# The probe reports its wall clock and its monotonic clock on request. CLOCK_MONOTONIC
# is system-wide and (by design) not faked, so the parent turns the probe's
# monotonic reading into the real wall time of that very moment.
PROBE = textwrap.dedent(
    """
    import asyncio, sys, time
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "t":
            print(repr(time.time()), repr(time.monotonic()), flush=True)
        elif cmd == "burst":
            out = [repr(time.time()) + "@" + repr(time.monotonic()) for _ in range(int(args[0]))]
            print(" ".join(out), flush=True)
        elif cmd == "asleep":
            t0 = time.monotonic()
            asyncio.run(asyncio.sleep(float(args[0])))
            print(repr(time.monotonic() - t0), flush=True)
        elif cmd == "sleep":
            try:
                time.sleep(float(args[0]))
                print("ok", flush=True)
            except OSError as e:
                print("error", e.errno, flush=True)
    """
)


class Probe:
    def __init__(self, clock: FaketimeClock) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROBE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clock.env_for_process(),
        )
        # real wall time = monotonic + this (taken in the un-faked parent)
        self.mono_to_wall = time.time() - time.monotonic()

    def ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def sample(self) -> tuple[float, float]:
        """(fake wall time, real wall time) of one instant in the probe."""
        wall, mono = map(float, self.ask("t").split())
        return wall, mono + self.mono_to_wall

    def offset(self) -> float:
        fake, real = self.sample()
        return fake - real

    def burst(self, n: int) -> list[tuple[float, float]]:
        pairs = [p.split("@") for p in self.ask(f"burst {n}").split()]
        return [(float(w), float(m) + self.mono_to_wall) for w, m in pairs]

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def clock_and_probe(tmp_path: Path) -> Iterator[tuple[FaketimeClock, Probe]]:
    clock = FaketimeClock(tmp_path / "n1.faketime")
    probe = Probe(clock)
    try:
        yield clock, probe
    finally:
        probe.close()
        clock.close()


TOL = 0.05  # s; offsets are read through the monotonic clock, so only the staircase steps count


@needs_lib
def test_bump_and_reset_move_the_wall_clock_the_process_sees(clock_and_probe) -> None:  # type: ignore[no-untyped-def]
    clock, probe = clock_and_probe
    assert abs(probe.offset()) < TOL
    clock.bump(30)
    assert probe.offset() == pytest.approx(30, abs=TOL)
    clock.bump(-10)
    assert probe.offset() == pytest.approx(20, abs=TOL)
    assert clock.offset == pytest.approx(20, abs=TOL)
    clock.reset()
    assert abs(probe.offset()) < TOL


@needs_lib
def test_rate_two_then_half_then_reset(clock_and_probe) -> None:  # type: ignore[no-untyped-def]
    clock, probe = clock_and_probe
    clock.bump(5)
    clock.set_rate(2.0)
    f0, r0 = probe.sample()
    time.sleep(1.0)
    f1, r1 = probe.sample()
    assert (f1 - f0) / (r1 - r0) == pytest.approx(2.0, abs=0.1)
    assert f0 - r0 >= 5 - TOL  # the bump is kept under drift
    clock.set_rate(0.5)
    # Read the clock as fast as the probe can for a second, so the samples
    # cross many of the driver's run/freeze transitions.
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        samples += probe.burst(200)
    (fa, ra), (fb, rb) = samples[0], samples[-1]
    assert (fb - fa) / (rb - ra) == pytest.approx(0.5, abs=0.1)
    fakes = [f for f, _ in samples]
    assert fakes == sorted(fakes), "a slow clock must never step backwards"
    clock.reset()
    assert abs(probe.offset()) < TOL
    time.sleep(0.1)
    assert abs(probe.offset()) < TOL  # and it stays there: the driver has stopped drifting


@needs_lib
def test_strobe_flips_between_two_offsets_then_returns(clock_and_probe) -> None:  # type: ignore[no-untyped-def]
    clock, probe = clock_and_probe
    clock.bump(-2)
    clock.strobe(delta=5.0, period=0.1, duration=1.0)
    seen = []
    deadline = time.monotonic() + 0.9
    while time.monotonic() < deadline:
        seen.append(probe.offset())
        time.sleep(0.01)
    near_base = [o for o in seen if abs(o - (-2)) < TOL]
    near_shift = [o for o in seen if abs(o - 3) < TOL]
    assert len(near_base) + len(near_shift) == len(seen)
    assert len(near_base) > 5 and len(near_shift) > 5
    time.sleep(0.3)
    assert not clock.strobing()
    assert probe.offset() == pytest.approx(-2, abs=TOL)


@needs_lib
def test_monotonic_clock_and_asyncio_timers_are_not_faked(clock_and_probe) -> None:  # type: ignore[no-untyped-def]
    clock, probe = clock_and_probe
    clock.bump(-3600)
    before = time.monotonic()
    _, child_real = probe.sample()
    after = time.monotonic()
    child_mono = child_real - probe.mono_to_wall
    assert before <= child_mono <= after
    clock.set_rate(0.5)
    slept = float(probe.ask("asleep 0.3"))
    assert 0.3 <= slept < 3.0  # neither instant nor stretched by the slow wall clock
    assert probe.offset() < -3590


@needs_lib
def test_time_sleep_in_the_process_behaves_as_the_search_predicts(clock_and_probe) -> None:  # type: ignore[no-untyped-def]
    clock, probe = clock_and_probe
    clock.bump(100)
    answer = probe.ask("sleep 0.05")
    if FOUND.intercepts_sleep:
        assert answer == "error 22", answer  # libfaketime 0.9.10's clock_nanosleep bug
    else:
        assert answer == "ok"


@needs_lib
def test_the_clock_survives_a_process_restart(tmp_path: Path) -> None:
    with FaketimeClock(tmp_path / "n2.faketime") as clock:
        clock.bump(42)
        first = Probe(clock)
        try:
            assert first.offset() == pytest.approx(42, abs=TOL)
        finally:
            first.close()
        second = Probe(clock)
        try:
            assert second.offset() == pytest.approx(42, abs=TOL)
        finally:
            second.close()


# -- no library needed ---------------------------------------------------------


def test_control_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.faketime"
    with FaketimeClock(path, library="/opt/libfaketime.so.1") as clock:
        assert path.read_text() == "+0.000000000\n"
        clock.bump(-5.5)
        assert path.read_text() == "-5.500000000\n"
        clock.bump(35.5)
        assert path.read_text() == "+30.000000000\n"
        clock.reset()
        assert path.read_text() == "+0.000000000\n"


def test_env_for_process(tmp_path: Path) -> None:
    clock = FaketimeClock(tmp_path / "c.faketime", library="/opt/libfaketime.so.1")
    env = clock.env_for_process({"PATH": "/bin", "FAKETIME": "+1d", "LD_PRELOAD": "/x.so"})
    assert env["PATH"] == "/bin"
    assert "FAKETIME" not in env
    assert env["LD_PRELOAD"] == "/opt/libfaketime.so.1:/x.so"
    assert env["FAKETIME_TIMESTAMP_FILE"] == str((tmp_path / "c.faketime").resolve())
    assert env["FAKETIME_NO_CACHE"] == "1"
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    clock.close(remove=True)
    assert not (tmp_path / "c.faketime").exists()


def test_missing_library_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIBFAKETIME_ENV, str(tmp_path / "nope.so"))
    found = search_libfaketime()
    assert found.path is None and "nope.so" in found.reason and "not a file" in found.reason
    clock = FaketimeClock(tmp_path / "c.faketime")
    with pytest.raises(FaketimeUnavailable, match="clock faults need libfaketime"):
        clock.env_for_process()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1e9])
def test_bad_rate_is_refused(tmp_path: Path, bad: float) -> None:
    with FaketimeClock(tmp_path / "c.faketime", library="/x") as clock, pytest.raises(
        ValueError, match="clock rate"
    ):
        clock.set_rate(bad)


def test_search_order_env_then_pypi_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for the PyPI package: same layout, a file without sleep wrappers.
    pkg = tmp_path / "site" / "libfaketime"
    so = pkg / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    so.parent.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the search must not import me')\n")
    so.write_bytes(b"\x7fELF clock_gettime gettimeofday")
    monkeypatch.delenv(LIBFAKETIME_ENV, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = search_libfaketime()
    assert (found.path, found.source, found.intercepts_sleep) == (so, "pypi", False)
    explicit = tmp_path / "mine.so"
    explicit.write_bytes(b"\x7fELF clock_nanosleep")
    monkeypatch.setenv(LIBFAKETIME_ENV, str(explicit))
    found = search_libfaketime()
    assert (found.path, found.source, found.intercepts_sleep) == (explicit, "env", True)
