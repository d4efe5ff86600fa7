"""What ``bench_raft.py`` and ``bench_paxos.py`` share: node clusters and the load generator.

* :class:`NodeCluster` -- ``n`` reference nodes (``python -m <module>``), each in its own
  process group, SIGKILLed by ``stop()``;
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


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


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


class NodeCluster:
    """``n`` reference nodes of one protocol (``module``), fsync on, default timeouts."""

    def __init__(self, module: str, n: int, root: str) -> None:
        self.module = module
        self.ids = [f"n{i + 1}" for i in range(n)]
        ports = free_ports(2 * n)
        self.client = {i: ("127.0.0.1", ports[k]) for k, i in enumerate(self.ids)}
        self.peer = {i: ("127.0.0.1", ports[n + k]) for k, i in enumerate(self.ids)}
        self.root = root
        self.procs = Procs()

    def start(self, i: str) -> None:
        peers = ",".join(f"{j}={hp(a)}" for j, a in self.peer.items() if j != i)
        argv = [
            PY, "-m", self.module, "--id", i,
            "--client-addr", hp(self.client[i]), "--peer-addr", hp(self.peer[i]),
            "--peers", peers, "--data-dir", os.path.join(self.root, i), "--log-level", "WARNING",
        ]  # fmt: skip
        self.procs.start(i, argv, os.path.join(self.root, f"{i}.log"))

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    def kill(self, i: str) -> None:
        self.procs.kill(i)

    def leader(self, timeout: float = 15.0, exclude: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in list(self.procs.procs):
                s = get_status(self.client[i])
                if s and s["role"] == "leader" and i != exclude:
                    return i
            time.sleep(0.01)
        raise RuntimeError(f"no {self.module} leader within {timeout}s")

    def stop(self) -> None:
        self.procs.kill_all()


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
