"""The replicated key-value state machine shared by the Raft and Paxos nodes.

Theory of operation
-------------------
A :class:`KVStore` maps keys to values. It is driven only by :meth:`KVStore.apply`,
one operation at a time in log order, and is deterministic: the same sequence of
operations gives the same results and the same state on every replica, which is
what state machine replication needs. Nothing here reads a clock or a random
source, and the state is plain JSON, so :meth:`snapshot` / :meth:`restore` round
trip through a file or a message.

Operations (``op`` is ``{"f": ..., "key": ..., "value": ...}``):

* ``read``   -> ``ok`` with the value, ``None`` for a missing key.
* ``write``  -> ``ok``; sets the key.
* ``cas``    -> value ``[old, new]``: ``ok`` and sets ``new`` when the current value
  equals ``old``; otherwise a definite ``fail`` with ``cas-mismatch``.
* ``append`` -> appends ``value`` to the list at ``key`` (a missing key is ``[]``);
  ``fail`` with ``not-a-list`` when the key holds something else.
* ``txn``    -> value is a list of micro-ops ``["r", k, None]``, ``["w", k, v]``,
  ``["append", k, v]``, applied atomically; returns the micro-ops with the values
  read filled in. If any micro-op fails (``not-a-list``) nothing is applied.

Results are ``{"type": "ok", "value": ...}`` or ``{"type": "fail", "error": ...}``.
Malformed ops also answer ``fail`` (``bad-op``): they change nothing, and every
replica rejects them the same way.

Values read from the store are deep copies (via JSON) so callers can never alias
replica state.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["KVStore", "OPS", "validate_op"]

OPS = ("read", "write", "cas", "append", "txn")
MICRO_OPS = ("r", "w", "append")


def _key(k: Any) -> str:
    # JSON objects only have string keys; normalise so that 1 and "1" are one
    # key on every replica and after a snapshot round trip alike.
    return k if isinstance(k, str) else json.dumps(k, sort_keys=True)


def validate_op(op: Any) -> str | None:
    """Return why ``op`` is malformed, or ``None`` if it is well formed."""
    if not isinstance(op, dict):
        return f"op must be an object, got {type(op).__name__}"
    f = op.get("f")
    if f not in OPS:
        return f"unknown f {f!r}; expected one of {', '.join(OPS)}"
    if f == "cas":
        v = op.get("value")
        if not (isinstance(v, list) and len(v) == 2):
            return f"cas value must be [old, new], got {v!r}"
    if f == "txn":
        v = op.get("value")
        if not isinstance(v, list):
            return f"txn value must be a list of micro-ops, got {v!r}"
        for m in v:
            if not (isinstance(m, list) and len(m) == 3 and m[0] in MICRO_OPS):
                return f"bad micro-op {m!r}; expected [\"r\"|\"w\"|\"append\", key, value]"
    return None


class KVStore:
    """Deterministic key-value state machine."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}

    # -- the state machine ------------------------------------------------

    def apply(self, op: dict[str, Any]) -> dict[str, Any]:
        """Apply one operation and return its result (see the module docstring)."""
        problem = validate_op(op)
        if problem is not None:
            return {"type": "fail", "error": "bad-op", "detail": problem}
        f = op["f"]
        key = _key(op.get("key"))
        value = op.get("value")
        data = self.data
        if f == "read":
            return {"type": "ok", "value": copy.deepcopy(data.get(key))}
        if f == "write":
            data[key] = copy.deepcopy(value)
            return {"type": "ok", "value": value}
        if f == "cas":
            old, new = value
            if data.get(key) != old:
                return {"type": "fail", "error": "cas-mismatch"}
            data[key] = copy.deepcopy(new)
            return {"type": "ok", "value": value}
        if f == "append":
            cur = data.get(key)
            if cur is None:
                data[key] = [copy.deepcopy(value)]
            elif isinstance(cur, list):
                # In place: stored values are never shared (every way in or out
                # copies), and copying would make n appends to one key cost O(n^2).
                cur.append(copy.deepcopy(value))
            else:
                return {"type": "fail", "error": "not-a-list"}
            return {"type": "ok", "value": value}
        return self._txn(value)

    def _txn(self, micro_ops: list[list[Any]]) -> dict[str, Any]:
        # Stage writes in an overlay so that a failing micro-op leaves no trace.
        overlay: dict[str, Any] = {}
        missing = object()
        out: list[list[Any]] = []
        for f, k, v in micro_ops:
            key = _key(k)
            cur = overlay.get(key, missing)
            if cur is missing:
                cur = self.data.get(key)
            if f == "r":
                out.append([f, k, copy.deepcopy(cur)])
            elif f == "w":
                overlay[key] = copy.deepcopy(v)
                out.append([f, k, v])
            else:
                base = [] if cur is None else cur
                if not isinstance(base, list):
                    return {"type": "fail", "error": "not-a-list"}
                overlay[key] = [*base, copy.deepcopy(v)]
                out.append([f, k, v])
        self.data.update(overlay)
        return {"type": "ok", "value": out}

    def read(self, key: Any) -> Any:
        """A read that bypasses the log; the caller is responsible for its freshness."""
        return copy.deepcopy(self.data.get(_key(key)))

    # -- snapshots ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the whole state."""
        return {"data": copy.deepcopy(self.data)}

    @classmethod
    def restore(cls, snap: dict[str, Any] | None) -> KVStore:
        """Rebuild a store from :meth:`snapshot` output (``None`` gives an empty store)."""
        if not snap:
            return cls()
        return cls(copy.deepcopy(snap["data"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KVStore) and self.data == other.data

    def __repr__(self) -> str:
        return f"KVStore({self.data!r})"
