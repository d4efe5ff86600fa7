"""Sample run directories, without a cluster: for tests, docs and trying the report.

Theory of operation
-------------------
:func:`write_sample_run` writes a complete run directory (``test.json``,
``history.jsonl``, ``nemesis.log``, ``results.json``) whose history is
synthetic but whose verdict is real: ``results.json`` is produced by the
shared :func:`jepsenlike.analysis.check_run`, i.e. by the workload's real
checker, exactly as after a live run.

Register histories are generated in rounds: every live process invokes an
op, then the ops complete in a random order and each takes effect at its
completion (so the history is linearizable by construction: the completion
instant is a valid linearization point). ``fail`` ops take no effect;
``info`` ops may or may not, and retire their process. Faults are nemesis
invoke/info pairs between rounds (kill n2 then start it again; pause n3,
never resumed). The ``invalid`` kinds then add one *stale read*: a read of key
0 that returns the first value ever written there although a later write had
completed before the read began -- not linearizable, independently of the
checker. The ``graph`` kind is a list-append history from
:mod:`jepsenlike.checkers.graph.synth` with a G1c cycle injected.

``python -m jepsenlike.report.samples STORE`` writes one of each and their
reports.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from jepsenlike.history import Op, write_history

KINDS = ("valid-register", "invalid-register", "graph-g1c", "large-invalid-register")
MS = 1_000_000


def _register_events(rng: random.Random, rounds: int, n_procs: int, stale_at: int | None) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    t = 5 * MS
    value: dict[int, Any] = {0: None, 1: None}
    first_written: dict[int, Any] = {}
    counter = 0
    procs = list(range(n_procs))
    next_pid = n_procs
    nodes = ["n1", "n2", "n3"]

    def nemesis(f: str, asked: Any, done: Any) -> None:
        nonlocal t
        events.append({"time": t, "process": "nemesis", "type": "invoke", "f": f, "value": asked})
        t += MS // 10
        events.append({"time": t, "process": "nemesis", "type": "info", "f": f, "value": done})
        t += MS // 10

    for r in range(rounds):
        if r == rounds // 5:
            nemesis("kill", "one", {"nodes": ["n2"], "targets": "one"})
        if r == rounds // 2:
            nemesis("start", None, {"nodes": ["n2"]})
        if r == (3 * rounds) // 4:
            nemesis("pause", "one", {"nodes": ["n3"], "targets": "one"})
        if stale_at is not None and r == stale_at:
            # Make sure key 0 has been written twice, then read the first value back.
            for _ in range(2):
                counter += 1
                p = procs[0]
                events.append({"time": t, "process": p, "type": "invoke", "f": "write", "key": 0,
                               "value": counter, "node": "n1"})
                t += 2 * MS
                events.append({"time": t, "process": p, "type": "ok", "f": "write", "key": 0,
                               "value": counter, "node": "n1"})
                first_written.setdefault(0, counter)
                value[0] = counter
                t += MS
            p = procs[1]
            events.append({"time": t, "process": p, "type": "invoke", "f": "read", "key": 0, "value": None,
                           "node": "n3"})
            t += 3 * MS
            events.append({"time": t, "process": p, "type": "ok", "f": "read", "key": 0,
                           "value": first_written[0], "node": "n3"})
            t += MS
        invoked = []
        for p in procs:
            k = rng.randrange(2)
            node = rng.choice(nodes)
            x = rng.random()
            if x < 0.45:
                f, v = "read", None
            elif x < 0.8:
                counter += 1
                f, v = "write", counter
            else:
                counter += 1
                f, v = "cas", [value[k], counter]
            events.append({"time": t, "process": p, "type": "invoke", "f": f, "key": k, "value": v, "node": node})
            invoked.append((p, f, k, v, node))
            t += rng.randint(1, 400) * 1000
        rng.shuffle(invoked)
        retired = []
        for p, f, k, v, node in invoked:
            t += rng.randint(1, 3000) * 1000
            y = rng.random()
            down = node == "n2" and rounds // 5 <= r < rounds // 2
            outcome = "fail" if down or y < 0.05 else "info" if y < 0.08 else "ok"
            takes_effect = outcome == "ok" or (outcome == "info" and rng.random() < 0.5)
            comp: dict[str, Any] = {"time": t, "process": p, "type": outcome, "f": f, "key": k, "node": node}
            if f == "read":
                comp["value"] = value[k] if outcome == "ok" else None
            elif f == "write":
                comp["value"] = v
                if takes_effect:
                    value[k] = v
                    if outcome == "ok":
                        first_written.setdefault(k, v)
            else:
                old, new = v
                if value[k] != old and outcome == "ok":
                    outcome = comp["type"] = "fail"
                    takes_effect = False
                comp["value"] = v
                if takes_effect and value[k] == old:
                    value[k] = new
                    if outcome == "ok":
                        first_written.setdefault(k, new)
            if outcome == "fail":
                comp["error"] = "connect: connection refused" if down else "cas mismatch" if f == "cas" else "rejected"
            if outcome == "info":
                comp["error"] = "timeout"
                retired.append(p)
            events.append(comp)
        for p in retired:
            procs[procs.index(p)] = next_pid
            next_pid += 1
        t += rng.randint(1, 5) * MS
    return events


def _graph_ops(seed: int) -> list[Op]:
    from jepsenlike.checkers.graph import synth

    h = synth.list_append_history(random.Random(seed), n_txns=60)
    bad = synth.inject(h, "G1c", random.Random(seed + 1))
    assert bad is not None
    return [Op(o.index, o.time * 1000 + 5 * MS, o.process, o.type, o.f, o.key, o.value, o.node, o.error)
            for o in bad.ops]


def write_sample_run(store: str | Path, kind: str = "invalid-register", seed: int = 7,
                     rounds: int | None = None, name: str | None = None) -> Path:
    """Write a sample run directory under ``store`` and return it (see the module docstring)."""
    from jepsenlike.analysis import check_run
    from jepsenlike.config import TestConfig
    from jepsenlike.store import new_run_dir, update_latest, write_json
    from jepsenlike.workloads import get_workload

    if kind not in KINDS:
        raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    workload = "append" if kind == "graph-g1c" else "register"
    if kind == "graph-g1c":
        ops = _graph_ops(seed)
    else:
        n_rounds = rounds or (1500 if kind.startswith("large") else 40)
        stale_at = None if kind == "valid-register" else (n_rounds * 2) // 3
        events = _register_events(rng, n_rounds, 4, stale_at)
        ops = [Op(index=i, time=e["time"], process=e["process"], type=e["type"], f=e["f"], key=e.get("key"),
                  value=e.get("value"), node=e.get("node"), error=e.get("error")) for i, e in enumerate(events)]
    test_name = name or f"sample-{kind}"
    config = TestConfig(name=test_name, system="memory", nodes=3, workload=workload, seed=seed,
                        store=str(store), nemesis=("kill", "pause"))
    run_dir = new_run_dir(store, test_name)
    update_latest(store, run_dir)
    write_history(run_dir / "history.jsonl", ops)
    end = ops[-1].time if ops else 0
    test_doc = {
        "name": test_name, "config": config.to_dict(), "seed": seed, "sample": kind,
        "reproduce": f"python -m jepsenlike.report.samples {store} {kind}",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "phases": {"warmup": 0, "chaos": 0, "end": end},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(run_dir / "test.json", test_doc)
    with open(run_dir / "nemesis.log", "w", encoding="utf-8") as fh:
        for o in ops:
            if o.process == "nemesis" and o.type == "info":
                fh.write(f"{o.time / 1e9:9.3f}s {o.f:<8} done={json.dumps(o.value)}\n")
    check_run(run_dir, get_workload(workload), test_doc)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(f"usage: python -m jepsenlike.report.samples STORE [{'|'.join(KINDS)} ...]", file=sys.stderr)
        return 255
    from jepsenlike.report import write_run_report

    for kind in args[1:] or KINDS:
        run_dir = write_sample_run(args[0], kind)
        print(write_run_report(run_dir).report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
