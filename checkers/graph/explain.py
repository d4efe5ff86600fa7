"""Explanations: per-edge text, cycle write-ups, consistency models, the Result.

Theory of operation
-------------------
A cycle is a list of steps ``(a, b, relation)``. Its transactions are named
T1, T2, ... in cycle order, and each step gets one sentence saying why ``a``
must precede ``b`` ("T2 read key 'x' = [1, 3], observing T1's append of 3").
Data relations are explained by the analysis that inferred them (it knows the
keys and versions); process and real-time steps are explained here.

Consistency models. Each anomaly rules out the weakest models that proscribe
it, and with them every stronger model:

======================  ===================================================
anomaly                 weakest models ruled out
======================  ===================================================
G0, duplicate-elements, read-uncommitted
garbage-read
G1a, G1b, G1c,          read-committed
incompatible-order,
dirty-update,
future-read
lost-update             repeatable-read
G-single, G2,           repeatable-read (all our rw edges are item
G-nonadjacent           anti-dependencies, so G2 is Adya's G2-item)
G-single, G-nonadjacent snapshot-isolation (G2 with adjacent rw edges, i.e.
                        write skew, is allowed by snapshot isolation)
internal                snapshot-isolation (not repeatable-read: Elle follows
                        Cerone et al., who put it in SI and serializability)
X-process               strong-session-serializable
X-realtime, lost-append strict-serializable
======================  ===================================================

The mapping follows Elle's ``elle.consistency-model`` (its anomaly
implications and the anomalies each model proscribes) restricted to the models
named here; ``not`` / ``also_not`` in the summary are Elle's ``:not`` (the
weakest models ruled out) and ``:also-not`` (the stronger ones with them).
An anomaly that the chosen model permits is reported but does not make the
verdict invalid (``permitted`` lists them).

The models are ordered read-uncommitted < read-committed < {repeatable-read, snapshot-isolation}
< serializable < strong-session-serializable < strict-serializable. For
single-object operations (registers) strict serializability is
linearizability, so the register checker adds ``linearizable`` at the top.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jepsenlike.checkers.result import Result
from jepsenlike.errors import ConfigError

from .core import PROCESS, REALTIME, REL_NAMES, RW, Txn

MAX_RECORDS_PER_TYPE = 50

MODELS: tuple[str, ...] = (
    "read-uncommitted",
    "read-committed",
    "repeatable-read",
    "snapshot-isolation",
    "serializable",
    "strong-session-serializable",
    "strict-serializable",
)

# models that imply each model (itself included)
_STRONGER: dict[str, frozenset[str]] = {
    "read-uncommitted": frozenset(MODELS),
    "read-committed": frozenset(MODELS[1:]),
    "repeatable-read": frozenset(
        {"repeatable-read", "serializable", "strong-session-serializable", "strict-serializable"}
    ),
    "snapshot-isolation": frozenset(
        {"snapshot-isolation", "serializable", "strong-session-serializable", "strict-serializable"}
    ),
    "serializable": frozenset({"serializable", "strong-session-serializable", "strict-serializable"}),
    "strong-session-serializable": frozenset({"strong-session-serializable", "strict-serializable"}),
    "strict-serializable": frozenset({"strict-serializable"}),
}

_DIRECT: dict[str, tuple[str, ...]] = {
    "G0": ("read-uncommitted",),
    "duplicate-elements": ("read-uncommitted",),
    "garbage-read": ("read-uncommitted",),
    # Elle: incompatible-order implies G1a (two committed reads from different timelines)
    "incompatible-order": ("read-committed",),
    "G1a": ("read-committed",),
    # Elle: a dirty update implies G1a; a future read is a trivial G1c
    "dirty-update": ("read-committed",),
    "future-read": ("read-committed",),
    # Elle: lost update is G2-item (and proscribed by cursor stability)
    "lost-update": ("repeatable-read",),
    "G1b": ("read-committed",),
    "G1c": ("read-committed",),
    # Elle: internal consistency is required by serializability and snapshot
    # isolation (Cerone et al.), not by the Adya read levels
    "internal": ("snapshot-isolation",),
    "G-single": ("snapshot-isolation", "repeatable-read"),
    # every rw edge here is an item anti-dependency, so G2 is Adya's G2-item
    "G2": ("repeatable-read",),
    "G-nonadjacent": ("snapshot-isolation", "repeatable-read"),
    "lost-append": ("strict-serializable",),
}


def ruled_out_by(anomaly: str) -> set[str]:
    """Every model the anomaly ``anomaly`` rules out."""
    if anomaly.endswith("-realtime"):
        direct: tuple[str, ...] = ("strict-serializable",)
    elif anomaly.endswith("-process"):
        direct = ("strong-session-serializable",)
    else:
        direct = _DIRECT.get(anomaly, ("read-uncommitted",))
    out: set[str] = set()
    for m in direct:
        out |= _STRONGER[m]
    return out


def consistency_summary(anomaly_types: set[str], *, linearizable: bool = False) -> dict[str, Any]:
    """Which models the anomalies rule out, strongest last."""
    models = MODELS + (("linearizable",) if linearizable else ())
    out: set[str] = set()
    for a in anomaly_types:
        out |= ruled_out_by(a)
    if linearizable and out:
        out.add("linearizable")
    ruled = [m for m in models if m in out]
    # linearizable sits above strict-serializable: it is never the weakest unless alone
    weakest = [
        m for m in ruled
        if m in _STRONGER
        and not any(w in out and m in _STRONGER[w] and w != m for w in MODELS)
    ] or ruled[:1]
    return {
        "ruled_out": ruled,
        "weakest_ruled_out": weakest,
        "not_ruled_out": [m for m in models if m not in out],
        # Elle's names: the weakest models ruled out, and the stronger ones with them
        "not": weakest,
        "also_not": [m for m in ruled if m not in weakest],
    }


def check_model_name(name: str, *, linearizable: bool = False) -> None:
    known = MODELS + (("linearizable",) if linearizable else ())
    if name not in known:
        raise ConfigError(f"unknown consistency model {name!r}; known: {', '.join(known)}")


def nonadjacent_rw(steps: list[tuple[int, int, int]]) -> bool:
    """True if the cycle has >= 2 rw edges and no two of them are adjacent."""
    rels = [r for _, _, r in steps]
    n = len(rels)
    if sum(1 for r in rels if r == RW) < 2:
        return False
    return not any(rels[i] == RW and rels[(i + 1) % n] == RW for i in range(n))


DataExplainer = Callable[[Txn, Txn, int, dict[int, str]], str]
"""``(a, b, relation, names) -> why a precedes b``; ``names`` maps txn ids in the cycle to T1, T2, ..."""


def explain_order(a: Txn, b: Txn, rel: int, na: str, nb: str) -> str:
    if rel == PROCESS:
        return f"{na} and {nb} ran on process {a.process!r} and {na} completed before {nb} began"
    return (
        f"{na} completed (op {a.complete}) before {nb} began (op {b.invoke}), "
        "so in real time it comes first"
    )


def _brief(t: Txn) -> str:
    if t.f == "txn":
        body = repr([list(m) for m in t.mops])
    else:
        f, k, v = t.mops[0]
        body = f"{t.f} key {k!r} value {list(v) if isinstance(v, tuple) else v!r}"
    if len(body) > 200:
        body = body[:197] + "..."
    return f"op {t.index} (process {t.process!r}, {t.type}): {body}"


def cycle_record(
    name: str, steps: list[tuple[int, int, int]], txns: list[Txn], data: DataExplainer
) -> dict[str, Any]:
    """A cycle anomaly with its transactions and one explanation per edge."""
    order: list[int] = [a for a, _, _ in steps]
    names = {tid: f"T{i + 1}" for i, tid in enumerate(order)}
    lines = []
    out_steps = []
    for a, b, r in steps:
        ta, tb = txns[a], txns[b]
        na, nb = names[a], names[b]
        if r in (PROCESS, REALTIME):
            why = explain_order(ta, tb, r, na, nb)
        else:
            why = data(ta, tb, r, names)
        out_steps.append({"from": ta.index, "to": tb.index, "rel": REL_NAMES[r], "why": why})
        lines.append(f"{na} < {nb} because {why}")
    let = "; ".join(f"{names[t]} = {_brief(txns[t])}" for t in order)
    text = (
        f"Let {let}. Then: "
        + "; ".join(lines)
        + f". So {names[order[0]]} < {names[order[0]]}: a contradiction."
    )
    rec: dict[str, Any] = {
        "type": name,
        "ops": [txns[t].index for t in order],
        "txns": [{"name": names[t], **txns[t].to_dict()} for t in order],
        "steps": out_steps,
        "explanation": text,
    }
    if name.startswith("G2") and nonadjacent_rw(steps):
        rec["nonadjacent"] = True
    return rec


def build_result(
    model: str,
    anomalies: list[dict[str, Any]],
    counts: dict[str, int],
    *,
    consistency_model: str,
    linearizable: bool = False,
    stats: dict[str, Any],
    extra: dict[str, Any] | None = None,
    valid: Any = None,
    headline: str | None = None,
    ruled_out: list[str] | None = None,
) -> Result:
    """Assemble the checker's Result from anomaly records.

    By default the verdict and the models ruled out follow from the anomaly
    types; ``valid``, ``ruled_out`` and ``headline`` (the explanation's first
    line, after the model name) override them.
    """
    types = set(counts)
    for a in anomalies:
        if a.get("nonadjacent"):  # a G2 cycle that is also G-nonadjacent (same variant)
            types.add("G-nonadjacent" + a["type"][len("G2"):])
    if ruled_out is None:
        summary = consistency_summary(types, linearizable=linearizable)
    else:
        models = MODELS + (("linearizable",) if linearizable else ())
        summary = {
            "ruled_out": list(ruled_out),
            "weakest_ruled_out": list(ruled_out),
            "not_ruled_out": [m for m in models if m not in ruled_out] if not ruled_out else [],
            "not": list(ruled_out),
            "also_not": [],
        }
    summary["permitted"] = sorted(
        a for a in types if consistency_model not in ruled_out_by(a)
    ) if ruled_out is None else []
    if valid is None:
        valid = consistency_model not in summary["ruled_out"]
    by_type: dict[str, list[dict[str, Any]]] = {}
    truncated = False
    for a in anomalies:
        records = by_type.setdefault(a["type"], [])
        if len(records) < MAX_RECORDS_PER_TYPE:
            records.append(a)
        else:
            truncated = True
    details: dict[str, Any] = {
        "checker": "graph",
        "model": model,
        "consistency_model": consistency_model,
        "anomaly_types": sorted(counts),
        "anomaly_counts": dict(sorted(counts.items())),
        "anomalies": by_type,
        "consistency": summary,
        "stats": stats,
    }
    if truncated:
        details["anomalies_truncated"] = (
            f"at most {MAX_RECORDS_PER_TYPE} anomalies of each type are listed; "
            "anomaly_counts has the totals"
        )
    if extra:
        details.update(extra)
    parts = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(counts.items()))
    if headline is not None:
        lines = [f"{model}: {headline}" + (f": found {parts}." if counts else "")]
    elif not counts:
        lines = [
            f"{model}: no anomalies in {stats.get('ops', 0)} ops; consistent with "
            f"{consistency_model} as far as this checker can tell"
        ]
    else:
        weakest = summary["weakest_ruled_out"]
        stronger = [m for m in summary["ruled_out"] if m not in weakest]
        lines = [
            f"{model}: found {parts}. Not {', nor '.join(weakest)}"
            + (f" (hence not {', '.join(stronger)} either)" if stronger else "")
            + "."
        ]
        if valid is True:
            lines[0] += (
                f" The chosen model, {consistency_model}, permits "
                f"{', '.join(summary['permitted'])}, so the verdict is valid."
            )
    if counts:
        shown: set[str] = set()
        for a in anomalies:
            if a["type"] in shown:
                continue
            shown.add(a["type"])
            lines.append(f"{a['type']}: {a['explanation']}")
    return Result(valid, details, "\n".join(lines))
