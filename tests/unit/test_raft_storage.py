"""Durable Raft storage: WAL records, torn tails, snapshots, recovery."""

from __future__ import annotations

import os

import pytest

from jepsenlike.models.raft.core import Entry, HardState, Ready, Snapshot
from jepsenlike.models.raft.storage import RaftStorage
from jepsenlike.models.server.wal import RecordFile, encode_record, read_records


def ready(hs=None, entries=(), snapshot=None) -> Ready:
    return Ready(hs, list(entries), snapshot, [], [], [], [], "follower", None, 0)


def test_records_round_trip_and_stop_at_damage() -> None:
    data = encode_record(b"one") + encode_record(b"two")
    assert [p for _, p in read_records(data)] == [b"one", b"two"]
    assert [p for _, p in read_records(data[:-1])] == [b"one"]  # short tail
    flipped = data[:-1] + bytes([data[-1] ^ 1])
    assert [p for _, p in read_records(flipped)] == [b"one"]  # checksum


def test_record_file_cuts_a_torn_tail_and_appends_after_it(tmp_path) -> None:
    path = str(tmp_path / "w")
    f = RecordFile(path)
    assert f.open() == []
    f.append([b"a", b"b"])
    f.close()
    with open(path, "ab") as raw:
        raw.write(encode_record(b"torn")[:-2])
    f = RecordFile(path)
    assert f.open() == [b"a", b"b"]
    assert f.torn_bytes == len(encode_record(b"torn")) - 2
    f.append([b"c"])
    f.close()
    assert RecordFile(path).open() == [b"a", b"b", b"c"]


def test_hard_state_and_entries_survive_reopen(tmp_path) -> None:
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(ready(HardState(2, "n1", 1), [Entry(1, 1, "a"), Entry(2, 2, "b")]))
    # A follower replacing a conflicting suffix from index 2.
    s.save(ready(HardState(3, "n3", 1), [Entry(2, 3, "B"), Entry(3, 3, "C")]))
    s.close()
    hs, snap, entries = RaftStorage(str(tmp_path)).load()
    assert hs == HardState(3, "n3", 1)
    assert snap == Snapshot()
    assert entries == [Entry(1, 1, "a"), Entry(2, 3, "B"), Entry(3, 3, "C")]


def test_compaction_keeps_entries_after_the_snapshot(tmp_path) -> None:
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(ready(HardState(1, "n1", 3), [Entry(i, 1, i) for i in range(1, 6)]))
    s.compact(Snapshot(3, 1, {"data": {"k": 3}}))
    s.save(ready(None, [Entry(6, 1, 6)]))
    s.close()
    hs, snap, entries = RaftStorage(str(tmp_path)).load()
    assert hs == HardState(1, "n1", 3)
    assert snap == Snapshot(3, 1, {"data": {"k": 3}})
    assert [e.index for e in entries] == [4, 5, 6]


def test_installed_snapshot_replaces_the_log(tmp_path) -> None:
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(ready(HardState(1, None, 0), [Entry(1, 1, "stale"), Entry(2, 1, "stale")]))
    s.save(ready(HardState(2, None, 10), [Entry(11, 2, "x")], snapshot=Snapshot(10, 2, {"data": {}})))
    s.close()
    _, snap, entries = RaftStorage(str(tmp_path)).load()
    assert snap.index == 10 and entries == [Entry(11, 2, "x")]


def test_wal_entries_that_do_not_continue_the_snapshot_are_dropped(tmp_path) -> None:
    # A crash after writing an installed snapshot but before its WAL marker.
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(ready(HardState(1, None, 0), [Entry(1, 1, "a"), Entry(2, 1, "b"), Entry(3, 1, "c")]))
    s._write_snapshot(Snapshot(2, 5, {"data": {}}))  # term 5 at index 2 disagrees with WAL
    s.close()
    _, snap, entries = RaftStorage(str(tmp_path)).load()
    assert snap.index == 2 and entries == []


def test_volatile_vote_bug_forgets_term_and_vote(tmp_path) -> None:
    s = RaftStorage(str(tmp_path), volatile_vote=True)
    s.load()
    s.save(ready(HardState(4, "n2", 0)))
    s.close()
    hs, _, _ = RaftStorage(str(tmp_path)).load()
    assert hs == HardState(0, None, 0)


@pytest.mark.parametrize("cut", [1, 5, 9, 13])
def test_any_truncation_of_the_last_record_recovers_the_earlier_ones(tmp_path, cut) -> None:
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(ready(HardState(1, "n1", 0), [Entry(1, 1, "a")]))
    s.save(ready(None, [Entry(2, 1, "b" * 20)]))
    s.close()
    wal = tmp_path / "raft.wal"
    size = os.path.getsize(wal)
    os.truncate(wal, size - cut)
    hs, _, entries = RaftStorage(str(tmp_path)).load()
    assert hs == HardState(1, "n1", 0) and entries == [Entry(1, 1, "a")]
