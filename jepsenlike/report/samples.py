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
:mod:`jepsenlike.checkers.synth` with a G1c cycle injected.

``python -m jepsenlike.report.samples STORE`` writes one of each and their
reports.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from jepsenlike.checkers.synth import MS, inject, list_append_history, sample_run_events
from jepsenlike.history import Op
from jepsenlike.history_io import write_history

KINDS = ("valid-register", "invalid-register", "graph-g1c", "large-invalid-register")




def _graph_ops(seed: int) -> list[Op]:
    h = list_append_history(random.Random(seed), n_txns=60)
    bad = inject(h, "G1c", random.Random(seed + 1))
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
        events = sample_run_events(rng, n_rounds, 4, stale_at)
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
