"""The replicated state machine of one shardkv group: shards, locks and 2PC records.

Theory of operation
-------------------
Every group of the sharded store is one Raft log; :class:`ShardState` is what that
log drives, one command at a time, deterministically (no clocks, no randomness), and
its state is plain JSON so a snapshot round-trips through a file.

Partitioning: a key belongs to shard ``shard_of(key, shards)`` -- the key itself mod
``shards`` for integer keys, CRC-32 of its text otherwise -- and shard ``s`` starts in
group ``s mod groups``. Each shard a group has ever held is a record ``{"own": bool,
"epoch": e, "to": g, "data": {key: value}}``; a shard moves by a replicated
``shard-out`` at its owner (epoch + 1, fenced: the old owner refuses it from then on)
and a replicated ``shard-in`` at the new owner with the same epoch (ignored when the
new owner already holds that epoch or a later one).

Concurrency control: strict two-phase locking, no-wait. A transaction's micro-ops on
this group either run at once (``txn1``, the whole transaction lives here) or are
*prepared* (``prepare``): read locks on the keys it reads, write locks on the keys it
writes, taken in the log, so every replica holds the same locks; a lock already held
in a conflicting mode refuses the prepare (``locked``; no waiting, so no deadlock).
The reads are answered at prepare time, and since the locks are held until the
``commit`` or ``abort`` record, the values read cannot change before the transaction
commits. ``commit`` applies the writes prepared and releases the locks; ``abort``
releases them. Both are idempotent and an abort is remembered, so a prepare that
arrives after its transaction aborted is refused.

Decisions: the coordinator group of a transaction records the outcome with
``decide``: the first decision recorded for a transaction wins, and every later
``decide`` answers it. The coordinator proposes ``commit`` once every participant
prepared; a participant that waited too long for the outcome proposes ``abort``: both
learn the one recorded outcome, so a coordinator crash never leaves a transaction
half-applied.

Seeded bugs act here (see :mod:`jepsenlike.models.shardkv.bugs`): ``no-read-locks``
(reads take no lock), ``read-committed`` (reads take no lock and ignore write locks),
``early-lock-release`` (a prepare applies its writes and drops its locks at once) and
``stale-shard-map`` (a group that moved a shard out goes on serving it).
"""

from __future__ import annotations

import copy
import json
import re
import zlib
from typing import Any

__all__ = ["MICRO_OPS", "ShardState", "initial_owner", "shard_of"]

MICRO_OPS = ("r", "w", "append")
_INT = re.compile(r"-?[0-9]+")


def _key(k: Any) -> str:
    return k if isinstance(k, str) else json.dumps(k, sort_keys=True)


def shard_of(key: Any, shards: int) -> int:
    """The shard of ``key``: an integer key mod ``shards``, else CRC-32 of its text.

    Keys are compared by their text (``1`` and ``"1"`` are one key, as in the KV store),
    so the shard is computed from the text too.
    """
    kk = _key(key)
    if _INT.fullmatch(kk):
        return int(kk) % shards
    return zlib.crc32(kk.encode()) % shards


def initial_owner(shard: int, groups: int) -> int:
    """The group that holds ``shard`` when the cluster starts."""
    return shard % groups


def _ok(value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"type": "ok", "value": value, **extra}


def _fail(error: str, **extra: Any) -> dict[str, Any]:
    return {"type": "fail", "error": error, **extra}


