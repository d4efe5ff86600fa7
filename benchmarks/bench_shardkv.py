"""shardkv: transactions per second by group count, abort rate; and how its seeded bugs are caught.

Throughput (default): ``jepsenlike run --system shardkv --workload append --groups G
--concurrency 50 --rate 0 --nemesis none`` for G in ``--groups`` (1, 2, 4), each as
its own process exactly as a user runs it, ``--runs`` times; prints per G the median
committed transactions per second (ok txns over the span from the first invocation to
the last completion), the scaling ratio against the first G, the abort rate (fail /
(ok + fail)) and the info rate. All groups share this host's cores, so the figures
say how the protocol scales when the CPU does not grow with G: more groups spread the
keys (fewer lock conflicts) but add 3 processes each.

Detection (``--bugs``): each seeded bug's catch arguments (``models/shardkv/bugs.py``,
the same ones benchmarks/bench_detection.py uses) over ``--runs`` seeds, with the
time limit of ``--time-limit``; prints runs, invalid, runs naming the expected
anomaly class, and the median and largest shortest-cycle length (in transactions)
of the cycles the report explains.

Run:  python benchmarks/bench_shardkv.py [--groups 1,2,4] [--runs 3] [--time-limit 15]
      python benchmarks/bench_shardkv.py --bugs [--runs 5] [--time-limit 20] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from jepsenlike.models.shardkv.bugs import BUGS

#: The anomaly class each bug must produce (named in results.json's explanation).
EXPECTED = {
    "no-read-locks": ("G2",),
    "read-committed": ("G-single",),
    "early-lock-release": ("G1c",),
    "no-2pc-recovery": ("lost-append", "G1a", "G1b"),
    "stale-shard-map": ("incompatible-order", "lost-append"),
}


def run(args: list[str], store: Path) -> dict:
    cmd = [sys.executable, "-P", "-m", "jepsenlike", "run", "--system", "shardkv", "--quiet",
           "--store", str(store), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    m = re.search(r"^Run dir: (.+)$", p.stdout, re.M)
    if not m:
        return {"error": (p.stdout + p.stderr).strip().splitlines()[-1:]}
    run_dir = Path(m.group(1))
    results = json.loads((run_dir / "results.json").read_text())
    return {"dir": run_dir, "results": results, "exit": p.returncode}


def throughput(run_dir: Path) -> tuple[float, int, int, int]:
    """(ok txns per second, ok, fail, info) of the client ops in a run's history."""
    first = last = None
    counts = {"ok": 0, "fail": 0, "info": 0}
    with open(run_dir / "history.jsonl", encoding="utf-8") as f:
        for line in f:
            op = json.loads(line)
            if op.get("process") == "nemesis" or op.get("f") != "txn":
                continue
            t = op.get("time", 0) / 1e9
            if op.get("type") == "invoke":
                first = t if first is None else min(first, t)
            elif op.get("type") in counts:
                counts[op["type"]] += 1
                last = t if last is None else max(last, t)
    span = (last - first) if first is not None and last is not None else 0.0
    return (counts["ok"] / span if span > 0 else 0.0), counts["ok"], counts["fail"], counts["info"]


def bench_throughput(opts: argparse.Namespace, store: Path) -> None:
    rows = []
    for g in [int(x) for x in opts.groups.split(",")]:
        tps, aborts, infos = [], [], []
        for i in range(opts.runs):
            r = run(["--workload", "append", "--groups", str(g), "--concurrency", str(opts.concurrency),
                     "--rate", "0", "--nemesis", "none", "--keys", str(opts.keys),
                     "--time-limit", str(opts.time_limit), "--seed", str(100 + i)], store)
            if "error" in r:
                print(f"groups {g} run {i}: error {r['error']}", file=sys.stderr)
                continue
            rate, ok, fail, info = throughput(r["dir"])
            tps.append(rate)
            aborts.append(fail / max(1, ok + fail))
            infos.append(info / max(1, ok + fail + info))
        rows.append((g, statistics.median(tps) if tps else 0.0, statistics.median(aborts) if aborts else 0.0,
                     statistics.median(infos) if infos else 0.0, len(tps)))
    base = rows[0][1] or 1.0
    print(f"\nshardkv, append txns, {opts.concurrency} clients, --keys {opts.keys}, no faults, "
          f"{opts.time_limit:g} s runs, medians of {opts.runs}")
    print(f"{'groups':>6} {'nodes':>5} {'txn/s':>8} {'scaling':>8} {'abort rate':>10} {'info rate':>9} {'runs':>4}")
    for g, tp, ab, inf, n in rows:
        print(f"{g:>6} {3 * g:>5} {tp:>8.1f} {tp / base:>7.2f}x {100 * ab:>9.1f}% {100 * inf:>8.1f}% {n:>4}")


def cycle_lengths(explanation: str) -> list[int]:
    """The number of transactions in each cycle the explanation spells out."""
    out = []
    for line in explanation.splitlines():
        if ": Let T1 = " in line:
            out.append(len(set(re.findall(r"\bT(\d+) = op", line))))
    return out


def bench_bugs(opts: argparse.Namespace, store: Path) -> None:
    names = opts.only.split(",") if opts.only else list(BUGS)
    print(f"\nshardkv seeded bugs: catch arguments from models/shardkv/bugs.py, --time-limit "
          f"{opts.time_limit:g}, seeds 1..{opts.runs}")
    print(f"{'bug':<20} {'runs':>4} {'invalid':>7} {'expected':>8} {'cycle<=4':>8} {'median cycle':>12} "
          f"{'max cycle':>9}  expected class")
    for name in names:
        bug = BUGS[name]
        invalid = named = short = 0
        shortest = []
        done = 0
        for seed in range(1, opts.runs + 1):
            r = run([*bug.catch, "--bug", name, "--time-limit", str(opts.time_limit), "--seed", str(seed)], store)
            if "error" in r:
                print(f"{name} seed {seed}: error {r['error']}", file=sys.stderr)
                continue
            done += 1
            res = r["results"]
            text = res.get("explanation") or ""
            head = text.splitlines()[0] if text else ""
            if res.get("valid") is False:
                invalid += 1
            if any(re.search(rf"\b{re.escape(c)}\b(?!-)", head) for c in EXPECTED[name]):
                named += 1
            lengths = cycle_lengths(text)
            if lengths:
                shortest.append(min(lengths))
                short += min(lengths) <= 4
        med = f"{statistics.median(shortest):g}" if shortest else "-"
        mx = f"{max(shortest)}" if shortest else "-"
        print(f"{name:<20} {done:>4} {invalid:>7} {named:>8} {short:>8} {med:>12} {mx:>9}  "
              f"{' or '.join(EXPECTED[name])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bugs", action="store_true", help="measure the seeded bugs' detection instead")
    ap.add_argument("--only", default="", help="with --bugs: these bugs only (comma-separated)")
    ap.add_argument("--groups", default="1,2,4")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--keys", type=int, default=12, help="keys in use at a time (contention)")
    ap.add_argument("--store", default=None, help="keep the runs here (default: a temporary store)")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shardkv-") as tmp:
        store = Path(opts.store) if opts.store else Path(tmp)
        (bench_bugs if opts.bugs else bench_throughput)(opts, store)


if __name__ == "__main__":
    main()
