"""Append-only record files with checksums, and atomic whole-file writes.

Theory of operation
-------------------
A record file is a sequence of records ``[length: u32 BE][crc32: u32 BE][payload]``.
:class:`RecordFile` appends batches of records with one ``write`` and (unless told
not to) one ``fsync``: the caller groups everything a protocol step must make durable
into one batch (group commit).

A crash can leave the last batch half written. :func:`read_records` walks the file
and stops at the first record whose header is short, whose length runs past the end,
or whose checksum does not match; :meth:`RecordFile.open` truncates the file there
(a torn tail) and reports how many bytes it cut. Anything after a bad record is lost
with it: without a framing marker we cannot resynchronise, and a record after a torn
one was never acknowledged anyway because acknowledgements wait for the fsync of the
whole batch.

:func:`write_file_atomically` writes a whole file (a snapshot) by writing a temporary
file, fsyncing it, renaming it over the target and fsyncing the directory, so a crash
leaves either the old or the new file, never a mix.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator

__all__ = ["RecordFile", "encode_record", "read_records", "write_file_atomically", "fsync_dir"]

_HEADER = struct.Struct(">II")
MAX_RECORD = 1 << 30


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

    Use :meth:`open` to read the intact records (repairing a torn tail), then
    :meth:`append` batches.
    """

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None
        self.torn_bytes = 0

    def open(self) -> list[bytes]:
        """Open (creating if needed), truncate any torn tail, return intact payloads."""
        created = not os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if created and self.fsync:
            fsync_dir(os.path.dirname(os.path.abspath(self.path)))
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
        payloads = []
        good = 0
        for end, payload in read_records(data):
            payloads.append(payload)
            good = end
        self.torn_bytes = size - good
        if self.torn_bytes:
            os.ftruncate(fd, good)
            if self.fsync:
                os.fsync(fd)
        os.lseek(fd, good, os.SEEK_SET)
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
        """Atomically replace the whole file by these records (used after compaction)."""
        assert self._fd is not None, "open() first"
        data = b"".join(encode_record(p) for p in payloads)
        write_file_atomically(self.path, data, self.fsync)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR)
        os.lseek(self._fd, 0, os.SEEK_END)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
