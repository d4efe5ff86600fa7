"""The shardkv group state machine: partitioning, strict 2PL, two-phase commit with a
recorded decision (including coordinator-crash recovery), shard moves, snapshots, and
the seeded bugs' changed rules.

The 2PC tests drive :class:`ShardState` objects the way the coordinator and the
recovery task do (each ``apply`` is one committed log entry of that group), so crash
points are exact: "the coordinator died after step k" is "steps after k never run".
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from jepsenlike.models.shardkv.server import group_layout, validate_txn
from jepsenlike.models.shardkv.state import ShardState, initial_owner, shard_of

G, S = 2, 4  # groups, shards: shard s lives in group s % 2; key k in shard k % 4


def cluster(bugs: frozenset[str] = frozenset()) -> list[ShardState]:
    return [ShardState(g, G, S, bugs) for g in range(G)]


def value(st: ShardState, key: int):
    return st.get(key)


def test_partitioning_and_layout():
    assert [shard_of(k, 4) for k in (0, 1, 5, 7, "5")] == [0, 1, 1, 3, 1]  # "5" and 5: one key
    assert shard_of("abc", 4) == shard_of("abc", 4) and 0 <= shard_of("abc", 4) < 4
    assert [initial_owner(s, 3) for s in range(6)] == [0, 1, 2, 0, 1, 2]
    assert group_layout(["n10", "n2", "n1", "n3", "n4", "n5"], 2) == [["n1", "n2", "n3"], ["n4", "n5", "n10"]]
    with pytest.raises(ValueError, match="cannot form 2 equal groups"):
        group_layout(["n1", "n2", "n3"], 2)
    assert validate_txn({"f": "txn", "value": [["r", 1, None]]}) is None
    assert "bad micro-op" in validate_txn({"f": "txn", "value": [["x", 1, None]]})
    assert "unknown f" in validate_txn({"f": "cas"})


def test_txn1_reads_its_own_appends_and_refuses_keys_of_other_groups():
    a, b = cluster()
    res = a.apply({"f": "txn1", "value": [["append", 0, 1], ["r", 0, None], ["append", 2, 5]]})
    assert res == {"type": "ok", "value": [["append", 0, 1], ["r", 0, [1]], ["append", 2, 5]]}
    assert value(a, 0) == [1] and value(a, 2) == [5]
    wrong = a.apply({"f": "txn1", "value": [["r", 1, None]]})  # key 1: shard 1, group 1
    assert wrong["type"] == "fail" and wrong["error"] == "wrong-group" and wrong["owner"] is None
    assert b.apply({"f": "txn1", "value": [["append", 1, 7]]})["type"] == "ok"
    bad = a.apply({"f": "txn1", "value": [["w", 0, 3], ["append", 0, 4]]})
    assert bad["type"] == "fail" and bad["error"] == "not-a-list" and value(a, 0) == [1]  # nothing applied


def prepare(st: ShardState, tx: str, mops, coord: int = 0):
    return st.apply({"f": "prepare", "tx": tx, "coord": coord, "value": mops})


def test_two_phase_locking_conflicts():
    a, _ = cluster()
    assert prepare(a, "t1", [["r", 0, None]])["type"] == "ok"  # read lock on 0
    refused = prepare(a, "t2", [["append", 0, 9]])
    assert refused == {"type": "fail", "error": "locked", "key": "0"}
    assert prepare(a, "t3", [["r", 0, None]])["type"] == "ok"  # readers share
    assert prepare(a, "t4", [["append", 2, 1]])["type"] == "ok"  # write lock on 2
    assert prepare(a, "t5", [["r", 2, None]])["error"] == "locked"
    assert a.apply({"f": "txn1", "value": [["r", 2, None]]})["error"] == "locked"
    # A transaction upgrades its own read lock.
    assert prepare(a, "t6", [["r", 4, None], ["append", 4, 1]])["type"] == "ok"
    for tx in ("t1", "t3", "t4", "t6"):
        a.apply({"f": "commit", "tx": tx})
    assert a.locks == {} and value(a, 2) == [1] and value(a, 4) == [1]
    assert prepare(a, "t7", [["append", 0, 9]])["type"] == "ok"


def test_commit_applies_everywhere_and_abort_nowhere():
    a, b = cluster()
    mops = {0: [["append", 0, 1], ["r", 2, None]], 1: [["append", 1, 1]]}
    for st in (a, b):
        assert prepare(st, "t", mops[st.group])["type"] == "ok"
    assert value(a, 0) is None  # not before the commit
    assert a.apply({"f": "decide", "tx": "t", "value": "commit"})["value"] == "commit"
    for st in (a, b):
        assert st.apply({"f": "commit", "tx": "t"})["value"] == "commit"
        assert st.apply({"f": "commit", "tx": "t"})["type"] == "ok"  # idempotent
    assert value(a, 0) == [1] and value(b, 1) == [1] and a.locks == b.locks == {}
    for st in (a, b):
        assert prepare(st, "u", [["append", st.group, 2]])["type"] == "ok"
        st.apply({"f": "abort", "tx": "u"})
    assert value(a, 0) == [1] and value(b, 1) == [1] and a.locks == b.locks == {}
    late = a.apply({"f": "prepare", "tx": "u", "coord": 0, "value": [["append", 0, 2]]})
    assert late == {"type": "fail", "error": "already-aborted"}  # a prepare after the abort
    assert a.apply({"f": "abort", "tx": "t"})["error"] == "already-committed"


def test_first_recorded_decision_wins():
    a, _ = cluster()
    assert a.apply({"f": "decide", "tx": "t", "value": "abort"})["value"] == "abort"  # recovery first
    assert a.apply({"f": "decide", "tx": "t", "value": "commit"})["value"] == "abort"  # coordinator late
    assert a.apply({"f": "decide", "tx": "x", "value": "maybe"})["error"] == "bad-op"


def recover(groups: list[ShardState]) -> None:
    """What each group leader's recovery task does for every stale prepared transaction."""
    for st in groups:
        for tx, rec in list(st.prepared.items()):
            d = groups[rec["coord"]].apply({"f": "decide", "tx": tx, "value": "abort"})["value"]
            st.apply({"f": d, "tx": tx})


