"""How often each seeded bug is caught by its documented run, and how often its control stays valid.

For every system whose bug table (``<module>.bugs.BUGS``, rows of
:class:`jepsenlike.models.bugs.Bug`) gives a bug its ``catch`` and ``control``
arguments, runs exactly::

    jepsenlike run --system S --bug B <catch args> --seed i      (i = 1..--runs)
    jepsenlike run --system S --bug B <control args> --seed i    (i = 1..--control-runs)

each as its own process through the CLI, and measures per bug:

* ``runs``, ``caught`` -- catch runs, and those whose verdict was invalid;
* ``control_runs``, ``control_valid`` -- control runs (the same load without the
  fault the bug needs), and those whose verdict was valid;
* ``median_detect_s`` -- over the caught runs, the seconds from the first nemesis
  op of the history to the anomalous op: the latest op of ``results.json``'s
  minimal ``witness`` when it has one (its other ops, e.g. the write a stale read
  missed, may predate every fault), else the earliest of the ops the checker
  names as not linearizable / in a cycle;
* ``witness_ops`` -- median over the caught runs of the witness size: the ops of
  ``results.json``'s ``witness`` when present, else the failing key's op count.

``--time-limit`` replaces the ``--time-limit`` of the documented arguments (so a
quick look can use shorter runs; the README figures use the documented ones);
``--backend docker`` adds ``--backend docker``. Rows are written to ``--out`` (JSON
lines) as each bug finishes, so a long measurement leaves its partial results.

Run:  python benchmarks/bench_detection.py [--runs 20] [--control-runs N] [--time-limit S]
                                           [--bugs raft:stale-read,...] [--backend local|docker] [--json]
Goal (not asserted): every bug caught in >= 95% of 60-s runs, every control valid in >= 95%.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXIT_WORDS = {0: "valid", 1: "invalid", 2: "unknown"}


@dataclass
class Row:
    system: str
    bug: str
    runs: int = 0
    caught: int = 0
    control_runs: int = 0
    control_valid: int = 0
    median_detect_s: float | None = None
    witness_ops: float | None = None
    catch_args: list[str] = field(default_factory=list)
    control_args: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    control_outcomes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def bug_tables() -> dict[str, dict[str, Any]]:
    """Every registered system's bug table (name -> Bug row), where the system has one."""
    from jepsenlike.systems import REGISTRY

    out: dict[str, dict[str, Any]] = {}
    for name in REGISTRY.names():
        try:
            obj = REGISTRY.load(name).obj
        except Exception:  # a plugin that does not load has no rows here
            continue
        table = getattr(obj, "bug_table", None)
        module = getattr(obj, "module", "") or ""
        if table is None and module:
            try:
                table = importlib.import_module(module + ".bugs").BUGS
            except (ImportError, AttributeError):
                table = None
        if isinstance(table, dict) and table:
            out[name] = table
    return out


def with_time_limit(args: tuple[str, ...] | list[str], limit: float | None) -> list[str]:
    """``args`` with its ``--time-limit`` replaced by ``limit`` (added when missing)."""
    out = list(args)
    if limit is None:
        return out
    if "--time-limit" in out:
        i = out.index("--time-limit")
        out[i + 1] = f"{limit:g}"
    else:
        out += ["--time-limit", f"{limit:g}"]
    return out


def _ints_named_index(x: Any) -> list[int]:
    if isinstance(x, dict):
        out = [x["index"]] if isinstance(x.get("index"), int) and not isinstance(x.get("index"), bool) else []
        for k, v in x.items():
            if k not in ("partial_linearizations", "steps"):  # context, not the anomaly
                out += _ints_named_index(v)
        return out
    if isinstance(x, list):
        return [i for v in x for i in _ints_named_index(v)]
    return []


def evidence_ops(results: dict[str, Any]) -> list[int]:
    """History indices of the checker's failure evidence (the witness's, when there is one)."""
    witness = results.get("witness")
    if isinstance(witness, dict) and isinstance(witness.get("ops"), list) and witness["ops"]:
        return [int(i) for i in witness["ops"] if isinstance(i, int)]
    workload = results.get("workload") or {}
    for key in ("failures", "anomalies", "cycles"):
        found = _ints_named_index(workload.get(key))
        if found:
            return found
    return _ints_named_index(workload.get("op"))


def set_evidence(history: list[dict[str, Any]], workload: dict[str, Any]) -> list[int]:
    """For the set checker (which names elements, not ops): per key, the first ok read that
    lacks a stale or lost element although its add had completed ok before the read began."""
    out: list[int] = []
    for key, k in (workload.get("keys") or {}).items():
        bad = set((k or {}).get("stale") or []) | set((k or {}).get("lost") or [])
        if not bad:
            continue
        invoked: dict[Any, int] = {}
        added: dict[Any, int] = {}
        for h in history:
            if h.get("process") == "nemesis" or str(h.get("key")) != str(key):
                continue
            if h.get("f") == "add" and h.get("type") == "ok" and h.get("value") in bad:
                added.setdefault(h["value"], h["time"])
            elif h.get("f") == "read" and h.get("type") == "invoke":
                invoked[h.get("process")] = h["time"]
            elif h.get("f") == "read" and h.get("type") == "ok" and isinstance(h.get("value"), list):
                began = invoked.get(h.get("process"), h["time"])
                seen = set(h["value"])
                if any(t < began and e not in seen for e, t in added.items()):
                    out.append(h["index"])
                    break
    return out


