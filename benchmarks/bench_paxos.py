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
import os
import shutil
import statistics
import sys
import tempfile

from _load import Cell, NodeCluster, measure_failover, run_load

MODULES = {"paxos": "jepsenlike.models.paxos", "raft": "jepsenlike.models.raft"}


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
            clusters = {
                s: NodeCluster(MODULES[s], n, os.path.join(root, f"{s}{n}")) for s in systems
            }
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
                    MODULES[system], os.path.join(root, f"failover-{system}"), args.failover_rounds
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
