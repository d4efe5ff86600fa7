"""Soak test for false positives: the correct Raft and Paxos nodes, many runs, every nemesis.

Runs ``jepsenlike run --system S --nemesis <every built-in fault> --seed N`` (all
other settings at their defaults unless given) ``--runs`` times per system,
each as its own process through the CLI, exactly as a user would, and prints
a table: runs, valid, invalid, unknown (with the reasons, counted), errors.
The reference nodes have no seeded bug here, so an ``invalid`` is a false
positive of the toolkit (or a real bug in a reference node): its run
directory is listed and kept. Run directories of valid runs are deleted to
save space; the others stay for inspection (a temporary store is kept then).

Run:  python benchmarks/bench_soak.py [--runs 50] [--time-limit 30] [--systems raft,paxos]
Goal (not asserted): 0 invalid over >= 50 runs per system, unknown < 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from jepsenlike.nemesis import nemesis_names

BUILTIN_FAULTS = ("kill", "pause", "partition", "clock", "slow", "flaky")
EXIT_WORDS = {0: "valid", 1: "invalid", 2: "unknown"}


@dataclass
class Row:
    system: str
    runs: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    invalid_dirs: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # run dirs of every run that was not valid
    seconds: float = 0.0


def reason_key(text: str) -> str:
    """An explanation line with the numbers taken out, so equal causes count together."""
    line = text.strip().splitlines()[0] if text.strip() else "(no explanation)"
    line = re.sub(r"\d+(\.\d+)?", "N", line)
    return line[:110]


def one_run(system: str, seed: int, store: Path, nemesis: str, extra: list[str]) -> tuple[str, str, str | None]:
    """(outcome, reason, run dir) of one ``jepsenlike run``."""
    cmd = [sys.executable, "-P", "-m", "jepsenlike", "run", "--system", system, "--nemesis", nemesis,
           "--seed", str(seed), "--store", str(store), "--quiet", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    m = re.search(r"^Run dir: (.+)$", p.stdout, re.M)
    run_dir = m.group(1).strip() if m else None
    outcome = EXIT_WORDS.get(p.returncode, "error")
    reason = ""
    if run_dir and outcome != "valid":
        try:
            results = json.loads((Path(run_dir) / "results.json").read_text())
            lines = [ln for ln in (results.get("explanation") or "").splitlines() if ln.strip()]
            # The checker's own line comes first; when the checker passed, the cause
            # of an unknown verdict (coverage, vacuity, interruption) is a later line.
            checker_passed = (results.get("workload") or {}).get("valid") is True
            cause = lines[1] if checker_passed and len(lines) > 1 else (lines[0] if lines else "")
            reason = reason_key(cause)
        except (OSError, ValueError):
            reason = "(no results.json)"
    if outcome == "error":
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        said = [ln for ln in lines if ln.startswith(("jepsenlike: error:", "jepsenlike: the harness crashed"))]
        reason = f"exit {p.returncode}: {reason_key((said or lines[-1:] or ['(no output)'])[0])}"
        if run_dir is None:
            m = re.search(r" in (\S+/\d{8}T\d{6}\.\d{3}(?:-\d+)?)$", p.stderr, re.M)
            run_dir = m.group(1) if m else None
    return outcome, reason, run_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50, help="runs per system (default 50)")
    ap.add_argument("--systems", default="raft,paxos", help="systems, comma-separated (default raft,paxos)")
    ap.add_argument("--nemesis", default=None,
                    help=f"faults of every run (default: every built-in one, {','.join(BUILTIN_FAULTS)})")
    ap.add_argument("--time-limit", type=float, default=None, help="--time-limit of each run (default: jepsenlike's)")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first run; run i uses seed + i")
    ap.add_argument("--store", default=None, help="store for the runs (default: a temporary dir, removed)")
    ap.add_argument("--extra", default="", help="further `jepsenlike run` flags, space-separated")
    args = ap.parse_args()

    known = set(nemesis_names())
    nemesis = args.nemesis or ",".join(f for f in BUILTIN_FAULTS if f in known)
    extra = args.extra.split()
    if args.time_limit is not None:
        extra += ["--time-limit", f"{args.time_limit:g}"]
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-soak-"))
    rows: list[Row] = []
    try:
        for system in [s.strip() for s in args.systems.split(",") if s.strip()]:
            row = Row(system)
            rows.append(row)
            t0 = time.monotonic()
            for i in range(args.runs):
                outcome, reason, run_dir = one_run(system, args.seed + i, store, nemesis, extra)
                row.runs += 1
                row.counts[outcome] += 1
                if outcome in ("unknown", "error"):
                    row.reasons[reason] += 1
                if outcome == "invalid" and run_dir:
                    row.invalid_dirs.append(run_dir)
                    row.reasons[f"INVALID: {reason}"] += 1
                if outcome == "valid" and run_dir:
                    shutil.rmtree(run_dir, ignore_errors=True)
                elif run_dir:
                    row.kept.append(run_dir)
                print(f"  {system} run {i + 1}/{args.runs} seed {args.seed + i}: {outcome}"
                      + (f" ({reason})" if reason else ""), file=sys.stderr, flush=True)
            row.seconds = time.monotonic() - t0
    finally:
        kept = [r for row in rows for r in row.kept]
        if not args.store and not kept:
            shutil.rmtree(store, ignore_errors=True)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; nemesis {nemesis}; "
          f"flags: {' '.join(extra) or '(defaults)'}; seeds {args.seed}..{args.seed + args.runs - 1}")
    print(f"{'system':<8} {'runs':>5} {'valid':>6} {'invalid':>8} {'unknown':>8} {'error':>6} {'s/run':>6}  "
          "reasons (unknown, error, invalid)")
    for r in rows:
        reasons = "; ".join(f"{n}x {why}" for why, n in r.reasons.most_common()) or "-"
        print(f"{r.system:<8} {r.runs:>5} {r.counts['valid']:>6} {r.counts['invalid']:>8} "
              f"{r.counts['unknown']:>8} {r.counts['error']:>6} {r.seconds / max(1, r.runs):>6.1f}  {reasons}")
    for r in rows:
        for d in r.invalid_dirs:
            print(f"invalid run kept: {d}")
    if any(r.kept for r in rows):
        print(f"runs that were not valid are kept under {store}")


if __name__ == "__main__":
    main()
