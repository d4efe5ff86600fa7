"""A 3-node raft cluster in containers: ops, kill/restart, pause, partitions, clocks, netem.

The partition tests probe the links themselves (a TCP connect from one container
to another's peer port) as well as what Raft makes of them, so a rule that does
not cut what it claims fails here even if the cluster happened to behave.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.models.client import KVClient

from .conftest import assert_nothing_left, wait_leader

pytestmark = pytest.mark.docker


def connect(backend: Any, src: str, dst: str, timeout: float = 1.5) -> str:
    """From inside ``src``'s container: TCP connect to ``dst``'s peer port."""
    host, port = backend.node(dst).peer_addr.rsplit(":", 1)
    rc, out = backend.exec(src, [
        "python3", "-c",
        "import socket,sys\n"
        f"try:\n socket.create_connection(({host!r}, {port}), timeout={timeout}).close(); print('connected')\n"
        "except OSError as e:\n print(type(e).__name__, e)",
    ])
    assert rc == 0, out
    return out.strip()


def status(backend: Any, nid: str) -> dict[str, Any] | None:
    return backend.system.status(backend.node(nid), timeout=1.0)


def test_cluster_serves_ops_on_container_addresses(cluster: Any) -> None:
    assert cluster.subnet is not None
    ips = {cluster.ip(n) for n in cluster.node_ids}
    assert len(ips) == 3 and all(__import__("ipaddress").ip_address(ip) in cluster.subnet for ip in ips)
    leader = wait_leader(cluster)
    c = KVClient(cluster.node(leader).client_addr, timeout=3)
    try:
        assert c.invoke("write", "x", 1)["type"] == "ok"
        assert c.invoke("cas", "x", [1, 2])["type"] == "ok"
        r = c.invoke("cas", "x", [1, 3])
        assert r["type"] == "fail" and r["error"] == "cas-mismatch"
        assert c.invoke("read", "x")["value"] == 2
    finally:
        c.close()
    info = cluster.client.api.inspect_container(cluster.containers["n1"])
    assert info["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert not info["HostConfig"]["Privileged"]


def test_kill_all_and_restart_keeps_acknowledged_data(cluster: Any) -> None:
    leader = wait_leader(cluster)
    c = KVClient(cluster.node(leader).client_addr, timeout=3)
    acked = {}
    for i in range(10):
        r = c.invoke("write", f"k{i}", i * 10)
        assert r["type"] == "ok", r
        acked[f"k{i}"] = i * 10
    c.close()
    for nid in cluster.node_ids:
        cluster.kill(nid)
        assert cluster.node_state(nid) == "killed"
        assert not cluster.client.api.inspect_container(cluster.containers[nid])["State"]["Running"]
        assert status(cluster, nid) is None
    for nid in cluster.node_ids:
        cluster.restart(nid)
    cluster.wait_ready(cluster.node_ids, 30)
    leader = wait_leader(cluster)
    c = KVClient(cluster.node(leader).client_addr, timeout=3)
    try:
        for k, v in acked.items():
            assert c.invoke("read", k)["value"] == v, k
    finally:
        c.close()
    # one container log across restarts; the second start recovered from the volume
    recovered = [ln for ln in cluster.logs("n1").splitlines() if "recovered term=" in ln]
    assert len(recovered) == 2 and "recovered term=0 " not in recovered[1], recovered


def test_pause_freezes_a_node_and_resume_thaws_it(cluster: Any) -> None:
    leader = wait_leader(cluster)
    cluster.pause(leader)
    assert cluster.node_state(leader) == "paused"
    assert cluster.client.api.inspect_container(cluster.containers[leader])["State"]["Paused"]
    assert status(cluster, leader) is None  # frozen: the kernel accepts, nobody answers
    others = [n for n in cluster.node_ids if n != leader]
    new_leader = wait_leader(cluster, among=others)
    assert new_leader != leader
    cluster.resume(leader)
    assert cluster.node_state(leader) == "up"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = status(cluster, leader)
        if st and st["role"] != "leader":
            break
        time.sleep(0.1)
    assert st is not None and st["role"] != "leader", st  # it learned of the newer term


def test_partition_cuts_exactly_the_links_of_the_grudge(cluster: Any) -> None:
    wait_leader(cluster)
    assert connect(cluster, "n2", "n1") == "connected"
    cluster.apply_grudge({"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": {"n1"}})
    assert connect(cluster, "n2", "n1").startswith("TimeoutError")
    assert connect(cluster, "n1", "n3").startswith("TimeoutError")
    assert connect(cluster, "n2", "n3") == "connected"
    rc, rules = cluster.exec("n1", ["iptables", "-S", "JEPSENLIKE"])
    assert f"-A JEPSENLIKE -s {cluster.ip('n2')}/32 -j DROP" in rules
    assert f"-A JEPSENLIKE -s {cluster.ip('n3')}/32 -j DROP" in rules
    # the majority still works; the isolated node cannot commit anything
    leader = wait_leader(cluster, among=["n2", "n3"])
    c = KVClient(cluster.node(leader).client_addr, timeout=3)
    assert c.invoke("write", "side", "majority")["type"] == "ok"
    c.close()
    c1 = KVClient(cluster.node("n1").client_addr, timeout=3)
    assert c1.invoke("write", "side", "minority")["type"] != "ok"
    c1.close()
    # a restart during the partition comes back partitioned (fresh netns, rules reloaded)
    cluster.kill("n1")
    cluster.restart("n1")
    cluster.wait_ready(["n1"], 20)
    assert connect(cluster, "n2", "n1").startswith("TimeoutError")
    cluster.heal_network()
    assert connect(cluster, "n2", "n1") == "connected"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        c1 = KVClient(cluster.node("n1").client_addr, timeout=2)
        leader = cluster.system.leader(cluster.nodes)
        st1, stl = status(cluster, "n1"), (status(cluster, leader) if leader else None)
        c1.close()
        if st1 and stl and st1["applied_index"] >= stl["commit_index"] > 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"n1 did not catch up after heal: {st1} vs {stl}")
    leader = wait_leader(cluster)
    c = KVClient(cluster.node(leader).client_addr, timeout=3)
    assert c.invoke("read", "side")["value"] == "majority"
    c.close()


def test_one_way_grudge_is_one_way(cluster: Any) -> None:
    cluster.apply_grudge({"n1": {"n2"}})
    assert cluster.grudge == {"n1": {"n2"}, "n2": set(), "n3": set()}
    assert connect(cluster, "n2", "n1").startswith("TimeoutError")
    assert connect(cluster, "n3", "n1") == "connected"
    rc, rules = cluster.exec("n2", ["iptables", "-S", "JEPSENLIKE"])
    assert "DROP" not in rules
    cluster.heal_network()
    assert connect(cluster, "n2", "n1") == "connected"


def test_grudge_set_while_paused_applies_on_resume(cluster: Any) -> None:
    cluster.pause("n1")
    cluster.apply_grudge({"n1": {"n2"}})
    cluster.resume("n1")
    assert connect(cluster, "n2", "n1").startswith("TimeoutError")
    cluster.heal_network()


def test_bad_grudge_names_the_node(cluster: Any) -> None:
    from jepsenlike.errors import ConfigError

    with pytest.raises(ConfigError, match="n9"):
        cluster.apply_grudge({"n1": {"n9"}})


def test_clock_bump_is_seen_by_the_node_only(cluster: Any) -> None:
    def skew(nid: str) -> float:
        t0 = time.time()
        st = status(cluster, nid)
        assert st is not None
        return st["time"] - (t0 + time.time()) / 2

    assert abs(skew("n1")) < 1.0 and abs(skew("n2")) < 1.0
    cluster.bump_clock("n1", 3600)
    assert abs(skew("n1") - 3600) < 1.0
    assert abs(skew("n2")) < 1.0
    cluster.clock("n2").bump(-120)
    assert abs(skew("n2") + 120) < 1.0
    cluster.reset_clocks()
    assert abs(skew("n1")) < 1.0 and abs(skew("n2")) < 1.0
    wait_leader(cluster)  # the nodes keep working under a faked clock


def test_slow_links_work_or_are_refused_with_the_reason(cluster: Any) -> None:
    from jepsenlike.backends.docker.backend import NetemUnavailable, probe_netem

    reason = cluster.netem_unavailable_reason()
    ahead = probe_netem(cluster.client, cluster.image_tag)  # the same answer before any run
    assert (ahead is None) == (reason is None), (ahead, reason)
    if reason is None:
        cluster.slow_links([("n1", "n2")], 50, 0)
        rc, out = cluster.exec("n1", ["tc", "qdisc", "show", "dev", "eth0"])
        assert "netem" in out and "delay 50" in out
        rc, out = cluster.exec("n1", ["tc", "filter", "show", "dev", "eth0"])
        assert "flowid 1:4" in out
        rc, out = cluster.exec("n3", ["tc", "qdisc", "show", "dev", "eth0"])
        assert "netem" not in out
        cluster.slow_links(None, 0, 0)
        rc, out = cluster.exec("n1", ["tc", "qdisc", "show", "dev", "eth0"])
        assert "netem" not in out
    else:
        assert "netem" in reason and "Specified qdisc kind is unknown" in reason
        with pytest.raises(NetemUnavailable, match="netem"):
            cluster.slow_links(None, 50, 10)
        with pytest.raises(NetemUnavailable, match="netem"):
            cluster.flaky_links([("n1", "n2")], 0.1)
        cluster.slow_links(None, 0, 0)  # turning nothing off is not refused
        rc, out = cluster.exec("n1", ["cat", "/jepsenlike/tc.sh"])
        assert rc == 0 and out == ""  # and a refused change left no state behind


def test_tc_script_routes_each_destination_to_its_netem() -> None:
    from jepsenlike.backends.docker.iptables import netem_args, tc_script

    assert tc_script({}) == ""
    script = tc_script({
        "10.0.0.2": netem_args(50, 10), "10.0.0.3": netem_args(50, 10), "10.0.0.4": netem_args(0, 0, 0.25),
    })
    lines = script.splitlines()
    assert lines[0].startswith("tc qdisc replace dev eth0 root handle 1: prio bands 5 ")
    assert "netem delay 50ms 10ms" in script and "netem loss 25%" in script
    bands = {ln.split()[-3]: ln.split()[-1] for ln in lines if " u32 " in ln}
    assert bands["10.0.0.2/32"] == bands["10.0.0.3/32"] != bands["10.0.0.4/32"]


def test_teardown_saves_logs_removes_everything_and_is_idempotent(
    docker_client: Any, node_image: Any, tmp_path: Any
) -> None:
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.systems.raft import RaftSystem

    b = DockerBackend(RaftSystem(), 2, tmp_path / "run", image=node_image.tag, client=docker_client)
    b.start()
    names = [b.container_name(n) for n in b.node_ids]
    bridge = Path("/sys/class/net") / f"br-{docker_client.networks.get(b.network_name).id[:12]}"
    assert bridge.exists()
    env = b.client.api.inspect_container(b.containers["n1"])["Config"]["Env"]
    assert not any(e.startswith("LD_PRELOAD=") for e in env)  # clocks=False: no preload
    with pytest.raises(RuntimeError, match="clocks=False"):
        b.clock("n1")
    b.teardown()
    b.teardown()
    assert_nothing_left(docker_client, b.run_id)
    assert not any(c.name in names for c in docker_client.containers.list(all=True))
    for nid, path in b.log_files().items():
        assert f"serving clients on {b.node(nid).client_addr}" in path.read_text()
    assert not (tmp_path / "run" / "nodes" / "n1" / "control").exists()
    assert not bridge.exists()  # Docker removed the host side of the network too


def test_failed_start_says_why_and_leaves_nothing(
    docker_client: Any, node_image: Any, tmp_path: Any
) -> None:
    from jepsenlike.backends.base import NodeStartError
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.systems.raft import RaftSystem

    b = DockerBackend(
        RaftSystem(), 3, tmp_path / "run", image=node_image.tag, client=docker_client,
        bug="no-such-bug", ready_timeout=20,
    )
    with pytest.raises(NodeStartError) as e:
        with b:
            b.start()
    assert "exited with status" in str(e.value) and "no-such-bug" in str(e.value)
    assert_nothing_left(docker_client, b.run_id)
