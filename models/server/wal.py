"""Append-only record files with checksums, data-dir identity, and atomic whole-file writes.

Theory of operation
-------------------
A record file is a sequence of records ``[length: u32 BE][crc32: u32 BE][payload]``
(``length`` >= 1). :class:`RecordFile` appends batches of records with one ``write``
and (unless told not to) one ``fsync``: the caller groups everything a protocol step
must make durable into one batch (group commit). Acknowledgements wait for that
fsync, so only the batch being written when a crash hits can be damaged.

**Torn tail or corruption.** :func:`scan_records` walks the file and classifies the
first record that does not check out:

* *torn tail* (the file ends inside the last record, which a crash during its write
  leaves behind): fewer than 8 header bytes remain; or the header's length is
  impossible (0 or over :data:`MAX_RECORD`) or runs past the end of the file, **and**
  no intact record can be found anywhere after that header (if one can, the length
  field itself was damaged in the middle of the file: corruption); or the record's
  length ends exactly at the end of the file but its checksum fails. That last case
  is allowed because a torn write produces it: a filesystem may make the new file
  size durable before all the data pages (XFS, ext4 ``data=writeback``, or sectors
  of one write reaching the platter out of order), leaving the final record at full
  length with zeros or stale bytes in it. Such a record's fsync never returned, so
  it was never acknowledged. The price, a bit flip in an acknowledged *final* record
  is taken for a torn write, is one record, and it is logged with its size.
* *corruption*: anything else, i.e. a complete record with a bad checksum that has
  more bytes after it, or a damaged length field followed by intact records.

:meth:`RecordFile.open` cuts a torn tail automatically (``torn_bytes`` says how
much) and raises :class:`DataDirError` on corruption, leaving the file untouched;
with ``repair=True`` it truncates at the first bad record instead (``repaired_bytes``
says how much). A batch torn so that an early record of it is garbage but a later
one intact is reported as corruption: refusing is the safe side, and ``--repair``
is the way out.

**Identity.** :func:`open_data_dir` gives a data directory an identity (protocol,
node id, cluster id): the first record of the WAL and the file ``identity.json``.
At first start it writes the WAL with the identity record (fsync file and
directory) and only then ``identity.json`` (atomically). So whenever
``identity.json`` exists, the WAL must exist and start with the same identity:
a missing or empty WAL there means state was lost and the node refuses to start;
a different identity means the directory belongs to another node or cluster.

:func:`write_file_atomically` writes a whole file (a snapshot) by writing a temporary
file, fsyncing it, renaming it over the target and fsyncing the directory, so a crash
leaves either the old or the new file, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "DataDirError",
    "Damage",
    "Identity",
    "IDENTITY_FILE",
    "RecordFile",
    "encode_record",
    "fsync_dir",
    "open_data_dir",
    "read_records",
    "scan_records",
    "write_file_atomically",
]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
MAX_RECORD = 1 << 30
IDENTITY_FILE = "identity.json"


class DataDirError(Exception):
    """The data directory is damaged or not this node's: the node must not start.

    ``str()`` is one line naming the file, and for a damaged record its byte offset
    and record number, and what to do.
    """


def encode_record(payload: bytes) -> bytes:
    """Frame one payload as a record."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end_offset, payload)`` for each intact record, stopping at damage."""
    off = 0
    n = len(data)
    while off + _HEADER.size <= n:
        length, crc = _HEADER.unpack_from(data, off)
        start = off + _HEADER.size
        end = start + length
        if length > MAX_RECORD or end > n:
            return
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return
        off = end
        yield off, payload


@dataclass(frozen=True)
class Damage:
    """The first record of a file that does not check out (see the module docstring).

    ``offset`` is the byte offset of its header, ``record`` its 1-based number,
    ``torn`` whether it is a torn tail (else corruption), ``reason`` a short phrase.
    """

    offset: int
    record: int
    torn: bool
    reason: str


def _intact_record_after(data: bytes, pos: int) -> int | None:
    """Offset of the first intact record starting at or after ``pos``, if any."""
    n = len(data)
    unpack = _HEADER.unpack_from
    for o in range(pos, n - _HEADER.size):
        length, crc = unpack(data, o)
        if 0 < length <= n - o - _HEADER.size and length <= MAX_RECORD:
            start = o + _HEADER.size
            if zlib.crc32(data[start : start + length]) == crc:
                return o
    return None


