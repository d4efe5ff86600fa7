"""Overhead of the per-link proxy (jepsenlike.net.ProxyNet) against a direct connection.

Usage::

    python benchmarks/bench_proxy.py            # full run
    python benchmarks/bench_proxy.py --quick    # smaller counts, for a smoke test

The peer is a separate process (an echo / byte-sink server), as a node would be.
The client runs in this process next to the proxy thread, as the harness's own
traffic would, so the numbers include the GIL contention a real run has. Each
figure is the median of ``--repeat`` runs. Measured on loopback only.

Prints a Markdown table: round-trip latency of small messages (p50/p99), the
cost of opening a connection and doing one round trip, and one-way bulk
throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from jepsenlike.net import ProxyNet

SERVER = r"""
import socket, struct, sys, threading
def serve(conn):
    mode = conn.recv(1)
    if mode == b"E":
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    elif mode == b"S":
        total = 0
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            total += len(data)
        conn.sendall(struct.pack("!Q", total))
    conn.close()
srv = socket.create_server(("127.0.0.1", 0))
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def connect(addr: tuple[str, int], mode: bytes) -> socket.socket:
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mode)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed early")
        buf += chunk
    return bytes(buf)


def rtt_samples(addr: tuple[str, int], count: int, size: int = 64) -> list[float]:
    msg = b"x" * size
    with connect(addr, b"E") as s:
        for _ in range(50):  # warm up
            s.sendall(msg)
            recv_exactly(s, size)
        out = []
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(msg)
            recv_exactly(s, size)
            out.append(time.perf_counter() - t0)
    return out


def connect_rtt(addr: tuple[str, int], count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        with connect(addr, b"E") as s:
            s.sendall(b"ping")
            recv_exactly(s, 4)
    return (time.perf_counter() - t0) / count


def throughput(addr: tuple[str, int], total: int) -> float:
    chunk = b"\0" * (64 * 1024)
    t0 = time.perf_counter()
    with connect(addr, b"S") as s:
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        (got,) = struct.unpack("!Q", recv_exactly(s, 8))
    elapsed = time.perf_counter() - t0
    if got != sent:
        raise RuntimeError(f"sink counted {got} bytes, sent {sent}")
    return sent / elapsed / 1e6


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median_of(repeat: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rtts = 300 if args.quick else 3000
    conns = 30 if args.quick else 300
    bulk = (16 if args.quick else 256) * 1024 * 1024

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    net: ProxyNet | None = None
    try:
        assert server.stdout is not None
        direct = ("127.0.0.1", int(server.stdout.readline()))
        # A 2-node cluster whose node "b" is the server: a -> b is the proxied path.
        dummy = socket.create_server(("127.0.0.1", 0))
        net = ProxyNet({"a": dummy.getsockname(), "b": direct}, seed=0)
        net.start()
        paths = {"direct": direct, "proxied": net.address("a", "b")}

        rows: dict[str, dict[str, float]] = {}
        for name, addr in paths.items():
            samples: list[float] = []
            for _ in range(args.repeat):
                samples += rtt_samples(addr, rtts)
            rows[name] = {
                "p50": pct(samples, 0.50) * 1e6,
                "p99": pct(samples, 0.99) * 1e6,
                "conn": median_of(args.repeat, lambda a=addr: connect_rtt(a, conns)) * 1e6,
                "mbps": median_of(args.repeat, lambda a=addr: throughput(a, bulk)),
            }
        dummy.close()
    finally:
        if net is not None:
            net.stop()
        server.kill()
        server.wait()

    d, p = rows["direct"], rows["proxied"]
    print(
        f"jepsenlike proxy overhead: {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, loopback; median of {args.repeat} runs; "
        f"{rtts} x 64 B round trips per run, {conns} connects, {bulk >> 20} MiB bulk"
    )
    print()
    print("| measure | direct | proxied | overhead |")
    print("|---|---:|---:|---:|")
    print(f"| round trip 64 B, p50 (us) | {d['p50']:.0f} | {p['p50']:.0f} | {p['p50'] - d['p50']:+.0f} us |")
    print(f"| round trip 64 B, p99 (us) | {d['p99']:.0f} | {p['p99']:.0f} | {p['p99'] - d['p99']:+.0f} us |")
    print(f"| connect + 1 round trip (us) | {d['conn']:.0f} | {p['conn']:.0f} | {p['conn'] - d['conn']:+.0f} us |")
    print(f"| bulk one-way throughput (MB/s) | {d['mbps']:.0f} | {p['mbps']:.0f} | {p['mbps'] / d['mbps']:.0%} of direct |")
    # The proxy thread must be gone: the benchmark leaves nothing running.
    assert not any(t.name == "jepsenlike-proxynet" for t in threading.enumerate())


if __name__ == "__main__":
    main()
