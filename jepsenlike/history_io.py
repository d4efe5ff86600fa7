"""History files in and out: the one place every command reads and writes them.

Theory of operation
-------------------
:func:`read_history` turns a path into a validated, paired
:class:`~jepsenlike.history.History`. The format is chosen by extension
(``.edn`` is Jepsen's EDN, ``.jsonl``/``.json``/``.ndjson`` JSON Lines) and
otherwise by sniffing the first bytes (``{"`` is JSON, ``{:``, ``[``, ``(``,
``;``, ``#`` or ``^`` is EDN). EDN goes through :mod:`jepsenlike.edn`; JSON
Lines is read here, on a lean path built for long histories:

* the file is read in binary chunks of 4 MiB cut at line ends, and each
  chunk's lines are decoded *and type-checked* by ``msgspec`` in one call,
  straight into :class:`~jepsenlike.history.Op` structs (exact types:
  ``true`` is not an integer; unknown fields, ``NaN`` and ``Infinity`` are
  refused);
* the Ops are paired in one loop (the common case inline, everything else
  by :class:`~jepsenlike.history.HistoryBuilder`); error locations are
  formatted only when there is an error;
* the cyclic garbage collector is paused while reading (the events make no
  cycles, and its repeated scans of the growing history cost more than the
  parsing), and a long history is then frozen (``gc.freeze``) so that the
  collector never rescans it;
* a chunk that does not decode is read again line by line from its start,
  and a line refused there is decoded by the standard library and validated
  by :func:`~jepsenlike.history.op_from_dict`, to tell the user which field
  is wrong and why (``NaN`` in ``value``, ``type`` not a string...), or to
  name the byte that is not UTF-8; a pairing error makes the whole file go
  through that line-by-line path, so every message names its line.

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
import gc
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from jepsenlike.edn import LOG_LINE, read_edn_history, read_jepsen_log
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

#: histories at least this long are moved to the collector's permanent generation
_FREEZE_AT = 50_000
JSONL_SUFFIXES = frozenset((".jsonl", ".json", ".ndjson"))
EDN_SUFFIXES = frozenset((".edn",))


# ----------------------------------------------------------------------------- reading


def sniff_format(path: str | os.PathLike[str]) -> str:
    """``"edn"``, ``"jsonl"`` or ``"jepsen-log"``: by extension, else by the file's
    first bytes (``.log``, or a line like ``INFO  jepsen.util - 0<TAB>:invoke...``
    among the first ones, is Jepsen's text log).

    Raises:
        HistoryError: the path is missing, a directory or unreadable.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in EDN_SUFFIXES:
        return "edn"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix == ".log":
        return "jepsen-log"
    with _open(p) as fh:
        head = fh.read(4096)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n,")
    if any(LOG_LINE.match(x) for x in head.decode("utf-8", "replace").splitlines()[:20]):
        return "jepsen-log"
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
    fmt = sniff_format(path)
    if fmt == "edn":
        return read_edn_history(path, independent=independent)
    if fmt == "jepsen-log":
        return read_jepsen_log(path, independent=independent)
    return read_jsonl(path)


def read_jsonl(path: str | os.PathLike[str]) -> History:
    """Read a JSON Lines history (see the module docstring for the fast path)."""
    p = Path(path)

    def read() -> HistoryBuilder:
        builder = _read_fast(p)
        if builder is None:  # an error somewhere: read again, line by line, to name it
            builder = HistoryBuilder(str(p))
            _read_file_lines(p, builder)
        return builder

    return _gc_paused(read).finish()


def read_history_prefix(path: str | os.PathLike[str]) -> tuple[History, str | None]:
    """The longest valid prefix of a history, and the error that ended it (or None).

    For reports, which show what there is rather than refusing a damaged file.
    """
    p = Path(path)
    try:
        fmt = sniff_format(p)
    except HistoryError as e:
        return History([], source=str(p)), str(e)
    if fmt in ("edn", "jepsen-log"):
        try:
            return read_history(p), None
        except HistoryError as e:
            return History([], source=str(p)), str(e)
    builder = HistoryBuilder(str(p))
    try:
        _gc_paused(lambda: _read_file_lines(p, builder))
    except HistoryError as e:
        return builder.finish(), str(e)
    return builder.finish(), None


def _read_file_lines(p: Path, builder: HistoryBuilder) -> HistoryBuilder:
    with _open(p) as fh:
        _read_lines(fh, builder, str(p), 0)
    return builder


def _open(p: Path) -> BinaryIO:
    try:
        return open(p, "rb")
    except FileNotFoundError:
        raise HistoryError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise HistoryError(f"{p}: is a directory; give a history file") from None
    except OSError as e:
        raise HistoryError(f"{p}: cannot read: {e.strerror or e}") from None


def _gc_paused(read: Callable[[], HistoryBuilder]) -> HistoryBuilder:
    """Run ``read`` with the cyclic garbage collector paused.

    Every event allocates containers that live as long as the history; the
    collector would rescan all of them again and again (most of the reading
    time on long histories). Nothing here makes cycles. A long history is then
    frozen: otherwise the next collection would scan every new object at once.
    Frozen objects are still freed by reference counting when the history is
    dropped; only cycle detection skips them.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    builder = None
    try:
        builder = read()
        return builder
    finally:
        if was_enabled:
            if builder is not None and len(builder.ops) >= _FREEZE_AT:
                gc.freeze()
            gc.enable()


#: decodes one line, or a chunk of lines, straight into Ops: Op's annotations are the rules
_DECODER = msgspec.json.Decoder(Op)
_CHUNK = 1 << 22  # bytes decoded per msgspec call on the fast path
_force_setattr = msgspec.structs.force_setattr


class _Irregular(Exception):
    """The fast path met something it leaves to the precise path."""


def _read_fast(p: Path) -> HistoryBuilder | None:
    """Decode whole chunks of lines in C and pair them; None if the file needs the precise path.

    A chunk that does not decode (a bad or torn line) is handed, with the rest
    of the file, to the line-by-line path from its first line on; a pairing
    error makes the whole file go through the line-by-line path, which names
    the line.
    """
    src = str(p)
    builder = HistoryBuilder(src)
    decode_lines = _DECODER.decode_lines
    f_cache: dict[str, str] = {}
    lines_before = 0
    tail = b""
    with _open(p) as fh:
        try:
            while True:
                block = fh.read(_CHUNK)
                if block:
                    data = tail + block
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        tail = data
                        continue
                    data, tail = data[:cut], data[cut:]
                else:
                    data, tail = tail, b""
                if data:
                    try:
                        events = decode_lines(data)
                    except (msgspec.DecodeError, RecursionError):
                        lines = itertools.chain(io.BytesIO(data), io.BytesIO(tail), fh)
                        _read_lines(lines, builder, src, lines_before)
                        return builder
                    try:
                        _pair_events(events, builder, f_cache)
                    except (HistoryError, _Irregular):
                        return None
                    lines_before += data.count(b"\n")
                if not block:
                    return builder
        except OSError as err:
            raise HistoryError(f"{src}: cannot read: {err.strerror or err}") from None


def _pair_events(events: list[Op], builder: HistoryBuilder, f_cache: dict[str, str]) -> None:
    """Pair decoded events: the common case inline, everything else by ``builder.add``.

    The common case -- a client invocation, or a client completion answering
    its pending invocation with the same ``f`` -- has the same effect as
    :meth:`HistoryBuilder.add`, which holds the rules for every other event
    (``tests/unit/test_history_io.py`` checks that both agree). Equal ``f``
    strings are made one object (a million ``"txn"`` strings cost 50 MB).
    """
    force_setattr = _force_setattr
    ops = builder.ops
    append = ops.append
    pending = builder.pending
    pending_get = pending.get
    completion = builder.completion
    invocation = builder.invocation
    add = builder.add
    last_time = builder.last_time
    backwards = 0
    n = len(ops)
    try:
        for op in events:
            process = op.process
            f = op.f
            fc = f_cache.get(f)
            if fc is None:
                fc = f_cache[f] = f
            elif fc is not f:
                force_setattr(op, "f", fc)
            if type(process) is int and op.index == n:
                t = op.time
                pend = pending_get(process)
                if op.type == "invoke":
                    if pend is None:
                        if t < last_time:
                            backwards += 1
                        last_time = t
                        pending[process] = n
                        completion[n] = None
                        append(op)
                        n += 1
                        continue
                elif pend is not None and ops[pend].f == fc:
                    if t < last_time:
                        backwards += 1
                    last_time = t
                    del pending[process]
                    completion[pend] = n
                    invocation[n] = pend
                    append(op)
                    n += 1
                    continue
            if process == "":
                raise _Irregular  # msgspec does not check this one; the precise path names it
            builder.last_time = last_time
            add(op)
            last_time = builder.last_time
            n += 1
    finally:
        builder.time_backwards += backwards
        builder.last_time = last_time


def _read_lines(lines: Iterable[bytes], builder: HistoryBuilder, src: str, lineno: int) -> None:
    """The precise path: one line at a time, every error naming its line."""
    decode = _DECODER.decode
    add = builder.add
    try:
        for raw in lines:
            lineno += 1
            try:
                op = decode(raw)
            except (msgspec.DecodeError, RecursionError):
                if not raw.strip():
                    continue  # blank line
                if not raw.endswith(b"\n") and _torn(raw):
                    builder.torn_tail = True
                    builder.notes.append(
                        f"{src}:{lineno}: the last line is incomplete (the run was "
                        f"interrupted?); read the {len(builder.ops)} complete events before it"
                    )
                    return
                add(op_from_dict(_slow_decode(raw, src, lineno), src, lineno), lineno)
                continue
            if op.process == "":  # msgspec does not check this one; op_from_dict names it
                op_from_dict(_slow_decode(raw, src, lineno), src, lineno)
            add(op, lineno)
    except OSError as err:
        raise HistoryError(f"{src}:{lineno + 1}: cannot read: {err.strerror or err}") from None


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
        # the wall-clock instant of history time 0, read back to back with the monotonic
        # start (so history times map onto node log timestamps)
        self._start = time.monotonic_ns()
        self.wall_start_ns = time.time_ns()
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