def measure_run(run_dir: Path) -> tuple[float | None, int | None]:
    """(seconds from the first nemesis op to the anomalous op, witness size) of an invalid run."""
    results = json.loads((run_dir / "results.json").read_text())
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    time_of = {h["index"]: h["time"] for h in history if isinstance(h.get("index"), int)}
    first_fault = next((h["time"] for h in history if h.get("process") == "nemesis"), None)
    ev = [i for i in evidence_ops(results) if i in time_of]
    if not ev and (results.get("workload") or {}).get("name") == "set":
        ev = set_evidence(history, results["workload"])
    detect = None
    witness = results.get("witness")
    if ev and first_fault is not None:
        # A minimal witness holds the anomalous op and the ops that make it one (a stale
        # read and the write it missed, which may predate every fault): the anomaly is seen
        # at its latest op. Other evidence lists the anomalous ops themselves: the earliest.
        has_witness = isinstance(witness, dict) and bool(witness.get("ops"))
        seen = max(time_of[i] for i in ev) if has_witness else min(time_of[i] for i in ev)
        detect = round((seen - first_fault) / 1e9, 3)
    if isinstance(witness, dict) and isinstance(witness.get("ops"), list) and witness["ops"]:
        size: int | None = len(witness["ops"])
    else:
        workload = results.get("workload") or {}
        key = workload.get("key")
        if key is None and workload.get("failures"):
            key = (workload["failures"][0] or {}).get("key")
        if key is None and isinstance(workload.get("keys"), dict):  # the set checker: the first bad key
            key = next((k for k, v in workload["keys"].items()
                        if isinstance(v, dict) and (v.get("stale") or v.get("lost"))), None)
        size = (sum(1 for h in history if h.get("type") == "invoke" and h.get("process") != "nemesis"
                    and str(h.get("key")) == str(key)) if key is not None else None)
    return detect, size


def one_run(system: str, bug: str, args: list[str], seed: int, store: Path,
            backend: str | None) -> tuple[str, Path | None, str]:
    """(outcome, run dir, stderr tail) of one ``jepsenlike run``."""
    cmd = [sys.executable, "-P", "-m", "jepsenlike", "run", "--system", system, "--bug", bug, *args,
           "--seed", str(seed), "--store", str(store), "--quiet"]
    if backend and backend != "local":
        cmd += ["--backend", backend]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    m = re.search(r"^Run dir: (.+)$", p.stdout, re.M)
    run_dir = Path(m.group(1).strip()) if m else None
    tail = (p.stderr.strip().splitlines() or [""])[-1]
    return EXIT_WORDS.get(p.returncode, f"error {p.returncode}"), run_dir, tail


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def measure(system: str, bug: str, row_bug: Any, args: argparse.Namespace, store: Path) -> Row:
    catch = with_time_limit(row_bug.catch, args.time_limit)
    control = with_time_limit(row_bug.control, args.time_limit)
    row = Row(system, bug, catch_args=catch, control_args=control)
    t0 = time.monotonic()
    detects: list[float] = []
    sizes: list[float] = []
    for seed in range(args.first_seed, args.first_seed + args.runs):
        outcome, run_dir, tail = one_run(system, bug, catch, seed, store, args.backend)
        row.runs += 1
        row.outcomes.append(outcome)
        if outcome == "invalid":
            row.caught += 1
            if run_dir is not None:
                try:
                    d, s = measure_run(run_dir)
                except (OSError, ValueError, KeyError) as e:
                    print(f"    cannot measure {run_dir}: {e}", file=sys.stderr)
                    d, s = None, None
                if d is not None:
                    detects.append(d)
                if s is not None:
                    sizes.append(s)
        print(f"  {system} {bug} catch seed {seed}: {outcome}" + (f" ({tail})" if outcome.startswith("error")
                                                                    else ""), file=sys.stderr, flush=True)
        if run_dir is not None and outcome in ("valid", "invalid") and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    for seed in range(args.first_seed, args.first_seed + args.control_runs):
        outcome, run_dir, tail = one_run(system, bug, control, seed, store, args.backend)
        row.control_runs += 1
        row.control_outcomes.append(outcome)
        row.control_valid += outcome == "valid"
        print(f"  {system} {bug} control seed {seed}: {outcome}", file=sys.stderr, flush=True)
        if run_dir is not None and outcome == "valid" and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    row.median_detect_s = _median(detects)
    row.witness_ops = _median(sizes)
    row.seconds = round(time.monotonic() - t0, 1)
    return row


