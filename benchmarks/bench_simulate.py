"""Benchmark ``jepsenlike simulate``: throughput, and how fast each seeded bug is found.

Prints two tables:

1. per system without bugs: schedules/s and simulated ops/s (client ops completed plus
   messages delivered, per wall second) over ``--seconds`` of search;
2. per seeded bug: seconds to the first failing schedule, schedules tried, the shrunk
   schedule's length and the claim that broke, with a budget of ``--budget`` seconds of
   search (plus up to 20 s of shrinking).

Usage: ``python benchmarks/bench_simulate.py [--seconds 20] [--budget 60] [--seed 0]
[--only raft|paxos]``. Wall-clock figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

from jepsenlike.models.paxos.bugs import BUGS as PAXOS_BUGS
from jepsenlike.models.raft.bugs import BUGS as RAFT_BUGS
from jepsenlike.models.simsearch import search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="clean search per system")
    ap.add_argument("--budget", type=float, default=60.0, help="search seconds per bug")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("raft", "paxos"))
    args = ap.parse_args()
    systems = [s for s in ("raft", "paxos") if args.only in (None, s)]

    print(f"{'system':8} {'schedules':>9} {'seconds':>8} {'sched/s':>8} {'sim ops/s':>10} {'result':>8}")
    for system in systems:
        r = search(system, frozenset(), 3, seed=args.seed, time_limit=args.seconds)
        print(
            f"{system:8} {r.schedules:>9} {r.seconds:>8.1f} {r.schedules / r.seconds:>8.1f} "
            f"{r.sim_ops / r.seconds:>10.0f} {'clean' if r.found is None else 'FAILED':>8}",
            flush=True,
        )
    print()
    print(
        f"{'system':8} {'bug':20} {'first fail s':>12} {'schedules':>9} {'total s':>8} "
        f"{'steps':>5}  claim"
    )
    for system in systems:
        bugs = RAFT_BUGS if system == "raft" else PAXOS_BUGS
        for bug in bugs:
            t0 = time.monotonic()
            r = search(system, frozenset({bug}), 3, seed=args.seed, time_limit=args.budget)
            total = time.monotonic() - t0
            if r.found is None:
                print(f"{system:8} {bug:20} {'-':>12} {r.schedules:>9} {total:>8.1f} {'-':>5}  "
                      "not found", flush=True)
                continue
            print(
                f"{system:8} {bug:20} {r.first_failure_s:>12.1f} {r.schedules:>9} {total:>8.1f} "
                f"{len(r.found.steps):>5}  {r.found.claim}",
                flush=True,
            )


if __name__ == "__main__":
    main()
