"""``jepsenlike simulate``: search fault schedules against a protocol core, in simulation.

How it works: :func:`jepsenlike.models.simsearch.search` lets Hypothesis generate
fault schedules for the chosen system (``raft``, ``paxos``, or a user's
``module:Factory`` / ``file.py:Factory``), runs each on the deterministic simulator
(:mod:`jepsenlike.models.simulator`) with its invariants and checks the recorded
history; on the first failure it shrinks the schedule. ``--replay FILE`` re-runs one
schedule exactly. Either way the run directory (``<store>/simulate-<system>/<timestamp>``,
with ``<store>/latest``) gets ``schedule.json`` (the minimal failing schedule; no
steps after a clean search), ``history.jsonl``, ``results.json``, ``report.html`` (the
schedule step by step beside the failure) and ``run-schedule.jsonl``: the schedule's
faults as wall-clock nemesis ops for ``jepsenlike run --schedule``
(:mod:`jepsenlike.models.simtranslate`).

Exit codes as ``run``: 0 no failure, 1 a failure found (or the replay fails),
2 the checker could not decide, 255 bad input.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path
from typing import Any

from jepsenlike.errors import ConfigError
from jepsenlike.store import new_run_dir, update_latest, write_json

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="search fault schedules against a protocol core in deterministic simulation",
        description=(
            "Generate fault schedules with Hypothesis, run them on a simulated cluster of "
            "the system's sans-I/O cores (invariants + history checker), and shrink the "
            "first failure to a minimal schedule. Exit codes: 0 no failure, 1 failure "
            "found, 2 unknown, 255 error."
        ),
    )
    p.add_argument(
        "--system", default="raft",
        help="raft, paxos, or a user system as module:Factory or path/file.py:Factory",
    )
    p.add_argument("--bug", default="", help="seeded bug(s), comma separated")
    p.add_argument("--nodes", type=int, default=3, help="cluster size (default 3)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--time-limit", type=float, metavar="S", help="search seconds (default 60)")
    budget.add_argument("--examples", type=int, metavar="N", help="search N schedules")
    p.add_argument("--seed", type=int, default=0, help="search and simulation seed")
    p.add_argument(
        "--workload", choices=("register", "append"), default="register",
        help="register: read/write/cas, WGL-checked; append: list-append txns, graph-checked",
    )
    p.add_argument(
        "--shrink-limit", type=float, default=20.0, metavar="S",
        help="seconds for shrinking a failure (default 20)",
    )
    p.add_argument("--replay", metavar="SCHEDULE", help="re-run one schedule.json exactly")
    p.add_argument(
        "--tick-seconds", type=float, default=None, metavar="S",
        help="real seconds per simulated tick in run-schedule.jsonl (default 0.05: the "
        "reference nodes' election timeout, 50 ticks of 10 ms, over the simulated 10 ticks)",
    )
    p.add_argument("--store", default="store", help="store directory (default ./store)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def _exit_code(valid: Any) -> int:
    from jepsenlike.cli import exit_code_for

    return exit_code_for(valid)


def _load_schedule(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--replay {path}: file not found; give a schedule.json path") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--replay {path}: not JSON ({e.msg}); give a schedule.json") from None
    if not isinstance(doc, dict) or "system" not in doc or not isinstance(doc.get("steps"), list):
        raise ConfigError(
            f"--replay {path}: expected an object with 'system' and a 'steps' list"
        )
    return doc


def run(args: argparse.Namespace) -> int:
    from jepsenlike.models.simsearch import load_system, run_schedule, search

    if args.tick_seconds is not None and not args.tick_seconds > 0:
        raise ConfigError(f"--tick-seconds {args.tick_seconds}: must be > 0 (real seconds per tick)")
    if args.replay:
        schedule = _load_schedule(args.replay)
        try:
            outcome = run_schedule(schedule)
        except ValueError as e:
            raise ConfigError(f"--replay {args.replay}: {e}") from None
        run_dir = _write_run(args.store, schedule, outcome, {"mode": "replay"}, args.tick_seconds)
        _say(outcome, run_dir)
        return _exit_code(outcome.valid)

    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes}: need at least 1 node")
    bugs = frozenset(b.strip() for b in args.bug.split(",") if b.strip())
    try:
        load_system(args.system, bugs, args.nodes)
    except ValueError as e:
        raise ConfigError(f"--system/--bug: {e}") from None
    time_limit = args.time_limit if args.time_limit is not None else (
        None if args.examples is not None else 60.0
    )

    def progress(r: Any) -> None:
        if args.quiet:
            return
        rate = r.schedules / r.seconds if r.seconds else 0.0
        ops = r.sim_ops / r.seconds if r.seconds else 0.0
        sys.stderr.write(
            f"\rsimulate {args.system}: {r.schedules} schedules, {rate:.0f} schedules/s, "
            f"{ops:.0f} sim ops/s, {r.seconds:.0f}s "
        )
        sys.stderr.flush()

    res = search(
        args.system, bugs, args.nodes, args.seed,
        time_limit=time_limit, examples=args.examples, workload=args.workload,
        shrink_limit=args.shrink_limit, progress=progress,
    )
    if not args.quiet:
        sys.stderr.write("\n")
    stats = {
        "mode": "search",
        "schedules": res.schedules,
        "seconds": round(res.seconds, 3),
        "schedules_per_s": round(res.schedules / res.seconds, 1) if res.seconds else None,
        "sim_ops_per_s": round(res.sim_ops / res.seconds, 1) if res.seconds else None,
        "first_failure_s": res.first_failure_s,
        "unknown_schedules": res.unknown,
    }
    base = {
        "system": args.system, "bug": ",".join(sorted(bugs)) or None, "nodes": args.nodes,
        "seed": args.seed, "workload": args.workload,
    }
    if res.found is None:
        run_dir = _write_run(args.store, {**base, "steps": []}, None, stats, args.tick_seconds)
        valid: Any = True if res.unknown == 0 else "unknown"
        print(
            f"simulate {args.system}: no failure in {res.schedules} schedules "
            f"({stats['schedules_per_s']} schedules/s); {run_dir}"
        )
        return _exit_code(valid)
    assert res.schedule is not None
    run_dir = _write_run(args.store, res.schedule, res.found, stats, args.tick_seconds)
    _say(res.found, run_dir)
    return _exit_code(res.found.valid)


def _say(outcome: Any, run_dir: Path) -> None:
    if outcome.valid is True:
        print(f"valid: no invariant broke and the history checked out; {run_dir}")
    elif outcome.valid is False:
        print(
            f"INVALID after {len(outcome.steps)} steps: {outcome.failure}\n"
            f"  schedule: {run_dir / 'schedule.json'} "
            f"(replay: jepsenlike simulate --replay {run_dir / 'schedule.json'})"
        )
    else:
        print(f"unknown: the checker could not decide; {run_dir}")


def _write_run(
    store: str,
    schedule: dict[str, Any],
    outcome: Any,
    stats: dict[str, Any],
    tick_seconds: float | None = None,
) -> Path:
    from jepsenlike.models.simtranslate import (
        DEFAULT_TICK_SECONDS,
        run_command,
        translate,
        write_run_schedule,
    )

    if tick_seconds is None:
        tick_seconds = DEFAULT_TICK_SECONDS
    run_dir = new_run_dir(store, f"simulate-{Path(str(schedule['system'])).stem.split(':')[0]}")
    doc = {k: schedule.get(k) for k in ("system", "bug", "nodes", "seed", "workload")}
    doc["steps"] = schedule.get("steps", [])
    write_json(run_dir / "schedule.json", doc)
    history = outcome.history if outcome is not None else []
    with open(run_dir / "history.jsonl", "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(json.dumps(op, separators=(",", ":")) + "\n")
    valid = outcome.valid if outcome is not None else True
    results = {
        "valid": valid,
        "failure": outcome.failure if outcome is not None else None,
        "claim": outcome.claim if outcome is not None else None,
        "steps": len(doc["steps"]),
        "history_ops": len(history),
        "checker": outcome.checker if outcome is not None else {},
        "simulation": stats,
    }
    if doc["steps"]:
        # The same faults as wall-clock nemesis ops, for `jepsenlike run --schedule`.
        path = run_dir / "run-schedule.jsonl"
        notes = write_run_schedule(doc, path, tick_seconds)
        results["run_schedule"] = {
            "file": path.name, "tick_seconds": tick_seconds, "notes": notes,
            "command": run_command(doc, path, translate(doc, tick_seconds)[0], tick_seconds),
        }
    write_json(run_dir / "results.json", results)
    (run_dir / "report.html").write_text(_report(doc, results, history), encoding="utf-8")
    update_latest(store, run_dir)
    return run_dir


def _report(schedule: dict[str, Any], results: dict[str, Any], history: list[dict]) -> str:
    """A one-page report: the schedule step by step beside the failure."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{k + 1}</td><td><code>{e(json.dumps(s))}</code></td></tr>"
        for k, s in enumerate(schedule["steps"])
    )
    tail = "".join(
        f"<tr><td>{op['index']}</td><td>{op['time'] / 1e9:.2f}s</td><td>{op['process']}</td>"
        f"<td>{e(op['type'])}</td><td>{e(op['f'])}</td><td>{e(json.dumps(op.get('value')))}</td>"
        f"<td>{e(str(op.get('node')))}</td><td>{e(str(op.get('error') or ''))}</td></tr>"
        for op in history[-60:]
    )
    verdict = {True: "valid", False: "INVALID"}.get(results["valid"], "unknown")
    witness = str((results.get("checker") or {}).get("explanation") or results.get("failure") or "")
    return f"""<!doctype html><meta charset="utf-8"><title>jepsenlike simulate</title>
<style>body{{font-family:sans-serif;margin:2em}}.cols{{display:flex;gap:2em}}
td{{padding:2px 6px;border-bottom:1px solid #ddd;font-size:13px}}</style>
<h1>simulate {e(str(schedule['system']))} &mdash; {verdict}</h1>
<p>bug: {e(str(schedule.get('bug')))} &middot; nodes: {schedule.get('nodes')} &middot;
seed: {schedule.get('seed')} &middot; steps: {len(schedule['steps'])}</p>
<p><b>{e(str(results.get('failure') or 'no failure'))}</b></p>
<h2>Witness</h2><pre>{e(witness)}</pre>
<div class="cols"><div><h2>Schedule</h2><table>{rows}</table></div>
<div><h2>History (last {min(60, len(history))} of {len(history)} ops)</h2>
<table><tr><th>#</th><th>time</th><th>proc</th><th>type</th><th>f</th><th>value</th>
<th>node</th><th>error</th></tr>{tail}</table></div></div>
"""
