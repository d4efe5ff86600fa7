"""Real Multi-Paxos node processes on loopback: ops, SIGKILL, restarts, recovery.

Each node runs in its own process group; the fixture SIGKILLs every group at the
end, whatever happened, and checks that nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from jepsenlike.models.client import KVClient
from jepsenlike.net import ProxyNet

pytestmark = pytest.mark.integration

MODULE = "jepsenlike.models.paxos"


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """N Paxos node processes: start/kill/signal one, find the leader, read logs."""

    def __init__(
        self, n: int, tmp: str, extra: tuple[str, ...] = (), proxied: bool = False
    ) -> None:
        self.ids = [f"n{k + 1}" for k in range(n)]
        ports = _free_ports(2 * n)
        self.client_addr = {i: f"127.0.0.1:{ports[k]}" for k, i in enumerate(self.ids)}
        self.peer_addr = {i: f"127.0.0.1:{ports[n + k]}" for k, i in enumerate(self.ids)}
        self.tmp = tmp
        self.extra = extra
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.all_procs: list[subprocess.Popen[bytes]] = []
        # With proxied=True every directed peer link goes through the harness's proxy.
        self.net: ProxyNet | None = None
        if proxied:
            self.net = ProxyNet(self.peer_addr, seed=3)
            self.net.start()

    def argv(self, i: str) -> list[str]:
        if self.net is not None:
            peers = ",".join(f"{j}={a}" for j, a in sorted(self.net.peers_for(i).items()))
        else:
            peers = ",".join(f"{j}={self.peer_addr[j]}" for j in self.ids if j != i)
        return [
            sys.executable, "-m", MODULE,
            "--id", i,
            "--client-addr", self.client_addr[i],
            "--peer-addr", self.peer_addr[i],
            "--peers", peers,
            "--data-dir", os.path.join(self.tmp, i),
            "--seed", "11",
            *self.extra,
        ]  # fmt: skip

    def start(self, i: str) -> None:
        with open(os.path.join(self.tmp, f"{i}.log"), "ab") as log:
            p = subprocess.Popen(self.argv(i), stderr=log, stdout=log, start_new_session=True)
        self.procs[i] = p
        self.all_procs.append(p)

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)
        for i in self.ids:
            self.wait_up(i)

    def wait_up(self, i: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status(i) is not None:
                return
            assert self.procs[i].poll() is None, f"{i} exited: {self.log(i)[-2000:]}"
            time.sleep(0.05)
        raise AssertionError(f"{i} not up after {timeout}s")

    def kill(self, i: str) -> None:
        p = self.procs.pop(i)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)

    def signal(self, i: str, sig: int) -> None:
        os.killpg(self.procs[i].pid, sig)

    def status(self, i: str) -> dict | None:
        c = KVClient(self.client_addr[i], timeout=0.5)
        try:
            return c.status()
        except (OSError, ValueError):
            return None
        finally:
            c.close()

    def leader(self, timeout: float = 10.0, exclude: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in list(self.procs):
                s = self.status(i)
                if s and s["role"] == "leader" and i != exclude:
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no leader within {timeout}s")

    def log(self, i: str) -> str:
        with open(os.path.join(self.tmp, f"{i}.log"), errors="replace") as f:
            return f.read()

    def close(self) -> None:
        for p in self.all_procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.all_procs:
            p.wait(5)
        for p in self.all_procs:
            with pytest.raises(ProcessLookupError):
                os.killpg(p.pid, 0)  # nothing left in the process group
        if self.net is not None:
            self.net.stop()


@pytest.fixture
def make_cluster(tmp_path) -> Iterator:
    made: list[Cluster] = []

    def make(n: int, *extra: str, proxied: bool = False) -> Cluster:
        c = Cluster(n, str(tmp_path), tuple(extra), proxied=proxied)
        made.append(c)
        c.start_all()
        return c

    yield make
    for c in made:
        c.close()


class AppendLoad:
    """Threads appending unique values to one list, round-robin over all nodes."""

    def __init__(self, cluster: Cluster, threads: int = 4) -> None:
        self.cluster = cluster
        self.acked: set[int] = set()
        self.attempted: set[int] = set()
        self.outcomes: dict[str, int] = {"ok": 0, "fail": 0, "info": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(k,)) for k in range(threads)]
        self._next = 0

    def _work(self, k: int) -> None:
        ids = self.cluster.ids
        clients = {i: KVClient(self.cluster.client_addr[i], timeout=2.0) for i in ids}
        n = k
        while not self._stop.is_set():
            n += 1
            with self._lock:
                self._next += 1
                v = self._next
                self.attempted.add(v)
            r = clients[ids[n % len(ids)]].invoke("append", "l", v)
            with self._lock:
                self.outcomes[r["type"]] += 1
                if r["type"] == "ok":
                    self.acked.add(v)
            if r["type"] != "ok":
                time.sleep(0.01)
        for c in clients.values():
            c.close()

    def __enter__(self) -> AppendLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def wait_acked(self, n: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acked: {self.outcomes}"
            time.sleep(0.02)


def _read(cluster: Cluster, key: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = KVClient(cluster.client_addr[cluster.leader()])
        r = c.invoke("read", key, None)
        c.close()
        if r["type"] == "ok":
            return r["value"]
        time.sleep(0.05)
    raise AssertionError(f"read of {key!r} never succeeded")


def _check_no_lost_appends(cluster: Cluster, load: AppendLoad) -> None:
    final = _read(cluster, "l") or []
    assert len(final) == len(set(final)), "an append was applied twice"
    assert set(final) <= load.attempted, "a value nobody appended showed up"
    lost = load.acked - set(final)
    assert not lost, f"acknowledged appends lost: {sorted(lost)[:10]}"


@pytest.mark.parametrize("n", [3, 5])
def test_acknowledged_writes_survive_leader_sigkill(make_cluster, n: int) -> None:
    c = make_cluster(n)
    with AppendLoad(c) as load:
        load.wait_acked(50)
        old = c.leader()
        c.kill(old)
        new = c.leader(exclude=old)
        load.wait_acked(len(load.acked) + 50)
        if n == 5:
            # A second leader crash: three of five remain, still a majority.
            c.kill(new)
            c.leader(exclude=new)
            load.wait_acked(len(load.acked) + 50)
        c.start(old)
        c.wait_up(old)
        load.wait_acked(len(load.acked) + 20)
    _check_no_lost_appends(c, load)
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
    with AppendLoad(c, threads=2) as load:
        load.wait_acked(120)
    for i in c.ids:
        c.kill(i)
    # A torn final write on one node: a record header promising bytes that never came.
    with open(tmp_path / "n1" / "paxos.wal", "ab") as f:
        f.write(b"\x00\x00\x01\x00\xde\xad")
    for i in c.ids:
        c.start(i)
    for i in c.ids:
        c.wait_up(i)
    _check_no_lost_appends(c, load)
    assert "torn_bytes=6" in c.log("n1")
    assert os.path.exists(tmp_path / "n1" / "paxos.snapshot")


def test_followers_forward_and_the_api_contract_matches_raft(make_cluster) -> None:
    c = make_cluster(3)
    leader = c.leader()
    follower = next(i for i in c.ids if i != leader)
    cl = KVClient(c.client_addr[follower])
    assert cl.invoke("write", "x", 1) == {"type": "ok", "value": 1, "error": None}
    assert cl.invoke("cas", "x", [1, 2])["type"] == "ok"
    r = cl.invoke("cas", "x", [1, 3])
    assert r["type"] == "fail" and r["error"] == "cas-mismatch"
    assert cl.invoke("read", "x", None)["value"] == 2
    r = cl.invoke("txn", None, [["append", "t", 1], ["r", "t", None], ["w", "u", 5]])
    assert r["value"] == [["append", "t", 1], ["r", "t", [1]], ["w", "u", 5]]
    r = cl.invoke("frobnicate", "x", 1)
    assert r["type"] == "fail" and r["error"] == "bad-op"
    s = cl.status()
    assert s["id"] == follower and s["role"] == "follower" and s["leader"] == leader
    assert s["term"] >= 1 and abs(s["time"] - time.time()) < 5 and s["bug"] is None
    assert s["applied_index"] <= s["commit_index"]
    cl.close()
    ls = c.status(leader)
    # write, cas, failed cas, txn take a slot each; reads use a quorum round and the
    # bad op is refused before it reaches the log.
    assert ls["commit_index"] == ls["applied_index"] == 4


def test_a_stalled_leader_gives_info_and_an_unreachable_node_gives_fail(make_cluster) -> None:
    port = _free_ports(1)[0]
    r = KVClient(f"127.0.0.1:{port}", timeout=0.5).invoke("write", "k", 1)
    assert r["type"] == "fail"  # connection refused: nothing was sent
    c = make_cluster(3)
    leader = c.leader()
    cl = KVClient(c.client_addr[leader], timeout=0.5)
    assert cl.invoke("write", "k", 1)["type"] == "ok"
    c.signal(leader, signal.SIGSTOP)
    try:
        assert cl.invoke("write", "k", 2) == {"type": "info", "value": None, "error": "timeout"}
    finally:
        c.signal(leader, signal.SIGCONT)
    cl.close()


def test_a_seeded_bug_shows_in_status(make_cluster) -> None:
    c = make_cluster(3, "--bug", "stale-read")
    assert {c.status(i)["bug"] for i in c.ids} == {"stale-read"}


def test_unknown_bug_is_refused_with_the_valid_names(tmp_path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", MODULE, "--id", "n1",
         "--client-addr", "127.0.0.1:1", "--peer-addr", "127.0.0.1:2",
         "--data-dir", str(tmp_path), "--bug", "no-adoptt"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert p.returncode != 0
    assert "unknown paxos bug 'no-adoptt'" in p.stderr
    for name in ("volatile-acceptor", "no-adopt", "stale-read", "non-unique-ballots"):
        assert name in p.stderr


def test_volatile_acceptor_bug_loses_acknowledged_writes_when_every_node_restarts(
    make_cluster,
) -> None:
    # The same crash-everything scenario the correct node survives above.
    c = make_cluster(3, "--bug", "volatile-acceptor")
    with AppendLoad(c, threads=2) as load:
        load.wait_acked(30)
    for i in c.ids:
        c.kill(i)
    for i in c.ids:
        c.start(i)
    for i in c.ids:
        c.wait_up(i)
    final = _read(c, "l") or []
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
