"""Reference-node clusters as real processes on loopback, shared by the Raft and Paxos tests.

:class:`NodeCluster` is a thin test-side view of the harness's own launcher,
:class:`~jepsenlike.backends.local.LocalBackend` (one process group per node,
``python -m <module>`` with the node's addresses, data dir and seed; ports from
its :func:`~jepsenlike.backends.local.free_ports`). :func:`cluster_fixture`
yields a factory and tears every cluster down at the end, whatever happened,
checking that nothing is left running. With ``proxied=True`` peer links run
through the backend's per-link proxies (:class:`~jepsenlike.net.ProxyNet`):
``partition``/``heal`` by hand, or grudges on ``cluster.net``.
:class:`AppendLoad` appends unique values through every node (and optionally
reads them back) so that tests can check that no acknowledged append is lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.backends.local import LocalBackend, free_ports
from jepsenlike.faketime import search_libfaketime
from jepsenlike.models.client import KVClient
from jepsenlike.nemesis.grudge import complete_grudge
from jepsenlike.net import ProxyNet
from jepsenlike.systems.base import NodeSpec
from jepsenlike.systems.raft import KVNodeSystem

__all__ = [
    "LIBFAKETIME",
    "AppendLoad",
    "NodeCluster",
    "check_api_contract",
    "check_no_lost_appends",
    "check_outcomes_fail_when_unreachable_info_when_stalled",
    "cluster_fixture",
    "kill_leaders_under_load",
    "make_cluster_fixture",
    "read_at_leader",
    "restart_all",
    "run_with_unknown_bug",
]

LIBFAKETIME = search_libfaketime().path


class ArgvNodeSystem(KVNodeSystem):
    """The reference nodes of ``module`` with extra command-line arguments, verbatim."""

    def __init__(self, module: str, extra: tuple[str, ...]) -> None:
        self.module = module
        self.name = module.rsplit(".", 1)[-1]
        self.extra = extra
        self.options = {}

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        return [*super().node_command(node, peers, bug=bug, seed=seed), *self.extra]


class NodeCluster:
    """N node processes of one protocol on a :class:`LocalBackend`: start/kill/signal one,
    find the leader, read logs, cut peer links (``proxied``), move wall clocks (``faketime``)."""

    def __init__(
        self, module: str, n: int, tmp: str, extra: tuple[str, ...] = (), seed: int = 7, *,
        proxied: bool = False, faketime: bool = False, isolate: str | None = None,
    ) -> None:
        self.module = module
        self.seed = seed
        self.tmp = tmp
        self.extra = extra
        ids = [f"n{k + 1}" for k in range(n)]
        # ``isolate``: nobody's traffic reaches that node (it can still send), from the start.
        grudge = {isolate: [i for i in ids if i != isolate]} if isolate is not None else None
        self.backend = LocalBackend(ArgvNodeSystem(module, extra), n, tmp, seed=seed, ready_timeout=10.0,
                                    clocks=faketime, proxies=proxied or isolate is not None,
                                    initial_grudge=grudge)
        self.ids = self.backend.node_ids
        self.client_addr = {nd.id: nd.client_addr for nd in self.backend.nodes}
        self.peer_addr = {nd.id: nd.peer_addr for nd in self.backend.nodes}
        self.all_procs: list[subprocess.Popen[bytes]] = []

    @property
    def net(self) -> ProxyNet | None:
        """The peer-link proxies (``proxied=True``), for grudges."""
        return self.backend.net

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        """The processes of the nodes that are not killed."""
        return {i: p for i, p in self.backend.procs.items() if self.backend.node_state(i) != "killed"}

    # ---------------------------------------------------------------- faults

    def set_clock_offset(self, i: str, seconds: float) -> None:
        """Set node ``i``'s wall clock ``seconds`` away from the real one (``faketime=True``)."""
        clock = self.backend.clock(i)
        clock.bump(seconds - clock.offset)

    def partition(self, side: set[str]) -> None:
        """Hold every peer byte between ``side`` and the rest (``proxied=True``)."""
        self.backend.apply_grudge(complete_grudge([side, set(self.ids) - side]))

    def heal(self) -> None:
        self.backend.heal_network()

    # ---------------------------------------------------------------- processes

    def _track(self) -> None:
        for p in self.backend.procs.values():
            if p not in self.all_procs:
                self.all_procs.append(p)

    def start(self, i: str) -> None:
        """Start a killed node again, on its own data."""
        try:
            self.backend.restart(i)
        finally:
            self._track()

    def start_all(self) -> None:
        try:
            self.backend.start()
        finally:
            self._track()

    def data_dir(self, i: str) -> str:
        return self.backend.node(i).data_dir

    def wait_up(self, i: str, timeout: float = 10.0) -> None:
        self.backend.wait_ready([i], timeout)

    def kill(self, i: str) -> None:
        self.backend.kill(i)

    def signal(self, i: str, sig: int) -> None:
        os.killpg(self.backend.procs[i].pid, sig)

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
        return self.backend.log_path(i).read_text(errors="replace")

    def close(self) -> None:
        self._track()
        self.backend.teardown()
        for p in self.all_procs:
            with pytest.raises(ProcessLookupError):
                os.killpg(p.pid, 0)  # nothing left in the process group


def cluster_fixture(
    module: str, tmp_path: Path, seed: int, proxy: str = "links"
) -> Iterator[Callable[..., NodeCluster]]:
    """The body of a ``make_cluster`` fixture: yields ``make(n, *extra, ...)``.

    ``proxied=True`` routes peer links through the backend's proxies: with ``proxy``
    ``"links"`` tests cut them with ``partition``/``heal``, with ``"net"`` through
    grudges on ``cluster.net``. ``isolate``: a node nobody's traffic reaches.
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
        c = NodeCluster(module, n, str(tmp_path / f"cluster{len(made)}"), tuple(extra), seed=seed,
                        proxied=proxied, faketime=faketime, isolate=isolate)
        made.append(c)  # first, so that a failing start is still cleaned up
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
        with open(os.path.join(c.data_dir("n1"), torn_wal), "ab") as f:
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