def select(tables: dict[str, dict[str, Any]], spec: str | None) -> list[tuple[str, str, Any]]:
    """The (system, bug, row) pairs to measure: ``spec`` (``raft:stale-read,...``) or every row with catch args."""
    if spec:
        out = []
        for item in [s.strip() for s in spec.split(",") if s.strip()]:
            system, sep, bug = item.partition(":")
            if not sep or system not in tables or bug not in tables[system]:
                known = ", ".join(f"{s}:{b}" for s, t in tables.items() for b in t)
                raise SystemExit(f"--bugs: unknown {item!r}; known: {known}")
            if not tables[system][bug].catch:
                raise SystemExit(f"--bugs: {item} has no catch arguments in its Bug row; add them first")
            out.append((system, bug, tables[system][bug]))
        return out
    return [(s, b, r) for s, t in tables.items() for b, r in t.items() if r.catch]


def markdown(rows: list[Row]) -> str:
    """The rows as the README's seeded-bug table (exact flags, counts, medians)."""
    out = ["| system | `--bug` | catch: `jepsenlike run --system S --bug B` + | caught | control + | control valid "
           "| median s to first anomaly | witness ops |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        det = f"{r.median_detect_s:.1f}" if r.median_detect_s is not None else "-"
        wit = f"{r.witness_ops:g}" if r.witness_ops is not None else "-"
        out.append(f"| {r.system} | `{r.bug}` | `{' '.join(r.catch_args)}` | {r.caught} of {r.runs} | "
                   f"`{' '.join(r.control_args)}` | {r.control_valid} of {r.control_runs} | {det} | {wit} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="catch runs per bug, seeds 1..N (default 20)")
    ap.add_argument("--first-seed", type=int, default=1,
                    help="seed of the first run (default 1): seeds first..first+N-1, to add runs to a measurement")
    ap.add_argument("--control-runs", type=int, default=None, help="control runs per bug (default: --runs)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="replace the documented --time-limit (default: keep it)")
    ap.add_argument("--bugs", default=None, help="only these, e.g. raft:stale-read,paxos:no-adopt")
    ap.add_argument("--backend", choices=["local", "docker"], default="local")
    ap.add_argument("--store", default=None, help="store for the runs (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep every run dir (default: only unexpected ones)")
    ap.add_argument("--out", default=None, help="append each finished row to this JSON-lines file")
    ap.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    ap.add_argument("--markdown", action="store_true", help="print the rows as the README's Markdown table")
    ap.add_argument("--from", dest="from_file", default=None,
                    help="run nothing: read the rows from an --out file (several runs' files may be concatenated)")
    args = ap.parse_args(argv)
    if args.runs < 0 or (args.control_runs is not None and args.control_runs < 0):
        ap.error("--runs and --control-runs must be >= 0")
    if args.control_runs is None:
        args.control_runs = args.runs

    if args.from_file:
        rows = [Row(**json.loads(line)) for line in Path(args.from_file).read_text().splitlines() if line.strip()]
        if args.markdown:
            print(markdown(rows))
        else:
            print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    pairs = select(bug_tables(), args.bugs)
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-detection-"))
    started = time.strftime("%Y-%m-%d %H:%M")
    rows = []
    try:
        for system, bug, bug_row in pairs:
            row = measure(system, bug, bug_row, args, store)
            rows.append(row)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(row)) + "\n")
    finally:
        if not args.store and not any(store.rglob("results.json")):
            shutil.rmtree(store, ignore_errors=True)

    if args.markdown:
        print(markdown(rows))
        return 0
    if args.json:
        keys = ("system", "bug", "runs", "caught", "control_runs", "control_valid", "median_detect_s",
                "witness_ops")
        print(json.dumps([{k: asdict(r)[k] for k in keys} for r in rows], indent=1))
        return 0
    last, last_control = args.first_seed + args.runs - 1, args.first_seed + args.control_runs - 1
    controls = f"control seeds {args.first_seed}..{last_control}" if args.control_runs else "no control runs"
    print(f"started {started}; machine: {os.cpu_count()} cores; backend {args.backend}; "
          f"catch seeds {args.first_seed}..{last}, {controls}"
          + (f"; --time-limit {args.time_limit:g} (instead of the documented)" if args.time_limit else ""))
    print(f"{'system':<7} {'bug':<20} {'caught':>8} {'control valid':>14} {'detect s':>9} {'witness':>8}  "
          "catch args")
    for r in rows:
        det = f"{r.median_detect_s:.1f}" if r.median_detect_s is not None else "-"
        wit = f"{r.witness_ops:g}" if r.witness_ops is not None else "-"
        print(f"{r.system:<7} {r.bug:<20} {r.caught:>3}/{r.runs:<4} {r.control_valid:>7}/{r.control_runs:<6} "
              f"{det:>9} {wit:>8}  {' '.join(r.catch_args)}")
    if any(store.rglob("results.json")):
        print(f"unexpected runs kept under {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
