"""The history: every invocation and completion of a test, in real-time order.

Theory of operation
-------------------
A history is a sequence of :class:`Op` events. Each client operation appears
twice: once as an ``invoke`` when a process starts it, and once as a
completion (``ok``, ``fail`` or ``info``) when the process learns its outcome.
An invocation pairs with the *next* completion of the same process.

* ``ok``   -- the operation took effect, exactly once, between its invocation
  and its completion. Its value is what the system answered (a read's value).
* ``fail`` -- the operation definitely never took effect.
* ``info`` -- the outcome is unknown (timeout, connection lost): the operation
  may take effect at any time after its invocation, or never. An invocation
  with no completion at all means the same.

Events of the ``"nemesis"`` process are faults, not client operations; they
share the file so that faults and operations have one timeline.

On disk a history is JSON Lines (``history.jsonl``), one event per line, in the
order the events happened. :class:`HistoryWriter` appends and flushes each
event as it happens, so a crashed run leaves a readable prefix.
:func:`read_history` streams a file back, validating every line and pairing
invocations with completions; a bad line is reported as ``file:line: what is
wrong`` and never silently dropped. ``docs/history-format.md`` is the reference.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from jepsenlike.errors import HistoryError

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: frozenset[str] = frozenset(("invoke", "ok", "fail", "info"))
COMPLETION_TYPES: frozenset[str] = frozenset(("ok", "fail", "info"))
NEMESIS = "nemesis"

_REQUIRED = ("index", "time", "process", "type", "f")
_KNOWN_FIELDS = frozenset(("index", "time", "process", "type", "f", "key", "value", "node", "error"))


@dataclass(frozen=True, slots=True)
class Op:
    """One history event.

    Attributes:
        index: position in the history, 0-based and dense.
        time: nanoseconds since the test started (monotonic clock).
        process: the logical client process (an int) or ``"nemesis"``.
        type: ``invoke``, ``ok``, ``fail`` or ``info``.
        f: the function, e.g. ``read``, ``write``, ``cas``, ``append``, ``txn``.
        key: the key the op addresses, when the workload has keys.
        value: argument (on invoke) or result (on completion). A read invoke is
            ``None``; a cas is ``[old, new]``; a txn is a list of ``[f, key, value]``.
        node: the node the op was sent to, if any.
        error: why a ``fail`` or ``info`` happened, if known.
    """

    index: int
    time: int
    process: int | str
    type: str
    f: str
    key: Any = None
    value: Any = None
    node: str | None = None
    error: Any = None

    @property
    def is_invoke(self) -> bool:
        return self.type == "invoke"

    @property
    def is_client(self) -> bool:
        return self.process != NEMESIS

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: optional fields are left out when they are None."""
        d = asdict(self)
        for name in ("key", "node", "error"):
            if d[name] is None:
                del d[name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)


def op_from_dict(d: Any, where: str = "<op>") -> Op:
    """Validate one decoded JSON object and build an :class:`Op`.

    Raises:
        HistoryError: naming ``where`` and the bad field.
    """
    if not isinstance(d, dict):
        raise HistoryError(f"{where}: expected a JSON object, got {type(d).__name__}")
    for name in _REQUIRED:
        if name not in d:
            raise HistoryError(f"{where}: missing field {name!r}")
    unknown = set(d) - _KNOWN_FIELDS
    if unknown:
        raise HistoryError(
            f"{where}: unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"known fields are {', '.join(sorted(_KNOWN_FIELDS))}"
        )
    index, t, process, typ, f = d["index"], d["time"], d["process"], d["type"], d["f"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise HistoryError(f"{where}: field 'index' must be a non-negative integer, got {index!r}")
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise HistoryError(f"{where}: field 'time' must be a non-negative integer (ns), got {t!r}")
    if not (isinstance(process, int) and not isinstance(process, bool)) and process != NEMESIS:
        raise HistoryError(
            f"{where}: field 'process' must be an integer or \"nemesis\", got {process!r}"
        )
    if typ not in OP_TYPES:
        raise HistoryError(
            f"{where}: field 'type' is {typ!r}; expected one of invoke, ok, fail, info"
        )
    if not isinstance(f, str) or not f:
        raise HistoryError(f"{where}: field 'f' must be a non-empty string, got {f!r}")
    node = d.get("node")
    if node is not None and not isinstance(node, str):
        raise HistoryError(f"{where}: field 'node' must be a string, got {node!r}")
    return Op(
        index=index,
        time=t,
        process=process,
        type=typ,
        f=f,
        key=d.get("key"),
        value=d.get("value"),
        node=node,
        error=d.get("error"),
    )


@dataclass
class History:
    """A validated, paired history.

    ``ops`` holds every event in file order (``ops[i].index == i``).
    ``completion[i]`` is the index of the completion of invocation ``i`` (or
    ``None`` if it never completed); ``invocation[j]`` is the index of the
    invocation that completion ``j`` answers.
    """

    ops: list[Op]
    completion: dict[int, int | None] = field(default_factory=dict)
    invocation: dict[int, int] = field(default_factory=dict)
    source: str = "<history>"

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, i: int) -> Op:
        return self.ops[i]

    def completion_of(self, op: Op) -> Op | None:
        j = self.completion.get(op.index)
        return None if j is None else self.ops[j]

    def invocation_of(self, op: Op) -> Op:
        return self.ops[self.invocation[op.index]]

    def client_ops(self) -> Iterator[Op]:
        return (op for op in self.ops if op.process != NEMESIS)

    def nemesis_ops(self) -> Iterator[Op]:
        return (op for op in self.ops if op.process == NEMESIS)

    def pairs(self) -> Iterator[tuple[Op, Op | None]]:
        """Each client invocation with its completion (None: never completed)."""
        for op in self.ops:
            if op.type == "invoke" and op.process != NEMESIS:
                yield op, self.completion_of(op)

    @classmethod
    def from_ops(cls, ops: Iterable[Op | dict], source: str = "<history>") -> History:
        """Build and validate a history from ops (or dicts), re-checking pairing.

        Indices must be dense and in order; the function does not renumber, so
        an error message can point at the op the caller wrote.
        """
        builder = _Pairer(source)
        for n, item in enumerate(ops):
            op = item if isinstance(item, Op) else op_from_dict(item, f"{source}: op {n}")
            builder.add(op, f"{source}: op {n}")
        return builder.finish()


