"""Benchmark the graph checker on generated list-append histories.

Usage::

    python benchmarks/bench_graph.py                 # 10k, 100k and 1M micro-ops
    python benchmarks/bench_graph.py --sizes 10000 100000 --seed 7

Each size runs in a fresh subprocess, so its peak memory (``ru_maxrss``) is its
own. Histories: 10 keys active at a time (a key retires after 32 appends),
20 processes, txns of 1-4 micro-ops, half reads, 3% info, 1% fail; they are
strict serializable by construction, so the checker must say valid. Times are
for ``check_list_append`` alone; generating the history is timed separately.
Memory is the peak RSS of the process: after generating the history, and
after checking it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def _rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_one(size: int, seed: int) -> dict[str, object]:
    from jepsenlike.checkers.graph import check_list_append
    from jepsenlike.checkers.graph.synth import list_append_history

    t0 = time.perf_counter()
    h = list_append_history(
        random.Random(seed),
        target_micro_ops=size,
        n_processes=20,
        keys_active=10,
        max_appends_per_key=32,
        max_mops=4,
        read_fraction=0.5,
        p_info=0.03,
        p_fail=0.01,
    )
    gen_s = time.perf_counter() - t0
    rss_history = _rss_mib()
    t0 = time.perf_counter()
    r = check_list_append(h)
    check_s = time.perf_counter() - t0
    stats = r.details["stats"]
    return {
        "size": size,
        "micro_ops": stats["micro_ops"],
        "txns": stats["ops"],
        "events": len(h),
        "edges": stats["edges"],
        "valid": r.valid,
        "gen_s": gen_s,
        "check_s": check_s,
        "rss_history_mib": rss_history,
        "rss_peak_mib": _rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.seed)))
        return 0
    print(f"# graph checker, list-append; python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, seed {args.seed}")
    print(f"# command: python benchmarks/bench_graph.py --sizes "
          f"{' '.join(map(str, args.sizes))} --seed {args.seed}")
    header = (f"{'micro-ops':>10} {'txns':>8} {'edges':>9} {'valid':>5} {'gen s':>7} "
              f"{'check s':>8} {'micro-ops/s':>12} {'RSS hist MiB':>13} {'RSS peak MiB':>13}")
    print(header)
    print("-" * len(header))
    failed = False
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--seed", str(args.seed)],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            print(f"{size:>10} failed: {out.stderr.strip().splitlines()[-1:]}")
            failed = True
            continue
        d = json.loads(out.stdout)
        rate = d["micro_ops"] / d["check_s"] if d["check_s"] else float("inf")
        print(f"{d['micro_ops']:>10} {d['txns']:>8} {d['edges']:>9} {str(d['valid']):>5} "
              f"{d['gen_s']:>7.2f} {d['check_s']:>8.2f} {rate:>12,.0f} "
              f"{d['rss_history_mib']:>13.0f} {d['rss_peak_mib']:>13.0f}")
        failed |= d["valid"] is not True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
