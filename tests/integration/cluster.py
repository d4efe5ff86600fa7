"""Reference-node clusters as real processes on loopback, shared by the Raft and Paxos tests.

:class:`NodeCluster` starts ``python -m <module>`` per node, each in its own process
group; :func:`cluster_fixture` yields a factory and SIGKILLs every group at the end,
whatever happened, checking that nothing is left running. Peer links can go through
a per-link :class:`LinkProxy` (``proxied="links"``: block/heal by hand) or through the
harness's :class:`~jepsenlike.net.ProxyNet` (``proxied="net"``: grudges).
:class:`AppendLoad` appends unique values through every node (and optionally reads
them back) so that tests can check that no acknowledged append is lost.
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.models.client import KVClient
from jepsenlike.net import ProxyNet

__all__ = [
    "LIBFAKETIME",
    "AppendLoad",
    "LinkProxy",
    "NodeCluster",
    "check_api_contract",
    "check_no_lost_appends",
    "check_outcomes_fail_when_unreachable_info_when_stalled",
    "cluster_fixture",
    "free_ports",
    "kill_leaders_under_load",
    "make_cluster_fixture",
    "read_at_leader",
    "restart_all",
    "run_with_unknown_bug",
]

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


def free_ports(n: int) -> list[int]:
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


class NodeCluster:
    """N node processes of one protocol: start/kill/signal one, find the leader, read logs."""

    def __init__(
        self, module: str, n: int, tmp: str, extra: tuple[str, ...] = (), seed: int = 7
    ) -> None:
        self.module = module
        self.seed = seed
        self.ids = [f"n{k + 1}" for k in range(n)]
        ports = free_ports(2 * n)
        self.client_addr = {i: f"127.0.0.1:{ports[k]}" for k, i in enumerate(self.ids)}
        self.peer_addr = {i: f"127.0.0.1:{ports[n + k]}" for k, i in enumerate(self.ids)}
        self.tmp = tmp
        self.extra = extra
        # Where the *other* nodes dial each node; pointing it at a dead port cuts every
        # link into that node (as a harness proxy holding those links would).
        self.dial_addr = dict(self.peer_addr)
        self.proxies: dict[tuple[str, str], LinkProxy] = {}
        self.net: ProxyNet | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.all_procs: list[subprocess.Popen[bytes]] = []
        self.faketime = False

    # ---------------------------------------------------------------- faults

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

    def add_proxies(self) -> None:
        """Put a proxy on every directed peer link (i dials j through proxy (i, j))."""
        for i in self.ids:
            for j in self.ids:
                if i != j:
                    host, port = self.peer_addr[j].rsplit(":", 1)
                    self.proxies[(i, j)] = LinkProxy((host, int(port)))

    def add_proxy_net(self, seed: int = 3) -> None:
        """Route every directed peer link through the harness's :class:`ProxyNet`."""
        self.net = ProxyNet(self.peer_addr, seed=seed)
        self.net.start()

    def partition(self, side: set[str]) -> None:
        for (i, j), proxy in self.proxies.items():
            if (i in side) != (j in side):
                proxy.block()

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    # ---------------------------------------------------------------- processes

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

    def peers_arg(self, i: str) -> str:
        if self.net is not None:
            return ",".join(f"{j}={a}" for j, a in sorted(self.net.peers_for(i).items()))
        return ",".join(
            f"{j}=127.0.0.1:{self.proxies[(i, j)].port}"
            if self.proxies
            else f"{j}={self.dial_addr[j]}"
            for j in self.ids
            if j != i
        )

    def argv(self, i: str) -> list[str]:
        return [
            sys.executable, "-m", self.module,
            "--id", i,
            "--client-addr", self.client_addr[i],
            "--peer-addr", self.peer_addr[i],
            "--peers", self.peers_arg(i),
            "--data-dir", os.path.join(self.tmp, i),
            "--seed", str(self.seed),
            *self.extra,
        ]  # fmt: skip

    def start(self, i: str) -> None:
        with open(os.path.join(self.tmp, f"{i}.log"), "ab") as log:
            p = subprocess.Popen(
                self.argv(i), stderr=log, stdout=log, start_new_session=True, env=self.env(i)
            )
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
        if self.net is not None:
            self.net.stop()


def cluster_fixture(
    module: str, tmp_path: Path, seed: int, proxy: str = "links"
) -> Iterator[Callable[..., NodeCluster]]:
    """The body of a ``make_cluster`` fixture: yields ``make(n, *extra, ...)``.

    ``proxied=True`` routes peer links through proxies of kind ``proxy``: ``"links"``
    (a :class:`LinkProxy` per link; ``partition``/``heal``) or ``"net"`` (a
    :class:`ProxyNet`, as ``cluster.net``). ``isolate``: a node nobody can dial.
    ``faketime``: libfaketime wall clocks (``set_clock_offset``).
    """
    if proxy not in ("links", "net"):
        raise ValueError(f"proxy={proxy!r}; expected 'links' or 'net'")
    made: list[NodeCluster] = []

    def make(
        n: int,
        *extra: str,
        isolate: str | None = None,
        proxied: bool = False,
        faketime: bool = False,
    ) -> NodeCluster:
        c = NodeCluster(module, n, str(tmp_path), tuple(extra), seed=seed)
        made.append(c)  # first, so that a failing start is still cleaned up
        if proxied and proxy == "links":
            c.add_proxies()
        elif proxied:
            c.add_proxy_net()
        if faketime:
            c.use_faketime()
        if isolate is not None:
            c.dial_addr[isolate] = f"127.0.0.1:{free_ports(1)[0]}"
        c.start_all()
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


