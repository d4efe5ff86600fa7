"""Benchmark ``jepsenlike simulate``: throughput, and how fast each seeded bug is found.

Prints two tables:

1. per system without bugs: schedules/s and simulated ops/s (client ops completed plus
   messages delivered, per wall second) over ``--seconds`` of search;
2. per seeded bug: seconds to the first failing schedule, schedules tried, the shrunk
   schedule's length and the claim that broke, with a budget of ``--budget`` seconds of
   search (plus up to 20 s of shrinking).

With ``--cli``, a third table checks the command line end to end, as issue 16 asks:
``jepsenlike simulate --system S --time-limit 60`` without a bug (exit 0 expected) and
with each seeded bug (exit 1), then ``--replay`` of the ``schedule.json`` it wrote
(exit 1, and ``history.jsonl`` byte for byte the same as the search's).

Usage: ``python benchmarks/bench_simulate.py [--seconds 20] [--budget 60] [--seed 0]
[--only raft|paxos] [--cli] [--skip-search]``. Wall-clock figures depend on the machine
and its load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jepsenlike.models.paxos.bugs import BUGS as PAXOS_BUGS
from jepsenlike.models.raft.bugs import BUGS as RAFT_BUGS
from jepsenlike.models.simsearch import search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="clean search per system")
    ap.add_argument("--budget", type=float, default=60.0, help="search seconds per bug")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("raft", "paxos"))
    ap.add_argument("--cli", action="store_true", help="also check the CLI end to end, with --replay")
    ap.add_argument("--skip-search", action="store_true", help="only the --cli table")
    args = ap.parse_args()
    systems = [s for s in ("raft", "paxos") if args.only in (None, s)]
    if not args.skip_search:
        search_tables(args, systems)
    if args.cli or args.skip_search:
        cli_table(args, systems)


def _cli(argv: list[str]) -> tuple[int, float]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "jepsenlike", *argv], capture_output=True, text=True,
                       check=False, timeout=600)
    return p.returncode, time.monotonic() - t0


def cli_table(args: argparse.Namespace, systems: list[str]) -> None:
    print()
    print(f"{'system':8} {'bug':20} {'exit':>4} {'wall s':>7} {'steps':>5} {'replay exit':>11}  replayed history")
    store = Path(tempfile.mkdtemp(prefix="bench-simulate-cli-"))
    try:
        for system in systems:
            bugs = RAFT_BUGS if system == "raft" else PAXOS_BUGS
            for bug in [None, *bugs]:
                where = store / f"{system}-{bug or 'none'}"
                argv = ["simulate", "--system", system, "--time-limit", f"{args.budget:g}",
                        "--seed", str(args.seed), "--store", str(where), "--quiet"]
                code, wall = _cli(argv + (["--bug", bug] if bug else []))
                run = (where / "latest").resolve()
                steps = len(json.loads((run / "schedule.json").read_text())["steps"])
                replay, same = "-", "-"
                if steps:
                    again = store / f"{system}-{bug}-replay"
                    rcode, _ = _cli(["simulate", "--replay", str(run / "schedule.json"),
                                     "--store", str(again), "--quiet"])
                    same_bytes = (run / "history.jsonl").read_bytes() == \
                        ((again / "latest").resolve() / "history.jsonl").read_bytes()
                    replay, same = str(rcode), "byte-identical" if same_bytes else "DIFFERENT"
                print(f"{system:8} {bug or '(none)':20} {code:>4} {wall:>7.1f} {steps:>5} {replay:>11}  {same}",
                      flush=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def search_tables(args: argparse.Namespace, systems: list[str]) -> None:

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
