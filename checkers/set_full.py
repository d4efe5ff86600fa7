"""The set checker: lost, unexpected and stale elements of grow-only sets.

Theory of operation
-------------------
The history holds ``add`` ops (value: one element, unique in the run) and
``read`` ops (completion value: the elements the set held) on keys, one set
per key. For each key:

* the **final read** is the last ``ok`` read of the key -- when
  ``final_from_ns`` is given, the last one invoked at or after it (the final
  phase, after every fault was healed);
* an element is **lost** if its add completed ``ok`` but the final read
  lacks it;
* an element is **unexpected** if a read returned it and no add of it was
  ever invoked;
* an element is **recovered** if its add was indefinite (``info`` or never
  completed) and the final read has it -- allowed, reported for interest;
* an ok read is **stale** for an element whose add completed ``ok`` before
  the read was invoked but which the read lacks (a linearizability violation
  for sets, also what a lost element looks like before the end);
* an element appearing twice in one read is **duplicated**.

Verdict: invalid if anything is lost, unexpected, stale or duplicated;
unknown if some key with acknowledged adds has no final read; else valid.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from jepsenlike.checkers.result import UNKNOWN, Result
from jepsenlike.history import History

_SAMPLE = 10


def _k(key: Any) -> str:
    return key if isinstance(key, str) else repr(key)


def check_set(history: History, final_from_ns: int | None = None) -> Result:
    """Check a set history; see the module docstring for the rules."""
    attempted: dict[str, set[Any]] = {}
    acked: dict[str, dict[Any, int]] = {}  # element -> completion time
    indefinite: dict[str, set[Any]] = {}
    reads: dict[str, list[tuple[int, list[Any]]]] = {}
    for inv, comp in history.pairs():
        key = _k(inv.key)
        if inv.f == "add":
            attempted.setdefault(key, set()).add(inv.value)
            if comp is not None and comp.type == "ok":
                acked.setdefault(key, {})[inv.value] = comp.time
            elif comp is None or comp.type == "info":
                indefinite.setdefault(key, set()).add(inv.value)
        elif inv.f == "read" and comp is not None and comp.type == "ok":
            reads.setdefault(key, []).append((inv.time, list(comp.value or [])))

    per_key: dict[str, dict[str, Any]] = {}
    anomalies: dict[str, int] = Counter()
    missing_final: list[str] = []
    all_attempted: set[Any] = set().union(*attempted.values()) if attempted else set()
    for key in sorted(set(attempted) | set(reads)):
        key_reads = reads.get(key, [])
        finals = [r for r in key_reads if final_from_ns is None or r[0] >= final_from_ns]
        k_acked = acked.get(key, {})
        entry: dict[str, Any] = {"attempted": len(attempted.get(key, ())), "acknowledged": len(k_acked)}
        # Stale and duplicated, over every read (sorted acks make "acked before t" a prefix).
        by_time = sorted(k_acked.items(), key=lambda kv: kv[1])
        stale: set[Any] = set()
        duplicated: set[Any] = set()
        for t, elems in key_reads:
            present = set(elems)
            duplicated.update(e for e, c in Counter(map(_hashable, elems)).items() if c > 1)
            for e, done in by_time:
                if done >= t:
                    break
                if e not in present:
                    stale.add(e)
        unexpected = {e for _, elems in key_reads for e in elems if _hashable(e) not in all_attempted}
        if finals:
            final = set(map(_hashable, finals[-1][1]))
            lost = {e for e in k_acked if e not in final}
            recovered = {e for e in indefinite.get(key, ()) if e in final}
            entry.update(final_read_size=len(final), lost=_sample(lost), lost_count=len(lost),
                         recovered_count=len(recovered))
            anomalies["lost"] += len(lost)
        else:
            entry["final_read"] = None
            if k_acked:
                missing_final.append(key)
        entry.update(unexpected=_sample(unexpected), unexpected_count=len(unexpected),
                     stale_count=len(stale), stale=_sample(stale),
                     duplicated_count=len(duplicated))
        anomalies["unexpected"] += len(unexpected)
        anomalies["stale"] += len(stale)
        anomalies["duplicated"] += len(duplicated)
        per_key[key] = entry

    found = {name: n for name, n in anomalies.items() if n}
    details: dict[str, Any] = {"anomalies": found, "keys": per_key}
    if found:
        parts = [f"{n} {name}" for name, n in found.items()]
        worst = next(k for k, e in per_key.items() if any(e.get(f"{a}_count") for a in found))
        return Result(False, details, f"set anomalies: {', '.join(parts)} (e.g. key {worst}: "
                      f"lost {per_key[worst].get('lost', [])}, unexpected {per_key[worst]['unexpected']}, "
                      f"stale {per_key[worst]['stale']})")
    if missing_final:
        details["keys_without_final_read"] = missing_final
        return Result(UNKNOWN, details, f"no final read of key(s) {', '.join(missing_final)}")
    total = sum(len(v) for v in acked.values())
    return Result(True, details, f"all {total} acknowledged adds present in the final reads")


def _hashable(e: Any) -> Any:
    return tuple(e) if isinstance(e, list) else e


def _sample(elems: set[Any]) -> list[Any]:
    return sorted(elems, key=repr)[:_SAMPLE]
