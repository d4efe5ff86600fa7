"""Damaged data dirs: the reference nodes' storages refuse corruption and lost state.

For Raft (:class:`RaftStorage`) and Paxos (:class:`FileStorage`): one flipped byte in
the middle of the WAL is corruption (refused, file untouched, message naming file,
offset and record); a record the file ends inside is a torn tail (cut, only that
unacknowledged record lost); a zero-length or missing WAL where ``identity.json``
says state existed is refused; another node's directory is refused; ``repair=True``
cuts at the first bad record and the storage opens.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.models.paxos.core import Accepted
from jepsenlike.models.paxos.core import Ready as PReady
from jepsenlike.models.paxos.storage import FileStorage
from jepsenlike.models.raft.core import Entry, HardState, Ready, Snapshot
from jepsenlike.models.raft.storage import RaftStorage
from jepsenlike.models.server.node import DIE_WITH_PARENT_ENV, die_with_parent
from jepsenlike.models.server.wal import (
    IDENTITY_FILE,
    DataDirError,
    Identity,
    encode_record,
    scan_records,
)

RAFT_ID = Identity.of("raft", "n1", ["n2", "n3"])
PAXOS_ID = Identity.of("paxos", "n1", ["n2", "n3"])


def rready(hs=None, entries=(), snapshot=None) -> Ready:
    return Ready(hs, list(entries), snapshot, [], [], [], [], "follower", None, 0)


def pready(promised=None, accepted=()) -> PReady:
    return PReady(promised, list(accepted), None, [], [], [], [], "follower", None, 0)


# -- one driver per protocol: fill a dir with N acknowledged writes, reopen, observe --


class RaftCase:
    wal = "raft.wal"
    identity = RAFT_ID

    def open(self, d: Path, repair: bool = False, identity: Identity | None = RAFT_ID) -> Any:
        s = RaftStorage(str(d), identity=identity, repair=repair)
        s.load()
        return s

    def fill(self, d: Path, n: int) -> None:
        s = self.open(d)
        s.save(rready(HardState(1, "n1", 0)))
        for k in range(1, n + 1):
            s.save(rready(HardState(1, "n1", k - 1), [Entry(k, 1, f"v{k}")]))
        s.close()

    def writes(self, d: Path, repair: bool = False) -> list[str]:
        s = RaftStorage(str(d), identity=RAFT_ID, repair=repair)
        _, _, entries = s.load()
        s.close()
        return [e.data for e in entries]


class PaxosCase:
    wal = "paxos.wal"
    identity = PAXOS_ID

    def open(self, d: Path, repair: bool = False, identity: Identity | None = PAXOS_ID) -> Any:
        return FileStorage(d, identity=identity, repair=repair)

    def fill(self, d: Path, n: int) -> None:
        s = self.open(d)
        s.save(pready((1, "n1")))
        for k in range(1, n + 1):
            s.save(pready(None, [Accepted(k, (1, "n1"), f"v{k}")]))
        s.close()

    def writes(self, d: Path, repair: bool = False) -> list[str]:
        s = FileStorage(d, identity=PAXOS_ID, repair=repair)
        st = s.load()
        s.close()
        return [st.accepted[k].value for k in sorted(st.accepted)]


CASES = [RaftCase(), PaxosCase()]
ids = ["raft", "paxos"]


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, end) of every record in an intact file."""
    data = path.read_bytes()
    payloads, end, damage = scan_records(data)
    assert damage is None and end == len(data)
    out, off = [], 0
    for p in payloads:
        out.append((off, off + 8 + len(p)))
        off += 8 + len(p)
    return out


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_flipped_byte_mid_file_is_refused_and_the_file_left_untouched(tmp_path, case) -> None:
    case.fill(tmp_path, 20)
    wal = tmp_path / case.wal
    recs = records(wal)
    k = len(recs) // 2  # a record in the middle (0-based)
    off, end = recs[k]
    data = bytearray(wal.read_bytes())
    data[off + 8 + (end - off - 8) // 2] ^= 0x01  # one bit of its payload
    wal.write_bytes(bytes(data))
    with pytest.raises(DataDirError) as e:
        case.open(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(wal) in msg
    assert f"record {k + 1} at byte offset {off} " in msg
    assert "--repair" in msg
    assert wal.read_bytes() == bytes(data)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_flipped_length_byte_mid_file_is_corruption_not_a_torn_tail(tmp_path, case) -> None:
    # The old reader took a length running past the end for a torn tail and cut
    # everything after it.
    case.fill(tmp_path, 20)
    wal = tmp_path / case.wal
    off, _ = records(wal)[5]
    data = bytearray(wal.read_bytes())
    data[off] ^= 0x10  # the length's top byte: now far past the end of the file
    wal.write_bytes(bytes(data))
    with pytest.raises(DataDirError, match=f"record 6 at byte offset {off} is corrupt"):
        case.open(tmp_path)
    assert wal.read_bytes() == bytes(data)


def writes_if_cut_at(case: Any, d: Path, off: int) -> list[str]:
    """What a copy of ``d`` whose WAL ends cleanly at ``off`` recovers."""
    ref = d.parent / (d.name + "-ref")
    shutil.copytree(d, ref)
    os.truncate(ref / case.wal, off)
    return case.writes(ref)


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("cut", [1, 5, 9, 12])
def test_truncation_inside_the_last_record_loses_only_that_record(
    tmp_path, case, cut, caplog
) -> None:
    d = tmp_path / "d"
    case.fill(d, 10)
    wal = d / case.wal
    size = wal.stat().st_size
    last_off, last_end = records(wal)[-1]
    assert last_end == size and size - last_off > cut
    expected = writes_if_cut_at(case, d, last_off)
    assert len(expected) >= 9  # at most the last write is in the last record
    os.truncate(wal, size - cut)
    with caplog.at_level(logging.WARNING):
        assert case.writes(d) == expected
    assert f"cut a torn WAL tail of {size - cut - last_off} bytes" in caplog.text
    assert f"at byte offset {last_off}" in caplog.text
    assert wal.stat().st_size == last_off
    s = case.open(d)  # and the next start finds a clean file
    s.close()
    assert case.writes(d) == expected


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_zero_length_wal_with_an_identity_is_refused(tmp_path, case) -> None:
    case.fill(tmp_path, 3)
    wal = tmp_path / case.wal
    wal.write_bytes(b"")
    with pytest.raises(DataDirError) as e:
        case.open(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(wal) in msg and "empty (0 bytes)" in msg
    assert IDENTITY_FILE in msg and "--repair" in msg
    assert wal.read_bytes() == b""


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_missing_wal_with_an_identity_is_refused(tmp_path, case) -> None:
    case.fill(tmp_path, 3)
    wal = tmp_path / case.wal
    wal.unlink()
    with pytest.raises(DataDirError, match="the WAL is missing"):
        case.open(tmp_path)
    assert not wal.exists()
    # Without an identity to check (tools, tests) the lost WAL is still refused.
    with pytest.raises(DataDirError, match="the WAL is missing"):
        case.open(tmp_path, identity=None)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_repair_cuts_at_the_first_bad_record_and_starts(tmp_path, case, caplog) -> None:
    d = tmp_path / "d"
    case.fill(d, 20)
    wal = d / case.wal
    recs = records(wal)
    off, end = recs[10]
    expected = writes_if_cut_at(case, d, off)
    assert 4 <= len(expected) < 20
    data = bytearray(wal.read_bytes())
    data[end - 2] ^= 0xFF
    wal.write_bytes(bytes(data))
    with pytest.raises(DataDirError):
        case.open(d)
    with caplog.at_level(logging.WARNING):
        writes = case.writes(d, repair=True)
    assert f"repair: cut {wal} at byte offset {off} (record 11" in caplog.text
    assert f"{len(data) - off} bytes dropped" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert wal.stat().st_size == off
    assert writes == expected  # records 1..10 survive, nothing after them
    assert case.writes(d) == writes  # and a plain restart now works


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_repair_of_an_empty_wal_starts_from_nothing(tmp_path, case, caplog) -> None:
    case.fill(tmp_path, 3)
    (tmp_path / case.wal).write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        assert case.writes(tmp_path, repair=True) == []
    assert "forgotten its votes" in caplog.text
    assert case.writes(tmp_path) == []  # the new WAL carries the identity again


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_another_nodes_data_dir_is_refused(tmp_path, case) -> None:
    case.fill(tmp_path, 2)
    other = Identity.of(case.identity.protocol, "n2", ["n1", "n3"])
    with pytest.raises(DataDirError, match="belongs to .* node n1 .*not .* node n2"):
        case.open(tmp_path, identity=other)
    other_cluster = Identity.of(case.identity.protocol, "n1", ["n2", "n4"])
    with pytest.raises(DataDirError, match="point --data-dir at this node's own directory"):
        case.open(tmp_path, identity=other_cluster)
    # The WAL's own identity record is checked too when identity.json is gone.
    (tmp_path / IDENTITY_FILE).unlink()
    with pytest.raises(DataDirError, match="record 1 says this WAL belongs to"):
        case.open(tmp_path, identity=other)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_first_start_writes_identity_and_it_survives_compaction(tmp_path, case) -> None:
    case.fill(tmp_path, 5)
    doc = json.loads((tmp_path / IDENTITY_FILE).read_text())
    assert doc["node"] == "n1" and doc["members"] == ["n1", "n2", "n3"]
    assert doc["cluster"] == case.identity.cluster and doc["protocol"] == case.identity.protocol
    s = case.open(tmp_path)
    if isinstance(case, RaftCase):
        s.compact(Snapshot(3, 1, {"data": {}}))
    else:
        from jepsenlike.models.paxos.core import Snapshot as PSnapshot

        s.save_snapshot(PSnapshot(3, {"data": {}}))
    s.close()
    first = scan_records((tmp_path / case.wal).read_bytes())[0][0]
    assert json.loads(first)["identity"]["node"] == "n1"
    assert case.writes(tmp_path)[-2:] == ["v4", "v5"]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_a_lost_snapshot_file_the_wal_depends_on_is_refused(tmp_path, case) -> None:
    case.fill(tmp_path, 5)
    s = case.open(tmp_path)
    if isinstance(case, RaftCase):
        s.compact(Snapshot(3, 1, {"data": {}}))
        snap = tmp_path / "snapshot.json"
    else:
        from jepsenlike.models.paxos.core import Snapshot as PSnapshot

        s.save_snapshot(PSnapshot(3, {"data": {}}))
        snap = tmp_path / FileStorage.SNAPSHOT
    s.close()
    snap.unlink()
    with pytest.raises(DataDirError, match=r"(snapshot|checkpoint) file is missing"):
        case.open(tmp_path)


def test_a_fresh_dir_without_identity_adopts_a_legacy_wal(tmp_path) -> None:
    # A WAL written before identity records existed (no identity.json, no record 1).
    s = RaftStorage(str(tmp_path))
    s.load()
    s.save(rready(HardState(2, "n1", 0), [Entry(1, 2, "a")]))
    s.close()
    assert not (tmp_path / IDENTITY_FILE).exists()
    assert RaftCase().writes(tmp_path) == ["a"]
    assert (tmp_path / IDENTITY_FILE).exists()
    assert RaftCase().writes(tmp_path) == ["a"]


# -- the classification itself --------------------------------------------------------


def test_scan_classifies_torn_tails_and_corruption() -> None:
    a, b, c = (encode_record(x) for x in (b'{"a":1}', b'{"b":2}', b'{"c":3}'))
    whole = a + b + c
    assert scan_records(whole)[2] is None
    # Cut inside the header or the payload of the last record: torn.
    for n in (1, 7, 8, len(c) - 1):
        d = scan_records(whole[: len(a) + len(b) + n])[2]
        assert d is not None and d.torn and d.record == 3 and d.offset == len(a) + len(b)
    # A bad checksum on the last record, which ends exactly at the end: torn.
    last = bytearray(whole)
    last[-1] ^= 1
    d = scan_records(bytes(last))[2]
    assert d is not None and d.torn and d.record == 3
    # The same in the middle record: corruption.
    mid = bytearray(whole)
    mid[len(a) + 9] ^= 1
    d = scan_records(bytes(mid))[2]
    assert d is not None and not d.torn and d.record == 2 and d.offset == len(a)
    # A zero-filled tail (the size became durable, the data did not): torn.
    d = scan_records(a + b + bytes(4096))[2]
    assert d is not None and d.torn and d.record == 3
    # A length running past the end with an intact record after it: corruption.
    bad_len = bytearray(whole)
    bad_len[len(a)] = 0x7F
    d = scan_records(bytes(bad_len))[2]
    assert d is not None and not d.torn and d.offset == len(a)


# -- parent death ----------------------------------------------------------------------


def test_die_with_parent_rejects_a_value_that_is_not_a_pid() -> None:
    with pytest.raises(ValueError, match=DIE_WITH_PARENT_ENV):
        die_with_parent({DIE_WITH_PARENT_ENV: "harness"})
    die_with_parent({})  # unset: nothing happens


CHILD = f"""
import os, subprocess, sys
env = dict(os.environ, {DIE_WITH_PARENT_ENV}=str(os.getpid()))
p = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env)
print(p.pid, flush=True)
p.wait()
"""
GRANDCHILD = """
import time
from jepsenlike.models.server.node import die_with_parent
die_with_parent()
print("armed", flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_node_dies_with_its_parent_even_on_sigkill() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, GRANDCHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        grandchild = int(parent.stdout.readline())
        assert _alive(grandchild)
        time.sleep(1.0)  # let it arm the prctl (imports take a moment)
        assert _alive(grandchild)
        parent.kill()
        parent.wait(5)
        assert _wait_dead(grandchild, 5.0), "the node outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(5)


def test_a_node_whose_parent_already_changed_exits_at_once() -> None:
    r = subprocess.run(
        [sys.executable, "-c", GRANDCHILD],
        env=dict(os.environ, **{DIE_WITH_PARENT_ENV: "1" if os.getpid() != 1 else "2"}),
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 1 and "armed" not in r.stdout
    assert "is gone" in r.stderr


