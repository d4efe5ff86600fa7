"""Ops/s the harness drives against etcd, ZooKeeper and the reference Raft node, side by side.

Each cell is one ``jepsenlike`` run (through :func:`jepsenlike.runner.run_test`,
exactly what the CLI does): 3 nodes on the local backend, the register
workload (50% reads, 25% writes, 25% cas), rate unlimited, no faults, the
given number of client workers, ``--seconds`` of load. "ops/s" counts
completed client ops (ok + fail + info) up to the heal phase divided by its
time; "ok/s" only the ok ones (a cas that finds another value is a definite
fail, which is part of the workload). Every op is two history events, written
and flushed, so this is what a test run drives, not a raw client benchmark.

etcd and ZooKeeper run in the local backend's netns mode (root); the reference
Raft node in its default proxy mode (peer traffic crosses the per-link
proxies) -- the mode each one gets by default. A system that cannot run here
(not root, package missing) is shown with the reason.

Run (as root):  python benchmarks/bench_systems.py [--seconds 8] [--clients 10,50]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from pathlib import Path

from jepsenlike.config import build_config
from jepsenlike.errors import JepsenlikeError
from jepsenlike.history_io import read_history
from jepsenlike.runner import run_test
from jepsenlike.systems import get_system

SYSTEMS = ("raft", "etcd", "zookeeper")


def drive(system: str, concurrency: int, seconds: float, store: Path) -> dict:
    config = build_config({
        "system": system, "nodes": 3, "concurrency": concurrency, "rate": 0, "time_limit": seconds,
        "warmup": 0, "recovery": 0, "nemesis": "none", "seed": 1, "store": str(store),
        "ops_per_key": 200, "ready_timeout": 60,
    })
    outcome = run_test(config, say=lambda s: None)
    hist = read_history(outcome.run_dir / "history.jsonl")
    heal = json.loads((outcome.run_dir / "test.json").read_text())["phases"]["heal"]
    done = [op for op in hist if op.type != "invoke" and op.process != "nemesis" and op.time <= heal]
    return {"ops": len(done) / (heal / 1e9), "ok": sum(op.type == "ok" for op in done) / (heal / 1e9),
            "valid": outcome.valid}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", default="10,50")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    store = Path(tempfile.mkdtemp(prefix="bench-systems-"))
    print(f"# 3 nodes, register, no faults, {args.seconds:g} s per cell; {platform.node()}, "
          f"{shutil.os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| system | clients | ops/s | ok/s | verdict |")
    print("|---|---|---|---|---|")
    try:
        for name in SYSTEMS:
            try:
                get_system(name)
            except JepsenlikeError as e:
                print(f"| {name} | - | - | - | not run: {e} |")
                continue
            for c in clients:
                try:
                    r = drive(name, c, args.seconds, store)
                except JepsenlikeError as e:
                    print(f"| {name} | {c} | - | - | not run: {str(e).splitlines()[0]} |")
                    continue
                print(f"| {name} | {c} | {r['ops']:.0f} | {r['ok']:.0f} | {r['valid']} |", flush=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
