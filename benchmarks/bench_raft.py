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
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from _load import (
    Cell,
    NodeCluster,
    Procs,
    free_ports,
    hp,
    http_json,
    kv_body,
    kv_ok,
    measure_failover,
    run_load,
)

RAFT = "jepsenlike.models.raft"


# ---------------------------------------------------------------- clusters


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


# ---------------------------------------------------------------- etcd requests


def etcd_body(op: str, key: str, value: int) -> tuple[str, bytes]:
    k = base64.b64encode(key.encode()).decode()
    if op == "write":
        v = base64.b64encode(str(value).encode()).decode()
        return "/v3/kv/put", json.dumps({"key": k, "value": v}).encode()
    return "/v3/kv/range", json.dumps({"key": k}).encode()


def etcd_ok(obj: dict) -> bool:
    return "header" in obj and "error" not in obj


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
            cl = NodeCluster(RAFT, n, os.path.join(root, f"raft{n}"))
            cl.start_all()
            try:
                leader = cl.leader()
                run_load(cl.client[leader], "write", 10, 1.0, kv_body, kv_ok)  # warm-up
                for op in ops:
                    for c in clients:
                        results[(n, op, c)] = run_load(
                            cl.client[leader], op, c, args.duration, kv_body, kv_ok
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
        failover = measure_failover(RAFT, os.path.join(root, "failover"), args.failover_rounds)
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
