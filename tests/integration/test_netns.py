"""The local backend's netns mode: one network namespace per node on a bridge (needs root).

* the harness reaches every node's address; nodes reach each other;
* a grudge is an iptables DROP inside the receiving namespace: one way, only the
  named sender, and the harness is never cut off; healing restores traffic;
* nothing is left behind by teardown, and ``jepsenlike clean`` removes what a
  SIGKILLed harness left (namespaces, links, the FORWARD rule), leaving live runs alone;
* a system that needs one address per member is refused rootless, with the reason.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from jepsenlike.backends import netns
from jepsenlike.backends.local import network_mode
from jepsenlike.errors import ConfigError
from jepsenlike.systems.etcd import EtcdSystem
from jepsenlike.systems.raft import RaftSystem

pytestmark = [pytest.mark.integration]
needs_netns = pytest.mark.skipif(netns.unavailable_reason() is not None,
                                 reason=str(netns.unavailable_reason()))


def leftovers(tag: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    out += subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += subprocess.run(["iptables", "-w", "5", "-S", "FORWARD"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if tag in line]


def serve_in(net: netns.NetnsNet, node: str, port: int) -> subprocess.Popen[bytes]:
    """An echo server on the node's address, inside its namespace."""
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("{net.ip(node)}", {port})); s.listen(16); print("up", flush=True)
        while True:
            c, a = s.accept(); c.sendall(a[0].encode()); c.close()
    """)
    p = subprocess.Popen([*net.exec_prefix(node), sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"up"
    return p


def reach_from(net: netns.NetnsNet, src: str | None, dst: str, port: int) -> str | None:
    """What dst's echo server says when src (None: the harness) connects; None if it cannot."""
    if src is None:
        try:
            with socket.create_connection((net.ip(dst), port), timeout=1.0) as s:
                return s.recv(100).decode()
        except OSError:
            return None
    code = (f"import socket\ntry:\n s=socket.create_connection(('{net.ip(dst)}',{port}),timeout=1)\n"
            " print(s.recv(100).decode())\nexcept OSError:\n print('none')")
    out = subprocess.run([*net.exec_prefix(src), sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=20).stdout.strip()
    return None if out == "none" else out


@needs_netns
def test_grudge_is_one_way_inside_the_receiver_and_never_cuts_the_harness():
    net = netns.NetnsNet(["n1", "n2", "n3"])
    servers = []
    try:
        net.setup()
        servers = [serve_in(net, n, 7000) for n in net.node_ids]
        assert reach_from(net, None, "n1", 7000) == net.host_ip
        assert reach_from(net, "n2", "n1", 7000) == net.ip("n2")
        net.apply_grudge({"n1": {"n2"}})  # n1 drops what n2 sends
        assert reach_from(net, "n2", "n1", 7000) is None
        assert reach_from(net, "n3", "n1", 7000) == net.ip("n3")
        assert reach_from(net, "n1", "n3", 7000) == net.ip("n1")
        assert reach_from(net, None, "n1", 7000) == net.host_ip
        net.heal()
        assert reach_from(net, "n2", "n1", 7000) == net.ip("n2")
    finally:
        for p in servers:
            p.kill()
            p.wait()
        net.teardown()
    assert leftovers(net.tag) == []
    assert not (netns.STATE_DIR / f"{net.tag}.json").exists()


@needs_netns
def test_clean_removes_what_a_killed_harness_left_and_spares_live_runs(tmp_path):
    code = ("from jepsenlike.backends.netns import NetnsNet\nimport time\n"
            "n = NetnsNet(['n1', 'n2']); n.setup(); print(n.tag, flush=True); time.sleep(60)")
    victim = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    live = netns.NetnsNet(["n1"])
    try:
        assert victim.stdout is not None
        tag = victim.stdout.readline().strip()
        live.setup()
        assert leftovers(tag) and leftovers(live.tag)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert leftovers(tag)  # a killed harness runs no teardown
        p = subprocess.run([sys.executable, "-m", "jepsenlike", "clean"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert f"{netns.NS_PREFIX}{tag}-n1" in p.stdout
        assert leftovers(tag) == []
        assert leftovers(live.tag), "a live run's namespaces must be left alone"
    finally:
        if victim.poll() is None:
            victim.kill()
        live.teardown()
    assert leftovers(live.tag) == []


def test_own_address_systems_need_root_and_say_how(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(ConfigError, match=r"needs one address per member.*root"):
        network_mode(EtcdSystem())
    with pytest.raises(ConfigError, match="netns"):
        network_mode(EtcdSystem(), "proxy")
    assert network_mode(RaftSystem()) == "proxy"  # dials the addresses it is given: rootless is fine


@needs_netns
def test_reference_raft_in_netns_mode_stays_valid_under_partitions(tmp_path):
    p = subprocess.run([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--system", "raft",
                        "--nodes", "3", "--nemesis", "partition", "--time-limit", "8",
                        "--nemesis-interval", "1", "--seed", "5", "--option", "local.network=netns",
                        "--store", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "partition x" in p.stdout
    time.sleep(0.2)
    assert [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True).stdout.splitlines() if "jepsenlike-" in ns] == []


def netns_leftovers_of(run_dir) -> list[str]:
    """Namespaces or links of any netns run, and processes started for this run dir."""
    out = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
           if ns.startswith(netns.NS_PREFIX)]
    out += [line for line in subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                                            text=True).stdout.splitlines()
            if f": {netns.BRIDGE_PREFIX}" in line or f": {netns.VETH_PREFIX}" in line]
    out += [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
            if str(run_dir) in line and "pytest" not in line]
    return out


etcd_here = pytest.mark.skipif(EtcdSystem().unavailable_reason() is not None,
                               reason=str(EtcdSystem().unavailable_reason()))


@needs_netns
@etcd_here
def test_ctrl_c_mid_run_removes_namespaces_and_nodes(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--system", "etcd", "--nodes", "3",
                          "--nemesis", "partition", "--nemesis-interval", "1", "--time-limit", "60",
                          "--seed", "1", "--store", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*/*/history.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)  # into the chaos phase: a partition is likely in force
    assert netns_leftovers_of(tmp_path), "the run should have namespaces and nodes now"
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode != 0, out
    assert netns_leftovers_of(tmp_path) == []


@needs_netns
@etcd_here
def test_a_cluster_that_fails_to_start_leaves_nothing(tmp_path):
    # etcd refuses an election timeout under 5 heartbeats and exits at once.
    p = subprocess.run([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--system", "etcd", "--nodes", "3",
                        "--nemesis", "none", "--time-limit", "5", "--option", "etcd.election-ms=10",
                        "--store", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 255, p.stdout + p.stderr
    assert "exited with status" in p.stdout + p.stderr
    assert netns_leftovers_of(tmp_path) == []