def test_coordinator_crash_before_the_decision_aborts_everywhere():
    a, b = cluster()
    prepare(a, "t", [["append", 0, 1]])
    prepare(b, "t", [["append", 1, 1]])
    # The coordinator dies here: no decide, no commit.
    recover([a, b])
    assert value(a, 0) is None and value(b, 1) is None
    assert a.prepared == b.prepared == {} and a.locks == b.locks == {}


def test_coordinator_crash_after_the_decision_commits_everywhere():
    a, b = cluster()
    prepare(a, "t", [["append", 0, 1]])
    prepare(b, "t", [["append", 1, 1]])
    a.apply({"f": "decide", "tx": "t", "value": "commit"})
    a.apply({"f": "commit", "tx": "t"})
    # The coordinator dies after committing at a only: b must still commit.
    recover([a, b])
    assert value(a, 0) == [1] and value(b, 1) == [1] and b.done["t"] == "commit"


# --------------------------------------------------------------------- generated schedules

def owner(key: int) -> int:
    return initial_owner(shard_of(key, S), G)


def steps_of(mops) -> list[tuple[str, int]]:
    """The coordinator's steps: prepare at each group in order, decide, commit at each."""
    groups = sorted({owner(m[1]) for m in mops})
    return [("prepare", g) for g in groups] + [("decide", min(groups))] + [("commit", g) for g in groups]


@hs.composite
def schedules(draw):
    """Transactions over both groups, their steps interleaved, each maybe cut short."""
    n = draw(hs.integers(1, 5))
    txs = []
    for i in range(n):
        keys = draw(hs.lists(hs.integers(0, 5), min_size=1, max_size=3))
        mops = [[draw(hs.sampled_from(["r", "append"])), k, 100 * i + j] for j, k in enumerate(keys)]
        for m in mops:
            if m[0] == "r":
                m[2] = None
        steps = steps_of(mops)
        # The coordinator crashes after this many steps (len(steps): it does not crash).
        txs.append((f"t{i}", mops, steps, draw(hs.integers(0, len(steps)))))
    order = draw(hs.permutations([i for i, (_, _, steps, _) in enumerate(txs) for _ in steps]))
    snap_at = draw(hs.integers(0, len(order)))
    return txs, order, snap_at