def make_cluster_fixture(module: str, seed: int, proxy: str = "links") -> Any:
    """A ``make_cluster`` fixture for ``module``'s nodes (see :func:`cluster_fixture`)."""

    @pytest.fixture
    def make_cluster(tmp_path: Path) -> Iterator[Callable[..., NodeCluster]]:
        yield from cluster_fixture(module, tmp_path, seed, proxy)

    return make_cluster


class AppendLoad:
    """Threads appending unique values to one list, round-robin over all nodes.

    With ``readers=True`` one more thread per node reads the list there; every ok
    read must contain every append acknowledged before the read began
    (linearizable reads), else it is recorded in ``stale_reads``.
    """

    def __init__(self, cluster: NodeCluster, threads: int = 4, readers: bool = False) -> None:
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
            self._threads += [threading.Thread(target=self._read, args=(i,)) for i in cluster.ids]
        self._next = 0

    def _read(self, node: str) -> None:
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


def read_at_leader(cluster: NodeCluster, key: str, timeout: float = 10.0) -> Any:
    """Read ``key`` through the current leader, retrying until a read succeeds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = KVClient(cluster.client_addr[cluster.leader()])
        r = c.invoke("read", key, None)
        c.close()
        if r["type"] == "ok":
            return r["value"]
        time.sleep(0.05)
    raise AssertionError(f"read of {key!r} never succeeded")


def check_no_lost_appends(cluster: NodeCluster, load: AppendLoad) -> None:
    final = read_at_leader(cluster, "l") or []
    assert len(final) == len(set(final)), "an append was applied twice"
    assert set(final) <= load.attempted, "a value nobody appended showed up"
    lost = load.acked - set(final)
    assert not lost, f"acknowledged appends lost: {sorted(lost)[:10]}"


def kill_leaders_under_load(c: NodeCluster) -> tuple[AppendLoad, float]:
    """SIGKILL the leader under append load (and, with 5 nodes, the next one too), then
    restart the first; no acknowledged append may be lost. Returns the load and the
    seconds until the first new leader showed up (informational only)."""
    with AppendLoad(c) as load:
        load.wait_acked(50)
        old = c.leader()
        c.kill(old)
        t0 = time.monotonic()
        new = c.leader(exclude=old)
        failover = time.monotonic() - t0
        load.wait_acked(len(load.acked) + 50)
        if len(c.ids) == 5:
            # A second leader crash: three of five remain, still a majority.
            c.kill(new)
            c.leader(exclude=new)
            load.wait_acked(len(load.acked) + 50)
        c.start(old)
        c.wait_up(old)
        load.wait_acked(len(load.acked) + 20)
    check_no_lost_appends(c, load)
    return load, failover


def restart_all(c: NodeCluster, torn_wal: str | None = None) -> None:
    """SIGKILL every node and start them all again.

    ``torn_wal``: the WAL file name (in ``n1``'s data dir) to which to append a torn
    final record first -- a header promising bytes that never came.
    """
    for i in c.ids:
        c.kill(i)
    if torn_wal is not None:
        with open(os.path.join(c.tmp, "n1", torn_wal), "ab") as f:
            f.write(b"\x00\x00\x01\x00\xde\xad")
    for i in c.ids:
        c.start(i)
    for i in c.ids:
        c.wait_up(i)


def check_api_contract(c: NodeCluster, log_entries: int) -> None:
    """Ops through a follower are forwarded; answers and ``/status`` follow the API.

    ``log_entries``: what the leader's log holds afterwards (write, cas, failed cas,
    txn, plus whatever the protocol appends itself); reads take no log entry and a
    bad op is refused before it reaches the log.
    """
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
    assert ls is not None
    assert ls["commit_index"] == ls["applied_index"] == log_entries


def check_outcomes_fail_when_unreachable_info_when_stalled(
    make_cluster: Callable[..., NodeCluster],
) -> None:
    port = free_ports(1)[0]
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


def run_with_unknown_bug(module: str, tmp_path: Path, bug: str) -> subprocess.CompletedProcess:
    """Start a node with a misspelt ``--bug``; it must refuse to start."""
    p = subprocess.run(
        [sys.executable, "-m", module, "--id", "n1",
         "--client-addr", "127.0.0.1:1", "--peer-addr", "127.0.0.1:2",
         "--data-dir", str(tmp_path), "--bug", bug],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert p.returncode != 0
    return p
