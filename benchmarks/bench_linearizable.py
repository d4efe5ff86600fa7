"""Linearizability search: time, states and memory on generated histories.

Run:  python benchmarks/bench_linearizable.py [--runs N] [--seed S] [--quick]
      python benchmarks/bench_linearizable.py --files F... [--model M] [--init JSON]
             [--baseline DIR]

Three tables on generated histories, or (``--files``) one table on history
files given by path (e.g. Porcupine's ``test_data/kv/*.txt`` with
``--model kv --init '""'``, Knossos's ``etcd_NNN.log`` with
``--model cas-register``; ``--model auto`` takes kv for files with a ``:key``
field and cas-register otherwise): per file ops, time, cpu, states and
verdict, and the totals. ``--baseline DIR`` runs the same table again in a
child process whose ``jepsenlike`` package is imported from ``DIR`` (an older
version laid out as an installed package: ``DIR/jepsenlike/checkers``...),
for a before/after comparison in one run.

1. **50-client kv** (``gen.kv_history``): 50 concurrent clients, ~2,000 reads,
   unique writes and appends over 10 keys (~200 ops per key), timeouts giving
   ``info`` ops, and one stale read on key 0 (a read returns the value an
   earlier read saw although an append completed in between): exactly key 0 is
   not linearizable. Checked as ``jepsenlike check`` does (stop at the first bad
   key, parts in parallel when there are cores), then serially, then with
   ``all_keys=True``. The goal (issue 14) is under 0.5 s.
2. **Short cas-register histories** (``gen.cas_register_history``): 100
   single-key histories of 70-90 ops, 10-30% of unknown outcome; time per
   history after start-up (the goal is under 10 ms each).
3. **Assorted models** (``gen.generate``, linearizable by construction, and
   one mutated cas-register history that is not).

Times are the median of ``--runs`` runs, wall clock and CPU (this process
plus its worker processes; unlike wall time it does not grow when other
processes share the cores). ``peak alloc`` is the peak of Python
allocations during one serial check (tracemalloc: it slows that run, so it is
timed separately); ``states`` the configurations the search cached. The peak
RSS of the whole process (and of its worker processes) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import (
    cas_register_history,
    generate,
    kv_history,
    mutate,
    render,
    simulate,
)
from jepsenlike.history import History


def _verdict(valid: Any) -> str:
    return {True: "valid", False: "invalid"}.get(valid, "unknown")


def _n_info(h: History) -> int:
    return sum(1 for op in h if op.type == "info") + sum(1 for _, c in h.pairs() if c is None)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def measure(model: str, history: History, runs: int, **kw: Any) -> tuple[float, float, Any]:
    """Median wall time and median CPU time of ``runs`` checks, and the last result.

    CPU time (workers included) does not grow when other processes share the
    cores; wall time does."""
    spec = get_spec(model)
    times, cpus = [], []
    result = None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), _cpu()
        result = check_linearizable(history, spec, timeout=120, **kw)
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return statistics.median(times), statistics.median(cpus), result


def peak_alloc(model: str, history: History, **kw: Any) -> int:
    tracemalloc.start()
    check_linearizable(history, get_spec(model), timeout=120, workers=1, **kw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def kv_table(seed: int, runs: int) -> Table:
    table = Table(title=f"50-client kv, one stale read (median of {runs} runs, seed {seed})")
    for col in ("history", "how", "ops", "info", "time", "cpu", "states", "peak alloc", "verdict",
                "bad keys"):
        table.add_column(col, justify="left" if col in ("history", "how", "verdict") else "right")
    shapes = [
        ("2,000 ops, 10 keys, 5% info, read at mid-key", dict(p_info=0.05, at=0.5)),
        ("2,000 ops, 10 keys, 5% info, read late", dict(p_info=0.05, at=0.9)),
        ("2,000 ops, 10 keys, no info, read at mid-key", dict(p_info=0.0, at=0.5)),
    ]
    for name, shape in shapes:
        h = kv_history(seed, **shape)
        for how, kw in (
            ("default (stop at first, auto workers)", {}),
            ("serial (workers=1)", {"workers": 1}),
            ("all_keys=True", {"all_keys": True}),
            ("all_keys=True, serial", {"all_keys": True, "workers": 1}),
        ):
            med, cpu, r = measure("kv", h, runs, **kw)
            peak = peak_alloc("kv", h, **{k: v for k, v in kw.items() if k != "workers"})
            table.add_row(
                name, how, str(r.details["ops"]), str(_n_info(h)), f"{med * 1000:.0f} ms",
                f"{cpu * 1000:.0f} ms",
                str(r.details["states"]), f"{peak / 2**20:.1f} MiB", _verdict(r.valid),
                ", ".join(str(f["key"]) for f in r.details.get("failures", [])),
            )
            name = ""
    return table


def cas_table(seed: int, n: int) -> Table:
    table = Table(title=f"{n} short cas-register histories (70-90 ops, 10-30% info), seed {seed}")
    for col in ("", "ops", "info", "time", "cpu", "states", "valid / invalid / unknown"):
        table.add_column(col, justify="right")
    # start-up: the first check imports and warms what later ones reuse
    check_linearizable(cas_register_history(seed), get_spec("cas-register"))
    times, cpus, ops, infos, states, verdicts = [], [], [], [], [], []
    for i in range(n):
        rng = random.Random(seed * 1000 + i)
        h = cas_register_history(
            seed * 1000 + i, n_ops=rng.randint(70, 90), p_info=rng.uniform(0.1, 0.3)
        )
        t0, c0 = time.perf_counter(), time.process_time()
        r = check_linearizable(h, get_spec("cas-register"), timeout=60)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        ops.append(r.details["ops"])
        infos.append(_n_info(h))
        states.append(r.details["states"])
        verdicts.append(r.valid)
    for label, pick in (("median", statistics.median), ("max", max)):
        table.add_row(
            label, str(pick(ops)), str(pick(infos)), f"{pick(times) * 1000:.2f} ms",
            f"{pick(cpus) * 1000:.2f} ms",
            str(pick(states)),
            f"{verdicts.count(True)} / {verdicts.count(False)} / {verdicts.count('unknown')}"
            if label == "median" else "",
        )
    return table


def assorted(seed: int):
    """(name, model, history) triples."""
    yield "cas-register, 50 keys, 10 procs, 5% info", "cas-register", generate(
        "cas-register", seed, n_ops=10_000, processes=10, keys=list(range(50)), p_info=0.05, values=5
    )
    yield "cas-register, 1 key, 20 procs, 10% info", "cas-register", generate(
        "cas-register", seed, n_ops=400, processes=20, p_info=0.10, values=5
    )
    yield "cas-register, 1 key, 10 procs, 15% info", "cas-register", generate(
        "cas-register", seed, n_ops=300, processes=10, p_info=0.15, values=5
    )
    yield "register, 1 key, 20 procs, 15% info", "register", generate(
        "register", seed, n_ops=300, processes=20, p_info=0.15, values=5
    )
    yield "register, 1 key, 20 procs, 10% info, unique values", "register", generate(
        "register", seed, n_ops=300, processes=20, p_info=0.10, values=10**6
    )
    yield "kv (read/write/append), 10 keys, 8 procs, 5% info", "kv", generate(
        "kv", seed, n_ops=3_000, processes=8, keys=list(range(10)), p_info=0.05
    )
    yield "list-append (+txns), 20 keys, 5 procs, 5% info", "list-append", generate(
        "list-append", seed, n_ops=1_000, processes=5, keys=list(range(20)), p_info=0.05
    )
    yield "queue, 1 key, 5 procs, 5% info", "queue", generate(
        "queue", seed, n_ops=500, processes=5, p_info=0.05
    )
    # an invalid one: the first mutation of a 20-key history that breaks it
    for s in range(seed, seed + 100):
        rng = random.Random(s)
        recs = simulate("cas-register", rng, n_ops=2_000, processes=10, keys=list(range(20)),
                        p_info=0.05, values=5)
        h = render(mutate(recs, rng, values=5))
        if check_linearizable(h, get_spec("cas-register"), timeout=10).valid is False:
            yield "cas-register, 20 keys, one mutation", "cas-register", h
            break


def assorted_table(seed: int, runs: int) -> Table:
    table = Table(title=f"assorted models (median of {runs} runs, seed {seed})")
    for col in ("history", "ops", "keys", "info", "time (median)", "cpu", "peak alloc", "states",
                "verdict"):
        table.add_column(col, justify="left" if col in ("history", "verdict") else "right")
    for name, model, h in assorted(seed):
        med, cpu, r = measure(model, h, runs)
        peak = peak_alloc(model, h)
        table.add_row(
            name, str(r.details["ops"]), str(r.details["keys"]), str(_n_info(h)),
            f"{med * 1000:.1f} ms", f"{cpu * 1000:.1f} ms", f"{peak / 2**20:.1f} MiB", str(r.details["states"]),
            _verdict(r.valid),
        )
    return table


def _file_model(path: str, model: str) -> str:
    if model != "auto":
        return model
    with open(path, encoding="utf-8", errors="replace") as fh:
        return "kv" if ":key" in fh.read(4096) else "cas-register"


def files_table(paths: list[str], model: str, init: Any, runs: int, label: str) -> Table:
    """One row per history file: ops, median time and CPU, states, verdict; then totals."""
    try:
        from jepsenlike.history_io import read_history
    except ImportError:  # an older version (--baseline)
        from jepsenlike.history import read_history  # type: ignore[no-redef]

    table = Table(title=f"history files, {label} (median of {runs} runs)")
    for col in ("file", "model", "ops", "time", "cpu", "states", "verdict"):
        table.add_column(col, justify="left" if col in ("file", "model", "verdict") else "right")
    total_t = total_c = 0.0
    for path in paths:
        m = _file_model(path, model)
        h = read_history(path)
        spec = get_spec(m, init=init)
        times, cpus = [], []
        r = None
        for _ in range(runs):
            t0, c0 = time.perf_counter(), _cpu()
            r = check_linearizable(h, spec, timeout=120)
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu() - c0)
        med, cpu = statistics.median(times), statistics.median(cpus)
        total_t += med
        total_c += cpu
        assert r is not None
        table.add_row(
            path.rsplit("/", 1)[-1], m, str(r.details.get("ops", "")), f"{med * 1000:.1f} ms",
            f"{cpu * 1000:.1f} ms", str(r.details.get("states", "")), _verdict(r.valid),
        )
    table.add_row(f"total ({len(paths)} files)", "", "", f"{total_t:.3f} s", f"{total_c:.3f} s",
                  "", "")
    return table


def _run_baseline(args: argparse.Namespace) -> None:
    """The files table again, in a child importing ``jepsenlike`` from ``args.baseline``.

    An older version may not read every format, nor know op aliases (``get``):
    the files are handed to it as JSON Lines written by this tree's reader,
    with each op's ``f`` in the name its model's ``step`` knows.
    """
    from jepsenlike.history_io import read_history, write_history

    with tempfile.TemporaryDirectory() as tmp:
        converted = []
        for path in args.files:
            model = _file_model(path, args.model)
            spec = get_spec(model)
            ops = [op if spec.canonical_f(op.f) == op.f else msgspec.structs.replace(
                op, f=spec.canonical_f(op.f)) for op in read_history(path)]
            out = os.path.join(tmp, os.path.basename(path) + ".jsonl")
            write_history(out, ops)
            converted.append((out, model))
        for model in sorted({m for _, m in converted}):
            files = [p for p, m in converted if m == model]
            cmd = [sys.executable, __file__, "--runs", str(args.runs), "--model", model,
                   "--label", f"baseline {args.baseline}", "--files", *files]
            if args.init is not None:
                cmd[2:2] = ["--init", args.init]
            # the baseline's package must come before this tree's editable install
            code = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); "
                    "sys.meta_path[:] = [f for f in sys.meta_path "
                    "if 'editable' not in type(f).__module__]; "
                    "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")
            subprocess.run([sys.executable, "-c", code, args.baseline, *cmd[1:]], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="only the kv and cas-register tables")
    ap.add_argument("--files", nargs="+", metavar="FILE", help="check these history files")
    ap.add_argument("--model", default="auto", help="model for --files (default: auto)")
    ap.add_argument("--init", default=None, help="--init JSON for every --files file")
    ap.add_argument("--baseline", metavar="DIR",
                    help="with --files: run the table again importing jepsenlike from DIR")
    ap.add_argument("--label", default="this tree", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    console = Console(width=160)
    if args.files:
        init = None if args.init is None else json.loads(args.init)
        console.print(files_table(args.files, args.model, init, args.runs, args.label))
        if args.baseline:
            _run_baseline(args)
        return 0
    console.print(kv_table(args.seed, args.runs))
    console.print(cas_table(args.seed, 100))
    if not args.quick:
        console.print(assorted_table(args.seed, args.runs))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"peak RSS: this process {rss:.0f} MiB, largest worker {kids:.0f} MiB; "
        f"python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
