"""Throughput and latency of the reference Raft node, side by side with etcd 3.4.

Usage::

    python benchmarks/bench_raft.py                 # 3- and 5-node, 1/10/50 clients
    python benchmarks/bench_raft.py --duration 3 --clients 50 --sizes 3

For each cluster size and client count, one load generator (asyncio, raw HTTP/1.1
keep-alive connections, one connection per client) sends writes and then reads to
the leader for ``--duration`` seconds and counts ok answers; latencies are those of
ok answers. The same load generator then runs against a 3-node etcd cluster through
etcd's gRPC-gateway JSON API (``/v3/kv/put``, ``/v3/kv/range``, base64 keys), so the
ratio compares servers, not clients. Both run with fsync on. Without ``etcd`` on
PATH the etcd columns are skipped with a note.

Failover: SIGKILL the leader of a 3-node Raft cluster under light load and time
until another node reports itself leader and a write through it succeeds.

Every process is started in its own process group and SIGKILLed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass

PY = sys.executable


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


class Procs:
    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], log: str) -> None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        with open(log, "ab") as f:
            self.procs[name] = subprocess.Popen(
                argv, stdout=f, stderr=f, start_new_session=True
            )

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def kill_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


# ---------------------------------------------------------------- clusters


class RaftCluster:
    def __init__(self, n: int, root: str) -> None:
        self.ids = [f"n{i + 1}" for i in range(n)]
        ports = free_ports(2 * n)
        self.client = {i: ("127.0.0.1", ports[k]) for k, i in enumerate(self.ids)}
        self.peer = {i: ("127.0.0.1", ports[n + k]) for k, i in enumerate(self.ids)}
        self.root = root
        self.procs = Procs()

    def start(self, i: str) -> None:
        peers = ",".join(f"{j}={h}:{p}" for j, (h, p) in self.peer.items() if j != i)
        argv = [
            PY, "-m", "jepsenlike.models.raft", "--id", i,
            "--client-addr", hp(self.client[i]), "--peer-addr", hp(self.peer[i]),
            "--peers", peers, "--data-dir", os.path.join(self.root, i), "--log-level", "WARNING",
        ]
        self.procs.start(i, argv, os.path.join(self.root, f"{i}.log"))

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    def status(self, i: str) -> dict | None:
        try:
            return http_json(f"http://{hp(self.client[i])}/status", timeout=0.3)
        except (OSError, ValueError):
            return None

    def leader(self, timeout: float = 15.0, exclude: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in list(self.procs.procs):
                s = self.status(i)
                if s and s["role"] == "leader" and i != exclude:
                    return i
            time.sleep(0.01)
        raise RuntimeError("no raft leader")

    def stop(self) -> None:
        self.procs.kill_all()


class EtcdCluster:
    def __init__(self, root: str, n: int = 3) -> None:
        self.ids = [f"e{i + 1}" for i in range(n)]
        ports = free_ports(2 * n)
        self.client = {i: ("127.0.0.1", ports[k]) for k, i in enumerate(self.ids)}
        self.peer = {i: ("127.0.0.1", ports[n + k]) for k, i in enumerate(self.ids)}
        self.root = root
        self.procs = Procs()

    def start_all(self) -> None:
        initial = ",".join(f"{i}=http://{hp(self.peer[i])}" for i in self.ids)
        for i in self.ids:
            c = f"http://{hp(self.client[i])}"
            p = f"http://{hp(self.peer[i])}"
            argv = [
                "etcd", "--name", i, "--data-dir", os.path.join(self.root, i),
                "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench", "--log-level", "error",
            ]
            self.procs.start(i, argv, os.path.join(self.root, f"{i}.log"))

    def leader(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.ids:
                try:
                    s = http_json(f"http://{hp(self.client[i])}/v3/maintenance/status", {})
                except (OSError, ValueError):
                    continue
                if s.get("leader") and s["leader"] == s["header"]["member_id"]:
                    return i
            time.sleep(0.05)
        raise RuntimeError("no etcd leader")

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


def raft_body(op: str, key: str, value: int) -> tuple[str, bytes]:
    f = "write" if op == "write" else "read"
    return "/op", json.dumps({"f": f, "key": key, "value": value}).encode()


def raft_ok(obj: dict) -> bool:
    return obj.get("type") == "ok"


def etcd_body(op: str, key: str, value: int) -> tuple[str, bytes]:
    k = base64.b64encode(key.encode()).decode()
    if op == "write":
        v = base64.b64encode(str(value).encode()).decode()
        return "/v3/kv/put", json.dumps({"key": k, "value": v}).encode()
    return "/v3/kv/range", json.dumps({"key": k}).encode()


def etcd_ok(obj: dict) -> bool:
    return "header" in obj and "error" not in obj


async def _client(addr, op, n, body_fn, ok_fn, stop_at, cell: Cell) -> None:
    reader, writer = await asyncio.open_connection(*addr)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


def run_load(addr, op: str, clients: int, seconds: float, body_fn, ok_fn) -> Cell:
    async def main() -> Cell:
        cell = Cell(0, 0, seconds, [])
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(addr, op, n, body_fn, ok_fn, stop_at, cell) for n in range(clients))
        )
        return cell

    return asyncio.run(main())


def measure_failover(root: str, rounds: int) -> list[float]:
    """SIGKILL the leader of a 3-node cluster; seconds until a new leader commits a write."""
    cl = RaftCluster(3, root)
    cl.start_all()
    out = []
    try:
        for _ in range(rounds):
            old = cl.leader()
            run_load(cl.client[old], "write", 4, 0.5, raft_body, raft_ok)  # warm, under load
            t0 = time.monotonic()
            cl.procs.kill(old)
            while True:
                new = cl.leader(exclude=old)
                cell = run_load(cl.client[new], "write", 1, 0.05, raft_body, raft_ok)
                if cell.ok:
                    break
            out.append(time.monotonic() - t0)
            cl.start(old)
            time.sleep(1.0)
    finally:
        cl.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per cell")
    ap.add_argument("--clients", default="1,10,50")
    ap.add_argument("--sizes", default="3,5")
    ap.add_argument("--ops", default="write,read")
    ap.add_argument("--failover-rounds", type=int, default=5)
    ap.add_argument("--no-etcd", action="store_true")
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    ops = args.ops.split(",")
    root = tempfile.mkdtemp(prefix="bench-raft-")
    results: dict[tuple, Cell] = {}
    etcd: dict[tuple, Cell] = {}
    have_etcd = shutil.which("etcd") is not None and not args.no_etcd
    try:
        for n in sizes:
            cl = RaftCluster(n, os.path.join(root, f"raft{n}"))
            cl.start_all()
            try:
                leader = cl.leader()
                run_load(cl.client[leader], "write", 10, 1.0, raft_body, raft_ok)  # warm-up
                for op in ops:
                    for c in clients:
                        results[(n, op, c)] = run_load(
                            cl.client[leader], op, c, args.duration, raft_body, raft_ok
                        )
                        print(f"raft {n} nodes {op:5} {c:3} clients: "
                              f"{results[(n, op, c)].rate:8.0f} ops/s", file=sys.stderr)
            finally:
                cl.stop()
        if have_etcd:
            ec = EtcdCluster(os.path.join(root, "etcd"))
            ec.start_all()
            try:
                leader = ec.leader()
                run_load(ec.client[leader], "write", 10, 1.0, etcd_body, etcd_ok)
                for op in ops:
                    for c in clients:
                        etcd[(op, c)] = run_load(
                            ec.client[leader], op, c, args.duration, etcd_body, etcd_ok
                        )
                        print(f"etcd 3 nodes {op:5} {c:3} clients: "
                              f"{etcd[(op, c)].rate:8.0f} ops/s", file=sys.stderr)
            finally:
                ec.stop()
        failover = measure_failover(os.path.join(root, "failover"), args.failover_rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"fsync on; {args.duration:g} s per cell; one asyncio load generator, "
          f"keep-alive HTTP to the leader; {os.cpu_count()} CPUs")
    hdr = (f"{'cluster':8} {'op':5} {'clients':>7} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
           f"{'err':>5} | {'etcd-3 ops/s':>12} {'p50 ms':>7} {'p99 ms':>7} | {'raft/etcd':>9}")
    print(hdr)
    print("-" * len(hdr))
    for n in sizes:
        for op in ops:
            for c in clients:
                r = results[(n, op, c)]
                line = (f"raft-{n:<3} {op:5} {c:7d} {r.rate:8.0f} {r.pct(0.5):7.2f} "
                        f"{r.pct(0.99):7.2f} {r.errors:5d} |")
                e = etcd.get((op, c))
                if e is not None:
                    line += (f" {e.rate:12.0f} {e.pct(0.5):7.2f} {e.pct(0.99):7.2f} |"
                             f" {r.rate / e.rate if e.rate else float('nan'):9.2f}")
                else:
                    line += f" {'-':>12} {'-':>7} {'-':>7} | {'-':>9}"
                print(line)
    if args.no_etcd:
        print("etcd columns skipped (--no-etcd)")
    elif not have_etcd:
        print("etcd-server not found on PATH (apt-get install -y etcd-server): etcd columns skipped")
    print()
    print("leader failover (3 nodes, SIGKILL leader -> a write commits via the new leader): "
          + ", ".join(f"{x:.2f}s" for x in failover)
          + f"; median {statistics.median(failover):.2f}s, max {max(failover):.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
