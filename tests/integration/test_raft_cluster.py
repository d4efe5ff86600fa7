"""Real Raft node processes on loopback: ops, SIGKILL of leaders, restarts, recovery.

Every node runs in its own process group; the fixture (:mod:`.cluster`) SIGKILLs each
group at the end, whatever happened, and checks that nothing is left running.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from jepsenlike.models.client import KVClient
from tests.integration import cluster as nc

pytestmark = pytest.mark.integration

MODULE = "jepsenlike.models.raft"


make_cluster = nc.make_cluster_fixture(MODULE, seed=7, proxy="links")


@pytest.mark.parametrize("n", [3, 5])
def test_acknowledged_writes_survive_leader_sigkill(make_cluster, n: int) -> None:
    load, failover = nc.kill_leaders_under_load(make_cluster(n))
    # Informational only (tests assert no wall-clock times; the benchmark measures it).
    print(f"\n{n} nodes: new leader after {failover:.2f}s; outcomes {load.outcomes}")


@pytest.mark.parametrize("read_mode", ["read-index", "lease"])
def test_partitioned_leader_serves_no_stale_reads_and_loses_no_writes(
    make_cluster, read_mode: str
) -> None:
    c = make_cluster(3, "--read-mode", read_mode, proxied=True)
    with nc.AppendLoad(c, threads=3, readers=True) as load:
        load.wait_acked(30)
        old = c.leader()
        c.partition({old})
        new = c.leader(exclude=old)
        load.wait_acked(len(load.acked) + 40)
        c.heal()
        load.wait_acked(len(load.acked) + 30)
    assert new != old
    assert load.reads_ok > 20
    assert not load.stale_reads, load.stale_reads[:5]
    nc.check_no_lost_appends(c, load)


@pytest.mark.parametrize("bug", [None, "stale-read"])
def test_stale_read_bug_is_caught_when_a_paused_leader_wakes_up_cut_off(make_cluster, bug) -> None:
    """The leader-pause fault: the leader sleeps (SIGSTOP) while the others elect a new one
    and acknowledge appends, then wakes up still cut off. With the bug it goes on serving
    reads from its own state until its check-quorum deposes it; without, it serves none."""
    c = make_cluster(3, *(("--bug", bug) if bug else ()), proxied=True)
    with nc.AppendLoad(c, threads=3, readers=True) as load:
        load.wait_acked(20)
        old = c.leader()
        c.partition({old})
        c.signal(old, signal.SIGSTOP)
        c.leader(exclude=old)
        load.wait_acked(len(load.acked) + 30)
        c.signal(old, signal.SIGCONT)
        deadline = time.monotonic() + 3
        while not load.stale_reads and time.monotonic() < deadline:
            time.sleep(0.05)
        c.heal()
        load.wait_acked(len(load.acked) + 10)
    if bug:
        assert load.stale_reads  # the old leader answered from its frozen state
    else:
        assert not load.stale_reads, load.stale_reads[:5]


@pytest.mark.skipif(nc.LIBFAKETIME is None, reason="needs libfaketime (apt-get install libfaketime)")
@pytest.mark.parametrize("bug", [None, "lease-without-bound"])
def test_lease_reads_survive_a_wall_clock_jump_unless_lease_without_bound(
    make_cluster, bug
) -> None:
    extra = ("--read-mode", "lease") + (("--bug", bug) if bug else ())
    c = make_cluster(3, *extra, proxied=True, faketime=True)
    with nc.AppendLoad(c, threads=3, readers=True) as load:
        load.wait_acked(20)
        old = c.leader()
        c.partition({old})
        c.set_clock_offset(old, -3600.0)  # the old leader's wall clock jumps back an hour
        c.leader(exclude=old)
        load.wait_acked(len(load.acked) + 30)
        deadline = time.monotonic() + (8 if bug else 2)
        while not load.stale_reads and time.monotonic() < deadline:
            time.sleep(0.05)
        c.heal()
        c.set_clock_offset(old, 0.0)
        load.wait_acked(len(load.acked) + 10)
    if bug:
        assert load.stale_reads  # the deposed leader trusted its lease
    else:
        assert not load.stale_reads, load.stale_reads[:5]
        nc.check_no_lost_appends(c, load)


def test_cluster_recovers_after_sigkill_of_every_node(make_cluster, tmp_path) -> None:
    c = make_cluster(3, "--snapshot-every", "40")  # force snapshots and WAL rewrites
    with nc.AppendLoad(c, threads=2) as load:
        load.wait_acked(120)
    kept = KVClient(c.client_addr["n2"])  # a keep-alive connection that outlives n2
    assert kept.status()["id"] == "n2"
    nc.restart_all(c, torn_wal="raft.wal")  # with a torn final write on n1
    nc.check_no_lost_appends(c, load)
    # The stale socket is noticed before sending: a reconnect, not an indefinite outcome.
    r = kept.invoke("read", "l", None)
    kept.close()
    assert r["type"] in ("ok", "fail"), r
    assert "torn WAL tail" in c.log("n1")
    assert os.path.exists(os.path.join(c.data_dir("n1"), "snapshot.json"))


def test_client_outcomes_fail_when_unreachable_info_when_stalled(make_cluster) -> None:
    nc.check_outcomes_fail_when_unreachable_info_when_stalled(make_cluster)


def test_followers_forward_and_api_contract(make_cluster) -> None:
    # no-op, write, cas, failed cas, txn
    nc.check_api_contract(make_cluster(3), log_entries=5)


def test_early_ack_bug_loses_acknowledged_write(make_cluster) -> None:
    c = make_cluster(3, "--bug", "early-ack")
    leader = c.leader()
    assert c.status(leader)["bug"] == "early-ack"
    followers = [i for i in c.ids if i != leader]
    for f in followers:
        c.signal(f, signal.SIGSTOP)
    cl = KVClient(c.client_addr[leader], timeout=1.0)
    r = cl.invoke("write", "lost", "yes")
    cl.close()
    assert r["type"] == "ok"  # acknowledged, but only the leader has it
    c.kill(leader)
    for f in followers:
        c.signal(f, signal.SIGCONT)
    new = c.leader(exclude=leader)
    cl = KVClient(c.client_addr[new])
    assert cl.invoke("read", "lost", None) == {"type": "ok", "value": None, "error": None}
    cl.close()


@pytest.mark.parametrize("bug", [None, "stale-read"])
def test_isolated_follower_refuses_reads_even_with_the_stale_read_bug(make_cluster, bug) -> None:
    """The stale-read bug is the leader's (it reads without confirming it leads): a
    follower that hears nobody still refuses, with or without it."""
    extra = ("--bug", bug) if bug else ()
    c = make_cluster(3, *extra, isolate="n3")  # n3 can send but never hears anyone
    leader = c.leader()
    assert leader != "n3"
    cl = KVClient(c.client_addr[leader])
    assert cl.invoke("write", "x", 1)["type"] == "ok"
    cl.close()
    cl = KVClient(c.client_addr["n3"])
    r = cl.invoke("read", "x", None)
    cl.close()
    assert r["type"] == "fail" and r["error"] == "not-leader"


def test_unknown_bug_is_refused_with_the_valid_names(tmp_path) -> None:
    p = nc.run_with_unknown_bug(MODULE, tmp_path, "stale-raed")
    assert "unknown bug 'stale-raed'" in p.stderr and "stale-read" in p.stderr
