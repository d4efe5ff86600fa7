"""List-append: version orders from reads, then dependency edges and anomalies.

Theory of operation
-------------------
Workload. Transactions of micro-ops ``["append", k, v]`` (``v`` unique per key)
and ``["r", k, list]``; single ops ``append`` (key, value) and ``read`` (key,
value list) are one-micro-op transactions. A read returns the whole list, so
every read of ``k`` is a prefix of the one version order of ``k``.

Version order. For each key the longest (duplicate-free) read is the
candidate order; every other read must be a prefix of it. A read that is not
is an ``incompatible-order`` anomaly, and is left out of edge inference. A
read listing an element twice is ``duplicate-elements``.

Elements of the order are attributed to their appending transaction:

* appended by nobody: ``garbage-read`` (a read of a value never written);
* appended by a ``fail`` transaction: ``G1a`` (aborted read);
* appended by an ``info`` transaction: that transaction happened, and becomes a
  graph node.

Edges (between node transactions), per key with order ``e1 .. en``:

* ww: writer(e_i) -> writer(e_i+1) when they differ;
* wr: the writer of a read's last element -> the reader;
* rw: a reader of ``e1 .. em`` -> the writer of ``e_m+1`` (the next version).

Unobserved appends (Elle's inference). An append that took effect (its txn is
``ok``, or ``info`` and observed through another of its appends) but that no
read of its key lists must come after every listed element: a read returns the
whole list, so anything appended before the longest read would be in it. So:

* ww: the writer of the last listed element -> each such appender;
* rw: each read of the key -> each such appender (the read missed it).

Their order among themselves stays unknown, so they get no edges between them.
A read shorter than the order reaches them through the order's own edges
anyway; it gets direct edges too (for shortest cycles) while a key has at most
``DIRECT_RW_LIMIT`` of them, and full-length reads always do, up to a per-key
budget (``UNOBSERVED_EDGE_BUDGET``; beyond it the key is reported as capped).

Only a transaction's *external* read of a key counts for wr/rw: its first read
of the key, if it did not append to the key before. Later reads include the
transaction's own appends and say nothing new about other transactions.

Other non-cycle anomalies:

* ``internal``: a transaction's read disagrees with its own earlier reads and
  appends of that key (it must see what it read plus what it appended);
* ``future-read``: a read contains an element the transaction itself appends
  only later;
* ``dirty-update``: in a key's order, an append that took effect follows an
  append of a failed transaction;
* ``lost-update``: two transactions read the same version of a key and both
  appended to it;
* ``G1b`` (intermediate read): a read whose last element is one that its
  writer followed with another append to the same key;
* ``lost-append``: an acknowledged append that no read ever observed, while a
  read of that key began after the append completed (that read, and any later
  one, should contain it). Appends seen by some read but missing from a later
  read are stale reads and show up as ``-realtime`` cycles instead.

The graph is then searched for cycles (:mod:`.cycles`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from jepsenlike.errors import HistoryError
from jepsenlike.history import History

from .core import RW, WR, WW, DepGraph, Txn

APPEND_FS = ("append",)
READ_FS = ("r", "read")
_MAX_REPORTS = 50  # per non-cycle anomaly type
_PLAIN = frozenset((int, str, float, bool))
# a read shorter than its key's order reaches the unobserved appends through the
# order's rw and ww edges anyway; direct edges (for shortest cycles) up to this many
DIRECT_RW_LIMIT = 64
UNOBSERVED_EDGE_BUDGET = 200_000  # per key: full-length reads x unobserved appends


def _mop(m: Any, where: str) -> tuple[str, Any, Any]:
    if not isinstance(m, (list, tuple)) or len(m) != 3:
        raise HistoryError(f"{where}: a micro-op must be [f, key, value], got {m!r}")
    f, k, v = m
    if f not in APPEND_FS and f not in READ_FS:
        raise HistoryError(
            f"{where}: micro-op f={f!r} is not a list-append op; expected 'append' or 'r'"
        )
    try:
        hash(k)
    except TypeError:
        raise HistoryError(f"{where}: micro-op key must be a string or number, got {k!r}") from None
    if f in READ_FS:
        if v is not None and not isinstance(v, list):
            raise HistoryError(f"{where}: a read's value must be a list or null, got {v!r}")
        return "r", k, v
    try:
        hash(v)
    except TypeError:
        raise HistoryError(f"{where}: an appended element must be hashable, got {v!r}") from None
    return "append", k, v


def prepare(history: History) -> tuple[list[Txn], Counter[str]]:
    """Turn client (invocation, completion) pairs into :class:`Txn` records."""
    txns: list[Txn] = []
    ignored: Counter[str] = Counter()
    src = history.source
    for inv, comp in history.pairs():
        typ = "info" if comp is None else comp.type
        f = inv.f
        where = f"{src}: op {inv.index if comp is None else comp.index}" if f != "txn" else ""
        if f == "txn":
            raw = comp.value if typ == "ok" else inv.value
            if not isinstance(raw, list):
                where = f"{src}: op {inv.index if comp is None else comp.index}"
                raise HistoryError(f"{where}: a txn value must be a list of micro-ops, got {raw!r}")
            # well-formed micro-ops are used as they are: the history's own lists,
            # never mutated (no copy); the first odd one switches to a normalised copy
            mops = raw
            for i, m in enumerate(raw):
                if type(m) is list and len(m) == 3:
                    mf, k, v = m
                    if type(k) in _PLAIN and (
                        (mf == "append" and type(v) in _PLAIN)
                        or (mf == "r" and (v is None or type(v) is list))
                    ):
                        if mops is not raw:
                            mops.append(m)
                        continue
                if mops is raw:
                    mops = raw[:i]
                mops.append(_mop(m, f"{src}: op {inv.index if comp is None else comp.index}"))
        elif f == "append":
            mops = [_mop(["append", inv.key, inv.value], where)]
        elif f == "read":
            mops = [_mop(["r", inv.key, comp.value if typ == "ok" else None], where)]
        else:
            ignored[f] += 1
            continue
        txns.append(
            Txn(len(txns), inv.index, None if comp is None else comp.index, inv.process, typ, f, mops)
        )
    return txns, ignored


def _short(lst: list[Any], keep: int = 4) -> str:
    if len(lst) <= keep:
        return repr(list(lst))
    tail = ", ".join(repr(x) for x in lst[-keep:])
    return f"[... {len(lst) - keep} more, {tail}]"


class ListAppendAnalysis:
    """Version orders, non-cycle anomalies and data edges of a list-append history."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.txns, self.ignored = prepare(history)
        self.anomalies: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        # key -> element -> the txn that appended it; key -> elements a txn
        # appended and then followed with another append to the same key
        self.writer: dict[Any, dict[Any, Txn]] = {}
        self.intermediate: dict[Any, set[Any]] = {}
        self.order: dict[Any, list[Any]] = {}
        self.order_source: dict[Any, Txn] = {}
        self.pos: dict[Any, dict[Any, int]] = {}
        # external reads: list of (txn, key, list); all ok reads for order recovery
        self.external: list[tuple[Txn, Any, list[Any]]] = []
        self.incompatible: set[tuple[int, Any]] = set()
        self.multi_key: list[Txn] = []
        self.capped_keys: list[Any] = []
        self._external_by_txn: dict[int, list[tuple[Any, list[Any]]]] | None = None
        self.read_then_append: list[tuple[Txn, Any, list[Any]]] = []
        self.micro_ops = 0
        self._index()
        self._orders()
        self._attribute()
        self._unobserved_appends()
        self._dirty_updates()
        self._lost_updates()
        self._intermediate_reads()
        self._lost_appends()
        self._internal()

    # ------------------------------------------------------------------ anomalies

    def _report(self, kind: str, record: dict[str, Any]) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= _MAX_REPORTS:
            record["type"] = kind
            self.anomalies.append(record)

    # ------------------------------------------------------------------ passes

    def _index(self) -> None:
        writer = self.writer
        inter = self.intermediate
        reads: dict[Any, list[tuple[Txn, list[Any]]]] = {}
        self.reads = reads
        external = self.external
        multi = self.multi_key  # txns that touch some key more than once
        rmw = self.read_then_append  # (txn, key, external read) before an own append
        dup_appends = 0
        micro = 0
        for t in self.txns:
            mops = t.mops
            micro += len(mops)
            ok = t.type == "ok"
            if len(mops) == 1:  # the common case, without the per-txn bookkeeping
                f, k, v = mops[0]
                if f == "append":
                    w = writer.get(k)
                    if w is None:
                        w = writer[k] = {}
                    prev_w = w.get(v)
                    if prev_w is None:
                        w[v] = t
                    else:
                        dup_appends += 1
                        if prev_w.type == "fail" and not t.type == "fail":
                            w[v] = t
                elif ok:
                    if v is None:
                        v = []
                    r = reads.get(k)
                    if r is None:
                        reads[k] = [(t, v)]
                    else:
                        r.append((t, v))
                    external.append((t, k, v))
                continue
            appended: dict[Any, Any] = {}
            first_read: dict[Any, list[Any]] = {}
            touched: set[Any] = set()
            repeat = False
            for f, k, v in mops:
                if k in touched:
                    repeat = True
                else:
                    touched.add(k)
                if f == "append":
                    w = writer.get(k)
                    if w is None:
                        w = writer[k] = {}
                    prev_w = w.get(v)
                    if prev_w is None:
                        w[v] = t
                    else:
                        dup_appends += 1
                        if prev_w.type == "fail" and t.type != "fail":
                            w[v] = t  # a failed append cannot be the one that was read
                    if k in appended:
                        inter.setdefault(k, set()).add(appended[k])
                    elif k in first_read:
                        rmw.append((t, k, first_read[k]))
                    appended[k] = v
                elif ok:
                    if v is None:  # an ok read of null is the empty list
                        v = []
                    r = reads.get(k)
                    if r is None:
                        reads[k] = [(t, v)]
                    else:
                        r.append((t, v))
                    if k not in first_read and k not in appended:
                        external.append((t, k, v))
                        first_read[k] = v
            if repeat and ok:
                multi.append(t)
        self.micro_ops = micro
        self.duplicate_appends = dup_appends

    def _duplicates(self, k: Any, t: Txn, lst: list[Any]) -> bool:
        """Report (and set aside) a read that lists an element twice."""
        try:
            distinct = len(set(lst))
        except TypeError:
            raise HistoryError(
                f"{self.history.source}: op {t.index}: read of key {k!r} lists an "
                f"element that is not a string or number: {lst!r}"
            ) from None
        if distinct == len(lst):
            return False
        dups = [e for e, c in Counter(lst).items() if c > 1]
        self._report(
            "duplicate-elements",
            {
                "ops": [t.index],
                "key": k,
                "elements": dups,
                "read": lst,
                "explanation": f"op {t.index} read key {k!r} = {_short(lst)}, "
                f"which lists {', '.join(map(repr, dups[:5]))} more than once",
            },
        )
        self.incompatible.add((t.id, k))
        return True

    def _orders(self) -> None:
        """Each key's version order: its longest duplicate-free read.

        Fast path: when the longest read lists no element twice, a read that is
        a prefix of it needs no further check (it cannot list one twice either);
        only the others are checked for duplicates and reported as incompatible.
        """
        for k, rs in self.reads.items():
            source, longest = rs[0]
            for t, lst in rs:
                if len(lst) > len(longest):
                    source, longest = t, lst
            if self._duplicates(k, source, longest):
                self._orders_general(k, rs)
                continue
            self.order[k] = longest
            self.order_source[k] = source
            for t, lst in rs:
                n = len(lst)
                if not n or lst is longest or (lst[-1] == longest[n - 1] and lst == longest[:n]):
                    continue
                if not self._duplicates(k, t, lst):
                    self._incompatible_read(k, source, longest, t, lst)
            self.pos[k] = {e: i for i, e in enumerate(longest)}

    def _incompatible_read(
        self, k: Any, source: Txn, longest: list[Any], t: Txn, lst: list[Any]
    ) -> None:
        self.incompatible.add((t.id, k))
        n = len(lst)
        i = next(i for i in range(n) if lst[i] != longest[i])
        self._report(
            "incompatible-order",
            {
                "ops": [source.index, t.index],
                "key": k,
                "reads": [longest, lst],
                "explanation": f"op {source.index} read key {k!r} = {_short(longest)} but "
                f"op {t.index} read {_short(lst)}; they disagree at position {i} "
                f"({longest[i]!r} vs {lst[i]!r}), so no single order of appends "
                "explains both",
            },
        )

    def _orders_general(self, k: Any, rs: list[tuple[Txn, list[Any]]]) -> None:
        """The order of a key whose longest read lists an element twice."""
        longest: list[Any] | None = None
        source: Txn | None = None
        for t, lst in rs:
            if (t.id, k) in self.incompatible or self._duplicates(k, t, lst):
                continue
            if longest is None or len(lst) > len(longest):
                longest, source = lst, t
        if longest is None:
            return
        assert source is not None
        self.order[k] = longest
        self.order_source[k] = source
        for t, lst in rs:
            if (t.id, k) in self.incompatible:
                continue
            n = len(lst)
            if n and (lst[-1] != longest[n - 1] or lst != longest[:n]):
                self._incompatible_read(k, source, longest, t, lst)
        self.pos[k] = {e: i for i, e in enumerate(longest)}

    def _readers_of(self, k: Any, e: Any) -> list[Txn]:
        out = []
        for t, lst in self.reads.get(k, ()):
            if e in lst:
                out.append(t)
        return out

    def _attribute(self) -> None:
        """Check each read element's writer; observed info appends become nodes."""
        for k, order in self.order.items():
            w = self.writer.get(k, {})
            for e in order:
                t = w.get(e)
                if t is None or t.type == "fail":
                    self._bad_element(k, e, t)
                elif not t.node:
                    t.node = True
        # elements only in incompatible reads
        for tid, k in self.incompatible:
            t = self.txns[tid]
            pos = self.pos.get(k, {})
            w = self.writer.get(k, {})
            for f, kk, lst in t.mops:
                if f != "r" or kk != k or lst is None:
                    continue
                for e in lst:
                    if e in pos:
                        continue
                    wt = w.get(e)
                    if wt is None or wt.type == "fail":
                        self._bad_element(k, e, wt)
                    elif not wt.node:
                        wt.node = True

    def _bad_element(self, k: Any, e: Any, t: Txn | None) -> None:
        readers = self._readers_of(k, e)
        if not readers:
            return
        first = readers[0]
        idxs = [r.index for r in readers[:10]]
        if t is None:
            self._report(
                "garbage-read",
                {
                    "ops": idxs,
                    "key": k,
                    "element": e,
                    "explanation": f"op {first.index} read {e!r} in key {k!r}, but no "
                    f"transaction ever appended {e!r} to {k!r}",
                },
            )
        else:
            self._report(
                "G1a",
                {
                    "ops": [t.index, *idxs],
                    "key": k,
                    "element": e,
                    "writer": t.to_dict(),
                    "explanation": f"op {first.index} read {e!r} in key {k!r}, which was "
                    f"appended by op {t.index}, and op {t.index} failed (aborted read)",
                },
            )

    def _intermediate_reads(self) -> None:
        if not self.intermediate:
            return
        for t, k, lst in self.external:
            inter = self.intermediate.get(k)
            if not inter or not lst or (t.id, k) in self.incompatible:
                continue
            e = lst[-1]
            if e in inter:
                w = self.writer[k][e]
                if w is not t and w.type != "fail":
                    self._report(
                        "G1b",
                        {
                            "ops": [w.index, t.index],
                            "key": k,
                            "element": e,
                            "explanation": f"op {t.index} read key {k!r} = {_short(lst)}, ending "
                            f"in {e!r}; but op {w.index} appended {e!r} and then appended more "
                            f"to {k!r}, so op {t.index} saw an intermediate state of op {w.index}",
                        },
                    )

    def _unobserved_appends(self) -> None:
        """Per key, the appends of node txns that no read of the key lists.

        Every read of a key is a prefix of its one version order, so an append
        that took effect but that no read lists comes after every element any
        read lists. Only keys that some ok txn read count (otherwise there is
        no read to order it against).
        """
        elsewhere: dict[Any, set[Any]] = {}  # elements listed only by incompatible reads
        for tid, k in self.incompatible:
            for f, k2, lst in self.txns[tid].mops:
                if f == "r" and k2 == k and lst:
                    elsewhere.setdefault(k, set()).update(lst)
        self.observed_elsewhere = elsewhere
        unobserved: dict[Any, list[tuple[Any, Txn]]] = {}
        for k, pos in self.pos.items():
            w = self.writer.get(k)
            if not w:
                continue
            other = elsewhere.get(k, ())
            out = [(e, t) for e, t in w.items() if t.node and e not in pos and e not in other]
            if out:
                unobserved[k] = out
        self.unobserved = unobserved

    def _dirty_updates(self) -> None:
        """A failed append followed, in a key's order, by an append that took effect."""
        for k, order in self.order.items():
            w = self.writer.get(k)
            if not w:
                continue
            failed: Txn | None = None
            fe: Any = None
            for e in order:
                t = w.get(e)
                if t is None:
                    continue
                if t.type == "fail":
                    if failed is None:
                        failed, fe = t, e
                elif failed is not None and t.node:
                    src = self.order_source[k]
                    self._report(
                        "dirty-update",
                        {
                            "ops": [failed.index, t.index, src.index],
                            "key": k,
                            "elements": [fe, e],
                            "explanation": f"op {src.index} read key {k!r} = "
                            f"{_short(order)}: op {t.index} appended {e!r} on top of "
                            f"{fe!r}, which op {failed.index} appended and which failed "
                            "(an update built on an aborted write)",
                        },
                    )
                    break

    def _lost_updates(self) -> None:
        """Two txns that read the same version of a key and both appended to it."""
        groups: dict[tuple[Any, int, Any], list[Txn]] = {}
        incompatible = self.incompatible
        for t, k, lst in self.read_then_append:
            if (t.id, k) not in incompatible:
                groups.setdefault((k, len(lst), lst[-1] if lst else None), []).append(t)
        for (k, n, last), ts in groups.items():
            if len(ts) < 2:
                continue
            a, b = ts[0], ts[1]
            self._report(
                "lost-update",
                {
                    "ops": [t.index for t in ts[:10]],
                    "key": k,
                    "explanation": f"ops {a.index} and {b.index} both read the same version of "
                    f"key {k!r} (length {n}, ending in {last!r}) and both appended to it: "
                    "each overwrote a state the other had read"
                    + (f" ({len(ts)} txns)" if len(ts) > 2 else ""),
                },
            )

    def _lost_appends(self) -> None:
        for k, w in self.writer.items():
            rs = self.reads.get(k)
            if not rs:
                continue
            pos = self.pos.get(k, {})
            observed = set(pos)
            observed.update(self.observed_elsewhere.get(k, ()))
            lost = sorted(
                (
                    (t.complete, e, t)
                    for e, t in w.items()
                    if t.type == "ok" and e not in observed and t.complete is not None
                ),
                key=lambda x: x[0],
            ) if len(observed) < len(w) else []
            if not lost:
                continue
            first_c = lost[0][0]
            later = [t for t, _ in rs if t.invoke > first_c]
            if not later:
                continue
            reader = min(later, key=lambda t: t.invoke)
            missing = [(c, e, t) for c, e, t in lost if c < reader.invoke]
            elems = [e for _, e, _ in missing]
            self._report(
                "lost-append",
                {
                    "ops": [t.index for _, _, t in missing[:10]] + [reader.index],
                    "key": k,
                    "elements": elems,
                    "explanation": f"op {missing[0][2].index} appended {elems[0]!r} to key {k!r} "
                    f"and was acknowledged, yet op {reader.index}, which began after that, "
                    f"read {k!r} without it, and no read ever saw it"
                    + (f" ({len(elems)} such appends)" if len(elems) > 1 else ""),
                },
            )

    def _internal(self) -> None:
        """A transaction's reads must agree with its own earlier reads and appends."""
        for t in self.multi_key:  # ok txns that touch some key twice; others have nothing
            state: dict[Any, list[Any]] = {}  # key -> [last read or None, own appends since]
            later: dict[Any, set[Any]] = {}  # key -> elements this txn appends further on
            for f, k, v in reversed(t.mops):
                if f == "append":
                    later.setdefault(k, set()).add(v)
            for f, k, v in t.mops:
                if f == "append":
                    later[k].discard(v)
                s = state.get(k)
                if f == "append":
                    if s is None:
                        state[k] = [None, [v]]
                    else:
                        s[1].append(v)
                    continue
                lst = [] if v is None else v
                future = later.get(k)
                if future and not future.isdisjoint(lst):
                    e = next(x for x in lst if x in future)
                    self._report(
                        "future-read",
                        {
                            "ops": [t.index],
                            "key": k,
                            "read": lst,
                            "element": e,
                            "explanation": f"op {t.index} read key {k!r} = {_short(lst)}, which "
                            f"contains {e!r}, an element the same transaction only appends later",
                        },
                    )
                    state[k] = [lst, []]
                    continue
                if s is not None:
                    prefix, own = s
                    if prefix is None:
                        good = len(lst) >= len(own) and lst[len(lst) - len(own):] == own
                        expected = f"a list ending in {_short(own)}"
                    else:
                        good = lst == prefix + own
                        expected = _short(prefix + own)
                    if not good:
                        self._report(
                            "internal",
                            {
                                "ops": [t.index],
                                "key": k,
                                "read": lst,
                                "explanation": f"op {t.index} read key {k!r} = {_short(lst)}, "
                                f"but its own earlier reads and appends imply {expected}",
                            },
                        )
                state[k] = [lst, []]

    # ------------------------------------------------------------------ edges

    def _next_writer(self, k: Any, start: int, exclude: Txn | None) -> tuple[Txn, Any] | None:
        """The first valid writer at or after ``start`` in the order of ``k``."""
        order = self.order.get(k)
        if order is None:
            return None
        w = self.writer.get(k, {})
        for i in range(start, len(order)):
            t = w.get(order[i])
            if t is not None and t.node:
                if t is exclude:
                    return None
                return t, order[i]
        return None

    def _last_writer(self, k: Any) -> Txn | None:
        """The node txn that appended the last element of ``k``'s order that has one."""
        w = self.writer.get(k, {})
        for e in reversed(self.order.get(k, ())):
            t = w.get(e)
            if t is not None and t.node:
                return t
        return None

    def _rw_targets(self) -> dict[Any, list[tuple[Any, Txn]]]:
        """Per key, the unobserved appends each full-length read gets an rw edge to.

        All of them, unless a key's full-length reads times its unobserved
        appends exceeds :data:`UNOBSERVED_EDGE_BUDGET` (a database that loses
        thousands of appends read by thousands of reads): then only the
        :data:`DIRECT_RW_LIMIT` earliest-invoked, and the key is listed in
        ``capped_keys``. Fewer edges can only hide cycles, never invent one.
        """
        big = {k for k, later in self.unobserved.items() if len(later) > DIRECT_RW_LIMIT}
        if not big:
            return self.unobserved
        full: Counter[Any] = Counter()
        for _t, k, lst in self.external:
            if k in big and len(lst) == len(self.order[k]):
                full[k] += 1
        out = dict(self.unobserved)
        for k in big:
            later = out[k]
            if full[k] * len(later) > UNOBSERVED_EDGE_BUDGET:
                out[k] = sorted(later, key=lambda et: et[1].invoke)[:DIRECT_RW_LIMIT]
                self.capped_keys.append(k)
        return out

    def add_data_edges(self, g: DepGraph) -> None:
        adj = g.adj
        for k, order in self.order.items():
            w = self.writer.get(k, {})
            prev = -1
            for e in order:
                t = w.get(e)
                if t is None or not t.node:
                    continue
                tid = t.id
                if prev >= 0 and prev != tid:
                    d = adj[prev]
                    d[tid] = d.get(tid, 0) | WW
                prev = tid
        unobserved = self.unobserved
        for k, later in unobserved.items():
            # the last writer any read saw precedes every unobserved append
            last = self._last_writer(k)
            if last is not None:
                d = adj[last.id]
                for _, wt in later:
                    if wt is not last:
                        d[wt.id] = d.get(wt.id, 0) | WW
        targets = self._rw_targets() if unobserved else unobserved
        incompatible = self.incompatible
        writer = self.writer
        empty: dict[Any, Txn] = {}
        last_key = object()
        wk: dict[Any, Txn] = empty
        order: list[Any] = []
        for t, k, lst in self.external:
            if incompatible and (t.id, k) in incompatible:
                continue
            if k != last_key:
                wk = writer.get(k, empty)
                order = self.order[k]
                last_key = k
            tid = t.id
            n = len(lst)
            if n:
                wt = wk.get(lst[-1])
                if wt is not None and wt.node and wt is not t:
                    d = adj[wt.id]
                    d[tid] = d.get(tid, 0) | WR
            if n < len(order):
                wt = wk.get(order[n])
                if wt is None or not wt.node:
                    nxt = self._next_writer(k, n, t)
                    wt = nxt[0] if nxt else None
                if wt is not None and wt is not t:
                    d = adj[tid]
                    v = wt.id
                    d[v] = d.get(v, 0) | RW
            later = targets.get(k) if targets else None
            if later is not None and (n == len(order) or len(later) <= DIRECT_RW_LIMIT):
                # the read misses appends no read lists: they came after it
                d = adj[tid]
                for _, wt in later:
                    v = wt.id
                    if v != tid:
                        d[v] = d.get(v, 0) | RW

    # ------------------------------------------------------------------ explanations

    def _external_of(self, t: Txn) -> list[tuple[Any, list[Any]]]:
        """``t``'s external reads, from an index built on first use (explanations only)."""
        by_txn = self._external_by_txn
        if by_txn is None:
            by_txn = self._external_by_txn = {}
            for r, k, lst in self.external:
                by_txn.setdefault(r.id, []).append((k, lst))
        return by_txn.get(t.id, [])

    def explain(self, a: Txn, b: Txn, rel: int, names: dict[int, str]) -> str:
        """Why ``a`` precedes ``b`` by data relation ``rel``; ``names`` names cycle members."""
        na, nb = names[a.id], names[b.id]
        if rel == WW:
            for f, k, mine in b.mops:
                if (
                    f != "append" or k not in self.unobserved or mine in self.pos[k]
                    or self.writer[k].get(mine) is not b or self._last_writer(k) is not a
                ):
                    continue
                src = self.order_source[k]
                last = next(e for e in reversed(self.order[k]) if self.writer[k].get(e) is a)
                return (
                    f"{na} appended {last!r} to key {k!r}, the last element any read of "
                    f"{k!r} lists (op {src.index} read {_short(self.order[k])}), and {nb}'s "
                    f"append of {mine!r} to {k!r} took effect but no read lists it, so it "
                    "comes later in the version order"
                )
            for f, k, e in a.mops:
                if f != "append":
                    continue
                p = self.pos.get(k, {}).get(e)
                if p is None:
                    continue
                nxt = self._next_writer(k, p + 1, None)
                while nxt is not None and nxt[0] is a:
                    nxt = self._next_writer(k, self.pos[k][nxt[1]] + 1, None)
                if nxt is not None and nxt[0] is b:
                    src = self.order_source[k]
                    return (
                        f"{na} appended {e!r} to key {k!r} and {nb}'s append of {nxt[1]!r} "
                        f"comes after it in the version order of {k!r} "
                        f"(observed by op {src.index})"
                    )
        elif rel == WR:
            for k, lst in self._external_of(b):
                if lst:
                    wt = self.writer.get(k, {}).get(lst[-1])
                    if wt is a:
                        return (
                            f"{nb} read key {k!r} = {_short(lst)}, observing {na}'s append "
                            f"of {lst[-1]!r}"
                        )
        elif rel == RW:
            mine_reads = [(k, lst) for k, lst in self._external_of(a)
                          if (a.id, k) not in self.incompatible]
            for k, lst in mine_reads:
                nxt = self._next_writer(k, len(lst), a)
                if nxt is not None and nxt[0] is b:
                    return (
                        f"{na} read key {k!r} = {_short(lst)}, which does not yet contain "
                        f"{nb}'s append of {nxt[1]!r}, the next version of {k!r}"
                    )
            for k, lst in mine_reads:
                mine = next((e for e, w in self.unobserved.get(k, ()) if w is b), None)
                if mine is not None:
                    status = "committed" if b.type == "ok" else (
                        "indeterminate but took effect (another of its appends was read)"
                    )
                    return (
                        f"{na} read key {k!r} = {_short(lst)}, which does not contain "
                        f"{nb}'s append of {mine!r}; {nb} is {status}, and no read of "
                        f"{k!r} lists {mine!r}, so that append came after every version "
                        f"any read saw, {na}'s included"
                    )
        return f"{na} < {nb} by a {rel} dependency"
