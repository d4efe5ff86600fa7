"""Faults are confirmed where they act (jepsenlike.confirm), on real Raft nodes.

* through the CLI: a broken libfaketime (``JEPSENLIKE_LIBFAKETIME`` naming a file
  that is not a library) makes a clock-fault run ``unknown`` with the reason, and
  a working one confirms every clock fault;
* a static binary among the node's processes is named as not preloaded, and a node
  whose clock library is mapped but whose clock did not move (the preload
  switched off behind the harness's back, as in a program that reads the clock
  without libc) is not confirmed either;
* on the local backend: pause, kill and partition are confirmed after the backend
  did them, and *not* confirmed when a completion claims them without the backend
  having done them (so the checks can fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest

from jepsenlike.backends.local import LocalBackend
from jepsenlike.confirm import confirm_completion
from jepsenlike.faketime import search_libfaketime
from jepsenlike.nemesis import FaultOp
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
]
needs_faketime = pytest.mark.skipif(search_libfaketime().path is None, reason=search_libfaketime().reason)

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, "run", "--quiet", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def results_of(store) -> dict:
    return json.loads(((store / "latest").resolve() / "results.json").read_text())


def test_a_broken_libfaketime_makes_a_clock_run_unknown_with_the_reason(tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "JEPSENLIKE_LIBFAKETIME": "/etc/hostname"}
    p = run_cli(["--nodes", "3", "--nemesis", "clock", "--clock-faults", "bump", "--time-limit", "5",
                 "--nemesis-interval", "1", "--seed", "3", "--store", str(store)], env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Verdict: UNKNOWN" in p.stdout
    # the library is not even mapped into the node's process: said before any clock is read
    assert "clock fault on n" in p.stdout and "not confirmed: libfaketime (hostname) is not loaded" in p.stdout
    res = results_of(store)
    assert res["valid"] == "unknown"
    cov = res["nemesis"]["coverage"]["clock"]
    assert cov["status"] == "unconfirmed" and cov["fired"] == 0 and cov["unconfirmed"] >= 1
    assert "clock UNCONFIRMED" in res["nemesis"]["summary"]


@needs_faketime
def test_a_working_libfaketime_confirms_every_clock_fault(tmp_path):
    store = tmp_path / "store"
    p = run_cli(["--nodes", "3", "--nemesis", "clock", "--time-limit", "6", "--nemesis-interval", "1",
                 "--seed", "4", "--store", str(store)])
    assert p.returncode == 0, p.stdout + p.stderr
    res = results_of(store)
    cov = res["nemesis"]["coverage"]["clock"]
    assert cov["status"] == "fired" and cov["fired"] >= 1
    assert cov.get("confirmed", 0) >= 1 and "unconfirmed" not in cov


# -- the local backend -----------------------------------------------------------


@dataclass
class Ctx:
    backend: Any
    system: Any


@pytest.fixture
def cluster(tmp_path):
    system = RaftSystem()
    backend = LocalBackend(system, 3, tmp_path / "run", seed=9)
    backend.start()
    yield Ctx(backend, system)
    backend.teardown()


def confirm(ctx: Ctx, f: str, value: dict) -> dict:
    op = FaultOp(f, "one")
    return confirm_completion(ctx, op, op.complete(value)).value


def test_pause_is_confirmed_by_the_process_state_and_refuted_when_not_done(cluster):
    claimed = confirm(cluster, "pause", {"nodes": ["n2"]})  # nothing was paused
    assert set(claimed.get("unconfirmed", {})) == {"n2"} and "is running" in claimed["unconfirmed"]["n2"]
    cluster.backend.pause("n2")
    done = confirm(cluster, "pause", {"nodes": ["n2"]})
    assert set(done.get("confirmed", {})) == {"n2"} and "stopped" in done["confirmed"]["n2"]
    cluster.backend.resume("n2")


def test_kill_is_confirmed_by_the_process_group_being_gone_and_refuted_when_not_done(cluster):
    claimed = confirm(cluster, "kill", {"nodes": ["n1"]})
    assert set(claimed.get("unconfirmed", {})) == {"n1"}
    cluster.backend.kill("n1")
    done = confirm(cluster, "kill", {"nodes": ["n1"]})
    assert set(done.get("confirmed", {})) == {"n1"} and "no live process" in done["confirmed"]["n1"]


def test_partition_is_confirmed_by_a_held_probe_and_refuted_on_an_open_link(cluster):
    grudge = {"n1": ["n2"], "n2": ["n1"], "n3": []}
    claimed = confirm(cluster, "start-partition", {"grudge": grudge})  # nothing was cut
    assert set(claimed.get("unconfirmed", {})) == {"n2->n1", "n1->n2"}
    assert "still passes" in claimed["unconfirmed"]["n1->n2"]
    cluster.backend.apply_grudge(grudge)
    done = confirm(cluster, "start-partition", {"grudge": grudge})
    assert set(done.get("confirmed", {})) == {"n2->n1", "n1->n2"} and "unconfirmed" not in done
    cluster.backend.heal_network()


@needs_faketime
def test_clock_bump_is_confirmed_by_the_nodes_own_clock(tmp_path):
    system = RaftSystem()
    backend = LocalBackend(system, 3, tmp_path / "run", seed=9, clocks=True)
    backend.start()
    try:
        ctx = Ctx(backend, system)
        claimed = confirm(ctx, "bump-clock", {"nodes": ["n3"], "offsets": {"n3": 4.0}})
        # nothing was bumped: the expected offset is 0, which cannot be told from real time
        assert set(claimed.get("unobservable", {})) == {"n3"}
        backend.clock("n3").bump(4.0)
        done = confirm(ctx, "bump-clock", {"nodes": ["n3"], "offsets": {"n3": 4.0}})
        assert set(done.get("confirmed", {})) == {"n3"} and "own clock" in done["confirmed"]["n3"]
        backend.clock("n3").reset()
    finally:
        backend.teardown()


@needs_faketime
def test_a_clock_the_node_does_not_see_is_not_confirmed(tmp_path):
    system = RaftSystem()
    backend = LocalBackend(system, 3, tmp_path / "run", seed=9, clocks=True)
    backend.start()
    try:
        ctx = Ctx(backend, system)
        assert backend.observer().preload_loaded("n2")[0] is True
        # Drive the clock control without the node's control file: the node keeps real time,
        # exactly what a node that reads the clock without libc would show.
        clock = backend.clock("n2")
        real_file = clock.control_file
        clock.control_file = tmp_path / "elsewhere.faketime"
        clock.bump(5.0)
        done = confirm(ctx, "bump-clock", {"nodes": ["n2"], "offsets": {"n2": 5.0}})
        assert set(done.get("unconfirmed", {})) == {"n2"}
        assert "own clock moved +0.0 s of +5.0 s" in done["unconfirmed"]["n2"]
        clock.control_file = real_file
        clock.reset()
    finally:
        backend.teardown()


STATIC = "/usr/bin/tini-static"  # a statically linked program that runs a child


@needs_faketime
@pytest.mark.skipif(not os.access(STATIC, os.X_OK), reason=f"{STATIC} (a static binary) not installed")
def test_a_static_binary_in_the_node_is_named_as_not_preloaded(tmp_path):
    import signal
    from types import SimpleNamespace

    from jepsenlike.confirm import LocalObserver
    from jepsenlike.faketime import FaketimeClock

    clock = FaketimeClock(tmp_path / "n1.faketime")
    env = clock.env_for_process()
    procs = {}
    try:
        for nid, argv in (("dyn", ["sleep", "30"]), ("static", [STATIC, "-s", "--", "sleep", "30"])):
            procs[nid] = subprocess.Popen(argv, env=env, start_new_session=True)
        time.sleep(0.5)  # let the loader map what it maps
        observer = LocalObserver(SimpleNamespace(clocks={"dyn": clock, "static": clock}, procs=procs))
        assert observer.preload_loaded("dyn")[0] is True
        ok, why = observer.preload_loaded("static")
        assert ok is False and str(procs["static"].pid) in why and "static binary" in why
    finally:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        clock.close(remove=True)