class _Pairer:
    """Validates event order and pairs invocations with completions."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.ops: list[Op] = []
        self.pending: dict[int | str, int] = {}
        self.completion: dict[int, int | None] = {}
        self.invocation: dict[int, int] = {}
        self.last_time = 0

    def add(self, op: Op, where: str) -> None:
        expected = len(self.ops)
        if op.index != expected:
            raise HistoryError(
                f"{where}: field 'index' is {op.index}, expected {expected} "
                "(indices count events from 0 in file order)"
            )
        if op.time < self.last_time:
            raise HistoryError(
                f"{where}: field 'time' is {op.time}, earlier than the previous event's "
                f"{self.last_time}; events must be in real-time order"
            )
        self.last_time = op.time
        pending = self.pending.get(op.process)
        if op.type == "invoke":
            if pending is not None:
                raise HistoryError(
                    f"{where}: process {op.process!r} invokes {op.f!r} while its invocation "
                    f"at index {pending} has not completed; a process runs one op at a time"
                )
            self.pending[op.process] = op.index
            self.completion[op.index] = None
        else:
            if pending is None:
                raise HistoryError(
                    f"{where}: {op.type!r} completion of process {op.process!r} has no pending "
                    "invocation (a completion without invocation, or a duplicate completion)"
                )
            inv = self.ops[pending]
            if inv.f != op.f:
                raise HistoryError(
                    f"{where}: completion has f={op.f!r} but the invocation at index {pending} "
                    f"has f={inv.f!r}"
                )
            del self.pending[op.process]
            self.completion[pending] = op.index
            self.invocation[op.index] = pending
        self.ops.append(op)

    def finish(self) -> History:
        return History(self.ops, self.completion, self.invocation, self.source)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[Op]:
    """Stream the events of a JSON Lines history, validating each line.

    Blank lines are allowed (and skipped); anything else that is not a valid
    event raises :class:`HistoryError` naming the file and line.
    """
    for _, op in _iter_jsonl_lines(path):
        yield op


def _iter_jsonl_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, Op]]:
    p = str(path)
    with open(p, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                hint = " (truncated line?)" if not line.endswith("\n") else ""
                raise HistoryError(f"{where}: not valid JSON: {e.msg} at column {e.colno}{hint}") from None
            yield lineno, op_from_dict(d, where)


def read_history(path: str | os.PathLike[str]) -> History:
    """Read, validate and pair a history file.

    ``.edn`` files are imported as Jepsen histories; anything else is read as
    JSON Lines.
    """
    p = Path(path)
    if not p.exists():
        raise HistoryError(f"{p}: no such file")
    if p.suffix == ".edn":
        from jepsenlike.edn import read_edn_history

        return read_edn_history(p)
    pairer = _Pairer(str(p))
    for lineno, op in _iter_jsonl_lines(p):
        pairer.add(op, f"{p}:{lineno}")
    return pairer.finish()


class HistoryWriter:
    """Appends events to a JSON Lines file as they happen, flushing each one.

    Thread-safe: client workers and the nemesis record through one writer.
    Indices and timestamps are assigned here, under the lock, so the file is
    always in real-time order.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        # "x": never append a second run to an existing history (indices would restart at 0)
        self._fh = open(self.path, "x", encoding="utf-8")
        self._lock = threading.Lock()
        self._index = 0
        self._start = time.monotonic_ns()
        self._fsync = fsync
        self.ops: list[Op] = []

    @property
    def start_ns(self) -> int:
        return self._start

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
        """Append one event stamped with the next index and the current time."""
        with self._lock:
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
            self._fh.write(op.to_json() + "\n")
            self._fh.flush()
            if self._fsync:
                os.fsync(self._fh.fileno())
            self._index += 1
            self.ops.append(op)
            return op

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
