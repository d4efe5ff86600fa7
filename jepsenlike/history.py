"""The history: every invocation and completion of a test, in the order they happened.

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

The *order of the events* is the truth. ``time`` is a reading taken when the
event was logged; in Jepsen histories it may step backwards between events of
different processes. Such steps are kept and counted
(:attr:`History.time_backwards`), never refused.

Client processes are integers. Any other process (a string: ``"nemesis"``,
or another name) is a non-client: its events are faults or observations, and
they are paired only loosely -- a lone ``info``, an ``info``/``info`` pair, or
an invocation that never completes are all accepted.

This module holds the data types and :class:`HistoryBuilder`, which validates
event order and pairs invocations with completions; every reader (JSON Lines
and Jepsen EDN) and :meth:`History.from_ops` build histories through it, so the
rules live in one place. Reading and writing files is
:mod:`jepsenlike.history_io`; ``docs/history-format.md`` is the reference.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from jepsenlike.errors import HistoryError

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: frozenset[str] = frozenset(("invoke", "ok", "fail", "info"))
COMPLETION_TYPES: frozenset[str] = frozenset(("ok", "fail", "info"))
NEMESIS = "nemesis"

_REQUIRED = ("index", "time", "process", "type", "f")
_KNOWN_FIELDS = frozenset(("index", "time", "process", "type", "f", "key", "value", "node", "error"))
# canonical (interned) type strings: validation and de-duplication in one lookup
_TYPES: dict[str, str] = {t: t for t in OP_TYPES}
# f strings are few; sharing one object per name saves memory on long histories
_F_CACHE: dict[str, str] = {}


class Op(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One history event.

    Attributes:
        index: position in the history, 0-based and dense.
        time: nanoseconds since the test started, as read when the event was logged.
        process: the logical client process (an int), or a non-client such as ``"nemesis"``.
        type: ``invoke``, ``ok``, ``fail`` or ``info``.
        f: the function, e.g. ``read``, ``write``, ``cas``, ``append``, ``txn``.
        key: the key the op addresses, when the workload has keys.
        value: argument (on invoke) or result (on completion). A read invoke is
            ``None``; a cas is ``[old, new]``; a txn is a list of ``[f, key, value]``.
        node: the node the op was sent to, if any.
        error: why a ``fail`` or ``info`` happened, if known.

    An immutable ``msgspec.Struct``, so that the JSON Lines reader decodes and
    type-checks events straight into Ops in C (the field annotations are the
    file format's rules; constructing an Op in Python does not check them).
    ``gc=False``: Ops hold only JSON-like values and never take part in a
    reference cycle, so the garbage collector need not track millions of them.
    ``dataclasses.replace`` and ``dataclasses.asdict`` work on Ops as before.
    """

    index: Annotated[int, msgspec.Meta(ge=0)]
    time: Annotated[int, msgspec.Meta(ge=0)]
    process: int | str
    type: Literal["invoke", "ok", "fail", "info"]
    f: Annotated[str, msgspec.Meta(min_length=1)]
    key: Any = None
    value: Any = None
    node: str | None = None
    error: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: optional fields are left out when they are None."""
        d = msgspec.structs.asdict(self)
        for name in ("key", "node", "error"):
            if d[name] is None:
                del d[name]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)


def _dataclass_compat(cls: type) -> None:
    """Let ``dataclasses.replace``/``asdict``/``fields`` treat a Struct as the dataclass it was."""
    compat = {}
    for name in cls.__struct_fields__:  # type: ignore[attr-defined]
        f = dataclasses.field()
        f.name = name
        f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
        compat[name] = f
    cls.__dataclass_fields__ = compat  # type: ignore[attr-defined]


_dataclass_compat(Op)


def is_client_process(process: Any) -> bool:
    """Client processes are integers; anything else (``"nemesis"``, ...) is not."""
    return type(process) is int


def _at(where: str, line: int | None) -> str:
    return where if line is None else f"{where}:{line}"


def op_from_dict(d: Any, where: str = "<op>", line: int | None = None) -> Op:
    """Validate one decoded JSON object and build an :class:`Op`.

    Cheap checks only (exact types, one dict lookup per field), because the
    file reader calls this once per event. The error location is ``where``, or
    ``where:line`` when ``line`` is given (built only when there is an error).

    Raises:
        HistoryError: naming the location and the bad field.
    """
    if type(d) is not dict:
        raise HistoryError(f"{_at(where, line)}: expected a JSON object, got {type(d).__name__}")
    try:
        index = d["index"]
        t = d["time"]
        process = d["process"]
        typ = d["type"]
        f = d["f"]
    except KeyError:
        missing = next(name for name in _REQUIRED if name not in d)
        raise HistoryError(f"{_at(where, line)}: missing field {missing!r}") from None
    if not d.keys() <= _KNOWN_FIELDS:
        unknown = set(d) - _KNOWN_FIELDS
        raise HistoryError(
            f"{_at(where, line)}: unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            f"known fields are {', '.join(sorted(_KNOWN_FIELDS))}"
        )
    if type(index) is not int or index < 0:
        raise HistoryError(
            f"{_at(where, line)}: field 'index' must be a non-negative integer, got {index!r}"
        )
    if type(t) is not int or t < 0:
        raise HistoryError(
            f"{_at(where, line)}: field 'time' must be a non-negative integer (ns), got {t!r}"
        )
    if type(process) is not int and not (type(process) is str and process):
        raise HistoryError(
            f"{_at(where, line)}: field 'process' must be an integer (a client) or a "
            f"non-empty string such as \"nemesis\", got {process!r}"
        )
    canon = _TYPES.get(typ) if type(typ) is str else None
    if canon is None:
        raise HistoryError(
            f"{_at(where, line)}: field 'type' is {typ!r}; expected one of invoke, ok, fail, info"
        )
    if type(f) is not str or not f:
        raise HistoryError(f"{_at(where, line)}: field 'f' must be a non-empty string, got {f!r}")
    fc = _F_CACHE.get(f)
    if fc is None:
        fc = _F_CACHE.setdefault(f, f) if len(_F_CACHE) < 4096 else f
    node = d.get("node")
    if node is not None and type(node) is not str:
        raise HistoryError(f"{_at(where, line)}: field 'node' must be a string, got {node!r}")
    return Op(index, t, process, canon, fc, d.get("key"), d.get("value"), node, d.get("error"))


@dataclass
class History:
    """A validated, paired history.

    ``ops`` holds every event in file order (``ops[i].index == i``).
    ``completion[i]`` is the index of the completion of invocation ``i`` (or
    ``None`` if it never completed); ``invocation[j]`` is the index of the
    invocation that completion ``j`` answers. A non-client completion that
    answers no invocation (a lone nemesis ``info``) is in neither map.

    ``time_backwards`` counts events whose ``time`` is earlier than the
    previous event's (kept as written: order, not time, is the truth).
    ``torn_tail`` is true when the file's last line was cut short (a crashed
    run): the reader kept every complete line before it. ``notes`` holds such
    warnings as one-line strings.
    """

    ops: list[Op]
    completion: dict[int, int | None] = field(default_factory=dict)
    invocation: dict[int, int] = field(default_factory=dict)
    source: str = "<history>"
    time_backwards: int = 0
    torn_tail: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __getitem__(self, i: int) -> Op:
        return self.ops[i]

    def completion_of(self, op: Op) -> Op | None:
        j = self.completion.get(op.index)
        return None if j is None else self.ops[j]

    def nemesis_ops(self) -> Iterator[Op]:
        """Events of non-client processes (the nemesis and any other non-integer process)."""
        return (op for op in self.ops if type(op.process) is not int)

    def pairs(self) -> Iterator[tuple[Op, Op | None]]:
        """Each client invocation with its completion (None: never completed)."""
        ops, completion = self.ops, self.completion
        for op in ops:
            if op.type == "invoke" and type(op.process) is int:
                j = completion.get(op.index)
                yield op, None if j is None else ops[j]

    @classmethod
    def from_ops(cls, ops: Iterable[Op | dict], source: str = "<history>") -> History:
        """Build and validate a history from ops (or dicts), re-checking pairing.

        Indices must be dense and in order; the function does not renumber, so
        an error message can point at the op the caller wrote.
        """
        builder = HistoryBuilder(source)
        for n, item in enumerate(ops):
            op = item if isinstance(item, Op) else op_from_dict(item, f"{source}: op {n}")
            builder.add(op)
        return builder.finish()


class HistoryBuilder:
    """Validates event order and pairs invocations with completions, one event at a time.

    Usage: ``b = HistoryBuilder(source); b.add(op, line); ...; history = b.finish()``.

    Rules (each broken rule is a :class:`HistoryError` naming ``source:line``,
    or ``source: op N`` when no line is given, and the field):

    * ``index`` counts events from 0 in order, with no gaps;
    * a client process (an integer) runs one op at a time: an ``invoke`` while
      its previous invocation is pending, a completion with no pending
      invocation, or a completion whose ``f`` differs from its invocation's,
      are errors;
    * a non-client process is paired loosely: a completion pairs with its
      pending invocation when their ``f`` agree, and is otherwise kept as a
      lone event; an invocation that is never completed is allowed;
    * ``time`` may go backwards: counted in ``time_backwards``, not refused.
    """

    __slots__ = ("source", "ops", "pending", "completion", "invocation", "last_time",
                 "time_backwards", "torn_tail", "notes")

    def __init__(self, source: str) -> None:
        self.source = source
        self.ops: list[Op] = []
        self.pending: dict[int | str, int] = {}
        self.completion: dict[int, int | None] = {}
        self.invocation: dict[int, int] = {}
        self.last_time = 0
        self.time_backwards = 0
        self.torn_tail = False
        self.notes: list[str] = []

    def _where(self, line: int | None) -> str:
        if line is None:
            return f"{self.source}: op {len(self.ops)}"
        return f"{self.source}:{line}"

    def add(self, op: Op, line: int | None = None) -> None:
        """Append the next event; ``line`` is where it came from (for error messages)."""
        ops = self.ops
        n = len(ops)
        if op.index != n:
            raise HistoryError(
                f"{self._where(line)}: field 'index' is {op.index}, expected {n} "
                "(indices count events from 0 in file order)"
            )
        t = op.time
        if t < self.last_time:
            self.time_backwards += 1
        self.last_time = t
        process = op.process
        pending = self.pending.get(process)
        if type(process) is int:
            if op.type == "invoke":
                if pending is not None:
                    raise HistoryError(
                        f"{self._where(line)}: process {process!r} invokes {op.f!r} while its "
                        f"invocation at index {pending} has not completed; a process runs one "
                        "op at a time"
                    )
                self.pending[process] = n
                self.completion[n] = None
            else:
                if pending is None:
                    raise HistoryError(
                        f"{self._where(line)}: {op.type!r} completion of process {process!r} has "
                        "no pending invocation (a completion without invocation, or a duplicate "
                        "completion)"
                    )
                inv_f = ops[pending].f
                if inv_f != op.f:
                    raise HistoryError(
                        f"{self._where(line)}: completion has f={op.f!r} but the invocation at "
                        f"index {pending} has f={inv_f!r}"
                    )
                del self.pending[process]
                self.completion[pending] = n
                self.invocation[n] = pending
        elif op.type == "invoke":
            # a non-client invocation left open is simply never completed
            self.pending[process] = n
            self.completion[n] = None
        elif pending is not None and ops[pending].f == op.f:
            del self.pending[process]
            self.completion[pending] = n
            self.invocation[n] = pending
        ops.append(op)

    def finish(self) -> History:
        if self.time_backwards:
            self.notes.append(
                f"{self.source}: time went backwards {self.time_backwards} time(s) between "
                "events; kept as written (event order is the truth)"
            )
        return History(self.ops, self.completion, self.invocation, self.source,
                       self.time_backwards, self.torn_tail, self.notes)
