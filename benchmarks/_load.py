"""What ``bench_raft.py`` and ``bench_paxos.py`` share: node clusters and the load generator.

* :class:`NodeCluster` -- ``n`` reference nodes (``python -m <module>``) started by the
  harness's own launcher, :class:`~jepsenlike.backends.local.LocalBackend`, with peer links
  direct (no proxies: the nodes alone are measured); ``stop()`` tears them down;
* :class:`Procs` -- named processes in their own process groups, for other systems'
  clusters (etcd in ``bench_raft.py``); ports from the backend's ``free_ports``;
* :func:`run_load` -- one asyncio load generator: raw HTTP/1.1 keep-alive connections,
  one per client, each sending one op at a time over 64 keys for a number of seconds;
  counts ok answers and their latencies in a :class:`Cell`. The request and the "ok"
  test are pluggable (the default is the reference nodes' ``POST /op``), so the same
  generator measures other servers too;
* :func:`measure_failover` -- SIGKILL a leader under light load; time until a new
  leader commits a write.

Imported as ``_load`` by scripts run as ``python benchmarks/bench_*.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from jepsenlike.backends.local import LocalBackend, free_ports
from jepsenlike.systems.raft import KVNodeSystem

__all__ = [
    "PY",
    "Cell",
    "NodeCluster",
    "Procs",
    "free_ports",
    "get_status",
    "hp",
    "http_json",
    "kv_body",
    "kv_ok",
    "measure_failover",
    "run_load",
]

PY = sys.executable

BodyFn = Callable[[str, str, int], tuple[str, bytes]]
OkFn = Callable[[dict], bool]


def hp(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def http_json(url: str, body: dict | None = None, timeout: float = 1.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def get_status(addr: tuple[str, int]) -> dict | None:
    """A reference node's ``GET /status``, or ``None`` when it does not answer."""
    try:
        return http_json(f"http://{hp(addr)}/status", timeout=0.3)
    except (OSError, ValueError):
        return None


class Procs:
    """Named processes, each in its own process group."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], log: str) -> None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "ab") as f:
            self.procs[name] = subprocess.Popen(argv, stdout=f, stderr=f, start_new_session=True)

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def kill_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


class _ReferenceNodes(KVNodeSystem):
    """The reference nodes of ``module`` at log level WARNING, fsync on, default timeouts."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.name = module.rsplit(".", 1)[-1]
        self.options = {"log-level": "WARNING"}


class NodeCluster:
    """``n`` reference nodes of one protocol (``module``) on a local backend without proxies."""

    def __init__(self, module: str, n: int, root: str) -> None:
        self.module = module
        self.backend = LocalBackend(_ReferenceNodes(module), n, root, ready_timeout=30.0, proxies=False)
        self.ids = self.backend.node_ids
        self.client = {nd.id: _addr(nd.client_addr) for nd in self.backend.nodes}
        self.peer = {nd.id: _addr(nd.peer_addr) for nd in self.backend.nodes}

    def start(self, i: str) -> None:
        """Start a killed node again, on its own data."""
        self.backend.restart(i)

    def start_all(self) -> None:
        self.backend.start()

    def kill(self, i: str) -> None:
        self.backend.kill(i)

    def leader(self, timeout: float = 15.0, exclude: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.ids:
                if self.backend.node_state(i) == "killed":
                    continue
                s = get_status(self.client[i])
                if s and s["role"] == "leader" and i != exclude:
                    return i
            time.sleep(0.01)
        raise RuntimeError(f"no {self.module} leader within {timeout}s")

    def stop(self) -> None:
        self.backend.teardown()


def _addr(hostport: str) -> tuple[str, int]:
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


# ---------------------------------------------------------------- load


@dataclass
class Cell:
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000


def kv_body(op: str, key: str, value: int) -> tuple[str, bytes]:
    """A reference node's request: ``POST /op`` with ``{"f": op, "key", "value"}``."""
    return "/op", json.dumps({"f": op, "key": key, "value": value}).encode()


def kv_ok(obj: dict) -> bool:
    return obj.get("type") == "ok"


async def _client(
    addr: tuple[str, int], op: str, n: int, body_fn: BodyFn, ok_fn: OkFn, stop_at: float,
    cell: Cell,
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(*addr)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host = b"Host: %s:%d\r\n" % (addr[0].encode(), addr[1])
    k = 0
    try:
        while time.perf_counter() < stop_at:
            k += 1
            path, body = body_fn(op, f"key{n % 64}", k)
            t = time.perf_counter()
            writer.write(
                b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (path.encode(), host, len(body)) + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            obj = json.loads(await reader.readexactly(length))
            if ok_fn(obj):
                cell.ok += 1
                cell.latencies.append(time.perf_counter() - t)
            else:
                cell.errors += 1
    finally:
        writer.close()


def run_load(
    addr: tuple[str, int],
    op: str,
    clients: int,
    seconds: float,
    body_fn: BodyFn = kv_body,
    ok_fn: OkFn = kv_ok,
) -> Cell:
    """``clients`` connections to ``addr`` sending ``op`` for ``seconds``."""

    async def main() -> Cell:
        cell = Cell(0, 0, seconds, [])
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(addr, op, n, body_fn, ok_fn, stop_at, cell) for n in range(clients))
        )
        return cell

    return asyncio.run(main())


def measure_failover(module: str, root: str, rounds: int) -> list[float]:
    """SIGKILL the leader of a 3-node cluster; seconds until a new leader commits a write."""
    cl = NodeCluster(module, 3, root)
    cl.start_all()
    out = []
    try:
        for _ in range(rounds):
            old = cl.leader()
            run_load(cl.client[old], "write", 4, 0.5)  # under load
            t0 = time.monotonic()
            cl.kill(old)
            while True:
                new = cl.leader(exclude=old)
                if run_load(cl.client[new], "write", 1, 0.05).ok:
                    break
            out.append(time.monotonic() - t0)
            cl.start(old)
            time.sleep(1.0)
    finally:
        cl.stop()
    return out