@settings(max_examples=400, deadline=None)
@given(schedules())
def test_generated_schedules_are_atomic_after_recovery(sched):
    """Whatever the interleaving and the crash point (between any two group commands):
    after recovery every transaction is applied in all its groups or in none, applied
    exactly when its recorded decision is commit, and no lock or prepared record is
    left; a snapshot round trip anywhere changes nothing."""
    txs, order, snap_at = sched
    groups = cluster()
    progress = {tx: 0 for tx, _, _, _ in txs}
    alive = {tx: True for tx, _, _, _ in txs}
    for step_no, i in enumerate(order):
        if step_no == snap_at:
            groups = [ShardState.restore(json.loads(json.dumps(g.snapshot())), g.group, G, S) for g in groups]
        tx, mops, steps, crash = txs[i]
        k = progress[tx]
        progress[tx] += 1
        if k >= crash or not alive[tx]:
            continue
        kind, g = steps[k]
        if kind == "prepare":
            r = prepare(groups[g], tx, [m for m in mops if owner(m[1]) == g], min(owner(m[1]) for m in mops))
            if r["type"] != "ok":
                alive[tx] = False
                for h in {owner(m[1]) for m in mops}:  # the coordinator aborts everywhere
                    groups[h].apply({"f": "abort", "tx": tx})
        elif kind == "decide":
            if groups[g].apply({"f": "decide", "tx": tx, "value": "commit"})["value"] != "commit":
                alive[tx] = False
        else:
            groups[g].apply({"f": "commit", "tx": tx})
    recover(groups)
    for tx, mops, _, _ in txs:
        decided = groups[min(owner(m[1]) for m in mops)].decisions.get(tx)
        seen = [m[2] in (groups[owner(m[1])].get(m[1]) or []) for m in mops if m[0] == "append"]
        assert len(set(seen)) <= 1, (tx, seen)  # all or nothing
        if seen:
            assert seen[0] == (decided == "commit"), (tx, decided, seen)
    for g in groups:
        assert g.locks == {} and g.prepared == {}


# --------------------------------------------------------------------- shard moves

def test_shard_move_is_fenced_and_idempotent():
    a, b = cluster()
    a.apply({"f": "txn1", "value": [["append", 0, 1]]})
    prepare(a, "t", [["append", 4, 1]])  # shard 0 locked
    busy = a.apply({"f": "shard-out", "value": {"shard": 0, "to": 1}})
    assert busy["type"] == "fail" and busy["error"] == "busy"
    a.apply({"f": "abort", "tx": "t"})
    out = a.apply({"f": "shard-out", "value": {"shard": 0, "to": 1}})
    assert out["type"] == "ok" and out["value"]["epoch"] == 1
    assert a.apply({"f": "shard-out", "value": {"shard": 0, "to": 1}})["value"]["already"] is True
    fenced = a.apply({"f": "txn1", "value": [["r", 0, None]]})
    assert (fenced["error"], fenced["owner"], fenced["epoch"]) == ("wrong-group", 1, 1)
    assert b.apply({"f": "txn1", "value": [["r", 0, None]]})["error"] == "wrong-group"  # not yet in
    [(s, epoch, to, data)] = a.to_hand_off()
    assert (s, epoch, to) == (0, 1, 1)
    b.apply({"f": "shard-in", "shard": s, "epoch": epoch, "data": data})
    assert b.apply({"f": "shard-in", "shard": s, "epoch": epoch, "data": {}})["value"]["already"]
    assert b.apply({"f": "txn1", "value": [["r", 0, None]]})["value"] == [["r", 0, [1]]]
    a.apply({"f": "shard-handed", "shard": 0, "epoch": 1})
    assert a.to_hand_off() == []
    assert a.apply({"f": "shard-out", "value": {"shard": 9, "to": 1}})["error"] == "bad-op"


def test_snapshot_of_another_layout_is_refused():
    a, _ = cluster()
    with pytest.raises(ValueError, match="fresh data dir"):
        ShardState.restore(a.snapshot(), 1, G, S)


# --------------------------------------------------------------------- seeded bugs

def test_no_read_locks_lets_a_writer_past_a_reader():
    a, _ = cluster(frozenset({"no-read-locks"}))
    assert prepare(a, "t1", [["r", 0, None]])["type"] == "ok"
    assert prepare(a, "t2", [["append", 0, 9]])["type"] == "ok"  # the correct node refuses this
    assert prepare(a, "t3", [["r", 0, None]])["error"] == "locked"  # write locks still hold


def test_read_committed_reads_past_a_prepared_writer():
    a, _ = cluster(frozenset({"read-committed"}))
    a.apply({"f": "txn1", "value": [["append", 0, 1]]})
    assert prepare(a, "t1", [["append", 0, 2]])["type"] == "ok"
    assert prepare(a, "t2", [["r", 0, None]])["value"] == [["r", 0, [1]]]  # the last committed value


def test_early_lock_release_shows_writes_before_the_decision():
    a, _ = cluster(frozenset({"early-lock-release"}))
    assert prepare(a, "t1", [["append", 0, 1]])["type"] == "ok"
    assert a.locks == {} and value(a, 0) == [1]  # visible before any decision
    assert prepare(a, "t2", [["append", 0, 2]])["type"] == "ok"
    a.apply({"f": "abort", "tx": "t1"})
    assert value(a, 0) == [2]  # undone, the later append kept


def test_stale_shard_map_serves_a_moved_shard():
    a, _ = cluster(frozenset({"stale-shard-map"}))
    a.apply({"f": "shard-out", "value": {"shard": 0, "to": 1}})
    assert a.apply({"f": "txn1", "value": [["append", 0, 1]]})["type"] == "ok"  # correct: wrong-group
