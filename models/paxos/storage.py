"""Durable acceptor state for the Paxos node: promise, votes, checkpoint.

Theory of operation
-------------------
An acceptor's promise and votes are only worth something if they survive a crash:
a node that promised ballot 7, crashed and came back without remembering it could
accept a value at ballot 6 and help choose a second value for a slot. So the driver
calls :meth:`FileStorage.save` with each :class:`~jepsenlike.models.paxos.core.Ready`
and only sends the Ready's messages once it returns, and ``save`` returns only after
``fsync``.

On disk, in the data directory:

* ``paxos.wal`` -- an append-only sequence of records, one per Ready that changed
  something. A record is ``length (4 bytes, big-endian) | crc32 (4 bytes) | payload``
  where the payload is JSON ``{"p": ballot?, "a": [[slot, ballot, value], ...]?,
  "c": checkpoint?}``; replaying the records in order rebuilds the promise and, per
  slot, the last vote (``"c"``, written by a rewrite, names the checkpoint the votes
  continue). The first record is the data dir's identity, also kept in
  ``identity.json`` (see :func:`~jepsenlike.models.server.wal.open_data_dir`).
* ``paxos.snapshot`` -- the latest checkpoint ``{"index", "data"}``, replaced
  atomically (write a temporary file, fsync, rename, fsync the directory).

A SIGKILL can cut the last record short. Opening the storage reads records until
the first one that does not check out. If it is a *torn tail* (the file ends inside
it; the exact rule is in :mod:`jepsenlike.models.server.wal`) the file is truncated
there, so the next append does not land behind garbage: a torn record was never
acknowledged (its fsync never returned), so dropping it loses nothing promised to
anybody. Anything else is *corruption*: :class:`~jepsenlike.models.server.wal.DataDirError`,
file untouched, unless ``repair``. So is a lost WAL where ``identity.json`` says
state existed, a data dir of another node, and a checkpoint file older than the one
the WAL names.

After a checkpoint (:meth:`FileStorage.save_snapshot`) the votes at or below it are
no longer needed: the WAL is rewritten with the remaining state (temporary file,
fsync, rename), which bounds its size.

:class:`MemoryStorage` keeps the same state in memory with the same semantics, for
the simulator: a "crash" there is building a new node from ``load()``.

``volatile=True`` is the seeded bug ``volatile-acceptor``: promises and votes are
accepted but never written, so a restarted node has forgotten them (checkpoints
are still kept: they only hold decided state).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jepsenlike.models.paxos.core import (
    ZERO_BALLOT,
    Accepted,
    Ballot,
    PersistentState,
    Ready,
    Snapshot,
)
from jepsenlike.models.server.wal import (
    DataDirError,
    Identity,
    RecordFile,
    open_data_dir,
    write_file_atomically,
)

__all__ = ["FileStorage", "MemoryStorage", "Storage"]

class Storage:
    """The in-memory mirror of what is durable, shared by both storages."""

    def __init__(self, volatile: bool = False) -> None:
        self.volatile = volatile
        self.promised: Ballot = ZERO_BALLOT
        self.accepted: dict[int, Accepted] = {}
        self.snapshot = Snapshot()

    def load(self) -> PersistentState:
        """What a node restarting from this storage knows."""
        return PersistentState(self.promised, dict(self.accepted), self.snapshot)

    def save(self, rd: Ready) -> None:
        """Make ``rd``'s promise, votes and received checkpoint durable."""
        if rd.snapshot is not None:
            self._set_snapshot(rd.snapshot)
        if self.volatile:
            changes: dict[str, Any] = {}
        else:
            changes = self._apply(rd.promised, rd.accepted)
        if rd.snapshot is not None:
            self._rewrite()
        elif changes:
            self._append(changes)

    def save_snapshot(self, snap: Snapshot) -> None:
        """Persist a checkpoint the driver took (after :meth:`PaxosNode.compact`)."""
        if snap.index <= self.snapshot.index:
            return
        self._set_snapshot(snap)
        self._rewrite()

    # -- the mirror ---------------------------------------------------------

    def _set_snapshot(self, snap: Snapshot) -> None:
        if snap.index <= self.snapshot.index:
            return
        self.snapshot = snap
        self._write_snapshot(snap)
        for s in [s for s in self.accepted if s <= snap.index]:
            del self.accepted[s]

    def _apply(self, promised: Ballot | None, accepted: list[Accepted]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if promised is not None and promised != self.promised:
            self.promised = promised
            changes["p"] = list(promised)
        votes = [a for a in accepted if a.slot > self.snapshot.index]
        for a in votes:
            self.accepted[a.slot] = a
        if votes:
            changes["a"] = [a.to_wire() for a in votes]
        return changes

    # -- the medium (no-ops in memory) ----------------------------------------

    def _append(self, changes: dict[str, Any]) -> None:
        pass

    def _rewrite(self) -> None:
        pass

    def _write_snapshot(self, snap: Snapshot) -> None:
        pass


class MemoryStorage(Storage):
    """Storage that lives as long as the object: the simulator's disk."""


class FileStorage(Storage):
    """Storage in ``data_dir`` (see the module docstring for the format).

    The record framing, torn-tail repair and atomic file replacement are the shared
    helpers of :mod:`jepsenlike.models.server.wal`.

    Args:
        data_dir: created if missing.
        volatile: the ``volatile-acceptor`` seeded bug.
        fsync: turn off only for benchmarks of the protocol without the disk.
        identity: whose directory this is (checked, and written at first start).
        repair: cut a corrupt WAL at its first bad record instead of refusing.

    Raises:
        DataDirError: corruption, a lost WAL or checkpoint, or another node's data.
    """

    WAL = "paxos.wal"
    SNAPSHOT = "paxos.snapshot"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        volatile: bool = False,
        fsync: bool = True,
        identity: Identity | None = None,
        repair: bool = False,
    ) -> None:
        super().__init__(volatile)
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._wal = RecordFile(str(self.dir / self.WAL), fsync=fsync)
        payloads = open_data_dir(self._wal, identity, repair)
        snap_path = self.dir / self.SNAPSHOT
        try:
            if snap_path.exists():
                self.snapshot = Snapshot.from_wire(json.loads(snap_path.read_bytes()))
            docs = [json.loads(p) for p in payloads]
        except (ValueError, KeyError, TypeError) as e:
            self._wal.close()
            raise DataDirError(
                f"{self.dir}: unreadable {self.SNAPSHOT} or WAL record ({e}); the files are "
                "left untouched: restore them"
            ) from None
        named = max((int(d.get("c", 0)) for d in docs), default=0)
        if named > self.snapshot.index:
            self._wal.close()
            have = "missing" if self.snapshot.index == 0 else f"at slot {self.snapshot.index}"
            raise DataDirError(
                f"{snap_path}: the WAL continues a checkpoint at slot {named} but the "
                f"checkpoint file is {have}; refusing to start with a hole: restore the file"
            )
        for doc in docs:
            if "p" in doc:
                self.promised = (int(doc["p"][0]), str(doc["p"][1]))
            for w in doc.get("a", ()):
                a = Accepted.from_wire(w)
                if a.slot > self.snapshot.index:
                    self.accepted[a.slot] = a
        #: bytes of torn tail that opening cut off (a record a crash left half written)
        self.torn_bytes = self._wal.torn_bytes

    def close(self) -> None:
        self._wal.close()

    def _append(self, changes: dict[str, Any]) -> None:
        self._wal.append([_encode(changes)])

    def _rewrite(self) -> None:
        state: dict[str, Any] = {"c": self.snapshot.index}
        if not self.volatile:
            state = {
                "c": self.snapshot.index,
                "p": list(self.promised),
                "a": [a.to_wire() for _, a in sorted(self.accepted.items())],
            }
        self._wal.replace([_encode(state)])

    def _write_snapshot(self, snap: Snapshot) -> None:
        write_file_atomically(
            str(self.dir / self.SNAPSHOT), _encode(snap.to_wire()), fsync=self.fsync
        )


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
