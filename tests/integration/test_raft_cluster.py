"""Real Raft node processes on loopback: ops, SIGKILL of leaders, restarts, recovery.

Every node runs in its own process group; the fixture SIGKILLs each group at the end,
whatever happened, and checks that nothing is left running.
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

pytestmark = pytest.mark.integration


LIBFAKETIME = next(
    (
        p
        for p in (
            os.environ.get("JEPSENLIKE_LIBFAKETIME", ""),
            "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
            "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        )
        if p and os.path.exists(p)
    ),
    None,
)


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


class LinkProxy:
    """A TCP proxy for one directed peer link that can hold traffic.

    Held bytes stay in the kernel buffers (the proxy stops reading), like packets
    that do not get through; on heal they flow again, late. Frames are never cut, so
    the stream stays well formed.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.closed = False
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def block(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closed = True
        self.open.set()
        for s in [self.listener, *self.socks]:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                src, _ = self.listener.accept()
            except OSError:
                return
            try:
                dst = socket.create_connection(self.target, timeout=1.0)
            except OSError:
                src.close()
                continue
            dst.settimeout(None)
            self.socks += [src, dst]
            threading.Thread(target=self._pump, args=(src, dst, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(dst, src, False), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, forward: bool) -> None:
        try:
            while not self.closed:
                if forward:
                    self.open.wait()
                data = a.recv(65536)
                if not data:
                    break
                if forward:
                    self.open.wait()
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


class Cluster:
    """N node processes; ``kill``/``start`` one, find the leader, open clients."""

    def __init__(self, n: int, tmp: str, extra: tuple[str, ...] = ()) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        ports = _free_ports(2 * n)
        self.client_addr = {i: f"127.0.0.1:{ports[k]}" for k, i in enumerate(self.ids)}
        self.peer_addr = {i: f"127.0.0.1:{ports[n + k]}" for k, i in enumerate(self.ids)}
        self.tmp = tmp
        self.extra = extra
        # Where the *other* nodes dial each node; pointing it at a dead port cuts every
        # link into that node (as a harness proxy holding those links would).
        self.dial_addr = dict(self.peer_addr)
        self.proxies: dict[tuple[str, str], LinkProxy] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.all_procs: list[subprocess.Popen[bytes]] = []
        self.faketime = False

    def use_faketime(self) -> None:
        """Give every node a libfaketime wall clock controlled by a file (offset 0)."""
        self.faketime = True
        for i in self.ids:
            self.set_clock_offset(i, 0.0)

    def _clock_file(self, i: str) -> str:
        return os.path.join(self.tmp, f"clock-{i}")

    def set_clock_offset(self, i: str, seconds: float) -> None:
        tmp = self._clock_file(i) + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{seconds:+.9f}\n")
        os.replace(tmp, self._clock_file(i))

    def env(self, i: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("FAKETIME", None)
        if self.faketime:
            assert LIBFAKETIME is not None
            env.update(
                LD_PRELOAD=LIBFAKETIME,
                FAKETIME_TIMESTAMP_FILE=self._clock_file(i),
                FAKETIME_NO_CACHE="1",
                FAKETIME_DONT_FAKE_MONOTONIC="1",  # only the wall clock moves
                NO_FAKE_STAT="1",
            )
        return env

    def add_proxies(self) -> None:
        """Put a proxy on every directed peer link (i dials j through proxy (i, j))."""
        for i in self.ids:
            for j in self.ids:
                if i != j:
                    host, port = self.peer_addr[j].rsplit(":", 1)
                    self.proxies[(i, j)] = LinkProxy((host, int(port)))

    def partition(self, side: set[str]) -> None:
        for (i, j), proxy in self.proxies.items():
            if (i in side) != (j in side):
                proxy.block()

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    def argv(self, i: str) -> list[str]:
        peers = ",".join(
            f"{j}=127.0.0.1:{self.proxies[(i, j)].port}" if self.proxies else f"{j}={self.dial_addr[j]}"
            for j in self.ids
            if j != i
        )
        return [
            sys.executable, "-m", "jepsenlike.models.raft",
            "--id", i,
            "--client-addr", self.client_addr[i],
            "--peer-addr", self.peer_addr[i],
            "--peers", peers,
            "--data-dir", os.path.join(self.tmp, i),
            "--seed", "7",
            *self.extra,
        ]

    def start(self, i: str) -> None:
        log = open(os.path.join(self.tmp, f"{i}.log"), "ab")
        p = subprocess.Popen(
            self.argv(i), stderr=log, stdout=log, start_new_session=True, env=self.env(i)
        )
        log.close()
        self.all_procs.append(p)  # first, so that close() finds it whatever happens next
        self.procs[i] = p

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)
        for i in self.ids:
            self.wait_up(i)

    def wait_up(self, i: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        c = KVClient(self.client_addr[i], timeout=1.0)
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    c.status()
                    return
                assert self.procs[i].poll() is None, f"{i} exited: {self.log(i)[-2000:]}"
                time.sleep(0.05)
        finally:
            c.close()
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
        for proxy in self.proxies.values():
            proxy.close()


@pytest.fixture
def make_cluster(tmp_path) -> Iterator:
    made: list[Cluster] = []

    def make(
        n: int,
        *extra: str,
        isolate: str | None = None,
        proxied: bool = False,
        faketime: bool = False,
    ) -> Cluster:
        c = Cluster(n, str(tmp_path), tuple(extra))
        if proxied:
            c.add_proxies()
        if faketime:
            c.use_faketime()
        if isolate is not None:
            c.dial_addr[isolate] = f"127.0.0.1:{_free_ports(1)[0]}"
        made.append(c)
        c.start_all()
        return c

    yield make
    for c in made:
        c.close()


class AppendLoad:
    """Threads appending unique values to one list through random nodes."""

    def __init__(self, cluster: Cluster, threads: int = 4, readers: bool = False) -> None:
        self.cluster = cluster
        self.stale_reads: list[str] = []
        self.reads_ok = 0
        self.acked: set[int] = set()
        self.attempted: set[int] = set()
        self.outcomes: dict[str, int] = {"ok": 0, "fail": 0, "info": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, args=(k,)) for k in range(threads)]
        if readers:
            self._threads += [
                threading.Thread(target=self._read, args=(i,)) for i in cluster.ids
            ]
        self._next = 0

    def _read(self, node: str) -> None:
        """Read the list at one node; every ok read must contain every append that
        was acknowledged before the read began (linearizable reads)."""
        client = KVClient(self.cluster.client_addr[node], timeout=2.0)
        while not self._stop.is_set():
            with self._lock:
                must_see = set(self.acked)
            r = client.invoke("read", "l", None)
            if r["type"] == "ok":
                missing = must_see - set(r["value"] or [])
                with self._lock:
                    self.reads_ok += 1
                    if missing:
                        self.stale_reads.append(f"{node} missed {sorted(missing)[:5]}")
            else:
                time.sleep(0.01)
        client.close()

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
            node = ids[n % len(ids)]
            r = clients[node].invoke("append", "l", v)
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


def _read_list(cluster: Cluster, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = cluster.leader()
        c = KVClient(cluster.client_addr[leader])
        r = c.invoke("read", "l", None)
        c.close()
        if r["type"] == "ok":
            return r["value"] or []
        time.sleep(0.05)
    raise AssertionError("final read never succeeded")


def _check_no_lost_appends(cluster: Cluster, load: AppendLoad) -> None:
    final = _read_list(cluster)
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
        t0 = time.monotonic()
        new = c.leader(exclude=old)
        failover = time.monotonic() - t0
        before = len(load.acked)
        load.wait_acked(before + 50)
        if n == 5:
            # A second leader crash: three of five remain, still a quorum.
            c.kill(new)
            c.leader(exclude=new)
            load.wait_acked(len(load.acked) + 50)
        c.start(old)
        c.wait_up(old)
        load.wait_acked(len(load.acked) + 20)
    _check_no_lost_appends(c, load)
    # Informational only (tests assert no wall-clock times; the benchmark measures it).
    print(f"\n{n} nodes: new leader {new} after {failover:.2f}s; outcomes {load.outcomes}")


@pytest.mark.parametrize("read_mode", ["read-index", "lease"])
def test_partitioned_leader_serves_no_stale_reads_and_loses_no_writes(
    make_cluster, read_mode: str
) -> None:
    c = make_cluster(3, "--read-mode", read_mode, proxied=True)
    with AppendLoad(c, threads=3, readers=True) as load:
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
    _check_no_lost_appends(c, load)


def test_stale_read_bug_is_caught_by_a_partition(make_cluster) -> None:
    c = make_cluster(3, "--bug", "stale-read", proxied=True)
    with AppendLoad(c, threads=3, readers=True) as load:
        load.wait_acked(20)
        old = c.leader()
        c.partition({old})
        c.leader(exclude=old)
        load.wait_acked(len(load.acked) + 30)
        deadline = time.monotonic() + 10
        while not load.stale_reads and time.monotonic() < deadline:
            time.sleep(0.05)
        c.heal()
    assert load.stale_reads  # the isolated node answered from its frozen state


@pytest.mark.skipif(LIBFAKETIME is None, reason="needs libfaketime (apt-get install libfaketime)")
@pytest.mark.parametrize("bug", [None, "lease-without-bound"])
def test_lease_reads_survive_a_wall_clock_jump_unless_lease_without_bound(
    make_cluster, bug
) -> None:
    extra = ("--read-mode", "lease") + (("--bug", bug) if bug else ())
    c = make_cluster(3, *extra, proxied=True, faketime=True)
    with AppendLoad(c, threads=3, readers=True) as load:
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
        _check_no_lost_appends(c, load)


def test_cluster_recovers_after_sigkill_of_every_node(make_cluster, tmp_path) -> None:
    c = make_cluster(3, "--snapshot-every", "40")  # force snapshots and WAL rewrites
    with AppendLoad(c, threads=2) as load:
        load.wait_acked(120)
    kept = KVClient(c.client_addr["n2"])  # a keep-alive connection that outlives n2
    assert kept.status()["id"] == "n2"
    for i in c.ids:
        c.kill(i)
    # Simulate a torn final write on one node: garbage after the last full record.
    with open(tmp_path / "n1" / "raft.wal", "ab") as f:
        f.write(b"\x00\x00\x01\x00\xde\xad")
    for i in c.ids:
        c.start(i)
    for i in c.ids:
        c.wait_up(i)
    _check_no_lost_appends(c, load)
    # The stale socket is noticed before sending: a reconnect, not an indefinite outcome.
    r = kept.invoke("read", "l", None)
    kept.close()
    assert r["type"] in ("ok", "fail"), r
    assert "torn WAL tail" in c.log("n1")
    assert os.path.exists(tmp_path / "n1" / "snapshot.json")


def test_client_outcomes_fail_when_unreachable_info_when_stalled(make_cluster) -> None:
    port = _free_ports(1)[0]
    r = KVClient(f"127.0.0.1:{port}", timeout=0.5).invoke("write", "k", 1)
    assert r["type"] == "fail"  # connection refused: nothing was sent
    c = make_cluster(3)
    leader = c.leader()
    cl = KVClient(c.client_addr[leader], timeout=0.5)
    assert cl.invoke("write", "k", 1)["type"] == "ok"
    c.signal(leader, signal.SIGSTOP)
    try:
        r = cl.invoke("write", "k", 2)
        assert r == {"type": "info", "value": None, "error": "timeout"}
    finally:
        c.signal(leader, signal.SIGCONT)
    cl.close()


def test_followers_forward_and_api_contract(make_cluster) -> None:
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
    assert abs(s["time"] - time.time()) < 5 and s["bug"] is None
    assert s["applied_index"] <= s["commit_index"]
    cl.close()
    ls = c.status(leader)
    # no-op, write, cas, failed cas, txn; reads use ReadIndex and a bad op is refused
    # before it reaches the log.
    assert ls["commit_index"] == ls["applied_index"] == 5


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
def test_isolated_node_reads_are_refused_unless_stale_read_bug(make_cluster, bug) -> None:
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
    if bug:
        assert r == {"type": "ok", "value": None, "error": None}  # stale: misses x=1
    else:
        assert r["type"] == "fail" and r["error"] == "not-leader"


def test_unknown_bug_is_refused_with_the_valid_names(tmp_path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "jepsenlike.models.raft", "--id", "n1",
         "--client-addr", "127.0.0.1:1", "--peer-addr", "127.0.0.1:2",
         "--data-dir", str(tmp_path), "--bug", "stale-raed"],
        capture_output=True, text=True, timeout=30,
    )
    assert p.returncode != 0
    assert "unknown bug 'stale-raed'" in p.stderr and "stale-read" in p.stderr
