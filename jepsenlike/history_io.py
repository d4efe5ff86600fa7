"""History files in and out: the one place every command reads and writes them.

Theory of operation
-------------------
:func:`read_history` turns a path into a validated, paired
:class:`~jepsenlike.history.History`. The format is chosen by extension
(``.edn`` is Jepsen's EDN, ``.jsonl``/``.json``/``.ndjson`` JSON Lines) and
otherwise by sniffing the first bytes (``{"`` is JSON, ``{:``, ``[``, ``(``,
``;``, ``#`` or ``^`` is EDN). EDN goes through :mod:`jepsenlike.edn`; JSON
Lines is read here, on a lean path built for long histories:

* the file is streamed in binary, one line at a time, and each line is
  decoded by ``orjson`` (which refuses ``NaN``/``Infinity`` and nesting
  deeper than 1,024 levels);
* :func:`~jepsenlike.history.op_from_dict` validates the fields with exact
  type checks and :class:`~jepsenlike.history.HistoryBuilder` pairs the
  events; error locations are formatted only when there is an error;
* a line ``orjson`` refuses is decoded again by the standard library, to tell
  the user which field is wrong (``NaN`` in ``value``), to accept integers
  wider than 64 bits, or to name the byte that is not UTF-8.

Every error is a :class:`~jepsenlike.errors.HistoryError` of one line,
``file:line: what is wrong``. One exception: a last line with no newline that
does not parse is a *torn tail* -- a run that crashed mid-write -- and is
dropped with a note (``History.torn_tail``), so the complete events before it
stay checkable.

:func:`read_history_prefix` is the forgiving variant for reports: the valid
prefix and the error that ended it.

:class:`HistoryWriter` appends events as they happen with unbuffered writes:
an event's line is written exactly once or not at all. On any write error
(``ENOSPC``...) it truncates the file back to the last complete line and
raises :class:`HistoryWriteError` (with ``path`` and ``errno``); every later
``record`` raises it again, so the file never holds a partial or repeated line.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from jepsenlike.errors import HistoryError, JepsenlikeError
from jepsenlike.history import History, HistoryBuilder, Op, op_from_dict

__all__ = [
    "HistoryWriteError",
    "HistoryWriter",
    "read_history",
    "read_history_prefix",
    "read_jsonl",
    "sniff_format",
    "write_history",
]

JSONL_SUFFIXES = frozenset((".jsonl", ".json", ".ndjson"))
EDN_SUFFIXES = frozenset((".edn",))


# ----------------------------------------------------------------------------- reading


def sniff_format(path: str | os.PathLike[str]) -> str:
    """``"edn"`` or ``"jsonl"``: by extension, else by the file's first bytes.

    Raises:
        HistoryError: the path is missing, a directory or unreadable.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in EDN_SUFFIXES:
        return "edn"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    with _open(p) as fh:
        head = fh.read(4096)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n,")
    if not text:
        return "jsonl"
    c = text[:1]
    if c == b"{":
        rest = text[1:].lstrip(b" \t\r\n,")
        return "jsonl" if rest[:1] in (b'"', b"}") else "edn"
    return "edn" if c in (b"[", b"(", b";", b"#", b"^", b":") else "jsonl"


def read_history(path: str | os.PathLike[str], *, independent: bool | None = None) -> History:
    """Read, validate and pair a history file (JSON Lines or Jepsen EDN).

    Args:
        path: the file.
        independent: EDN only; see :func:`jepsenlike.edn.read_edn_history`.

    Raises:
        HistoryError: ``file:line: what is wrong`` (one line).
    """
    if sniff_format(path) == "edn":
        from jepsenlike.edn import read_edn_history

        return read_edn_history(path, independent=independent)
    return read_jsonl(path)


def read_jsonl(path: str | os.PathLike[str]) -> History:
    """Read a JSON Lines history (see the module docstring for the fast path)."""
    builder = HistoryBuilder(str(path))
    _read_jsonl_into(Path(path), builder)
    return builder.finish()


def read_history_prefix(path: str | os.PathLike[str]) -> tuple[History, str | None]:
    """The longest valid prefix of a history, and the error that ended it (or None).

    For reports, which show what there is rather than refusing a damaged file.
    """
    p = Path(path)
    try:
        fmt = sniff_format(p)
    except HistoryError as e:
        return History([], source=str(p)), str(e)
    if fmt == "edn":
        try:
            return read_history(p), None
        except HistoryError as e:
            return History([], source=str(p)), str(e)
    builder = HistoryBuilder(str(p))
    try:
        _read_jsonl_into(p, builder)
    except HistoryError as e:
        return builder.finish(), str(e)
    return builder.finish(), None


def _open(p: Path) -> BinaryIO:
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise HistoryError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{p}: is a directory; give a history file") from None
    except OSError as e:
        raise HistoryError(f"{p}: cannot read: {e.strerror or e}") from None


def _read_jsonl_into(p: Path, builder: HistoryBuilder) -> None:
    src = str(p)
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    add = builder.add
    lineno = 0
    with _open(p) as fh:
        try:
            for raw in fh:
                lineno += 1
                try:
                    d = loads(raw)
                except decode_error:
                    if not raw.strip():
                        continue  # blank line
                    if not raw.endswith(b"\n") and _torn(raw):
                        builder.torn_tail = True
                        builder.notes.append(
                            f"{src}:{lineno}: the last line is incomplete (the run was "
                            f"interrupted?); read the {len(builder.ops)} complete events "
                            "before it"
                        )
                        return
                    d = _slow_decode(raw, src, lineno)
                add(op_from_dict(d, src, lineno), lineno)
        except OSError as e:
            raise HistoryError(f"{src}:{lineno + 1}: cannot read: {e.strerror or e}") from None


