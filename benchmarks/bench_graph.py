"""Benchmark the graph checker on generated list-append histories.

Usage::

    python benchmarks/bench_graph.py                       # every case below
    python benchmarks/bench_graph.py --cases issue-100k issue-1M-mops
    python benchmarks/bench_graph.py --cases easy-100k --seed 7

Cases (all strict serializable by construction, so the checker must say valid):

* ``easy-*``: 10 keys active at a time (a key retires after 32 appends), 20
  processes, txns of 1-4 micro-ops, half reads, 3% info, 1% fail; sized in
  micro-ops.
* ``issue-*``: the shape of the slow real history in issue 14: 20 processes,
  1-4 micro-ops per txn (appends and reads mixed), 3% indeterminate, 4.9%
  failed, keys rotating so that ~3,900 keys are used per 100k txns with ~10
  live at a time, and a final read of every key. ``issue-100k`` and
  ``issue-1M`` are sized in transactions, ``issue-1M-mops`` in micro-ops.

Each case runs in a fresh subprocess, so its peak memory (``ru_maxrss``) is its
own. The history is generated in memory (reading files is benchmarked with the
history reader). Columns: ``analyse`` is the checker's analysis (version
orders, non-cycle anomalies, edges, components, cycle search) and ``explain``
the write-up of what it found, both wall-clock from the checker's stats;
``cpu s`` is the process CPU time of the whole check, which the load of a
shared machine distorts less than wall-clock; rates are micro-ops per second
of wall-clock and of CPU time. The graph checker keeps no search states: its
size is given as nodes and edges. ``RSS hist`` is the peak resident memory
after generating the history (the generator's own temporaries included),
``RSS pre`` the resident memory just before checking (the history alone), and
``RSS peak`` the peak after checking: ``RSS peak - RSS pre`` bounds what the
checker itself adds.
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

CASES: dict[str, dict[str, object]] = {
    "easy-10k": {"target_micro_ops": 10_000, "p_fail": 0.01},
    "easy-100k": {"target_micro_ops": 100_000, "p_fail": 0.01},
    "issue-100k": {"n_txns": 100_000, "p_fail": 0.049, "final_reads": True},
    "issue-1M-mops": {"target_micro_ops": 1_000_000, "p_fail": 0.049, "final_reads": True},
    "issue-1M": {"n_txns": 1_000_000, "p_fail": 0.049, "final_reads": True},
}
DEFAULT_CASES = ("easy-10k", "easy-100k", "issue-100k", "issue-1M-mops")


def _rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _rss_now_mib() -> float:
    """Current resident memory (Linux), else the peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mib()


def run_one(case: str, seed: int) -> dict[str, object]:
    from jepsenlike.checkers.graph import check_list_append
    from jepsenlike.checkers.synth import list_append_history

    t0 = time.perf_counter()
    h = list_append_history(
        random.Random(seed),
        n_processes=20,
        keys_active=10,
        max_appends_per_key=32,
        max_mops=4,
        read_fraction=0.5,
        p_info=0.03,
        **CASES[case],  # type: ignore[arg-type]
    )
    gen_s = time.perf_counter() - t0
    import gc

    gc.collect()
    rss_history = _rss_mib()
    rss_before = _rss_now_mib()
    t0 = time.perf_counter()
    c0 = time.process_time()
    r = check_list_append(h)
    cpu_s = time.process_time() - c0
    check_s = time.perf_counter() - t0
    stats = r.details["stats"]
    return {
        "case": case,
        "micro_ops": stats["micro_ops"],
        "txns": stats["ops"],
        "keys": stats["keys"],
        "nodes": stats["nodes"],
        "edges": stats["edges"],
        "valid": r.valid,
        "gen_s": gen_s,
        "analyse_s": stats["analyse_s"],
        "explain_s": stats["explain_s"],
        "check_s": check_s,
        "cpu_s": cpu_s,
        "rss_history_mib": rss_history,
        "rss_before_mib": rss_before,
        "rss_peak_mib": _rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(DEFAULT_CASES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.seed)))
        return 0
    print(f"# graph checker, list-append; python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, seed {args.seed}")
    print(f"# command: python benchmarks/bench_graph.py --cases {' '.join(args.cases)} "
          f"--seed {args.seed}")
    header = (f"{'case':<14} {'txns':>8} {'micro-ops':>10} {'keys':>7} {'edges':>9} {'valid':>5} "
              f"{'gen s':>7} {'analyse s':>9} {'explain s':>9} {'cpu s':>7} "
              f"{'mops/s wall':>11} {'mops/s cpu':>10} {'RSS hist':>8} {'RSS pre':>7} {'RSS peak':>8}")
    print(header)
    print("-" * len(header))
    failed = False
    for case in args.cases:
        out = subprocess.run(
            [sys.executable, __file__, "--one", case, "--seed", str(args.seed)],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            print(f"{case:<14} failed: {out.stderr.strip().splitlines()[-1:]}")
            failed = True
            continue
        d = json.loads(out.stdout)
        wall = d["analyse_s"] + d["explain_s"]
        rate = d["micro_ops"] / wall if wall else float("inf")
        rate_cpu = d["micro_ops"] / d["cpu_s"] if d["cpu_s"] else float("inf")
        print(f"{case:<14} {d['txns']:>8} {d['micro_ops']:>10} {d['keys']:>7} {d['edges']:>9} "
              f"{str(d['valid']):>5} {d['gen_s']:>7.2f} {d['analyse_s']:>9.2f} "
              f"{d['explain_s']:>9.3f} {d['cpu_s']:>7.2f} {rate:>11,.0f} {rate_cpu:>10,.0f} "
              f"{d['rss_history_mib']:>8.0f} {d['rss_before_mib']:>7.0f} "
              f"{d['rss_peak_mib']:>8.0f}")
        failed |= d["valid"] is not True
    print("# RSS in MiB; analyse/explain are wall-clock seconds; mops/s = micro-ops per second")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
