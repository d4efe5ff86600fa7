"""Real Multi-Paxos node processes on loopback: ops, SIGKILL, restarts, recovery.

Each node runs in its own process group; the fixture (:mod:`.cluster`) SIGKILLs every
group at the end, whatever happened, and checks that nothing is left running.
"""

from __future__ import annotations

import os
import time

import pytest

from jepsenlike.models.client import KVClient
from tests.integration import cluster as nc

pytestmark = pytest.mark.integration

MODULE = "jepsenlike.models.paxos"


make_cluster = nc.make_cluster_fixture(MODULE, seed=11, proxy="net")


@pytest.mark.parametrize("n", [3, 5])
def test_acknowledged_writes_survive_leader_sigkill(make_cluster, n: int) -> None:
    c = make_cluster(n)
    nc.kill_leaders_under_load(c)
    # The restarted node caught up on the same sequence.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sts = [c.status(i) for i in c.procs]
        if all(s and s["applied_index"] == sts[0]["applied_index"] for s in sts):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"replicas did not converge: {sts}")


def test_cluster_recovers_after_sigkill_of_every_node(make_cluster, tmp_path) -> None:
    c = make_cluster(3, "--snapshot-every", "40")  # force checkpoints and WAL rewrites
    with nc.AppendLoad(c, threads=2) as load:
        load.wait_acked(120)
    nc.restart_all(c, torn_wal="paxos.wal")  # with a torn final write on n1
    nc.check_no_lost_appends(c, load)
    assert "torn_bytes=6" in c.log("n1")
    assert os.path.exists(os.path.join(c.data_dir("n1"), "paxos.snapshot"))


def test_followers_forward_and_the_api_contract_matches_raft(make_cluster) -> None:
    # write, cas, failed cas, txn take a slot each
    nc.check_api_contract(make_cluster(3), log_entries=4)


def test_a_stalled_leader_gives_info_and_an_unreachable_node_gives_fail(make_cluster) -> None:
    nc.check_outcomes_fail_when_unreachable_info_when_stalled(make_cluster)


def test_a_seeded_bug_shows_in_status(make_cluster) -> None:
    c = make_cluster(3, "--bug", "stale-read")
    assert {c.status(i)["bug"] for i in c.ids} == {"stale-read"}


def test_unknown_bug_is_refused_with_the_valid_names(tmp_path) -> None:
    p = nc.run_with_unknown_bug(MODULE, tmp_path, "no-adoptt")
    assert "unknown paxos bug 'no-adoptt'" in p.stderr
    for name in ("volatile-acceptor", "no-adopt", "stale-read", "non-unique-ballots"):
        assert name in p.stderr


def test_volatile_acceptor_bug_loses_acknowledged_writes_when_every_node_restarts(
    make_cluster,
) -> None:
    # The same crash-everything scenario the correct node survives above.
    c = make_cluster(3, "--bug", "volatile-acceptor")
    with nc.AppendLoad(c, threads=2) as load:
        load.wait_acked(30)
    nc.restart_all(c)
    final = nc.read_at_leader(c, "l") or []
    assert load.acked - set(final), "expected the forgetful acceptors to lose acknowledged appends"


def _read_on_isolated_old_leader(make_cluster, *extra: str) -> dict:
    """Write x=1, cut the leader off, write x=2 through the new leader, read x on the old."""
    c = make_cluster(3, *extra, proxied=True)
    assert c.net is not None
    old = c.leader()
    cl = KVClient(c.client_addr[old])
    assert cl.invoke("write", "x", 1)["type"] == "ok"
    others = [i for i in c.ids if i != old]
    c.net.apply_grudge({old: set(others), **{o: {old} for o in others}})
    new = c.leader(exclude=old)
    nl = KVClient(c.client_addr[new])
    deadline = time.monotonic() + 10
    while nl.invoke("write", "x", 2)["type"] != "ok":
        assert time.monotonic() < deadline, "the majority side never accepted a write"
        time.sleep(0.05)
    nl.close()
    r = cl.invoke("read", "x", None)
    cl.close()
    c.net.heal()
    return r


def test_an_isolated_old_leader_never_serves_a_stale_read(make_cluster) -> None:
    r = _read_on_isolated_old_leader(make_cluster)
    assert r["type"] in ("fail", "info"), f"a cut-off node answered a read: {r}"


def test_stale_read_bug_serves_the_old_value_from_an_isolated_node(make_cluster) -> None:
    r = _read_on_isolated_old_leader(make_cluster, "--bug", "stale-read")
    assert r == {"type": "ok", "value": 1, "error": None}  # x=2 was acknowledged before
