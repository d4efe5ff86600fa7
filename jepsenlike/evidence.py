"""No vacuous verdicts: did the run observe what its checker needs, in a shape it can check?

Theory of operation
-------------------
A checker finds anomalies among the ops the system acknowledged. A run in
which the system acknowledged none of a kind the checker reasons about passes
every checker and proves nothing: a set run with 0 acknowledged adds has
"all 0 acknowledged adds present in the final reads". So each built-in
workload names the acknowledged ops it needs (:func:`missing_evidence`), and a
run that lacks one is ``unknown`` with that reason:

* ``register`` -- an ok ``write`` (or ok ``cas``) and an ok ``read``;
* ``set`` -- an ok ``add`` and an ok final read (the set checker itself makes a
  key without a final read ``unknown``);
* ``append`` -- an ok ``txn`` with an ``append`` micro-op and an ok ``txn`` with
  an ``r`` micro-op.

A read whose value has the wrong shape for the workload (:func:`shape_errors`)
-- for ``set``, an ok read that is not a list; for ``append``, an ok txn whose
value is not the list of its micro-ops, or whose ``r`` returned something that is
not a list -- is an error *of the system under test*, and the verdict is
**invalid** with the reason ``system returned a read of the wrong shape: ...``.
Why invalid and not unknown: an ``ok`` completion is the system's claim that the
op took effect with that result; a result no state of a set or list can give is
as wrong as a read of a value nobody wrote, which the checkers already call
invalid. The system declared it supports the workload (or did not declare and
answered ``ok``), so the harness has no doubt to resolve, only a wrong answer to
report. A harness-side cause is excluded for the built-in clients, which pass
values through unchanged.

``null`` for a read of a set or of a list is *not* a wrong shape: it is the
KV API's answer for a key nothing was written to (``jepsenlike.models.kv``),
the empty set or list; if adds to that key had been acknowledged before the
read began, the set checker reports the read as stale.

:func:`judge` runs both for a workload (plugins may define ``missing_evidence``
and ``shape_errors`` methods with the same meaning) and returns
``(verdict, reason)`` pairs for the runner to merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.history import History

_SHOWN = 3


def _oks(history: History, f: str) -> Iterable[tuple[Any, Any]]:
    for inv, comp in history.pairs():
        if inv.f == f and comp is not None and comp.type == "ok":
            yield inv, comp


def _wrong(what: str, value: Any, where: str) -> str:
    text = "null" if value is None else f"{type(value).__name__} {value!r}"[:60]
    return f"system returned a read of the wrong shape: {text} where {what} was expected ({where})"


def register_missing(history: History) -> list[str]:
    out = []
    if not any(True for _ in _oks(history, "write")) and not any(True for _ in _oks(history, "cas")):
        out.append("no write (or cas) was acknowledged: nothing was checked against a written value")
    if not any(True for _ in _oks(history, "read")):
        out.append("no read was acknowledged: no value was observed to check")
    return out


def set_missing(history: History, final_from_ns: int | None = None) -> list[str]:
    out = []
    if not any(True for _ in _oks(history, "add")):
        out.append("no add was acknowledged: no element can be lost or kept, the run proves nothing")
    if not any(final_from_ns is None or inv.time >= final_from_ns for inv, _ in _oks(history, "read")):
        out.append("no final read was acknowledged: the sets were never read back")
    return out


def set_shape_errors(history: History) -> list[str]:
    out = []
    for inv, comp in _oks(history, "read"):
        if comp.value is not None and not isinstance(comp.value, list):
            out.append(_wrong("a list", comp.value, f"read of set {inv.key!r} by process {inv.process}"))
    return out


def _mops(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def append_missing(history: History) -> list[str]:
    appends = reads = False
    for _inv, comp in _oks(history, "txn"):
        for mop in _mops(comp.value):
            if isinstance(mop, list) and mop:
                appends = appends or mop[0] == "append"
                reads = reads or mop[0] == "r"
    out = []
    if not appends:
        out.append("no transaction with an append was acknowledged: nothing can be lost or reordered")
    if not reads:
        out.append("no transaction with a read was acknowledged: no list was observed to check")
    return out


def append_shape_errors(history: History) -> list[str]:
    out = []
    for inv, comp in _oks(history, "txn"):
        where = f"txn by process {inv.process}"
        asked = _mops(inv.value)
        if not isinstance(comp.value, list) or len(comp.value) != len(asked):
            out.append(_wrong(f"the list of its {len(asked)} micro-ops", comp.value, where))
            continue
        for mop, want in zip(comp.value, asked, strict=True):
            if not (isinstance(mop, list) and len(mop) == 3 and list(mop[:2]) == list(want[:2])):
                out.append(_wrong(f"the micro-op {want!r}", mop, where))
            elif mop[0] == "r" and mop[2] is not None and not isinstance(mop[2], list):
                out.append(_wrong("a list", mop[2], f"read of {mop[1]!r} in {where}"))
    return out


def judge(workload: Any, history: History, test: dict[str, Any] | None) -> list[tuple[Any, str]]:
    """``(False, reason)`` per kind of wrong-shape read, then ``("unknown", reason)`` per missing kind."""
    out: list[tuple[Any, str]] = []
    shape = getattr(workload, "shape_errors", None)
    errors = list(shape(history)) if callable(shape) else []
    if errors:
        more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
        out.append((False, "; ".join(errors[:_SHOWN]) + more))
    missing = getattr(workload, "missing_evidence", None)
    for reason in (missing(history, test) if callable(missing) else []):
        out.append((UNKNOWN, f"vacuous run: {reason}"))
    return out
