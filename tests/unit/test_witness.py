"""The minimal witness: non-linearizable, 1-minimal, named, on generated and hand-written histories.

The oracle for "non-linearizable" on the shrunk set is the brute-force checker
(:mod:`jepsenlike.checkers.bruteforce`, which shares nothing with the search
but the spec's ``step``) whenever the set is small enough for it, else the
search itself.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from jepsenlike.checkers.bruteforce import MAX_OPS, check_bruteforce
from jepsenlike.checkers.linearizable import check_linearizable
from jepsenlike.checkers.specs import get_spec
from jepsenlike.checkers.synth import register_history
from jepsenlike.checkers.witness import _NOTHING, minimal_witness, observed, written
from jepsenlike.history import History, Op

SPEC = get_spec("cas-register")


def H(*events, key="x"):
    """Events are (process, type, f, value[, node]); times are the indices (ms)."""
    ops = []
    for i, e in enumerate(events):
        p, t, f, v, *node = e
        ops.append(dict(index=i, time=i * 1_000_000, process=p, type=t, f=f, key=key, value=v,
                        **({"node": node[0]} if node else {})))
    return History.from_ops(ops)


def op(p, f, v, result=None, t="ok", node=None):
    extra = (node,) if node else ()
    return [(p, "invoke", f, None if f == "read" else v, *extra),
            (p, t, f, result if f == "read" else v, *extra)]


def sub_history(h: History, inv_indices: list[int]) -> History:
    """The witness as its own history: each op's invocation and completion, renumbered."""
    events = sorted(i for j in inv_indices for i in (j, h.completion.get(j)) if i is not None)
    return History.from_ops([dataclasses.replace(h.ops[i], index=n) for n, i in enumerate(events)])


def linearizable(h: History) -> bool:
    n = sum(1 for inv, comp in h.pairs() if comp is None or comp.type != "fail")
    if n <= MAX_OPS:
        return check_bruteforce(h, SPEC)
    return check_linearizable(h, SPEC, timeout=30).valid is True


def closed_deletion(h: History, ops: list[int], drop: int) -> list[int]:
    """``ops`` less ``drop`` and, transitively, the ops that observed a value only deleted ops wrote
    (a value some op of the key wrote; the initial value and garbage values are never deleted for)."""
    key = h.ops[drop].key
    pairs = {i: (h.ops[i], h.completion_of(h.ops[i])) for i in ops}
    anywhere = {written(inv) for inv, _ in h.pairs() if inv.key == key} - {_NOTHING}
    keep = [i for i in ops if i != drop]
    while True:
        present = {written(pairs[i][0]) for i in keep}
        nxt = [i for i in keep if not (observed(*pairs[i]) in anywhere and observed(*pairs[i]) not in present)]
        if nxt == keep:
            return keep
        keep = nxt


def assert_witness(h: History, w: dict) -> None:
    ops = w["ops"]
    assert ops and all(h.ops[i].type == "invoke" for i in ops)
    # invoke/completion pairs are kept together
    assert sorted(w["events"]) == sorted(
        [*ops, *(h.completion[i] for i in ops if h.completion.get(i) is not None)])
    assert len({h.ops[i].key for i in ops}) == 1
    assert not linearizable(sub_history(h, ops)), "the witness is not linearizable"
    if w["minimal"]:
        for i in ops:
            rest = closed_deletion(h, ops, i)
            assert not rest or linearizable(sub_history(h, rest)), (
                f"deleting op {i} (and the ops that read only its value) leaves {rest}, still not "
                "linearizable: the witness is not 1-minimal")


def test_stale_read_shrinks_to_the_three_ops_that_prove_it():
    h = H(
        *op(0, "write", 1, node="n1"),
        *op(1, "read", None, 1, node="n2"),
        *op(0, "write", 2, node="n1"),
        *op(2, "read", None, 2, node="n3"),
        *op(1, "read", None, 1, node="n2"),  # stale
        *op(2, "read", None, 2, node="n3"),
    )
    w = minimal_witness(h, SPEC)
    assert w is not None and w["minimal"]
    assert w["ops"] == [0, 4, 8]
    assert w["anomaly"] == "stale read"
    # names the node that served the stale read, the write it missed and where that completed
    assert w["reason"].startswith("stale read: n2 returned 1 at 9.0 ms")
    assert "after write 2 completed on n1" in w["reason"]
    assert_witness(h, w)


def test_a_read_is_never_kept_without_the_write_it_saw():
    # deleting "write 1" alone would leave "read 1" of a value nobody wrote: not linearizable,
    # but not the history's problem. The closure deletes the read with it.
    h = H(*op(0, "write", 1), *op(0, "write", 2), *op(1, "read", None, 1))
    w = minimal_witness(h, SPEC)
    assert w["ops"] == [0, 2, 4]


def test_garbage_read_alone_is_its_own_witness():
    h = H(*op(0, "write", 1), *op(1, "read", None, 7, node="n2"))
    w = minimal_witness(h, SPEC)
    assert w["ops"] == [2] and w["anomaly"] == "garbage read"
    assert "n2 returned 7" in w["reason"] and "no operation wrote" in w["reason"]


def test_lost_update_names_both_cas():
    h = History.from_ops([
        dict(index=0, time=0, process=0, type="invoke", f="write", key="x", value=1),
        dict(index=1, time=1, process=0, type="ok", f="write", key="x", value=1),
        dict(index=2, time=2, process=1, type="invoke", f="cas", key="x", value=[1, 2], node="n1"),
        dict(index=3, time=3, process=2, type="invoke", f="cas", key="x", value=[1, 3], node="n2"),
        dict(index=4, time=4, process=1, type="ok", f="cas", key="x", value=[1, 2], node="n1"),
        dict(index=5, time=5, process=2, type="ok", f="cas", key="x", value=[1, 3], node="n2"),
    ])
    w = minimal_witness(h, SPEC)
    assert w["ops"] == [0, 2, 3] and w["anomaly"] == "lost update"
    assert "cas 1->2 on n1" in w["reason"] and "cas 1->3 on n2" in w["reason"]


