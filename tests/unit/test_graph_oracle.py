"""The list-append checker against a brute-force serializability oracle.

Histories of 2 to 6 transactions over keys x, y (and z, never appended) are
generated from a random execution: each transaction takes effect at a point of
a serial order, but with some probability reads a stale snapshot, so some
histories are serializable and some are not. Failed transactions take no
effect; indeterminate ones take effect or not.

The oracle decides by enumeration: a history is serializable iff some subset of
the indeterminate transactions, together with every ok one, has a serial order
in which every ok read returns exactly the list its prefix of the order built
(its own earlier appends included); strict serializability additionally
requires that order to respect real time (a txn that completed before another
was invoked comes first). It knows nothing of graphs.

The checker must agree: when it says a model is ruled out, the oracle must
find no order (soundness); and on these histories it must also find every
violation (completeness: the inferences cover them). Both verdicts must occur.
"""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.graph import check_list_append
from jepsenlike.history import History

KEYS = ("x", "y")


@st.composite
def histories(draw):
    n = draw(st.integers(2, 6))
    counters = Counter()
    txns = []
    for _ in range(n):
        mops = []
        for _ in range(draw(st.integers(1, 4))):
            k = draw(st.sampled_from(KEYS + ("z",) if draw(st.booleans()) else KEYS))
            if k != "z" and draw(st.booleans()):
                counters[k] += 1
                mops.append(["append", k, counters[k]])
            else:
                mops.append(["r", k, None])
        outcome = draw(st.sampled_from(["ok"] * 6 + ["fail", "info"]))
        effective = outcome == "ok" or (outcome == "info" and draw(st.booleans()))
        txns.append({"mops": mops, "outcome": outcome, "effective": effective})
    # execution: a serial order; each txn reads a snapshot at or before its point
    order = draw(st.permutations(range(n)))
    states: list[dict[str, list[int]]] = [{k: [] for k in KEYS + ("z",)}]
    for i in order:
        t = txns[i]
        pos = len(states) - 1
        snap = pos if draw(st.integers(0, 9)) < 5 else draw(st.integers(0, pos))
        seen = {k: list(v) for k, v in states[snap].items()}
        cur = {k: list(v) for k, v in states[-1].items()}
        for m in t["mops"]:
            f, k, v = m
            if f == "append":
                seen[k].append(v)
                cur[k].append(v)
            else:
                m[2] = list(seen[k])
        states.append(cur if t["effective"] else states[-1])
    # real time: random invocation/completion interleaving, one process each
    slots = draw(st.permutations([(i, e) for i in range(n) for e in (0, 1)]))
    first: set[int] = set()
    events: list[tuple[int, int]] = []
    for i, _e in slots:
        if i in first:
            events.append((i, 1))
        else:
            first.add(i)
            events.append((i, 0))
    ops = []
    for i, e in events:
        t = txns[i]
        inv = [[f, k, None if f == "r" else v] for f, k, v in t["mops"]]
        if e == 0:
            ops.append(dict(process=i, type="invoke", f="txn", value=inv))
        elif t["outcome"] == "ok":
            ops.append(dict(process=i, type="ok", f="txn", value=[list(m) for m in t["mops"]]))
        elif t["outcome"] == "fail":
            ops.append(dict(process=i, type="fail", f="txn", value=inv))
        elif draw(st.booleans()):
            ops.append(dict(process=i, type="info", f="txn", value=inv))
    for j, op in enumerate(ops):
        op["index"] = j
        op["time"] = j
    return History.from_ops(ops)


def _txns(h: History):
    """(mops, type, invoke index, complete index or None) per client txn."""
    out = []
    for inv, comp in h.pairs():
        typ = "info" if comp is None else comp.type
        mops = comp.value if typ == "ok" else inv.value
        out.append((mops, typ, inv.index, None if comp is None or typ != "ok" else comp.index))
    return out


def _explains(seq, txns) -> bool:
    state = {k: [] for k in KEYS + ("z",)}
    for i in seq:
        mops, typ, _, _ = txns[i]
        for f, k, v in mops:
            if f == "append":
                state[k] = state[k] + [v]
            elif typ == "ok" and (v or []) != state[k]:
                return False
    return True


def oracle(h: History, *, strict: bool) -> bool:
    txns = _txns(h)
    ok = [i for i, t in enumerate(txns) if t[1] == "ok"]
    info = [i for i, t in enumerate(txns) if t[1] == "info"]
    for r in range(len(info) + 1):
        for chosen in itertools.combinations(info, r):
            for seq in itertools.permutations(ok + list(chosen)):
                if strict and not _respects_real_time(seq, txns):
                    continue
                if _explains(seq, txns):
                    return True
    return False


def _respects_real_time(seq, txns) -> bool:
    for a, b in itertools.combinations(seq, 2):  # a before b in seq
        done_b = txns[b][3]
        if done_b is not None and done_b < txns[a][2]:
            return False  # b completed before a was invoked, yet a comes first
    return True


seen_verdicts: Counter = Counter()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_serializable_verdict_matches_brute_force(h):
    r = check_list_append(h, consistency_model="serializable")
    expected = oracle(h, strict=False)
    seen_verdicts["serializable", expected] += 1
    assert r.valid is expected, (expected, r.explanation, [op.to_dict() for op in h.ops])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_strict_serializable_verdict_matches_brute_force(h):
    r = check_list_append(h, consistency_model="strict-serializable")
    expected = oracle(h, strict=True)
    seen_verdicts["strict", expected] += 1
    assert r.valid is expected, (expected, r.explanation, [op.to_dict() for op in h.ops])


def test_both_verdicts_occurred():
    """The generator yields both verdicts, and the property runs above saw both."""
    for strict in (False, True):
        for verdict in (False, True):
            h = find(histories(), lambda h, v=verdict, s=strict: oracle(h, strict=s) is v,
                     settings=settings(database=None, max_examples=500))
            model = "strict-serializable" if strict else "serializable"
            assert check_list_append(h, consistency_model=model).valid is verdict
    if seen_verdicts:  # empty only when this test runs on its own
        for model in ("serializable", "strict"):
            assert seen_verdicts[model, True] >= 5, seen_verdicts
            assert seen_verdicts[model, False] >= 5, seen_verdicts
