"""Durable Raft storage: a write-ahead log of records plus a snapshot file.

Theory of operation
-------------------
``DATA_DIR/raft.wal`` is a :class:`~jepsenlike.models.server.wal.RecordFile` whose
records are JSON objects of three kinds:

* ``{"hs": [term, vote, commit]}`` -- the hard state from then on;
* ``{"e": [[index, term, data], ...]}`` -- entries; the first entry's index says where
  they go, and everything the log held from that index on is replaced (a follower
  truncating a conflicting suffix writes exactly this);
* ``{"snap": [index, term]}`` -- a snapshot was installed from the leader and replaces
  the whole log (a compaction's rewrite starts with one too, so the WAL always says
  which snapshot it continues).

Its first record is the data dir's identity (see
:func:`~jepsenlike.models.server.wal.open_data_dir`), also kept in
``DATA_DIR/identity.json``.

``DATA_DIR/snapshot.json`` holds the latest snapshot (index, term, state machine
data), written atomically. :meth:`RaftStorage.save` writes everything one
:class:`~jepsenlike.models.raft.core.Ready` asks to persist as one batch with one
fsync; the driver sends messages only after it returns.

Recovery (:meth:`RaftStorage.load`) checks the identity, reads the snapshot, replays
the WAL (after cutting a torn tail; a corrupt record, a lost WAL, or a snapshot file
older than the one the WAL names raise :class:`~jepsenlike.models.server.wal.DataDirError`
unless ``repair``) and keeps only entries that continue the snapshot: if the WAL's
entry at the snapshot index has a different term (a crash between writing an
installed snapshot and its WAL marker), the WAL entries are stale and dropped.

After a local compaction, :meth:`RaftStorage.compact` writes the snapshot file and
rewrites the WAL as one hard state record plus the entries above the snapshot, so
the WAL stays small. The storage keeps its own copy of the entries it wrote so that
it never reads the core's log from another thread.

``volatile_vote=True`` is the ``volatile-vote`` seeded bug: term and vote are written
as zero/none, so a restarted node has forgotten whom it voted for.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from jepsenlike.models.raft.core import Entry, HardState, Ready, Snapshot
from jepsenlike.models.server.wal import (
    DataDirError,
    Identity,
    RecordFile,
    open_data_dir,
    write_file_atomically,
)

__all__ = ["RaftStorage"]

log = logging.getLogger(__name__)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class RaftStorage:
    """WAL + snapshot in one directory. Not thread-safe: one thread at a time."""

    def __init__(
        self,
        data_dir: str,
        fsync: bool = True,
        volatile_vote: bool = False,
        identity: Identity | None = None,
        repair: bool = False,
    ) -> None:
        self.dir = data_dir
        self.fsync = fsync
        self.volatile_vote = volatile_vote
        self.identity = identity
        self.repair = repair
        os.makedirs(data_dir, exist_ok=True)
        self.wal = RecordFile(os.path.join(data_dir, "raft.wal"), fsync=fsync)
        self.snapshot_path = os.path.join(data_dir, "snapshot.json")
        self.hard_state = HardState()
        self.snapshot = Snapshot()
        self.entries: list[Entry] = []  # entries above the snapshot, as persisted

    # -- recovery ---------------------------------------------------------------

    def load(self) -> tuple[HardState, Snapshot, list[Entry]]:
        """Recover what was persisted (cutting a torn WAL tail).

        Raises:
            DataDirError: corruption, a lost WAL or snapshot, or another node's data.
        """
        payloads = open_data_dir(self.wal, self.identity, self.repair)
        if os.path.exists(self.snapshot_path):
            try:
                with open(self.snapshot_path, "rb") as f:
                    self.snapshot = Snapshot.from_wire(json.loads(f.read()))
            except (ValueError, KeyError, TypeError) as e:
                self.wal.close()
                raise DataDirError(
                    f"{self.snapshot_path}: unreadable snapshot ({e}); the file is left "
                    "untouched: restore it"
                ) from None
        hs = HardState()
        entries: list[Entry] = []
        base = 0  # index of the entry before entries[0]
        named_snapshot = 0  # the highest snapshot index the WAL says it continues
        for number, payload in enumerate(payloads, start=2):
            try:
                rec = json.loads(payload)
            except ValueError:
                self.wal.close()
                raise DataDirError(
                    f"{self.wal.path}: record {number} has an intact checksum but is not "
                    "JSON; the file is left untouched: restore it"
                ) from None
            if "hs" in rec:
                t, v, c = rec["hs"]
                hs = HardState(t, v, c)
            elif "e" in rec:
                new = [Entry(e[0], e[1], e[2]) for e in rec["e"]]
                if not new:
                    continue
                first = new[0].index
                if first <= base:
                    entries = []
                    base = first - 1
                del entries[first - base - 1 :]
                entries.extend(new)
            elif "snap" in rec:
                idx, _term = rec["snap"]
                entries = []
                base = idx
                named_snapshot = max(named_snapshot, idx)
        snap = self.snapshot
        if named_snapshot > snap.index:
            self.wal.close()
            have = "missing" if snap.index == 0 else f"at index {snap.index}"
            raise DataDirError(
                f"{self.snapshot_path}: the WAL continues a snapshot at index {named_snapshot} "
                f"but the snapshot file is {have}; refusing to start with a hole in the log: "
                "restore the file"
            )
        # Keep only entries that continue the snapshot.
        if snap.index > 0:
            at = next((e for e in entries if e.index == snap.index), None)
            if entries and entries[0].index > snap.index + 1:
                entries = []
            elif at is not None and at.term != snap.term:
                entries = []
            elif at is None and entries and entries[0].index <= snap.index:
                entries = []
            entries = [e for e in entries if e.index > snap.index]
        if entries and entries[0].index != snap.index + 1:
            log.warning("WAL entries start at %d after snapshot %d; dropping them",
                        entries[0].index, snap.index)
            entries = []
        self.hard_state = hs
        self.entries = entries
        return hs, snap, list(entries)

    # -- persistence --------------------------------------------------------------

    def save(self, rd: Ready) -> None:
        """Persist the Ready's hard state, snapshot and entries durably (one fsync)."""
        records: list[bytes] = []
        if rd.snapshot is not None:
            self._write_snapshot(rd.snapshot)
            records.append(_dumps({"snap": [rd.snapshot.index, rd.snapshot.term]}))
            self.entries = []
        if rd.entries:
            first = rd.entries[0].index
            base = self.snapshot.index + 1
            del self.entries[max(first - base, 0) :]
            self.entries.extend(e for e in rd.entries if e.index >= base)
            records.append(_dumps({"e": [[e.index, e.term, e.data] for e in rd.entries]}))
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
            records.append(_dumps({"hs": self._hs_record(rd.hard_state)}))
        if records:
            self.wal.append(records)

    def _hs_record(self, hs: HardState) -> list[Any]:
        if self.volatile_vote:
            # BUG (volatile-vote): term and vote never reach the disk.
            return [0, None, hs.commit]
        return [hs.term, hs.vote, hs.commit]

    def _write_snapshot(self, snap: Snapshot) -> None:
        write_file_atomically(self.snapshot_path, _dumps(snap.to_wire()), self.fsync)
        self.snapshot = snap

    def compact(self, snap: Snapshot) -> None:
        """Persist a locally taken snapshot and drop the WAL entries it covers."""
        if snap.index <= self.snapshot.index:
            return
        self._write_snapshot(snap)
        self.entries = [e for e in self.entries if e.index > snap.index]
        records = [
            _dumps({"hs": self._hs_record(self.hard_state)}),
            _dumps({"snap": [snap.index, snap.term]}),
        ]
        if self.entries:
            records.append(_dumps({"e": [[e.index, e.term, e.data] for e in self.entries]}))
        self.wal.replace(records)

    def close(self) -> None:
        self.wal.close()