def test_linearizable_history_has_no_witness():
    h = H(*op(0, "write", 1), *op(1, "read", None, 1), *op(0, "cas", [1, 2]), *op(1, "read", None, 2))
    assert minimal_witness(h, SPEC) is None


def test_only_the_bad_key_is_shrunk():
    ops = []
    for e in [*op(0, "write", 5), *op(1, "read", None, 5)]:
        ops.append(dict(index=len(ops), time=len(ops), process=e[0], type=e[1], f=e[2], key="good", value=e[3]))
    for e in [*op(0, "write", 1), *op(0, "write", 2), *op(1, "read", None, 1)]:
        ops.append(dict(index=len(ops), time=len(ops), process=e[0], type=e[1], f=e[2], key="bad", value=e[3]))
    h = History.from_ops(ops)
    w = minimal_witness(h, SPEC)
    assert w["key"] == "bad" and w["ops"] == [4, 6, 8]


def test_an_info_write_that_was_read_stays_in_the_witness():
    h = H(
        (0, "invoke", "write", 1),
        (0, "info", "write", 1),
        *op(1, "read", None, 1),
        *op(1, "read", None, None),
    )
    w = minimal_witness(h, SPEC)
    assert w["ops"] == [0, 2, 4]
    assert_witness(h, w)


def _mutate(h: History, rng: random.Random) -> History:
    """Change one ok read to another value of its key (or null), or one write/cas outcome."""
    ops = list(h.ops)
    completions = [o for o in ops if o.type != "invoke"]
    if not completions:
        return h
    o = rng.choice(completions)
    if o.f == "read" and o.type == "ok":
        vals = [x.value if x.f == "write" else x.value[1] for x in ops
                if x.type == "invoke" and x.f in ("write", "cas") and x.key == o.key]
        ops[o.index] = dataclasses.replace(o, value=rng.choice([None, *vals]))
    elif o.f in ("write", "cas"):
        ops[o.index] = dataclasses.replace(o, type=rng.choice(["ok", "fail", "info"]))
    return History.from_ops(ops)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    keys=st.integers(1, 3),
    procs=st.integers(1, 5),
    p_info=st.sampled_from([0.0, 0.1, 0.3]),
    mutations=st.integers(1, 3),
)
def test_generated_violations_shrink_to_a_1_minimal_witness(seed, n, keys, procs, p_info, mutations):
    rng = random.Random(seed)
    h = register_history(rng, n_ops=n, n_keys=keys, n_processes=procs, p_info=p_info)
    for _ in range(mutations):
        h = _mutate(h, rng)
    verdict = check_linearizable(h, SPEC, timeout=30).valid
    w = minimal_witness(h, SPEC, time_budget=10.0)
    if verdict is True:
        assert w is None
        return
    assert w is not None and w["minimal"], "a small history shrinks fully within the budget"
    assert len(w["ops"]) <= 10
    assert w["reason"]
    assert_witness(h, w)


def test_time_budget_bounds_the_shrink():
    rng = random.Random(5)
    h = register_history(rng, n_ops=400, n_keys=1, n_processes=5)
    # a stale read at the end: the last completed write, then a read of an older value
    ops = list(h.ops)
    t = ops[-1].time
    last = [o for o in ops if o.type == "ok" and o.f in ("write", "cas")][-1]
    old = next(o for o in ops if o.type == "ok" and o.f == "write" and o.value != (
        last.value if last.f == "write" else last.value[1]))
    n = len(ops)
    ops += [Op(n, t + 10, 99, "invoke", "read", 0, None), Op(n + 1, t + 20, 99, "ok", "read", 0, old.value)]
    h = History.from_ops(ops)
    w = minimal_witness(h, SPEC, time_budget=0.001)
    # out of time: either no witness, or one marked not minimal; never a wrong one
    assert w is None or (w["minimal"] is False and not linearizable(sub_history(h, w["ops"])))
    w = minimal_witness(h, SPEC, time_budget=20.0)
    assert w is not None and w["minimal"] and len(w["ops"]) <= 4
    assert_witness(h, w)


def _long_history_with_a_late_stale_read(n: int) -> tuple[History, int]:
    rng = random.Random(5)
    h = register_history(rng, n_ops=n, n_keys=1, n_processes=5)
    ops = list(h.ops)
    t = ops[-1].time
    last = [o for o in ops if o.type == "ok" and o.f in ("write", "cas")][-1]
    newest = last.value if last.f == "write" else last.value[1]
    old = next(o for o in ops if o.type == "ok" and o.f == "write" and o.value != newest)
    k = len(ops)
    ops += [Op(k, t + 10, 99, "invoke", "read", 0, None), Op(k + 1, t + 20, 99, "ok", "read", 0, old.value)]
    return History.from_ops(ops), k


def test_a_long_part_is_cut_to_a_window_around_the_blocked_op():
    h, k = _long_history_with_a_late_stale_read(3000)
    w = minimal_witness(h, SPEC, 0, blocked=k, time_budget=20.0)
    assert w is not None and w["minimal"] and k in w["ops"] and len(w["ops"]) <= 4
    assert w["anomaly"] == "stale read"
    assert_witness(h, w)
    # a hint that points elsewhere costs time, never correctness
    w = minimal_witness(h, SPEC, 0, blocked=0, time_budget=20.0)
    assert w is not None and w["minimal"]
    assert_witness(h, w)
