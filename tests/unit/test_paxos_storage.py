"""The Paxos acceptor's durable state: what a restart recovers, and torn tails."""

from __future__ import annotations

import os

from jepsenlike.models.paxos.core import Accepted, Ready, Snapshot
from jepsenlike.models.paxos.storage import FileStorage, MemoryStorage


def ready(promised=None, accepted=(), snapshot=None) -> Ready:
    return Ready(promised, list(accepted), snapshot, [], [], [], [], "follower", None, 0)


def test_promise_and_votes_survive_a_reopen(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready((2, "n1"), [Accepted(1, (2, "n1"), {"f": "write"}), Accepted(2, (2, "n1"), None)]))
    s.save(ready((3, "n2"), [Accepted(2, (3, "n2"), "y")]))
    s.close()
    st = FileStorage(tmp_path).load()
    assert st.promised == (3, "n2")
    assert st.accepted == {1: Accepted(1, (2, "n1"), {"f": "write"}), 2: Accepted(2, (3, "n2"), "y")}


def test_a_torn_last_record_is_cut_off_and_later_appends_are_readable(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready((1, "n1"), [Accepted(1, (1, "n1"), "a")]))
    s.save(ready((2, "n1"), [Accepted(2, (2, "n1"), "b")]))
    s.close()
    wal = tmp_path / FileStorage.WAL
    size = wal.stat().st_size
    with open(wal, "r+b") as f:  # a crash in the middle of writing the second record
        f.truncate(size - 5)
    s = FileStorage(tmp_path)
    assert s.torn_bytes > 0
    st = s.load()
    assert st.promised == (1, "n1") and set(st.accepted) == {1}
    s.save(ready((4, "n3")))
    s.close()
    s = FileStorage(tmp_path)
    assert s.torn_bytes == 0
    assert s.load().promised == (4, "n3")


def test_a_last_record_with_a_bad_checksum_is_dropped(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready((1, "n1")))
    s.save(ready((2, "n1")))
    s.close()
    wal = tmp_path / FileStorage.WAL
    data = bytearray(wal.read_bytes())
    data[-2] ^= 0xFF
    wal.write_bytes(bytes(data))
    s = FileStorage(tmp_path)
    assert s.torn_bytes > 0 and s.load().promised == (1, "n1")


def test_a_checkpoint_drops_the_votes_it_covers_and_survives_a_reopen(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready((1, "n1"), [Accepted(k, (1, "n1"), f"v{k}") for k in range(1, 6)]))
    s.save_snapshot(Snapshot(3, {"data": {"x": 1}}))
    s.save(ready(None, [Accepted(2, (1, "n1"), "late"), Accepted(6, (1, "n1"), "v6")]))
    s.close()
    st = FileStorage(tmp_path).load()
    assert st.snapshot == Snapshot(3, {"data": {"x": 1}})
    assert sorted(st.accepted) == [4, 5, 6]
    assert st.promised == (1, "n1")


def test_a_checkpoint_received_in_a_ready_is_persisted(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready((1, "n1"), [Accepted(1, (1, "n1"), "a")]))
    s.save(ready((2, "n2"), [Accepted(9, (2, "n2"), "z")], snapshot=Snapshot(8, [1])))
    s.close()
    st = FileStorage(tmp_path).load()
    assert st.snapshot.index == 8 and sorted(st.accepted) == [9] and st.promised == (2, "n2")


def test_volatile_acceptor_bug_keeps_no_votes_but_keeps_checkpoints(tmp_path):
    s = FileStorage(tmp_path, volatile=True)
    s.save(ready((5, "n1"), [Accepted(1, (5, "n1"), "a")]))
    s.save_snapshot(Snapshot(1, ["a"]))
    s.close()
    st = FileStorage(tmp_path).load()
    assert st.promised == (0, "") and st.accepted == {}
    assert st.snapshot == Snapshot(1, ["a"])


def test_memory_storage_has_the_same_semantics():
    m = MemoryStorage()
    m.save(ready((1, "n1"), [Accepted(1, (1, "n1"), "a"), Accepted(2, (1, "n1"), "b")]))
    m.save_snapshot(Snapshot(1, ["a"]))
    st = m.load()
    assert st.promised == (1, "n1") and sorted(st.accepted) == [2] and st.snapshot.index == 1
    assert MemoryStorage(volatile=True).load().promised == (0, "")


def test_nothing_is_written_for_an_empty_ready(tmp_path):
    s = FileStorage(tmp_path)
    s.save(ready())
    s.close()
    assert os.path.getsize(tmp_path / FileStorage.WAL) == 0


def test_the_docs_list_every_seeded_bug():
    from pathlib import Path

    from jepsenlike.models.paxos.bugs import BUGS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "paxos-node.md").read_text()
    for name in BUGS:
        assert f"| `{name}` |" in doc, f"docs/paxos-node.md does not document --bug {name}"
