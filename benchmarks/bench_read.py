"""Reading speed of history files: events/s and peak memory of ``read_history``.

How it works: for each size it writes a list-append history in JSON Lines
(the shape of a long Jepsen list-append test: 20 processes, 1-4 micro-ops per
transaction mixing appends and reads, about ten live keys rotating through
thousands, 3% indeterminate and 5% failed transactions), then reads it back
with :func:`jepsenlike.history_io.read_history` in a fresh subprocess, so
that each case's peak RSS is its own. It prints one table row per case:
events, file size, wall and CPU seconds, events per wall second and per CPU
second (the machine may be shared: CPU time is what the reader itself used),
and the reader process's peak RSS (``ru_maxrss``, which includes the
interpreter: the baseline row "0 events" shows that part).

Usage::

    python benchmarks/bench_read.py                 # 200k and 1M events
    python benchmarks/bench_read.py --events 50000  # one size
    python benchmarks/bench_read.py --edn           # also the EDN importer (smaller sizes)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

READER = r"""
import json, resource, sys, time
from jepsenlike.history_io import read_history
path = sys.argv[1]
t0, c0 = time.perf_counter(), time.process_time()
h = read_history(path) if path != "-" else None
dt, dc = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"events": 0 if h is None else len(h), "seconds": dt, "cpu": dc, "rss": rss}))
"""


def write_list_append(path: Path, events: int, seed: int = 1, edn: bool = False) -> None:
    """A valid list-append history of about ``events`` events (invocations + completions)."""
    rng = random.Random(seed)
    processes = 20
    lists: dict[int, list[int]] = {}
    next_key = 10
    live = list(range(10))
    counter = 0
    pending: dict[int, tuple[str, list[list]]] = {}
    pid = list(range(processes))
    t = 0
    index = 0
    with open(path, "w", encoding="utf-8") as fh:

        def emit(process: int, typ: str, value: list, error: str | None = None) -> None:
            nonlocal index
            if edn:
                mops = " ".join(
                    f"[:{m[0]} {m[1]} {'nil' if m[2] is None else (json.dumps(m[2]).replace(',', ''))}]"
                    for m in value
                )
                err = f", :error :{error}" if error else ""
                fh.write(f"{{:type :{typ}, :f :txn, :value [{mops}], :process {process}, "
                         f":time {t}, :index {index}{err}}}\n")
            else:
                d = {"index": index, "time": t, "process": process, "type": typ, "f": "txn",
                     "value": value}
                if error:
                    d["error"] = error
                fh.write(json.dumps(d, separators=(",", ":")) + "\n")
            index += 1

        while index < events:
            t += rng.randint(1_000, 50_000)
            slot = rng.randrange(processes)
            p = pid[slot]
            if p not in pending:
                txn: list[list] = []
                for _ in range(rng.randint(1, 4)):
                    k = rng.choice(live)
                    if rng.random() < 0.5:
                        counter += 1
                        txn.append(["append", k, counter])
                    else:
                        txn.append(["r", k, None])
                pending[p] = ("txn", txn)
                emit(p, "invoke", txn)
            else:
                _, txn = pending.pop(p)
                roll = rng.random()
                if roll < 0.03:
                    emit(p, "info", txn, "timeout")
                    pid[slot] = p + processes  # an indeterminate op retires its process
                elif roll < 0.08:
                    emit(p, "fail", txn, "aborted")
                else:
                    done = []
                    for f, k, v in txn:
                        if f == "append":
                            lists.setdefault(k, []).append(v)
                            done.append([f, k, v])
                        else:
                            done.append([f, k, list(lists.get(k, []))])
                    emit(p, "ok", done)
                if rng.random() < 0.039:  # rotate a key out (~3,900 keys per 100k txns)
                    live[rng.randrange(len(live))] = next_key
                    next_key += 1


def measure(path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", READER, path], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, action="append",
                    help="history size in events (repeatable; default 200000 and 1000000)")
    ap.add_argument("--edn", action="store_true", help="also time the EDN importer at 1/10 size")
    args = ap.parse_args()
    sizes = args.events or [200_000, 1_000_000]
    base = measure("-")
    print(f"{'format':<7} {'events':>9} {'MiB':>7} {'wall s':>7} {'cpu s':>7} "
          f"{'events/s':>10} {'ev/cpu-s':>10} {'peak RSS MiB':>13}")
    print(f"{'-':<7} {0:>9} {'-':>7} {'-':>7} {'-':>7} {'-':>10} {'-':>10} "
          f"{base['rss'] / 2**20:>13.0f}")
    with tempfile.TemporaryDirectory() as d:
        cases = [("jsonl", n) for n in sizes]
        if args.edn:
            cases += [("edn", max(1000, n // 10)) for n in sizes]
        for fmt, n in cases:
            path = Path(d) / f"h{n}.{fmt}"
            write_list_append(path, n, edn=fmt == "edn")
            r = measure(str(path))
            size = path.stat().st_size / 2**20
            print(f"{fmt:<7} {r['events']:>9} {size:>7.1f} {r['seconds']:>7.2f} {r['cpu']:>7.2f} "
                  f"{r['events'] / r['seconds']:>10,.0f} {r['events'] / r['cpu']:>10,.0f} "
                  f"{r['rss'] / 2**20:>13.0f}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
