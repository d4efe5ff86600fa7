"""Analysis: a stored run directory in, a verdict (``results.json``) out.

Theory of operation
-------------------
Shared by ``jepsenlike run`` (after the cluster is gone), ``jepsenlike
analyze`` (a stored run, again) and the sample runs of the report. Every
verdict is about the file on disk, never about memory: :func:`check_run`
reads ``history.jsonl`` back, runs the workload's checker and every extra
``checkers`` plugin the config names (a plugin that fails to load or answers
nonsense makes the verdict ``unknown``, never a crash), computes statistics
and fault coverage (a requested fault that was refused, never fired or was not
confirmed on its node makes the run ``unknown``), judges whether the run saw
the acknowledged ops its checker needs in a checkable shape
(:mod:`jepsenlike.evidence`: a vacuous run is ``unknown``, a wrong-shape read
``invalid``), keeps an interrupted run's marker, and writes ``results.json``. :func:`write_report`
renders ``report.html`` and the plots; a report never changes or hides a
verdict.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jepsenlike.checkers.result import UNKNOWN, Result, check_safe, merge_valid
from jepsenlike.coverage import coverage_verdict, describe_coverage, fault_coverage
from jepsenlike.evidence import judge as judge_evidence
from jepsenlike.history_io import read_history
from jepsenlike.stats import compute_stats
from jepsenlike.store import HISTORY_FILE, RESULTS_FILE, write_json
from jepsenlike.workloads import Workload


def write_report(run_dir: Path, say: Callable[[str], None]) -> None:
    """Write report.html and the plots; a report never changes or hides a verdict."""
    try:
        from jepsenlike.report import write_run_report

        write_run_report(run_dir)
    except Exception as e:
        say(f"jepsenlike: report not written: {type(e).__name__}: {e}")


def check_run(
    run_dir: Path,
    workload: Workload,
    test_doc: dict[str, Any],
    fired: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read a run's history from disk, check it, and write ``results.json``."""
    hist = read_history(run_dir / HISTORY_FILE)
    phases = test_doc.get("phases") or {}
    result: Result = check_safe(workload.check, hist, test_doc)
    stats = compute_stats(hist, phases)
    cross = cross_check(workload, hist, test_doc, result)
    verdicts = [cross["valid"] if cross else result.valid]
    explanation = result.explanation

    def add(text: str) -> None:
        nonlocal explanation
        explanation = (explanation + "\n" if explanation else "") + text

    extra: dict[str, Any] = {}
    for name in (test_doc.get("config") or {}).get("checkers") or []:
        res = run_extra_checker(name, hist, test_doc)
        extra[name] = res.to_dict()
        verdicts.append(res.valid)
        if res.valid is not True and res.explanation:
            add(f"{name}: {res.explanation}")
    w = (cross or {}).get("witness")
    if isinstance(w, dict) and w.get("reason"):
        from jepsenlike.checkers.crosscheck import witness_where

        head = f"witness ({witness_where(w)}): {w['reason']}"
        explanation = head + ("\n" + explanation if explanation else "")
    if cross and cross.get("disagreement"):
        message = cross["disagreement"]["message"]
        explanation = message + ("\n" + explanation if explanation else "")
        print(f"jepsenlike: {message}", file=sys.stderr)
    if stats["totals"].get("ok", 0) == 0:
        verdicts.append(UNKNOWN)
        add("no client op succeeded: the run proves nothing")
    for valid, reason in judge_evidence(workload, hist, test_doc):
        verdicts.append(valid)
        add(reason)
    nemesis_doc: dict[str, Any] = {"fired": fired if fired is not None else stats["faults"]}
    if isinstance(test_doc.get("faults"), dict):
        end = phases.get("end")
        coverage = fault_coverage(hist, test_doc["faults"], end_ns=end if isinstance(end, int) else None)
        covered, reasons = coverage_verdict(coverage)
        nemesis_doc["coverage"] = coverage
        nemesis_doc["summary"] = describe_coverage(coverage)
        verdicts.append(covered)
        for reason in reasons if not test_doc.get("interrupted") else ():
            add(reason)
    interrupted = bool(test_doc.get("interrupted"))
    if interrupted:  # the marker survives analyze; the partial run is not blamed on its faults
        reason = test_doc.get("interrupted_reason")
        verdicts.append(UNKNOWN)
        add(f"the run was interrupted{f' ({reason})' if reason else ''}: the history is partial, "
            "so fault coverage and availability describe only the part that ran")
    results: dict[str, Any] = {
        "valid": merge_valid(verdicts),
        "explanation": explanation,
        "workload": {"name": workload.name, **result.to_dict()},
        "stats": stats,
        "nemesis": nemesis_doc,
        "reproduce": test_doc.get("reproduce"),
        "seed": test_doc.get("seed"),
    }
    if cross:
        results["graph"] = cross["graph"]
        if cross.get("disagreement"):
            results["checker_disagreement"] = cross["disagreement"]
        if cross.get("witness"):
            results["witness"] = cross["witness"]
    if isinstance(test_doc.get("clock"), dict):
        results["clock"] = test_doc["clock"]
    if interrupted:
        results["interrupted"] = True
        if test_doc.get("interrupted_reason"):
            results["interrupted_reason"] = test_doc["interrupted_reason"]
    if extra:
        results["checkers"] = extra
    if note := workload.checker_note():
        results["checker_note"] = note
    write_json(run_dir / RESULTS_FILE, results)
    return results


def cross_check(workload: Workload, hist: Any, test_doc: dict[str, Any], search: Result) -> dict[str, Any] | None:
    """Register runs: the graph checker beside the search, their verdicts reconciled, and
    the minimal witness of a violation (see :mod:`jepsenlike.checkers.crosscheck`).

    None for workloads without a register model. ``valid`` is the merged verdict;
    ``disagreement`` is set when the two checkers contradict each other (a checker bug).
    """
    from jepsenlike.checkers.crosscheck import (
        GRAPH_MODELS,
        explain_violation,
        graph_check,
        graph_doc,
        reconcile,
    )
    from jepsenlike.checkers.specs import get_spec

    if workload.model not in GRAPH_MODELS:
        return None
    timeout = float(((test_doc.get("config") or {}).get("check_timeout")) or 60.0)
    spec = get_spec(workload.model)
    graph = graph_check(hist, workload.model, spec, timeout=timeout)
    valid, disagreement = reconcile(search.valid, graph.valid)
    out: dict[str, Any] = {"valid": valid, "graph": graph_doc(graph)}
    if disagreement:
        out["disagreement"] = disagreement
    if search.valid is False or graph.valid is False:
        w = explain_violation(hist, spec, search, graph)
        if w is not None:
            out["witness"] = w
    return out


def run_extra_checker(name: str, hist: Any, test_doc: dict[str, Any]) -> Result:
    """Load and run one ``jepsenlike.checkers`` plugin; any failure is ``unknown``, never a crash."""
    from jepsenlike.checkers.plugins import make_checker

    try:
        checker = make_checker(name, ((test_doc.get("config") or {}).get("plugin_options")))
    except Exception as e:  # ConfigError, PluginError: the run is kept, the verdict says why
        return Result(UNKNOWN, {"error": str(e)}, f"checker {name!r} could not be loaded: {e}")
    res = check_safe(checker.check, hist, test_doc)
    if not isinstance(res, Result):
        why = f"checker plugin {name!r} returned {type(res).__name__}, not a Result"
        return Result(UNKNOWN, {"error": why}, why)
    return res
