"""The dependency-graph checker (Elle-style): list-append and unique-value registers.

Theory of operation
-------------------
1. An *analysis* (:mod:`.listappend` or :mod:`.registers`) reads the history,
   recovers each key's version order where the observations allow, reports
   the anomalies that need no cycle (aborted reads, garbage reads, ...), and
   adds the data edges (ww, wr, rw) between operations (:mod:`.core`).
2. Process and real-time edges are added (:func:`.core.add_order_edges`).
3. Strongly connected components are found; inside each nontrivial one the
   shortest cycle of each class (G0, G1c, G-single, G2, and their -process
   and -realtime variants) is searched (:mod:`.cycles`).
4. Each anomaly is explained edge by edge, and the models it rules out are
   listed (:mod:`.explain`). ``graph_out`` draws the cycles (:mod:`.render`).

The checker is sound for what it reports (every anomaly is real, given the
workload's assumption of unique written values), and deliberately not
complete: a consistency violation it cannot infer from the observations is
not reported. For registers, when the version order cannot be fully inferred
and no cycle was found, it falls back to the linearizability search.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from jepsenlike.checkers.result import Result
from jepsenlike.errors import ConfigError
from jepsenlike.history import History

from .core import DepGraph, add_order_edges, strongly_connected
from .cycles import find_cycles
from .explain import build_result, check_model_name, cycle_record
from .listappend import DIRECT_RW_LIMIT, ListAppendAnalysis

__all__ = ["MODELS", "check_history", "check_list_append", "check_registers"]

MODELS: tuple[str, ...] = ("list-append", "register", "cas-register")


def check_list_append(
    history: History,
    *,
    consistency_model: str = "strict-serializable",
    graph_out: str | None = None,
    cycle_search_timeout: float | None = 30.0,
) -> Result:
    """Check a list-append history for G0..G2 cycles and non-cycle anomalies.

    Args:
        history: a paired history of ``txn`` ops (or single ``append``/``read`` ops).
        consistency_model: the model the verdict is about; ``valid`` is False
            when an anomaly rules it out (see :data:`.explain.MODELS`).
        graph_out: write the anomaly cycles to this ``.dot`` or ``.svg`` file.
        cycle_search_timeout: seconds for the cycle search (None: no limit).

    Returns:
        A Result with ``details["anomalies"]`` (per type: ops, per-edge
        explanations), ``details["consistency"]`` and ``details["stats"]``.

    Raises:
        ConfigError: unknown ``consistency_model`` or ``graph_out`` suffix.
        HistoryError: a malformed micro-op (names the op).
    """
    check_model_name(consistency_model)
    _check_graph_out(graph_out)
    # The analysis allocates millions of small objects and frees none of them
    # until it returns: the cyclic GC would only rescan them over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_list_append(history, consistency_model, graph_out, cycle_search_timeout)
    finally:
        if gc_was_enabled:
            gc.enable()


def _check_list_append(
    history: History, consistency_model: str, graph_out: str | None,
    cycle_search_timeout: float | None,
) -> Result:
    t0 = time.monotonic()
    an = ListAppendAnalysis(history)
    txns = an.txns
    g = DepGraph(len(txns))
    an.add_data_edges(g)
    add_order_edges(g, txns, len(history))
    sccs = strongly_connected(g.adj)
    cycles, notes = find_cycles(g, sccs, timeout=cycle_search_timeout)
    t_analysed = time.monotonic()
    stats = {
        "ops": len(txns),
        "micro_ops": an.micro_ops,
        "nodes": sum(1 for t in txns if t.node),
        "info_ops": sum(1 for t in txns if t.type == "info"),
        "edges": g.edge_count(),
        "barriers": len(g.adj) - g.n_txn,
        "keys": len(an.writer.keys() | an.order.keys()),
        "nontrivial_sccs": len(sccs),
        "analyse_s": round(t_analysed - t0, 6),
    }
    t_explain = time.monotonic()  # the counts above are bookkeeping, neither phase
    anomalies = list(an.anomalies)
    counts = dict(an.counts)
    for name, steps in cycles:
        anomalies.append(cycle_record(name, steps, txns, an.explain))
        counts[name] = counts.get(name, 0) + 1
    extra: dict[str, Any] = dict(notes)
    if an.ignored:
        extra["ignored_fs"] = dict(an.ignored)
    if an.capped_keys:
        extra["unobserved_edges_capped"] = (
            f"{len(an.capped_keys)} keys (e.g. {an.capped_keys[0]!r}) have so many appends no "
            f"read lists, and so many reads, that only {DIRECT_RW_LIMIT} of those appends per "
            "key got rw edges from the key's longest reads; cycles through the others may "
            "go unreported"
        )
    if an.duplicate_appends:
        extra["warnings"] = [
            f"{an.duplicate_appends} appends repeat an element already appended to the same "
            "key; list-append needs unique elements per key, so reads of those elements are "
            "attributed to one of their appenders (a non-failed one if any)"
        ]
    result = build_result(
        "list-append", anomalies, counts, consistency_model=consistency_model,
        stats=stats, extra=extra,
    )
    # analysis: versions, edges, components, cycle search; explain: the write-up
    t_done = time.monotonic()
    stats["explain_s"] = round(t_done - t_explain, 6)
    stats["time_s"] = round(t_done - t0, 6)
    if graph_out:
        _write_graph(graph_out, result)
    return result


def check_registers(
    history: History,
    *,
    model_name: str = "cas-register",
    spec: Any = None,
    graph_out: str | None = None,
    timeout: float | None = 60.0,
) -> Result:
    """Check a unique-value read/write/cas register history for linearizability.

    The version order of each key is inferred from cas chains, reads and real
    time; a dependency cycle proves a violation. When no cycle exists but some
    key's version order is not fully determined, that key is decided by the
    linearizability search. ``details["decided_by"]`` names the path per key.

    Args:
        history: a paired history of ``read``/``write``/``cas`` ops with keys.
        model_name: ``register`` or ``cas-register`` (used for the fallback spec).
        spec: the sequential spec for the fallback; default ``get_spec(model_name)``.
        graph_out: write the anomaly cycles to this ``.dot`` or ``.svg`` file.
        timeout: seconds for the fallback search (None: no limit).
    """
    from .registers import check_registers as _check

    _check_graph_out(graph_out)
    result = _check(history, model_name=model_name, spec=spec, timeout=timeout)
    if graph_out:
        _write_graph(graph_out, result)
    return result


def check_history(
    history: History, model_name: str, spec: Any = None, graph_out: str | None = None,
    *, consistency_model: str = "strict-serializable",
) -> Result:
    """The CLI's entry point: check ``history`` against ``model_name``.

    Args:
        history: a validated, paired history.
        model_name: ``list-append``, ``register`` or ``cas-register``.
        spec: sequential spec for the register fallback (default from the name).
        graph_out: path of a ``.dot`` or ``.svg`` file for the anomaly cycles.
        consistency_model: list-append only: the model the verdict is about.

    Raises:
        ConfigError: an unknown model name or graph_out suffix.
    """
    if model_name == "list-append":
        init = spec.init() if spec is not None and hasattr(spec, "init") else None
        if init:
            raise ConfigError(
                "the graph checker's list-append analysis assumes every list starts empty; "
                f"got initial state {init!r}: drop --init, or use the linearizability search"
            )
        return check_list_append(
            history, graph_out=graph_out, consistency_model=consistency_model
        )
    if model_name in ("register", "cas-register"):
        return check_registers(history, model_name=model_name, spec=spec, graph_out=graph_out)
    raise ConfigError(
        f"the graph checker has no model {model_name!r}; it checks: {', '.join(MODELS)}"
    )


def _check_graph_out(path: str | None) -> None:
    if path and not (path.endswith(".dot") or path.endswith(".svg")):
        raise ConfigError(f"graph_out {path!r} must end in .dot (Graphviz text) or .svg")


def _write_graph(path: str, result: Result) -> None:
    from .render import write_graph

    write_graph(path, result)
