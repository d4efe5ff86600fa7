"""How fast the harness drives and records ops, and how soon a run starts.

Measures, on this machine:

1. ops/s the harness drives *and records* against the in-process ``memory``
   system (no network: this is the harness's own ceiling), for a few
   concurrency levels, rate unlimited, no faults;
2. the same against a 3-node local Raft cluster (HTTP on loopback, fsync);
3. seconds from launching ``jepsenlike run`` (a fresh process) to the first
   op in ``history.jsonl``, for memory and for a 3-node Raft cluster.

"ops/s" counts completed client ops (ok + fail + info) during the load phases
divided by their duration; every op is two history events, each written and
flushed. The check that follows a run is timed separately.

Run:  python benchmarks/bench_harness.py [--seconds 5] [--repeat 3]
Targets (not asserted): >= 10,000 ops/s against memory; first op < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jepsenlike.config import build_config
from jepsenlike.history_io import read_history
from jepsenlike.runner import run_test


def drive(system: str, nodes: int, concurrency: int, seconds: float, store: Path) -> dict:
    config = build_config({
        "system": system, "nodes": nodes, "concurrency": concurrency, "rate": 0,
        "time_limit": seconds, "warmup": 0, "recovery": 0, "nemesis": "none", "seed": 1,
        "store": str(store), "ops_per_key": 100,
    })
    t0 = time.monotonic()
    outcome = run_test(config, say=lambda s: None)
    wall = time.monotonic() - t0
    hist = read_history(outcome.run_dir / "history.jsonl")
    heal = json.loads((outcome.run_dir / "test.json").read_text())["phases"]["heal"]
    done = sum(1 for op in hist if op.type != "invoke" and op.process != "nemesis" and op.time <= heal)
    return {
        "ops_per_s": done / (heal / 1e9),
        "events": len(hist),
        "valid": outcome.valid,
        "check_s": outcome.results["workload"].get("time_s"),
        "wall_s": wall,
    }


def first_op_latency(args: list[str], store: Path) -> float:
    """Seconds from spawning ``jepsenlike run`` to the first line of its history."""
    store.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "jepsenlike", "run", "--quiet", "--store", str(store), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            hist = store / "latest" / "history.jsonl"
            try:
                if hist.stat().st_size > 0:
                    return time.monotonic() - t0
            except FileNotFoundError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"jepsenlike run exited {proc.returncode} before its first op")
    finally:
        proc.wait(120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="load seconds per throughput run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row (median reported)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-harness-"))
    rows = []
    try:
        cases = [("memory", 1, 1), ("memory", 1, 4), ("memory", 1, 16), ("raft", 3, 4), ("raft", 3, 16)]
        for system, nodes, conc in cases:
            runs = [drive(system, nodes, conc, args.seconds, tmp / f"{system}{conc}-{i}") for i in range(args.repeat)]
            med = statistics.median(r["ops_per_s"] for r in runs)
            rows.append((f"{system} x{nodes}, concurrency {conc}", f"{med:,.0f} ops/s",
                         f"range {min(r['ops_per_s'] for r in runs):,.0f}-{max(r['ops_per_s'] for r in runs):,.0f}; "
                         f"check {statistics.median(r['check_s'] or 0 for r in runs):.2f} s; "
                         f"valid={','.join(str(r['valid']) for r in runs)}"))
        for system, extra in [("memory", ["--nodes", "1"]), ("raft", ["--nodes", "3"])]:
            lat = [first_op_latency(["--system", system, *extra, "--time-limit", "1", "--nemesis", "none",
                                     "--warmup", "0", "--recovery", "0"], tmp / f"first-{system}-{i}")
                   for i in range(args.repeat)]
            rows.append((f"first op after `jepsenlike run`, {system}", f"{statistics.median(lat):.2f} s",
                         f"range {min(lat):.2f}-{max(lat):.2f} s"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"{args.seconds:g} s load per run, median of {args.repeat}")
    print(f"{'case':<{w0}}  {'result':>{w1}}  notes")
    print(f"{'-' * w0}  {'-' * w1}  -----")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:>{w1}}  {c}")


if __name__ == "__main__":
    main()