def scan_records(data: bytes) -> tuple[list[bytes], int, Damage | None]:
    """Return the intact payloads, the offset where they end, and the first damage."""
    payloads: list[bytes] = []
    off = 0
    n = len(data)
    while off < n:
        number = len(payloads) + 1
        if n - off < _HEADER.size:
            return payloads, off, Damage(
                off, number, True, f"header cut short ({n - off} of {_HEADER.size} bytes)"
            )
        length, crc = _HEADER.unpack_from(data, off)
        start = off + _HEADER.size
        end = start + length
        if length == 0 or length > MAX_RECORD or end > n:
            what = (
                f"length {length} runs past the end of the file ({n - start} bytes left)"
                if 0 < length <= MAX_RECORD
                else f"impossible length {length}"
            )
            later = _intact_record_after(data, off + 1)
            if later is None:
                return payloads, off, Damage(off, number, True, what)
            return payloads, off, Damage(
                off, number, False, f"{what}, yet an intact record follows at byte {later}"
            )
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            if end == n:
                return payloads, off, Damage(
                    off, number, True, f"last record ({length} bytes) fails its checksum"
                )
            return payloads, off, Damage(
                off, number, False,
                f"checksum mismatch in a {length}-byte record with {n - end} bytes after it",
            )
        payloads.append(payload)
        off = end
    return payloads, off, None


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: str, data: bytes, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


class RecordFile:
    """An append-only file of checksummed records.

    Use :meth:`open` to read the intact records (cutting a torn tail, refusing
    corruption), then :meth:`append` batches. ``header``, when set, is a payload that
    :meth:`replace` keeps as the first record (the data dir's identity).
    """

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None
        self.torn_bytes = 0
        self.repaired_bytes = 0
        self.damage: Damage | None = None
        self.header: bytes | None = None

    def open(self, repair: bool = False) -> list[bytes]:
        """Open (creating if needed) and return the intact payloads.

        A torn tail is cut (``torn_bytes``). Corruption raises :class:`DataDirError`
        and leaves the file untouched, unless ``repair``: then the file is cut at the
        first bad record (``repaired_bytes``).
        """
        created = not os.path.exists(self.path)
        flags = os.O_RDWR | os.O_CREAT
        fd = os.open(self.path, flags, 0o644)
        try:
            if created and self.fsync:
                fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
            payloads, good, damage = scan_records(data)
            self.damage = damage
            if damage is not None and not damage.torn and not repair:
                raise DataDirError(
                    f"{self.path}: record {damage.record} at byte offset {damage.offset} is "
                    f"corrupt ({damage.reason}); the file is left untouched: restore it, or "
                    f"start with --repair to cut it at byte {damage.offset} "
                    f"(dropping {size - good} bytes)"
                )
            cut = size - good
            if damage is not None and damage.torn:
                self.torn_bytes = cut
            elif damage is not None:
                self.repaired_bytes = cut
            if cut:
                os.ftruncate(fd, good)
                if self.fsync:
                    os.fsync(fd)
            os.lseek(fd, good, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return payloads

    def append(self, payloads: Iterable[bytes]) -> int:
        """Write the payloads as records in one write, then fsync; return bytes written."""
        assert self._fd is not None, "open() first"
        buf = b"".join(encode_record(p) for p in payloads)
        if not buf:
            return 0
        view = memoryview(buf)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fdatasync(self._fd)
        return len(buf)

    def replace(self, payloads: Iterable[bytes]) -> None:
        """Atomically replace the whole file by these records (used after compaction).

        The ``header`` record, if set, stays first.
        """
        assert self._fd is not None, "open() first"
        head = [self.header] if self.header is not None else []
        data = b"".join(encode_record(p) for p in [*head, *payloads])
        write_file_atomically(self.path, data, self.fsync)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR)
        os.lseek(self._fd, 0, os.SEEK_END)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class Identity:
    """Whose data a directory holds: protocol, node id and cluster.

    ``cluster`` is derived from the sorted member ids (this node and its peers), so
    the same cluster started again gets the same id whatever its addresses.
    """

    protocol: str
    node: str
    members: tuple[str, ...]

    @classmethod
    def of(cls, protocol: str, node: str, peers: Iterable[str]) -> Identity:
        return cls(protocol, node, tuple(sorted({node, *peers})))

    @property
    def cluster(self) -> str:
        return hashlib.sha256(",".join(self.members).encode()).hexdigest()[:16]

    def to_wire(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "node": self.node,
            "cluster": self.cluster,
            "members": list(self.members),
        }

    def record(self) -> bytes:
        """The WAL's first record."""
        return json.dumps({"identity": self.to_wire()}, separators=(",", ":")).encode()

    def describe(self) -> str:
        members = ",".join(self.members)
        return f"{self.protocol} node {self.node} of cluster {self.cluster} ({members})"


