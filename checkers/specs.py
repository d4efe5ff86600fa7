"""Sequential specifications: what each datatype is allowed to do, one op at a time.

Theory of operation
-------------------
A linearizability checker needs to know which sequential executions of a
datatype are legal. A :class:`Spec` says so with pure functions:

* ``init()`` -- the state before any operation;
* ``step(state, f, arg, ret)`` -- apply one operation to a state and answer
  ``(True, next_state)`` when the operation could have happened there, or
  ``(False, reason)`` when it could not ("can't CAS 3 from 1 to 2", "read 5 but
  the value is 3"; a ``str`` or a lazily worded :class:`Reason`);
* ``describe_state(state)`` / ``describe_op(f, arg, ret)`` -- what a person reads;
* ``hints()`` -- optional :class:`SearchHints`, by name (``read_only``,
  ``absorbing``, ``simplify``, ``order``, ``pinned_state``), that make the
  search faster and never change a verdict (the oracle tests run the search
  with them against a brute-force checker without them).

``partition``, ``check_op`` and ``check_completion`` say how a history maps
onto the spec (which ops are independent, which are malformed).

``f`` is the op's function, ``arg`` the value of its invocation and ``ret``
the value of its ``ok`` completion, or :data:`MISSING` when the outcome is not
known (an ``info`` completion, or an invocation that never completed). Every
value reaching a spec is *frozen* by :func:`freeze` (JSON arrays become tuples,
objects become :class:`FrozenMap`, sets become frozensets) so that states are
hashable and can be memoised by the search; states are never mutated.

JSON values. ``true`` is not ``1``: Python's ``True == 1`` and ``hash(True) ==
hash(1)`` would make a register holding ``true`` accept a read of ``1`` and
merge the two states in the search's memo, so :func:`freeze` turns booleans
into :data:`TRUE`/:data:`FALSE`, equal only to themselves (keys too: key
``true`` and key ``1`` are two objects). Numbers keep Python's equality (``1``
and ``1.0`` are one value). An ``ok`` write, cas, append, add or enqueue must
complete with the value it was invoked with, and an ``ok`` txn with the same
micro-ops and written values (reads filled in): anything else is refused as a
malformed history (:meth:`Spec.check_completion`, one line naming the op)
rather than guessed at; ``info`` and ``fail`` completions' values are ignored.

Value conventions (see ``docs/history-format.md``): a read is invoked with
``null`` and completes with the value read; a write carries the value; a cas
carries ``[old, new]`` and an ``ok`` cas means the swap happened (a cas whose
``old`` did not match completes with ``fail``); an append carries the element;
a txn carries a list of ``[f, key, value]`` micro-ops.

Keys. Most specs are *keyed* (``keyed = True``): every op addresses the
independent object named by its ``key`` field, the state is that one object's
state, and :meth:`Spec.partition` splits the history by key so that each key is
checked on its own (P-compositionality). ``multi-register`` and ``list-append``
keep a map from keys to values instead, because a txn spans keys; they
partition the history into groups of keys that are connected through txns.

Names. A spec's ``aliases`` map other names of ops to the ones ``step``
knows (``kv`` takes Porcupine's ``get``/``put`` for ``read``/``write``);
:meth:`Spec.canonical_f` resolves them before the search sees an op.

Dead values (``kv``). Appends only extend a string, so a value that no ok
read of its key starts with can never be read until the next write: every
such value behaves alike and the ``kv`` simplify hint folds them all into
:data:`UNOBSERVED`. Without it the search tells apart every order of a burst
of concurrent appends that a later write wipes out (Porcupine's 50-client kv
histories), which is exponential; with it those orders are one state.

Registry: :func:`get_spec` builds a spec by name with an optional initial
state (the ``--init`` JSON); :data:`SPECS` lists the names.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from jepsenlike.errors import ConfigError
from jepsenlike.history import History, Op

__all__ = [
    "DROP",
    "MISSING",
    "UNOBSERVED",
    "Replace",
    "SPECS",
    "CasRegister",
    "FALSE",
    "FrozenMap",
    "JsonBool",
    "Kv",
    "ListAppend",
    "MultiRegister",
    "Mutex",
    "Queue",
    "Reason",
    "PartOp",
    "Register",
    "SearchHints",
    "SetSpec",
    "Spec",
    "StepResult",
    "TRUE",
    "freeze",
    "get_spec",
    "key_arg",
    "show",
    "thaw",
]

StepResult = tuple[bool, Any]


class _Missing:
    """The completion value of an op whose outcome is unknown."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""``ret`` for an op whose completion is ``info`` or absent: the result is unknown."""


class FrozenMap(dict):
    """A dict that is hashable; by convention nobody mutates it after creation."""

    __slots__ = ("_hash",)

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            self._hash = h = hash(frozenset(self.items()))
            return h

    def set(self, key: Hashable, value: Any) -> FrozenMap:
        """A copy with ``key`` bound to ``value``."""
        d = FrozenMap(self)
        dict.__setitem__(d, key, value)
        return d

    def __repr__(self) -> str:
        return f"FrozenMap({dict.__repr__(self)})"


