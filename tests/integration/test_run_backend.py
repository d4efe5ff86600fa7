"""The local backend on real Raft node processes: readiness, faults, and teardown from every exit path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jepsenlike.backends.base import NodeStartError
from jepsenlike.backends.local import LocalBackend
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
]


def state_of(pid: int) -> str | None:
    """The kernel's process state letter (R, S, T stopped, Z zombie), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return None


def alive(pid: int) -> bool:
    return state_of(pid) not in (None, "Z")


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_start_kill_restart_pause_resume_teardown(tmp_path):
    system = RaftSystem()
    b = LocalBackend(system, 3, tmp_path, seed=1, ready_timeout=20)
    try:
        b.start()
        assert len({n.client_addr for n in b.nodes} | {n.peer_addr for n in b.nodes}) == 6
        assert all(system.probe(n) for n in b.nodes)
        pid = b.procs["n1"].pid
        assert os.getpgid(pid) == pid  # own process group
        assert wait_for(lambda: system.leader(b.nodes) is not None)

        client = system.open_client(b.node("n2"), timeout=2)
        assert wait_for(lambda: client.invoke("write", "k", 1)["type"] == "ok")

        b.kill("n1")
        assert state_of(pid) is None or state_of(pid) == "Z" or not alive(pid)
        assert b.node_state("n1") == "killed" and not system.probe(b.node("n1"))
        b.restart("n1")
        assert b.procs["n1"].pid != pid
        b.wait_ready(["n1"], 20)
        # Same data dir: the restarted node recovers the log and serves the write made before.
        c1 = system.open_client(b.node("n1"), timeout=2)
        assert wait_for(lambda: system.status(b.node("n1"))["commit_index"] >= 1)
        assert "restarted" in b.log_path("n1").read_text()

        pid2 = b.procs["n2"].pid
        b.pause("n2")
        assert state_of(pid2) == "T" and b.node_state("n2") == "paused"
        assert not system.probe(b.node("n2"), timeout=0.3)
        b.resume("n2")
        assert state_of(pid2) in ("S", "R") and system.probe(b.node("n2"))
        pid3 = b.procs["n3"].pid
        b.pause("n3")
        b.stop("n3")  # a paused node stops too
        assert not alive(pid3) and b.node_state("n3") == "killed"
        c1.close()
        client.close()
        pids = b.pids()
    finally:
        b.teardown()
    assert not any(alive(p) for p in pids)
    assert not (tmp_path / "nodes" / "n1" / "data").exists()
    assert (tmp_path / "nodes" / "n1.log").exists()
    b.teardown()  # idempotent


def test_a_node_that_dies_at_start_is_reported_with_its_log_tail(tmp_path):
    class Broken(RaftSystem):
        def node_command(self, node, peers, *, bug, seed):
            argv = super().node_command(node, peers, bug=bug, seed=seed)
            return argv + ["--no-such-flag"] if node.id == "n2" else argv

    b = LocalBackend(Broken(), 3, tmp_path, ready_timeout=20)
    try:
        with pytest.raises(NodeStartError) as e:
            b.start()
    finally:
        b.teardown()
    msg = str(e.value)
    assert "node n2" in msg and "exited with status" in msg
    assert "--no-such-flag" in msg.split("last lines of")[1]  # argparse's complaint, from the log
    assert not any(alive(p) for p in b.pids())


def test_readiness_timeout_names_the_node_and_the_wait(tmp_path):
    class Silent(RaftSystem):
        def probe(self, node, timeout=1.0):
            return node.id != "n1" and super().probe(node, timeout)

    b = LocalBackend(Silent(), 2, tmp_path, ready_timeout=1.5)
    try:
        with pytest.raises(NodeStartError, match=r"node n1 .* was not ready after 1.5 s"):
            b.start()
    finally:
        b.teardown()
    assert not any(alive(p) for p in b.pids())


@pytest.mark.parametrize("ending", ["exit", "exception", "sigterm-handler"])
def test_nodes_are_torn_down_when_the_harness_process_ends_without_teardown(tmp_path, ending):
    """atexit and exception paths: a script starts nodes and never calls teardown itself."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from jepsenlike.backends.local import LocalBackend
        from jepsenlike.runner import signals_as_interrupts
        from jepsenlike.systems.raft import RaftSystem
        b = LocalBackend(RaftSystem(), 2, {str(tmp_path)!r}, ready_timeout=20)
        b.start()
        print(" ".join(str(p) for p in b.pids()), flush=True)
        ending = {ending!r}
        if ending == "exception":
            raise RuntimeError("harness bug")
        if ending == "sigterm-handler":
            with signals_as_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
        sys.exit(0)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    pids = [int(x) for x in p.stdout.split()]
    assert len(pids) == 2, p.stderr
    assert wait_for(lambda: not any(alive(x) for x in pids), 5), [state_of(x) for x in pids]
    if ending != "exit":
        assert p.returncode != 0


@pytest.mark.parametrize("which", [0, 1], ids=["client-port", "peer-port"])
def test_a_port_taken_before_the_node_binds_it_is_retried_on_fresh_ports(tmp_path, monkeypatch, which):
    # The client port once hung the node (its peer dialling kept it alive after
    # the bind failed), so the start waited 20 s and gave up instead of retrying.
    import socket

    import jepsenlike.backends.local as local

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    real, calls = local.free_ports, []

    def first_one_taken(n, host="127.0.0.1"):
        ports = real(n, host)
        if not calls:
            ports[which] = busy.getsockname()[1]  # n1's client or peer port
        calls.append(ports)
        return ports

    monkeypatch.setattr(local, "free_ports", first_one_taken)
    system = RaftSystem()
    b = LocalBackend(system, 2, tmp_path, ready_timeout=20)
    try:
        b.start()
        assert len(calls) == 2 and all(system.probe(n) for n in b.nodes)
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        assert taken not in (b.node("n1").client_addr, b.node("n1").peer_addr)
    finally:
        b.teardown()
        busy.close()
    assert "address already in use" in b.log_path("n1").read_text()
    assert len(b.pids()) == 4 and not any(alive(p) for p in b.pids())