def _identity_from(doc: object) -> Identity | None:
    if not isinstance(doc, dict):
        return None
    try:
        ident = Identity(str(doc["protocol"]), str(doc["node"]), tuple(doc["members"]))
    except (KeyError, TypeError):
        return None
    return ident if doc.get("cluster") == ident.cluster else None


def is_identity_record(payload: bytes) -> bool:
    return payload.startswith(b'{"identity":')


def open_data_dir(
    wal: RecordFile, identity: Identity | None, repair: bool = False
) -> list[bytes]:
    """Check the directory's identity, open the WAL, return its payloads (minus identity).

    ``identity`` None (unit tests, tools) skips the identity record but still refuses
    a missing or empty WAL where ``identity.json`` says state existed.

    Raises:
        DataDirError: a damaged WAL, a lost WAL, or another node's or cluster's data.
    """
    d = os.path.dirname(os.path.abspath(wal.path))
    id_path = os.path.join(d, IDENTITY_FILE)
    stored: Identity | None = None
    if os.path.exists(id_path):
        try:
            with open(id_path, "rb") as f:
                stored = _identity_from(json.loads(f.read()))
        except ValueError:
            stored = None
        if stored is None:
            raise DataDirError(
                f"{id_path}: unreadable identity record; the data dir is left untouched: "
                "restore the file, or point --data-dir at the right directory"
            )
        if identity is not None and stored != identity:
            raise DataDirError(
                f"{id_path}: this data dir belongs to {stored.describe()}, not "
                f"{identity.describe()}; point --data-dir at this node's own directory"
            )
        size = os.path.getsize(wal.path) if os.path.exists(wal.path) else None
        if not size:
            what = "missing" if size is None else "empty (0 bytes)"
            if not repair:
                raise DataDirError(
                    f"{wal.path}: the WAL is {what} but {IDENTITY_FILE} says "
                    f"{stored.describe()} had state here; starting would forget its "
                    "votes and log: restore the file, or start with --repair to begin from "
                    "an empty WAL"
                )
            log.error(
                "repair: %s is %s although %s says state existed; starting from an empty "
                "WAL (this node has forgotten its votes and log)", wal.path, what, IDENTITY_FILE,
            )
    payloads = wal.open(repair=repair)
    if wal.repaired_bytes:
        dmg = wal.damage
        assert dmg is not None
        log.error(
            "repair: cut %s at byte offset %d (record %d, %s): %d bytes dropped",
            wal.path, dmg.offset, dmg.record, dmg.reason, wal.repaired_bytes,
        )
    if wal.torn_bytes:
        dmg = wal.damage
        assert dmg is not None
        log.warning(
            "cut a torn WAL tail of %d bytes from %s at byte offset %d (record %d: %s)",
            wal.torn_bytes, wal.path, dmg.offset, dmg.record, dmg.reason,
        )
    head: Identity | None = None
    if payloads and is_identity_record(payloads[0]):
        try:
            head = _identity_from(json.loads(payloads[0])["identity"])
        except (ValueError, KeyError):
            head = None
        if head is None:
            wal.close()
            raise DataDirError(f"{wal.path}: record 1 at byte offset 0 is a malformed identity")
        payloads = payloads[1:]
        want = identity or stored
        if want is not None and head != want:
            wal.close()
            raise DataDirError(
                f"{wal.path}: record 1 says this WAL belongs to {head.describe()}, not "
                f"{want.describe()}; point --data-dir at this node's own directory"
            )
    if identity is None:
        if head is not None:
            wal.header = head.record()  # keep it through compactions
        return payloads
    wal.header = identity.record()
    if head is not None and stored is None:
        log.warning("%s was missing; rewriting it from the WAL's identity record", id_path)
    if head is None:
        if payloads:
            log.warning("%s predates identity records; adopting it as %s's",
                        wal.path, identity.describe())
            wal.replace(payloads)
        else:
            wal.append([wal.header])
    if stored is None:
        # Only after the WAL holds the identity (fsynced): identity.json promises a WAL.
        write_file_atomically(
            id_path, json.dumps(identity.to_wire()).encode() + b"\n", wal.fsync
        )
    return payloads
