"""Throughput and latency of the reference Multi-Paxos node, side by side with Raft.

Usage::

    python benchmarks/bench_paxos.py                      # paxos and raft, 3/5 nodes, 1/10/50 clients
    python benchmarks/bench_paxos.py --systems paxos --sizes 3 --duration 2

The method is the one ``benchmarks/bench_raft.py`` uses, so the tables compare: for
each system, cluster size and client count, one load generator (asyncio, raw
HTTP/1.1 keep-alive connections, one per client) sends writes and then reads to the
leader for ``--duration`` seconds over 64 keys and counts ok answers; latencies are
those of ok answers. Every system runs here with the same generator, with fsync on
and default timeouts (10 ms ticks, heartbeat every 5 ticks, leader timeout 50-100
ticks). The clusters of all systems run at the same time and the cells alternate
between them (``--repeat`` runs each, the median reported), so a noisy neighbour on
the machine hits both alike.

Failover: SIGKILL the leader of a 3-node cluster under light load and time until
another node reports itself leader and a write through it succeeds.

Every process is started in its own process group and SIGKILLed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
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
MODULES = {"paxos": "jepsenlike.models.paxos", "raft": "jepsenlike.models.raft"}


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


def _hp(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def get_status(addr: tuple[str, int]) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}/status", timeout=0.3) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


class Cluster:
    """``n`` nodes of one system, each in its own process group."""

    def __init__(self, system: str, n: int, root: str) -> None:
        self.module = MODULES[system]
        self.ids = [f"n{i + 1}" for i in range(n)]
        ports = free_ports(2 * n)
        self.client = {i: ("127.0.0.1", ports[k]) for k, i in enumerate(self.ids)}
        self.peer = {i: ("127.0.0.1", ports[n + k]) for k, i in enumerate(self.ids)}
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, i: str) -> None:
        peers = ",".join(f"{j}={h}:{p}" for j, (h, p) in self.peer.items() if j != i)
        argv = [
            PY, "-m", self.module, "--id", i,
            "--client-addr", _hp(self.client[i]), "--peer-addr", _hp(self.peer[i]),
            "--peers", peers, "--data-dir", os.path.join(self.root, i), "--log-level", "WARNING",
        ]  # fmt: skip
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, f"{i}.log"), "ab") as f:
            self.procs[i] = subprocess.Popen(argv, stdout=f, stderr=f, start_new_session=True)

    def start_all(self) -> None:
        for i in self.ids:
            self.start(i)

    def kill(self, i: str) -> None:
        p = self.procs.pop(i)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def leader(self, timeout: float = 15.0, exclude: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in list(self.procs):
                s = get_status(self.client[i])
                if s and s["role"] == "leader" and i != exclude:
                    return i
            time.sleep(0.01)
        raise RuntimeError(f"no {self.module} leader within {timeout}s")

    def stop(self) -> None:
        for i in list(self.procs):
            self.kill(i)


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


async def _client(addr: tuple[str, int], op: str, n: int, stop_at: float, cell: Cell) -> None:
    reader, writer = await asyncio.open_connection(*addr)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host = b"Host: %s:%d\r\n" % (addr[0].encode(), addr[1])
    k = 0
    try:
        while time.perf_counter() < stop_at:
            k += 1
            body = json.dumps({"f": op, "key": f"key{n % 64}", "value": k}).encode()
            t = time.perf_counter()
            writer.write(
                b"POST /op HTTP/1.1\r\n%sContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (host, len(body)) + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            obj = json.loads(await reader.readexactly(length))
            if obj.get("type") == "ok":
                cell.ok += 1
                cell.latencies.append(time.perf_counter() - t)
            else:
                cell.errors += 1
    finally:
        writer.close()


def run_load(addr: tuple[str, int], op: str, clients: int, seconds: float) -> Cell:
    async def main() -> Cell:
        cell = Cell(0, 0, seconds, [])
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(_client(addr, op, n, stop_at, cell) for n in range(clients)))
        return cell

    return asyncio.run(main())


def measure_failover(system: str, root: str, rounds: int) -> list[float]:
    """SIGKILL the leader of a 3-node cluster; seconds until a new leader commits a write."""
    cl = Cluster(system, 3, root)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="paxos,raft", help="comma separated: paxos, raft")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per cell")
    ap.add_argument("--clients", default="1,10,50")
    ap.add_argument("--sizes", default="3,5")
    ap.add_argument("--ops", default="write,read")
    ap.add_argument("--failover-rounds", type=int, default=5)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per cell; the median run is reported"
    )
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in MODULES:
            ap.error(f"unknown system {s!r}; available: {', '.join(MODULES)}")
    clients = [int(x) for x in args.clients.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    ops = args.ops.split(",")
    root = tempfile.mkdtemp(prefix="bench-paxos-")
    results: dict[tuple[str, int, str, int], Cell] = {}
    failover: dict[str, list[float]] = {}
    try:
        for n in sizes:
            # Every system's cluster runs at once and the cells alternate between them,
            # so that load from elsewhere on the machine hits them alike.
            clusters = {s: Cluster(s, n, os.path.join(root, f"{s}{n}")) for s in systems}
            try:
                leaders = {}
                for cl in clusters.values():
                    cl.start_all()
                for s, cl in clusters.items():
                    leaders[s] = cl.client[cl.leader()]
                    run_load(leaders[s], "write", 10, 1.0)  # warm-up
                for op in ops:
                    for c in clients:
                        for system in systems:
                            runs = [
                                run_load(leaders[system], op, c, args.duration)
                                for _ in range(args.repeat)
                            ]
                            cell = sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
                            results[(system, n, op, c)] = cell
                            print(
                                f"{system} {n} nodes {op:5} {c:3} clients: "
                                + ", ".join(f"{r.rate:.0f}" for r in runs)
                                + " ops/s",
                                file=sys.stderr,
                            )
            finally:
                for cl in clusters.values():
                    cl.stop()
        for system in systems:
            if args.failover_rounds > 0:
                failover[system] = measure_failover(
                    system, os.path.join(root, f"failover-{system}"), args.failover_rounds
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        f"fsync on; {args.duration:g} s per run, median of {args.repeat} run(s) per cell, "
        f"cells alternating between systems; one asyncio load generator, keep-alive HTTP "
        f"to the leader, 64 keys; {os.cpu_count()} CPUs"
    )
    hdr = f"{'cluster':9} {'op':5} {'clients':>7} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'err':>5}"
    print(hdr)
    print("-" * len(hdr))
    for n in sizes:
        for op in ops:
            for c in clients:
                for system in systems:
                    r = results[(system, n, op, c)]
                    print(
                        f"{system + '-' + str(n):9} {op:5} {c:7d} {r.rate:8.0f} "
                        f"{r.pct(0.5):7.2f} {r.pct(0.99):7.2f} {r.errors:5d}"
                    )
    for system, xs in failover.items():
        print(
            f"\n{system} leader failover (3 nodes, SIGKILL leader -> a write commits via the "
            f"new leader): " + ", ".join(f"{x:.2f}s" for x in xs)
            + f"; median {statistics.median(xs):.2f}s, max {max(xs):.2f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