def _torn(raw: bytes) -> bool:
    """A last line that is a cut-off JSON object (not some other kind of bad line)."""
    if not raw.lstrip().startswith(b"{"):
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data"  # a character cut in half
    try:
        json.loads(text)
    except RecursionError:
        return False
    except ValueError:
        return True
    return False


class _NonFinite:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _find_nonfinite(v: Any) -> _NonFinite | None:
    if isinstance(v, _NonFinite):
        return v
    if isinstance(v, list):
        for x in v:
            found = _find_nonfinite(x)
            if found is not None:
                return found
    elif isinstance(v, dict):
        for x in v.values():
            found = _find_nonfinite(x)
            if found is not None:
                return found
    return None


def _slow_decode(raw: bytes, src: str, lineno: int) -> Any:
    """Decode a line orjson refused, and say precisely what is wrong with it."""
    where = f"{src}:{lineno}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HistoryError(
            f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            "a history is UTF-8 JSON, one event per line"
        ) from None
    if "\x00" in text:
        raise HistoryError(f"{where}: not valid JSON: a NUL byte (is this a binary file?)")
    try:
        d = json.loads(text, parse_constant=_NonFinite)
    except RecursionError:
        raise HistoryError(
            f"{where}: not valid JSON: nested too deeply (more than 1,024 levels)"
        ) from None
    except json.JSONDecodeError as e:
        hint = " (truncated line?)" if not raw.endswith(b"\n") else ""
        raise HistoryError(
            f"{where}: not valid JSON: {e.msg} at column {e.colno}{hint}"
        ) from None
    if isinstance(d, dict):
        for name, v in d.items():
            bad = _find_nonfinite(v)
            if bad is not None:
                raise HistoryError(
                    f"{where}: field {name!r} holds {bad.text}, which is not a JSON number; "
                    "write null or a finite number"
                )
    elif _find_nonfinite(d) is not None:
        raise HistoryError(f"{where}: not valid JSON: NaN or Infinity")
    if _depth_exceeds(d, 1024):
        raise HistoryError(f"{where}: not valid JSON: nested too deeply (more than 1,024 levels)")
    return d


def _depth_exceeds(v: Any, limit: int) -> bool:
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(x, list):
            stack.extend((y, depth + 1) for y in x)
        elif isinstance(x, dict):
            stack.extend((y, depth + 1) for y in x.values())
    return False


# ----------------------------------------------------------------------------- writing


class HistoryWriteError(JepsenlikeError):
    """The history file could not be written (disk full, I/O error...).

    Attributes:
        path: the history file.
        errno: the OS error number (``errno.ENOSPC`` for a full disk), or None.

    After it is raised the file holds only complete lines (a partial line is
    truncated away), so the history up to the last recorded event is readable.
    """

    def __init__(self, path: Path, errno: int | None, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


class HistoryWriter:
    """Appends events to a JSON Lines file as they happen, each line written once.

    Thread-safe: client workers and the nemesis record through one writer.
    Indices and timestamps are assigned here, under the lock, so the file is
    in the order the events were recorded. Writes are unbuffered (the line
    is in the kernel when :meth:`record` returns; ``fsync=True`` also syncs).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        # "x": never append a second run to an existing history (indices would restart at 0)
        self._fh = open(self.path, "xb", buffering=0)
        self._lock = threading.Lock()
        self._index = 0
        self._size = 0  # bytes of complete lines in the file
        self._start = time.monotonic_ns()
        self._fsync = fsync
        self._failed: HistoryWriteError | None = None
        self.ops: list[Op] = []

    @property
    def start_ns(self) -> int:
        return self._start

    @property
    def failed(self) -> HistoryWriteError | None:
        """The write error that stopped this writer, if any."""
        return self._failed

    def record(
        self,
        process: int | str,
        type: str,
        f: str,
        key: Any = None,
        value: Any = None,
        node: str | None = None,
        error: Any = None,
    ) -> Op:
        """Append one event stamped with the next index and the current time.

        Raises:
            HistoryWriteError: the line could not be written (now or earlier).
        """
        with self._lock:
            if self._failed is not None:
                raise self._failed
            op = Op(
                index=self._index,
                time=time.monotonic_ns() - self._start,
                process=process,
                type=type,
                f=f,
                key=key,
                value=value,
                node=node,
                error=error,
            )
            data = (op.to_json() + "\n").encode("utf-8")
            try:
                self._write_all(data)
                if self._fsync:
                    os.fsync(self._fh.fileno())
            except OSError as e:
                self._failed = self._fail(e)
                raise self._failed from e
            self._size += len(data)
            self._index += 1
            self.ops.append(op)
            return op

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._fh.write(view)
            if n is None:  # pragma: no cover - non-blocking files only
                raise OSError(errno_mod.EAGAIN, "write would block")
            if n == 0:
                raise OSError(errno_mod.ENOSPC, "no space left on device (wrote 0 bytes)")
            view = view[n:]

    def _fail(self, e: OSError) -> HistoryWriteError:
        """Cut the file back to its last complete line and describe the failure."""
        cut = ""
        try:
            os.ftruncate(self._fh.fileno(), self._size)
        except OSError as te:
            cut = f"; truncating the partial line also failed ({te.strerror})"
        why = e.strerror or str(e)
        return HistoryWriteError(
            self.path,
            e.errno,
            f"{self.path}: cannot write the history: {why} (errno {e.errno}); it holds the "
            f"{self._index} events recorded before{cut}; free space and re-run",
        )

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_history(path: str | os.PathLike[str], ops: Iterable[Op]) -> None:
    """Write ops (already indexed and timed) to a JSON Lines file."""
    with open(path, "w", encoding="utf-8") as fh:
        for op in ops:
            fh.write(op.to_json() + "\n")