class JsonBool:
    """JSON ``true``/``false`` once frozen: never equal to, nor hashed like, ``1``/``0``.

    Python has ``True == 1`` and ``hash(True) == hash(1)``, so a register that
    held ``true`` would accept a read of ``1`` and the search would merge the
    two states. :func:`freeze` maps the two booleans to :data:`TRUE` and
    :data:`FALSE`, which equal only themselves; :func:`thaw` maps them back.
    """

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __repr__(self) -> str:
        return "TRUE" if self.value else "FALSE"

    def __reduce__(self) -> str:
        return repr(self)


TRUE: Any = JsonBool(True)
"""Frozen JSON ``true``."""
FALSE: Any = JsonBool(False)
"""Frozen JSON ``false``."""


def freeze(v: Any) -> Any:
    """A hashable copy of a JSON-like value (lists -> tuples, dicts -> FrozenMap,
    booleans -> :data:`TRUE`/:data:`FALSE`, so that ``true`` is not ``1``).

    Numbers keep Python's equality: ``1`` and ``1.0`` are the same value."""
    if v is True:
        return TRUE
    if v is False:
        return FALSE
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return FrozenMap((freeze(k), freeze(x)) for k, x in v.items())
    if isinstance(v, (set, frozenset)):
        return frozenset(freeze(x) for x in v)
    return v


