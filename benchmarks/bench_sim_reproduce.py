"""Do shrunk simulated failures reproduce on real processes? (``jepsenlike run --schedule``)

For each bug: ``jepsenlike simulate --system SYSTEM --bug BUG --seed SEED`` finds and
shrinks a failing schedule; its run directory names the ``jepsenlike run --schedule``
command for real processes (``results.json`` ``run_schedule.command``). That command
then runs ``--tries`` times (run seeds 1..N, 3 local nodes) and the table counts how
many runs the checker found invalid: the failure reproduced. A valid run is a run
where the real cluster's timing did not hit the window the simulation hit.

``--replay schedule.json`` (repeatable) measures a saved or hand-written schedule instead
(through ``jepsenlike simulate --replay``, which writes the same run directory).

Usage: ``python benchmarks/bench_sim_reproduce.py [--bugs lease-without-bound,stale-read]
[--system raft] [--sim-seed 1] [--tries 5] [--replay schedule.json ...]``. Each real run
takes ~15-25 s.
Everything goes to a temporary store, removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def jepsenlike(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="raft")
    ap.add_argument("--bugs", default="lease-without-bound,stale-read")
    ap.add_argument("--sim-seed", type=int, default=1)
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--replay", action="append", default=[], metavar="SCHEDULE",
                    help="measure this schedule.json instead of searching (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = ap.parse_args()
    store = Path(tempfile.mkdtemp(prefix="bench-sim-reproduce-"))
    rows = []
    if args.replay:
        cases = [(Path(f).stem + f"-{k}", ["simulate", "--replay", f]) for k, f in enumerate(args.replay)]
    else:
        cases = [(bug, ["simulate", "--system", args.system, "--bug", bug, "--seed", str(args.sim_seed),
                        "--time-limit", "60"]) for bug in args.bugs.split(",") if bug]
    try:
        for bug, sim_args in cases:
            sim_store = store / f"sim-{bug}"
            p = jepsenlike([*sim_args, "--store", str(sim_store), "--quiet"])
            if p.returncode != 1:
                print(f"{bug}: simulate exited {p.returncode}, no failure to reproduce\n{p.stdout}{p.stderr}")
                continue
            run_dir = (sim_store / "latest").resolve()
            results = json.loads((run_dir / "results.json").read_text())
            steps = json.loads((run_dir / "schedule.json").read_text())["steps"]
            ops = (run_dir / "run-schedule.jsonl").read_text().splitlines()
            command = results["run_schedule"]["command"]
            verdicts = []
            for k in range(1, args.tries + 1):
                argv = shlex.split(command)[1:] + ["--seed", str(k), "--store",
                                                   str(store / f"runs-{bug}"), "--quiet"]
                t0 = time.monotonic()
                r = jepsenlike(argv)
                verdict = {0: "valid", 1: "INVALID", 2: "unknown"}.get(r.returncode, f"error {r.returncode}")
                verdicts.append(verdict)
                print(f"  {bug} try {k}: {verdict} ({time.monotonic() - t0:.0f} s)", flush=True)
                if r.returncode not in (0, 1, 2):
                    print(r.stdout[-2000:], r.stderr[-2000:])
            seed = json.loads((run_dir / "schedule.json").read_text()).get("seed")
            rows.append((bug, seed, len(steps), [json.loads(o) for o in ops], verdicts, command))
    finally:
        if args.keep:
            print(f"store kept: {store}")
        else:
            shutil.rmtree(store, ignore_errors=True)
    print()
    print(f"{'schedule':20} {'sim seed':>8} {'steps':>5} {'real ops':>8} {'reproduced':>10}  faults")
    for bug, seed, n_steps, ops, verdicts, _command in rows:
        faults = ", ".join(f"{o['at']:g}s {o['f']} {json.dumps(o['value'])}" for o in ops) or "none"
        hits = sum(v == "INVALID" for v in verdicts)
        print(f"{bug:20} {seed!s:>8} {n_steps:>5} {len(ops):>8} {hits:>4}/{len(verdicts):<5}  {faults}")
    for bug, _, _, _, _, command in rows:
        print(f"  {bug}: {command.split(' --schedule')[0]} --schedule run-schedule.jsonl ...")


if __name__ == "__main__":
    main()
