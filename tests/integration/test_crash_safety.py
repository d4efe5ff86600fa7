"""A harness killed with SIGKILL leaves no node behind; ``jepsenlike clean`` removes what could remain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jepsenlike.procguard import RUN_MARKER, marked_processes

pytestmark = pytest.mark.integration

JEPSENLIKE = [sys.executable, "-P", "-m", "jepsenlike"]


def run_processes(run_dir: Path) -> list[int]:
    """Pids of live (non-zombie) processes carrying the run's marker."""
    out = []
    for pid, env in marked_processes():
        if env.get(RUN_MARKER) == str(run_dir):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X"):
                out.append(pid)
    return out


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_of_the_harness_mid_chaos_leaves_no_node(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "JEPSENLIKE_RUNTIME_DIR": str(tmp_path / "rt")}
    harness = subprocess.Popen(
        [*JEPSENLIKE, "run", "--nodes", "3", "--nemesis", "pause,kill,partition", "--warmup", "1",
         "--nemesis-interval", "2", "--time-limit", "60", "--quiet", "--store", str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        run_dir = wait_for(lambda: (store / "latest").resolve() if (store / "latest").exists() else None,
                           30, "the run directory")
        wait_for(lambda: len(run_processes(run_dir)) >= 3, 30, "3 nodes")
        # Mid-chaos, with a node frozen by a pause: the hardest case to clean up.
        paused = wait_for(lambda: [p for p in run_processes(run_dir) if state_of(p) in ("T", "t")],
                          40, "a paused node")
        assert (run_dir / "nemesis.log").read_text()
        nodes = run_processes(run_dir)
        assert len(nodes) >= 3 and paused
        harness.send_signal(signal.SIGKILL)
        harness.wait(5)
        t0 = time.monotonic()
        left = nodes
        while left and time.monotonic() - t0 < 5:
            time.sleep(0.05)
            left = run_processes(run_dir)
        assert left == [], f"still running 5 s after the harness died: {left}"
        # ... and no pid file claims a live node; clean finds nothing left to kill.
        p = subprocess.run([*JEPSENLIKE, "clean", "--store", str(store)], capture_output=True, text=True,
                           env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "killed 0 leftover process(es)" in p.stdout, p.stdout
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()


HARNESS = textwrap.dedent("""
    import sys, time
    from jepsenlike import procguard
    # A node that forks a helper of its own: the parent-death signal reaches the node
    # (the shell), not the helper (sleep), which only the run's markers identify.
    proc = procguard.spawn(["sh", "-c", "sleep 300 & wait"], run_dir=sys.argv[1], node="n1",
                           start_new_session=True)
    print(proc.pid, flush=True)
    time.sleep(300)
""")


def test_clean_kills_what_a_killed_harness_left_and_spares_live_runs(tmp_path):
    env = {**os.environ, "JEPSENLIKE_RUNTIME_DIR": str(tmp_path / "rt")}
    store = tmp_path / "store"
    dead_run, live_run = store / "t" / "dead", store / "t" / "live"
    dead = subprocess.Popen([sys.executable, "-c", HARNESS, str(dead_run)], stdout=subprocess.PIPE,
                            text=True, env=env)
    live = subprocess.Popen([sys.executable, "-c", HARNESS, str(live_run)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        int(dead.stdout.readline())
        int(live.stdout.readline())
        wait_for(lambda: len(run_processes(dead_run)) == 2, 10, "node and helper of the dead run")
        wait_for(lambda: len(run_processes(live_run)) == 2, 10, "node and helper of the live run")
        assert len(list((tmp_path / "rt").glob("*.json"))) == 2
        dead.kill()
        dead.wait()
        # The shell died with its harness; its helper did not.
        helpers = wait_for(lambda: run_processes(dead_run) if len(run_processes(dead_run)) == 1 else None,
                           5, "the node to die with its harness")
        dry = subprocess.run([*JEPSENLIKE, "clean", "--dry-run", "--store", str(store)], capture_output=True,
                             text=True, env=env, timeout=60)
        assert f"would kill pid {helpers[0]}" in dry.stdout, dry.stdout
        assert run_processes(dead_run) == helpers
        p = subprocess.run([*JEPSENLIKE, "clean", "--store", str(store)], capture_output=True, text=True,
                           env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert f"killed pid {helpers[0]}" in p.stdout, p.stdout
        assert "1 live run(s) left alone" in p.stdout, p.stdout
        wait_for(lambda: run_processes(dead_run) == [], 5, "the helper to be killed")
        assert len(run_processes(live_run)) == 2
        assert len(list((tmp_path / "rt").glob("*.json"))) == 1  # the live run's file stays
    finally:
        for h in (dead, live):
            if h.poll() is None:
                h.kill()
                h.wait()
        wait_for(lambda: len(run_processes(live_run)) <= 1, 5, "the live run's node to die with its harness")
        subprocess.run([*JEPSENLIKE, "clean", "--store", str(store)], capture_output=True, env=env, timeout=60)
        wait_for(lambda: run_processes(live_run) == [], 5, "clean to kill the live run's helper")


def test_a_node_spawned_from_a_short_lived_thread_outlives_that_thread(tmp_path, monkeypatch):
    """The parent-death signal follows the forking *thread*: a node restarted from the
    nemesis thread must not die when that thread ends with the chaos phase."""
    import threading

    from jepsenlike import procguard

    monkeypatch.setenv("JEPSENLIKE_RUNTIME_DIR", str(tmp_path / "rt"))
    got = []
    t = threading.Thread(target=lambda: got.append(
        procguard.spawn(["sleep", "30"], run_dir=tmp_path / "run", node="n1", start_new_session=True)))
    t.start()
    t.join()
    proc = got[0]
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "the node died with the thread that asked for it"
        assert procguard._environ(proc.pid)[procguard.DIE_WITH_PARENT] == str(os.getpid())
        assert len(list((tmp_path / "rt").glob("*.json"))) == 1
    finally:
        proc.kill()
        proc.wait()
        procguard.forget(proc)
    assert list((tmp_path / "rt").glob("*.json")) == []