def thaw(v: Any) -> Any:
    """The JSON-serialisable form of a frozen value (sets become sorted lists)."""
    if v is UNOBSERVED:
        return "<a value nobody reads>"
    if type(v) is JsonBool:
        return v.value
    if isinstance(v, tuple):
        return [thaw(x) for x in v]
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else json.dumps(thaw(k))): thaw(x) for k, x in v.items()}
    if isinstance(v, frozenset):
        items = [thaw(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    return v


_encode = json.JSONEncoder().encode


def show(v: Any) -> str:
    """A value as it appears in reasons: JSON (``null``, ``"a"``, ``[1, 2]``)."""
    if v is None:
        return "null"
    if type(v) is int:
        return str(v)
    try:
        return _encode(thaw(v))
    except (TypeError, ValueError):
        return repr(v)


class PartOp(NamedTuple):
    """One op of a part, as search hints see it (fields by name, never by position)."""

    f: str
    arg: Any
    result: Any  # MISSING when the outcome is unknown
    required: bool  # True for ok ops; False for info / never completed
    call: int  # history index of the invocation
    ret: float  # history index of the completion; +inf for ops of unknown outcome


@dataclass(frozen=True)
class SearchHints:
    """Optional, named hints that make the search faster; none changes a verdict.

    Attributes:
        read_only: ``(f, arg) -> bool``: the op never changes the state. Such an
            op of unknown outcome is dropped, and a required one that can go next
            goes next (its siblings are not tried).
        absorbing: ``(f, arg) -> bool``: the op leads only to states from which
            nothing but such ops and blind overwrites can go on (a write of a
            value nobody reads): where it leaves the state unchanged it goes next.
        simplify: ``(ops: list[PartOp]) -> {position: DROP | Replace}``: ops of
            unknown outcome no linearization needs (DROP), or an equivalent
            simpler arg/result (:class:`Replace`), e.g. a value nobody observes
            replaced by :data:`UNOBSERVED` so that states differing only in such
            values become one state. Witnesses are replayed with the real values.
        order: ``(ops: list[PartOp]) -> list[float]``: a number per op; of the
            ops that could be linearized next the search tries lower numbers
            first (default: call order).
        pinned_state: ``(f, arg, result) -> state or MISSING``: for a
            read-only op that can go exactly when the state equals one value
            (a read of a register returns the whole value), that state; the
            search then compares states instead of calling ``step``. MISSING
            for other ops. Must agree with ``step``.
    """

    read_only: Callable[[str, Any], bool] | None = None
    absorbing: Callable[[str, Any], bool] | None = None
    simplify: Callable[[list[PartOp]], dict[int, Any]] | None = None
    order: Callable[[list[PartOp]], list[float]] | None = None
    pinned_state: Callable[[str, Any, Any], Any] | None = None


class Reason:
    """Why ``step`` refused an op: a format string and values, put into words
    (values as JSON, via :func:`show`) only when read. The search asks
    ``step`` millions of times and reads a handful of reasons.

    ``str(reason)`` is the text; a reason equals its text.
    """

    __slots__ = ("args", "fmt")

    def __init__(self, fmt: str, *args: Any) -> None:
        self.fmt = fmt
        self.args = args

    def __str__(self) -> str:
        return self.fmt.format(*(show(a) for a in self.args))

    def __repr__(self) -> str:
        return repr(str(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, Reason)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


class Spec:
    """A sequential specification: ``init``, ``step``, ``describe_state``/``describe_op``,
    and optional :class:`SearchHints` from :meth:`hints`.

    Subclasses set ``name`` and ``fs`` and define ``step``; ``partition``,
    ``check_op`` and ``check_completion`` say how a history maps onto the spec.

    Attributes:
        name: the model name used on the command line.
        fs: the op functions this spec understands.
        keyed: True when each op addresses one independent object named by its
            ``key``; False when the state is a map over keys (txn specs).
        read_only_fs: functions that never change the state (the default
            ``read_only`` hint, and how ``describe_op`` shows them).
        echo_fs: functions whose ``ok`` completion must carry the invocation's
            value (a write completes with the value written).
    """

    name: str = ""
    fs: frozenset[str] = frozenset()
    keyed: bool = True
    read_only_fs: frozenset[str] = frozenset({"read"})
    echo_fs: frozenset[str] = frozenset()
    default_init: Any = None
    #: Other names of ops, mapped to the names ``step`` knows (Porcupine's kv
    #: histories say ``get``/``put`` for ``read``/``write``).
    aliases: Mapping[str, str] = MappingProxyType({})

    def canonical_f(self, f: str) -> str:
        """The op name ``step`` and the hints know for ``f`` (its alias resolved)."""
        return self.aliases.get(f, f)

    def __init__(self, init: Any = None) -> None:
        self._init = self.default_init if init is None else self.coerce_init(freeze(init))

    def coerce_init(self, init: Any) -> Any:
        """Check and normalise a user-supplied initial state (already frozen)."""
        return init

    def init(self) -> Any:
        """The state before any op."""
        return self._init

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        """Apply one op; ``(True, next_state)`` or ``(False, reason)``, the reason a
        ``str`` or a :class:`Reason` (cheaper: worded only when shown)."""
        raise NotImplementedError

    def hints(self) -> SearchHints:
        """Search hints (see :class:`SearchHints`). Default: ops in ``read_only_fs``
        are read-only; nothing else."""
        if not self.read_only_fs:
            return SearchHints()
        fs = self.read_only_fs
        return SearchHints(read_only=lambda f, arg: f in fs)

    def op_keys(self, op: Op) -> tuple[Hashable, ...]:
        """The keys an op touches (for partitioning)."""
        return (freeze(op.key),)

    def describe_state(self, state: Any) -> Any:
        """The state as a JSON value."""
        return thaw(state)

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        """One op, e.g. ``cas [1, 2]`` or ``read -> 3`` or ``read -> ?``."""
        if f in self.read_only_fs:
            return f"{f} -> {'?' if ret is MISSING else show(ret)}"
        return f"{f} {show(arg)}"

    def partition(self, history: History) -> dict[Any, list[tuple[Op, Op | None]]]:
        """Client (invocation, completion) pairs grouped into independent parts.

        Keyed specs group by ``key``; map specs group by connected sets of keys
        (two keys are connected when one op touches both). The dict key is the
        op key (or a tuple of keys for a connected group of several).
        """
        pairs = list(history.pairs())
        if self.keyed:
            groups: dict[Any, list[tuple[Op, Op | None]]] = {}
            for inv, comp in pairs:
                groups.setdefault(freeze(inv.key), []).append((inv, comp))
            return groups
        return _components(pairs, self.op_keys)

    def check_op(self, op: Op) -> str | None:
        """A problem with an invocation's shape, or None if the spec can check it."""
        if self.canonical_f(op.f) not in self.fs:
            return (
                f"model {self.name!r} has no op f={op.f!r} "
                f"(it knows {', '.join(sorted(self.fs))})"
            )
        return None

    def check_completion(self, inv: Op, comp: Op) -> str | None:
        """A problem with an ``ok`` completion, or None.

        An op in ``echo_fs`` (a write, a cas, an append, an add, an enqueue)
        must complete with the value it was invoked with: a write of ``1``
        that completes ok with ``2`` is refused as a malformed history rather
        than guessed at (Knossos would take the completion's value; Jepsen's
        clients never produce it). Values compare as JSON (``true`` is not ``1``).
        """
        if self.canonical_f(inv.f) in self.echo_fs and freeze(comp.value) != freeze(inv.value):
            return (
                f"{inv.f} invoked with {show(freeze(inv.value))} completed ok with "
                f"{show(freeze(comp.value))}; an ok {inv.f} must repeat its invocation's value"
            )
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(init={show(self._init)})"


def _components(
    pairs: list[tuple[Op, Op | None]], keys_of: Callable[[Op], tuple[Hashable, ...]]
) -> dict[Any, list[tuple[Op, Op | None]]]:
    parent: dict[Any, Any] = {}

    def find(k: Any) -> Any:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    op_keys = []
    for inv, _ in pairs:
        ks = keys_of(inv) or (None,)
        op_keys.append(ks)
        root = find(ks[0])
        for k in ks[1:]:
            r = find(k)
            if r != root:
                parent[r] = root
    members: dict[Any, list[Any]] = {}
    for k in list(parent):
        members.setdefault(find(k), []).append(k)
    label: dict[Any, Any] = {}
    for root, ks in members.items():
        if len(ks) == 1:
            label[root] = ks[0]
        else:
            try:
                label[root] = tuple(sorted(ks))
            except TypeError:
                label[root] = tuple(sorted(ks, key=repr))
    groups: dict[Any, list[tuple[Op, Op | None]]] = {}
    for (inv, comp), ks in zip(pairs, op_keys, strict=True):
        groups.setdefault(label[find(ks[0])], []).append((inv, comp))
    return groups


# --------------------------------------------------------------------------- registers


class Register(Spec):
    """A read/write register. ``null`` is a value like any other, and the default."""

    name = "register"
    fs = frozenset({"read", "write"})

    echo_fs = frozenset({"write"})

    def hints(self) -> SearchHints:
        return SearchHints(
            read_only=_is_read, absorbing=_writes_unobserved, simplify=_register_simplify,
            pinned_state=_read_pins,
        )

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "read":
            if ret is MISSING or ret == state:
                return True, state
            return False, Reason("read {} but the value is {}", ret, state)
        if f == "write":
            return True, arg
        return False, f"unknown op {f!r}"


def _is_read(f: str, arg: Any) -> bool:
    return f == "read"


def _read_pins(f: str, arg: Any, ret: Any) -> Any:
    # an ok read of a whole register goes exactly where the value is what it read
    return ret if f == "read" else MISSING


def _kv_simplify(ops: list[PartOp]) -> dict[int, Any]:
    # Call a string state *dead* when no ok read of the key starts with it: an
    # append only extends the value, so until the next write no ok read can
    # succeed, whatever the dead value is, and every append of a string keeps
    # it dead. All dead values are therefore one state (UNOBSERVED), which
    # keeps the search from telling apart the orders of appends that no read
    # ever shows (a write resetting the key hides them all).
    #
    # * An append of unknown outcome whose string no ok read contains, or a
    #   write of unknown outcome that no ok read starts with, is unneeded: it
    #   only makes the value dead, and leaving it out changes no read. (A read
    #   that contains the string by coincidence keeps the op: that only costs
    #   time.)
    # * Such an ok append, or ok write of a string, always makes the value
    #   dead: its arg (and result) become UNOBSERVED, so that all of them are
    #   interchangeable.
    # * Every other append or write of a string carries the sorted ok reads
    #   (_KvArg): ``step`` folds the value it makes into UNOBSERVED when it is
    #   dead.
    reads = [op.result for op in ops if op.f == "read" and op.required]
    sreads = tuple(sorted({v for v in reads if isinstance(v, str)}))
    out: dict[int, Any] = {}
    for i, op in enumerate(ops):
        if op.f not in ("append", "write"):
            continue
        a = op.arg
        if op.f == "append":
            # (an append onto a value that is not a string fails: the value
            # after it is always a string containing ``a``)
            seen = not isinstance(a, str) or any(isinstance(v, str) and a in v for v in reads)
        else:
            seen = any(
                v == a or (isinstance(v, str) and isinstance(a, str) and v.startswith(a))
                for v in reads
            )
        if not seen and not op.required:
            out[i] = DROP
        elif not isinstance(a, str):
            continue  # (a write of a non-string: appends onto it fail, it is not dead)
        elif not seen:
            out[i] = Replace(UNOBSERVED, UNOBSERVED)
        else:
            out[i] = Replace(_KvArg(a, sreads))
    return out


class _KvArg:
    """A kv append's or write's string during the search, with the part's ok
    read values (sorted), to tell whether the value it makes is dead."""

    __slots__ = ("reads", "value")

    def __init__(self, value: str, reads: tuple[str, ...]) -> None:
        self.value = value
        self.reads = reads

    def __eq__(self, other: object) -> bool:
        return type(other) is _KvArg and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def alive(self, new: str) -> Any:
        """``new``, or UNOBSERVED when no ok read starts with it."""
        reads = self.reads
        i = bisect_left(reads, new)
        if i < len(reads) and reads[i].startswith(new):
            return new
        return UNOBSERVED


def _kv_absorbing(f: str, arg: Any) -> bool:
    # an ok append or write that always makes the value dead (see _kv_simplify)
    return arg is UNOBSERVED


def _writes_unobserved(f: str, arg: Any) -> bool:
    # No read and no cas succeeds on UNOBSERVED (_register_simplify makes sure of it).
    return f == "write" and arg is UNOBSERVED


def _register_simplify(ops: list[PartOp]) -> dict[int, Any]:
    # A value is observed when an ok read returns it or some cas expects it.
    # Setting the register to a value nobody observes can only be undone by
    # a later write, so such a write (or cas) of unknown outcome is unneeded.
    # A required write of such a value leaves a state in which no read or
    # cas can succeed until the next write, whatever the value: all such
    # values are one (UNOBSERVED).
    observed = {op.result for op in ops if op.f == "read" and op.required}
    observed.update(op.arg[0] for op in ops if op.f == "cas")
    out: dict[int, Any] = {}
    for i, op in enumerate(ops):
        if op.f not in ("write", "cas"):
            continue
        new = op.arg if op.f == "write" else op.arg[1]
        if not _hashable(new) or new in observed:
            continue
        if not op.required:
            out[i] = DROP
        else:
            # the result too, so that all such writes are interchangeable
            new_arg = UNOBSERVED if op.f == "write" else (op.arg[0], UNOBSERVED)
            out[i] = Replace(new_arg, new_arg)
    return out


class CasRegister(Register):
    """A register with compare-and-set: ``cas [old, new]`` swaps when the value is ``old``."""

    name = "cas-register"
    fs = frozenset({"read", "write", "cas"})
    echo_fs = frozenset({"write", "cas"})

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "cas":
            old, new = arg
            if state == old:
                return True, new
            return False, Reason("can't CAS {} from {} to {}", state, old, new)
        return Register.step(self, state, f, arg, ret)

    def check_op(self, op: Op) -> str | None:
        problem = super().check_op(op)
        if problem is None and op.f == "cas":
            v = op.value
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                return f"a cas value must be [old, new], got {v!r}"
        return problem


class MultiRegister(Spec):
    """Registers over several keys, read and written by ``txn`` ops.

    A txn's value is a list of ``[f, key, value]`` micro-ops with f ``r``/``read``
    or ``w``/``write``. Micro-ops run in order, so a txn reads its own writes.
    A ``null`` read value inside a txn is unconstrained (the value was not
    observed), as in Jepsen's multi-register. The state is a map from key to
    value; keys absent from it hold ``null`` (or the ``init`` map's value).
    """

    name = "multi-register"
    fs = frozenset({"txn"})
    keyed = False
    default_init = FrozenMap()

    def coerce_init(self, init: Any) -> Any:
        if not isinstance(init, FrozenMap):
            raise ConfigError(
                f"--init for multi-register must be a JSON object of key -> value, got {thaw(init)!r}"
            )
        return init

    def hints(self) -> SearchHints:
        return SearchHints(read_only=_txn_reads_only)

    def check_completion(self, inv: Op, comp: Op) -> str | None:
        return _check_txn_completion(inv, comp, ("w", "write"))

    def op_keys(self, op: Op) -> tuple[Hashable, ...]:
        return tuple(freeze(m[1]) for m in op.value)

    def check_op(self, op: Op) -> str | None:
        problem = super().check_op(op)
        if problem is None:
            problem = _check_micro_ops(op.value, ("r", "read", "w", "write"))
        return problem

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        mops = arg if ret is MISSING or not isinstance(ret, tuple) else ret
        for mf, k, v in mops:
            if mf in ("r", "read"):
                if v is None:
                    continue
                cur = state.get(k)
                if cur != v:
                    return False, Reason("read {} from key {} but the value is {}", v, k, cur)
            else:
                state = state.set(k, v)
        return True, state

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        return f"{f} {show(arg if ret is MISSING else ret)}"


DROP: Any = object()
"""Returned by :attr:`SearchHints.simplify` for an op to leave out."""

_KEEP: Any = object()


class Replace:
    """Returned by :attr:`SearchHints.simplify`: the op's new arg (and result, if given)."""

    __slots__ = ("arg", "ret")

    def __init__(self, arg: Any, ret: Any = _KEEP) -> None:
        self.arg = arg
        self.ret = ret

    @property
    def keeps_result(self) -> bool:
        return self.ret is _KEEP


class _Unobserved:
    _instance: _Unobserved | None = None

    def __new__(cls) -> _Unobserved:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNOBSERVED"


UNOBSERVED: Any = _Unobserved()
"""Stands for every value that no op ever observes (see :attr:`SearchHints.simplify`)."""


class _Taken(frozenset):
    """The arg of a dequeue of unknown outcome: elements it must not take."""


class _Enqueue:
    """The simplified arg of an enqueue whose element one ok dequeue takes."""

    __slots__ = ("began", "deq_returned", "x")

    def __init__(self, x: Any, deq_returned: float, began: dict[Any, int]) -> None:
        self.x, self.deq_returned, self.began = x, deq_returned, began

    def __eq__(self, other: object) -> bool:
        return type(other) is _Enqueue and other.x == self.x

    def __hash__(self) -> int:
        return hash(("enqueue", self.x))


class _AfterUnknownDequeue:
    """A queue state right after a dequeue of unknown outcome (see Queue.step)."""

    __slots__ = ("queue",)

    def __init__(self, queue: tuple) -> None:
        self.queue = queue

    def __eq__(self, other: object) -> bool:
        return type(other) is _AfterUnknownDequeue and other.queue == self.queue

    def __hash__(self) -> int:
        return hash(("after-unknown-dequeue", self.queue))


def _set_pins(f: str, arg: Any, ret: Any) -> Any:
    if f == "read" and isinstance(ret, (tuple, frozenset)):
        return frozenset(ret)
    return MISSING


def _list_reads_only(f: str, arg: Any) -> bool:
    if f == "txn":
        return all(m[0] in ("r", "read") for m in arg)
    return f == "read"


def _check_txn_completion(inv: Op, comp: Op, write_fs: tuple[str, ...]) -> str | None:
    """An ok txn completes with the same micro-ops, reads filled in, writes unchanged."""
    mine, theirs = inv.value, comp.value
    if not isinstance(theirs, (list, tuple)) or len(theirs) != len(mine):
        return (
            f"txn invoked with {len(mine)} micro-ops completed ok with {show(freeze(theirs))}; "
            "an ok txn must list the same micro-ops, reads filled in"
        )
    for m, c in zip(mine, theirs, strict=True):
        bad = not isinstance(c, (list, tuple)) or len(c) != 3 or freeze(c[:2]) != freeze(m[:2])
        if not bad and m[0] in write_fs:
            bad = freeze(c[2]) != freeze(m[2])
        if bad:
            return (
                f"txn micro-op {show(freeze(m))} completed ok as {show(freeze(c))}; an ok txn "
                "must repeat each micro-op's f, key and written value"
            )
    return None


def _txn_reads_only(f: str, arg: Any) -> bool:
    return f == "txn" and all(m[0] in ("r", "read") for m in arg)


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _check_micro_ops(value: Any, known: tuple[str, ...]) -> str | None:
    if not isinstance(value, (list, tuple)):
        return f"a txn value must be a list of [f, key, value] micro-ops, got {value!r}"
    for m in value:
        if not isinstance(m, (list, tuple)) or len(m) != 3 or m[0] not in known:
            return (
                f"bad micro-op {m!r} in txn: expected [f, key, value] with f one of "
                f"{', '.join(known)}"
            )
    return None


class Kv(Spec):
    """Independent string registers per key: ``read``, ``write``, ``append``.

    ``append`` concatenates its (string) argument to the value; appending to
    ``null`` gives the argument. ``get`` and ``put`` are read and write
    (Porcupine's kv histories; they start every key at ``""``: ``--init '""'``).
    """

    name = "kv"
    fs = frozenset({"read", "write", "append"})
    echo_fs = frozenset({"write", "append"})
    aliases = MappingProxyType({"get": "read", "put": "write"})

    def hints(self) -> SearchHints:
        return SearchHints(
            read_only=_is_read, pinned_state=_read_pins, simplify=_kv_simplify,
            absorbing=_kv_absorbing,
        )

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        # UNOBSERVED (arg or state) and _KvArg args come from _kv_simplify: a
        # dead value, which no ok read can see until the next write.
        if f == "read":
            if ret is MISSING or ret == state:
                return True, state
            return False, Reason("read {} but the value is {}", ret, state)
        if f == "write":
            if type(arg) is _KvArg:
                return True, arg.alive(arg.value)
            return True, arg
        if f == "append":
            if type(arg) is _KvArg:
                if state is None:
                    return True, arg.alive(arg.value)
                if state is UNOBSERVED:
                    return True, UNOBSERVED
                if isinstance(state, str):
                    return True, arg.alive(state + arg.value)
                arg = arg.value
            elif arg is UNOBSERVED:
                if state is None or state is UNOBSERVED or isinstance(state, str):
                    return True, UNOBSERVED
            elif state is None:
                return True, arg
            elif state is UNOBSERVED and isinstance(arg, str):
                return True, UNOBSERVED
            if not isinstance(state, str) or not isinstance(arg, str):
                return False, Reason("can't append {} to {}: both must be strings", arg, state)
            return True, state + arg
        return False, f"unknown op {f!r}"


class Mutex(Spec):
    """A lock: ``acquire`` when free, ``release`` when held. The state is True when held."""

    name = "mutex"
    fs = frozenset({"acquire", "release"})
    read_only_fs = frozenset()
    default_init = False

    def coerce_init(self, init: Any) -> Any:
        if type(init) is not JsonBool:
            raise ConfigError(
                f"--init for mutex must be true (held) or false, got {show(init)}"
            )
        return init.value

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "acquire":
            return (False, "already held") if state else (True, True)
        if f == "release":
            return (True, False) if state else (False, "not held")
        return False, f"unknown op {f!r}"

    def describe_state(self, state: Any) -> Any:
        return "held" if state else "free"

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        return f


class SetSpec(Spec):
    """A grow-only set: ``add`` an element, ``read`` the whole set (a list, order ignored)."""

    name = "set"
    fs = frozenset({"add", "read"})
    default_init = frozenset()

    def coerce_init(self, init: Any) -> Any:
        if not isinstance(init, (tuple, frozenset)):
            raise ConfigError(f"--init for set must be a JSON list, got {thaw(init)!r}")
        return frozenset(init)

    echo_fs = frozenset({"add"})

    def hints(self) -> SearchHints:
        return SearchHints(read_only=_is_read, simplify=self._simplify, pinned_state=_set_pins)

    def _simplify(self, ops: list[PartOp]) -> dict[int, Any]:
        # An element no ok read contains can only be added after the last read.
        seen: set[Any] = set()
        for op in ops:
            if op.f == "read" and op.required and isinstance(op.result, (tuple, frozenset)):
                seen.update(op.result)
        return {
            i: DROP for i, op in enumerate(ops)
            if not op.required and op.f == "add" and _hashable(op.arg) and op.arg not in seen
        }

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "add":
            return True, state | {arg}
        if f == "read":
            if ret is MISSING:
                return True, state
            seen = frozenset(ret) if isinstance(ret, (tuple, frozenset)) else ret
            if seen == state:
                return True, state
            return False, Reason("read {} but the set is {}", seen, state)
        return False, f"unknown op {f!r}"


class Queue(Spec):
    """A FIFO queue: ``enqueue`` an element, ``dequeue`` the head.

    An ``ok`` dequeue's value is the element it got; ``null`` means the queue
    was empty. A dequeue whose outcome is unknown removes the head if any.
    """

    name = "queue"
    fs = frozenset({"enqueue", "dequeue"})
    read_only_fs = frozenset()
    default_init = ()

    def coerce_init(self, init: Any) -> Any:
        if not isinstance(init, tuple):
            raise ConfigError(f"--init for queue must be a JSON list, got {thaw(init)!r}")
        return init

    echo_fs = frozenset({"enqueue"})

    def hints(self) -> SearchHints:
        return SearchHints(simplify=self._simplify, order=self._order)

    def _simplify(self, ops: list[PartOp]) -> dict[int, Any]:
        # An element no ok dequeue returns is either never removed (then leaving
        # it out changes no ok result) or removed by a dequeue of unknown outcome
        # (leave both out): its enqueue of unknown outcome is unneeded.
        # And an element that ok dequeues return as many times as it is enqueued
        # must not be taken by a dequeue of unknown outcome: such a dequeue gets
        # those elements as its arg and refuses to take them.
        enq: Counter[Any] = Counter()
        deq: Counter[Any] = Counter()
        for op in ops:
            if not _hashable(op.arg if op.f == "enqueue" else op.result):
                return {}
            if op.f == "enqueue":
                enq[op.arg] += 1
            elif op.required and op.result is not None:
                deq[op.result] += 1
        # Elements no ok dequeue returns are all alike (UNOBSERVED): the order
        # of their enqueues then makes no difference to the state.
        out: dict[int, Any] = {}
        taken = frozenset(v for v, n in deq.items() if n >= enq[v])
        # An element enqueued once and dequeued once (by an ok dequeue) gets
        # its dequeue's interval: an enqueue of x cannot go while some y waits
        # in the queue whose dequeue began after x's dequeue returned (x would
        # come out after y), so the search need not find that out later.
        deq_span = {
            op.result: (op.call, op.ret) for op in ops
            if op.f == "dequeue" and op.required and op.result is not None
            and deq[op.result] == 1 and enq[op.result] == 1
        }
        began = {x: span[0] for x, span in deq_span.items()}
        for i, op in enumerate(ops):
            if op.f == "enqueue" and op.arg not in deq:
                out[i] = Replace(UNOBSERVED, UNOBSERVED) if op.required else DROP
            elif op.f == "enqueue" and op.arg in deq_span:
                out[i] = Replace(_Enqueue(op.arg, deq_span[op.arg][1], began))
            elif op.f == "dequeue" and not op.required:
                out[i] = Replace(_Taken(taken))
        return out

    def _order(self, ops: list[PartOp]) -> list[float]:
        # Enqueue first what is dequeued first.
        first_deq: dict[Any, int] = {}
        for op in ops:
            if op.f == "dequeue" and op.required and _hashable(op.result):
                first_deq.setdefault(op.result, op.call)
        order: list[float] = []
        for op in ops:
            if op.f == "enqueue":
                x = op.arg.x if type(op.arg) is _Enqueue else op.arg
                order.append(first_deq.get(x, math.inf) if _hashable(x) else math.inf)
            else:
                order.append(op.call)
        return order

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        marked = type(state) is _AfterUnknownDequeue
        if marked:
            state = state.queue
        if f == "enqueue":
            if marked:
                return False, "a dequeue of unknown outcome goes only right before a dequeue"
            if type(arg) is _Enqueue:
                for y in state:
                    if arg.began.get(y, -1) > arg.deq_returned:
                        return False, Reason(
                            "{} would be dequeued after {}, but its dequeue returned before "
                            "the dequeue of {} began", arg.x, y, y,
                        )
                return True, state + (arg.x,)
            return True, state + (arg,)
        if f == "dequeue":
            if ret is MISSING:
                if type(arg) is not _Taken:
                    return True, state[1:]
                # Simplified form (see simplify): it must not take an element
                # that ok dequeues return, and it goes only right before another
                # dequeue (moving it there changes nothing: enqueues in between
                # only append, and dequeues of unknown outcome are alike).
                if not state:
                    return True, _AfterUnknownDequeue(state) if marked else state
                if state[0] in arg:
                    return False, Reason("an ok dequeue returns {}, so this one cannot take it", state[0])
                return True, _AfterUnknownDequeue(state[1:])
            if not state:
                if ret is None:
                    return True, state
                return False, Reason("dequeued {} but the queue is empty", ret)
            if ret is None:
                return False, Reason("dequeued nothing but the queue is {}", state)
            if state[0] == ret:
                return True, state[1:]
            return False, Reason("dequeued {} but the head is {}", ret, state[0])
        return False, f"unknown op {f!r}"

    def describe_state(self, state: Any) -> Any:
        if type(state) is _AfterUnknownDequeue:
            state = state.queue
        return thaw(state)

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        if f == "dequeue":
            return f"dequeue -> {'?' if ret is MISSING else show(ret)}"
        return f"{f} {show(arg)}"


class ListAppend(Spec):
    """Lists per key: ``append`` an element, ``read`` the whole list.

    Single-key ops carry the key in the op's ``key`` field; ``txn`` ops carry
    ``["append", k, v]`` and ``["r", k, list]`` micro-ops over several keys
    (Jepsen/Elle's list-append). A ``null`` read in an ``ok`` completion means
    the empty list; a read micro-op whose value is unknown is unconstrained.
    ``init`` is a map of key -> initial list (default: every list empty).
    """

    name = "list-append"
    fs = frozenset({"append", "read", "txn"})
    keyed = False
    default_init = FrozenMap()

    def coerce_init(self, init: Any) -> Any:
        if not isinstance(init, FrozenMap):
            raise ConfigError(
                f"--init for list-append must be a JSON object of key -> list, got {thaw(init)!r}"
            )
        return init

    echo_fs = frozenset({"append"})

    def hints(self) -> SearchHints:
        return SearchHints(read_only=_list_reads_only, simplify=self._simplify)

    def check_completion(self, inv: Op, comp: Op) -> str | None:
        if inv.f == "txn":
            return _check_txn_completion(inv, comp, ("append",))
        return super().check_completion(inv, comp)

    def _simplify(self, ops: list[PartOp]) -> dict[int, Any]:
        # An element no ok read contains can only be appended after the last
        # read of its key: an append (or all-append txn) of unknown outcome
        # whose elements nobody reads is unneeded.
        seen: set[Any] = set()
        for op in ops:
            if not op.required:
                continue
            if op.f == "read" and isinstance(op.result, tuple):
                seen.update((op.arg[0], v) for v in op.result)
            elif op.f == "txn" and isinstance(op.result, tuple):
                for mf, k, v in op.result:
                    if mf != "append" and isinstance(v, tuple):
                        seen.update((k, x) for x in v)
        out = {}
        for i, op in enumerate(ops):
            if op.required:
                continue
            if op.f == "append":
                effects = [op.arg]
            elif op.f == "txn":
                effects = [(k, v) for mf, k, v in op.arg if mf == "append"]
            else:
                continue
            if all(_hashable(e) and e not in seen for e in effects):
                out[i] = DROP
        return out

    def op_keys(self, op: Op) -> tuple[Hashable, ...]:
        if op.f == "txn":
            return tuple(freeze(m[1]) for m in op.value)
        return (freeze(op.key),)

    def check_op(self, op: Op) -> str | None:
        problem = super().check_op(op)
        if problem is None and op.f == "txn":
            problem = _check_micro_ops(op.value, ("append", "r", "read"))
        return problem

    # Single-key ops arrive with the key folded into arg: see key_arg().
    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "txn":
            known = ret is not MISSING and isinstance(ret, tuple)
            for mf, k, v in ret if known else arg:
                if mf == "append":
                    state = state.set(k, state.get(k, ()) + (v,))
                elif known:
                    seen = () if v is None else v
                    cur = state.get(k, ())
                    if seen != cur:
                        return False, Reason("read {} from key {} but the list is {}", seen, k, cur)
            return True, state
        k, v = arg
        if f == "append":
            return True, state.set(k, state.get(k, ()) + (v,))
        if f == "read":
            if ret is MISSING:
                return True, state
            seen = () if ret is None else ret
            cur = state.get(k, ())
            if seen != cur:
                return False, Reason("read {} from key {} but the list is {}", seen, k, cur)
            return True, state
        return False, f"unknown op {f!r}"

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        if f == "txn":
            return f"txn {show(arg if ret is MISSING else ret)}"
        k, v = arg
        if f == "read":
            return f"read {show(k)} -> {'?' if ret is MISSING else show(ret)}"
        return f"append {show(k)} {show(v)}"


SPECS: dict[str, type[Spec]] = {
    cls.name: cls
    for cls in (Register, CasRegister, MultiRegister, Kv, Mutex, SetSpec, Queue, ListAppend)
}
"""Model name -> spec class."""


def key_arg(spec: Spec, op: Op, value: Any) -> Any:
    """The frozen ``arg`` the spec's ``step`` expects for this invocation.

    Map specs need the key of a single-key op inside ``step``; they get
    ``(key, value)``. Everything else gets the frozen value as is.
    """
    if not spec.keyed and op.f != "txn":
        return (freeze(op.key), freeze(value))
    return freeze(value)


def get_spec(name: str, init: Any = None) -> Spec:
    """Build the spec called ``name``, with initial state ``init`` (JSON value) or its default.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or a bad ``init``.
    """
    cls = SPECS.get(name)
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(SPECS)}")
    return cls(init)