class ShardState:
    """One group's shards, locks, prepared transactions and recorded decisions."""

    def __init__(self, group: int, groups: int, shards: int, bugs: frozenset[str] = frozenset()) -> None:
        self.group, self.groups, self.shards = group, groups, shards
        self.bugs = bugs
        self.shard: dict[str, dict[str, Any]] = {
            str(s): {"own": True, "epoch": 0, "to": None, "data": {}, "handed": True}
            for s in range(shards) if initial_owner(s, groups) == group
        }
        # key -> {"w": txid or None, "r": [txids]}
        self.locks: dict[str, dict[str, Any]] = {}
        # txid -> {"ops": micro-ops, "coord": group, "reads": answers,
        #          "undo": {key: old value} (early-lock-release only)}
        self.prepared: dict[str, dict[str, Any]] = {}
        self.done: dict[str, str] = {}  # txid -> "commit" | "abort" (as a participant)
        self.decisions: dict[str, str] = {}  # txid -> "commit" | "abort" (as coordinator group)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps({
            "group": self.group, "groups": self.groups, "shards": self.shards,
            "shard": self.shard, "locks": self.locks, "prepared": self.prepared,
            "done": self.done, "decisions": self.decisions,
        }))

    @classmethod
    def restore(cls, data: dict[str, Any] | None, group: int, groups: int, shards: int,
                bugs: frozenset[str] = frozenset()) -> ShardState:
        st = cls(group, groups, shards, bugs)
        if data and "shard" in data:
            if (data["group"], data["groups"], data["shards"]) != (group, groups, shards):
                raise ValueError(
                    f"snapshot is of group {data['group']} of {data['groups']} with {data['shards']} "
                    f"shards, this node is group {group} of {groups} with {shards}; start it on a "
                    "fresh data dir")
            st.shard, st.locks, st.prepared = data["shard"], data["locks"], data["prepared"]
            st.done, st.decisions = data["done"], data["decisions"]
        return st

    # ------------------------------------------------------------------ ownership

    def owner_hint(self, shard: int) -> tuple[int | None, int]:
        """(group believed to own ``shard``, epoch) as this group knows it."""
        rec = self.shard.get(str(shard))
        if rec is None:
            return None, -1
        if rec["own"]:
            return self.group, rec["epoch"]
        return rec["to"], rec["epoch"]

    def _serves(self, shard: int) -> bool:
        rec = self.shard.get(str(shard))
        if rec is None:
            return False
        # BUG stale-shard-map: a shard moved out is still served from the old copy.
        return rec["own"] or "stale-shard-map" in self.bugs

    def _wrong_group(self, mops: list[Any]) -> dict[str, Any] | None:
        for m in mops:
            s = shard_of(m[1], self.shards)
            if not self._serves(s):
                g, e = self.owner_hint(s)
                return _fail("wrong-group", shard=s, owner=g, epoch=e)
        return None

    def _data(self, key: Any) -> dict[str, Any]:
        return self.shard[str(shard_of(key, self.shards))]["data"]

    def get(self, key: Any) -> Any:
        return copy.deepcopy(self._data(key).get(_key(key)))

    # ------------------------------------------------------------------ locks

    def _conflict(self, tx: str | None, mops: list[Any]) -> str | None:
        """A key whose lock refuses ``mops`` of transaction ``tx`` (None: no conflict)."""
        for f, k, _ in mops:
            lk = self.locks.get(_key(k))
            if lk is None:
                continue
            writer = lk["w"]
            readers = [r for r in lk["r"] if r != tx]
            if f == "r":
                if "read-committed" in self.bugs:
                    continue  # BUG: reads ignore write locks, see the last committed value
                if writer is not None and writer != tx:
                    return _key(k)
            elif (writer is not None and writer != tx) or readers:
                return _key(k)
        return None

    def _take_locks(self, tx: str, mops: list[Any]) -> None:
        for f, k, _ in mops:
            lk = self.locks.setdefault(_key(k), {"w": None, "r": []})
            if f == "r":
                if self.bugs & {"no-read-locks", "read-committed"}:
                    continue  # BUG: reads are not locked
                if tx not in lk["r"]:
                    lk["r"].append(tx)
            else:
                lk["w"] = tx
            if lk["w"] is None and not lk["r"]:
                del self.locks[_key(k)]

    def _release(self, tx: str) -> None:
        for k in list(self.locks):
            lk = self.locks[k]
            if lk["w"] == tx:
                lk["w"] = None
            if tx in lk["r"]:
                lk["r"].remove(tx)
            if lk["w"] is None and not lk["r"]:
                del self.locks[k]

    # ------------------------------------------------------------------ values

    def _run(self, mops: list[Any], write: bool) -> tuple[list[Any], dict[str, Any]]:
        """Run ``mops`` in order over this group's data; return (results, {key: value after}).

        With ``write`` the values are stored; otherwise reads see the transaction's own
        earlier writes but nothing is stored. Raises ValueError for an append to a
        non-list.
        """
        after: dict[str, Any] = {}
        out = []
        for f, k, v in mops:
            kk = _key(k)
            cur = after[kk] if kk in after else self._data(k).get(kk)
            if f == "r":
                out.append([f, k, copy.deepcopy(cur)])
                continue
            if f == "w":
                new = copy.deepcopy(v)
            else:
                if cur is None:
                    cur = []
                if not isinstance(cur, list):
                    raise ValueError(f"key {k!r} holds {type(cur).__name__}, not a list")
                new = [*cur, v]
            after[kk] = new
            out.append([f, k, v])
        if write:
            for m in mops:
                kk = _key(m[1])
                if kk in after:
                    self._data(m[1])[kk] = after[kk]
        return out, after

    # ------------------------------------------------------------------ apply

    def apply(self, op: dict[str, Any]) -> dict[str, Any]:
        """Apply one log command; returns the result for whoever proposed it."""
        f = op.get("f")
        handler = getattr(self, "_op_" + str(f).replace("-", "_"), None)
        if handler is None:
            return _fail("bad-op", detail=f"unknown group command {f!r}")
        return handler(op)

    def _op_txn1(self, op: dict[str, Any]) -> dict[str, Any]:
        """A whole transaction on this group: checked, locked-against, applied at once."""
        mops = op["value"]
        wrong = self._wrong_group(mops)
        if wrong:
            return wrong
        busy = self._conflict(None, mops)
        if busy is not None:
            return _fail("locked", key=busy)
        try:
            out, _ = self._run(mops, write=True)
        except ValueError as e:
            return _fail("not-a-list", detail=str(e))
        return _ok(out)

    def _op_prepare(self, op: dict[str, Any]) -> dict[str, Any]:
        """Locks for every micro-op of ``tx`` here, the values read, the vote."""
        tx, mops = op["tx"], op["value"]
        if tx in self.done:
            return _fail("already-" + self.done[tx] + "ed")
        rec = self.prepared.get(tx)
        if rec is not None:
            return _ok(rec["reads"])
        wrong = self._wrong_group(mops)
        if wrong:
            return wrong
        busy = self._conflict(tx, mops)
        if busy is not None:
            return _fail("locked", key=busy)
        try:
            out, after = self._run(mops, write=False)
        except ValueError as e:
            return _fail("not-a-list", detail=str(e))
        rec = {"ops": mops, "coord": op["coord"], "reads": out}
        if "early-lock-release" in self.bugs:
            # BUG: the writes become visible and the locks are dropped at prepare,
            # before the coordinator has decided; an abort undoes the writes later.
            rec["undo"] = {kk: self._data(k).get(kk) for kk, k in
                           ((_key(m[1]), m[1]) for m in mops) if kk in after}
            self._run(mops, write=True)
            self._release(tx)
        else:
            self._take_locks(tx, mops)
        self.prepared[tx] = rec
        return _ok(out)

    def _op_commit(self, op: dict[str, Any]) -> dict[str, Any]:
        tx = op["tx"]
        rec = self.prepared.pop(tx, None)
        if rec is None:
            return _ok(self.done.get(tx))  # never prepared here, or committed already
        if "undo" not in rec:
            self._run(rec["ops"], write=True)
        self._release(tx)
        self.done[tx] = "commit"
        return _ok("commit")

    def _op_abort(self, op: dict[str, Any]) -> dict[str, Any]:
        tx = op["tx"]
        if self.done.get(tx) == "commit":
            return _fail("already-committed")
        rec = self.prepared.pop(tx, None)
        self._release(tx)
        if rec is not None:
            for kk, old in rec.get("undo", {}).items():
                data = self.shard[str(shard_of(_unkey(kk), self.shards))]["data"]
                cur = data.get(kk)
                # Undo only this transaction's own appends: later ones stay.
                mine = [m[2] for m in rec["ops"] if _key(m[1]) == kk and m[0] == "append"]
                if isinstance(cur, list) and mine:
                    data[kk] = [x for x in cur if x not in mine]
                else:
                    data[kk] = old
        self.done[tx] = "abort"
        return _ok("abort")

    def _op_decide(self, op: dict[str, Any]) -> dict[str, Any]:
        tx, want = op["tx"], op["value"]
        if want not in ("commit", "abort"):
            return _fail("bad-op", detail=f"decide value must be commit or abort, got {want!r}")
        return _ok(self.decisions.setdefault(tx, want))

    def _op_shard_out(self, op: dict[str, Any]) -> dict[str, Any]:
        v = op.get("value")
        if not (isinstance(v, dict) and isinstance(v.get("shard"), int) and isinstance(v.get("to"), int)):
            return _fail("bad-op", detail=f"shard-out value must be {{shard: int, to: int}}, got {v!r}")
        s, to = v["shard"], v["to"]
        if not (0 <= s < self.shards and 0 <= to < self.groups):
            return _fail("bad-op", detail=f"no shard {s} or group {to} ({self.shards} shards, {self.groups} groups)")
        rec = self.shard.get(str(s))
        if rec is None or (not rec["own"] and rec["to"] is None):
            g, e = self.owner_hint(s)
            return _fail("wrong-group", shard=s, owner=g, epoch=e)
        if not rec["own"]:
            return _ok({"epoch": rec["epoch"], "to": rec["to"], "already": True})
        if to == self.group:
            return _fail("bad-op", detail="a shard cannot move to the group that holds it")
        keys = {k for k in self.locks if shard_of(_unkey(k), self.shards) == s}
        if keys:
            return _fail("busy", keys=sorted(keys))
        rec.update(own=False, epoch=rec["epoch"] + 1, to=to, handed=False)
        return _ok({"epoch": rec["epoch"], "to": to})

    def _op_shard_in(self, op: dict[str, Any]) -> dict[str, Any]:
        s, epoch = int(op["shard"]), int(op["epoch"])
        rec = self.shard.get(str(s))
        if rec is not None and rec["epoch"] >= epoch:
            return _ok({"epoch": rec["epoch"], "already": True})
        self.shard[str(s)] = {"own": True, "epoch": epoch, "to": None,
                              "data": copy.deepcopy(op["data"]), "handed": True}
        return _ok({"epoch": epoch})

    def _op_shard_handed(self, op: dict[str, Any]) -> dict[str, Any]:
        rec = self.shard.get(str(int(op["shard"])))
        if rec is not None and not rec["own"] and rec["epoch"] == int(op["epoch"]):
            rec["handed"] = True
        return _ok()

    # ------------------------------------------------------------------ queries

    def to_hand_off(self) -> list[tuple[int, int, int, dict[str, Any]]]:
        """Shards moved out whose new owner has not confirmed: (shard, epoch, to, data)."""
        return [(int(s), r["epoch"], r["to"], r["data"]) for s, r in self.shard.items()
                if not r["own"] and not r["handed"]]


def _unkey(kk: str) -> Any:
    return kk  # shard_of works on the key's text, so the text is enough
