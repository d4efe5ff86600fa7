"""Sequential specifications: what each datatype is allowed to do, one op at a time.

Theory of operation
-------------------
A linearizability checker needs to know which sequential executions of a
datatype are legal. A :class:`Spec` says so with three pure functions:

* ``init()`` -- the state before any operation;
* ``step(state, f, arg, ret)`` -- apply one operation to a state and answer
  ``(True, next_state)`` when the operation could have happened there, or
  ``(False, reason)`` when it could not ("can't CAS 3 from 1 to 2", "read 5 but
  the value is 3");
* ``describe_state(state)`` -- a JSON value a person can read.

``f`` is the op's function, ``arg`` the value of its invocation and ``ret``
the value of its ``ok`` completion, or :data:`MISSING` when the outcome is not
known (an ``info`` completion, or an invocation that never completed). Every
value reaching a spec is *frozen* by :func:`freeze` (JSON arrays become tuples,
objects become :class:`FrozenMap`, sets become frozensets) so that states are
hashable and can be memoised by the search; states are never mutated.

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

Registry: :func:`get_spec` builds a spec by name with an optional initial
state (the ``--init`` JSON); :data:`SPECS` lists the names.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from jepsenlike.errors import ConfigError
from jepsenlike.history import History, Op

__all__ = [
    "DROP",
    "MISSING",
    "UNOBSERVED",
    "Replace",
    "SPECS",
    "CasRegister",
    "FrozenMap",
    "Kv",
    "ListAppend",
    "MultiRegister",
    "Mutex",
    "Queue",
    "Register",
    "SetSpec",
    "Spec",
    "StepResult",
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


def freeze(v: Any) -> Any:
    """A hashable copy of a JSON-like value (lists -> tuples, dicts -> FrozenMap)."""
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


class Spec:
    """A sequential specification. Subclasses set ``name`` and ``fs`` and define ``step``.

    Attributes:
        name: the model name used on the command line.
        fs: the op functions this spec understands.
        keyed: True when each op addresses one independent object named by its
            ``key``; False when the state is a map over keys (txn specs).
        read_only_fs: functions that never change the state; an op of one of
            these whose outcome is unknown constrains nothing and is dropped.
    """

    name: str = ""
    fs: frozenset[str] = frozenset()
    keyed: bool = True
    read_only_fs: frozenset[str] = frozenset({"read"})
    default_init: Any = None

    def __init__(self, init: Any = None) -> None:
        self._init = self.default_init if init is None else self.coerce_init(freeze(init))

    def coerce_init(self, init: Any) -> Any:
        """Check and normalise a user-supplied initial state (already frozen)."""
        return init

    def init(self) -> Any:
        """The state before any op."""
        return self._init

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        """Apply one op; ``(True, next_state)`` or ``(False, reason)``."""
        raise NotImplementedError

    def is_read_only(self, f: str, arg: Any) -> bool:
        """True if the op cannot change the state whatever happened (then an
        unknown outcome constrains nothing)."""
        return f in self.read_only_fs

    def is_absorbing(self, f: str, arg: Any) -> bool:
        """True if the op leads only to states from which nothing but such ops
        and blind overwrites can go on (a write of a value nobody reads): then,
        where it leaves the state unchanged, it may go first. Default: False."""
        return False

    def simplify(self, ops: list[tuple[str, Any, Any, bool, int, float]]) -> dict[int, Any]:
        """Ops that can be left out, or given an equivalent simpler arg, by position.

        ``ops`` are one part's ``(f, arg, ret, required, call, return)`` (call and
        return as history indices; return is +inf for ops of unknown outcome). Returns
        ``{position: DROP}`` for an op of unknown outcome that no linearization
        needs (a write of a value that nobody reads only makes linearizations
        harder), or ``{position: Replace(arg, ret)}`` to replace an op's arg
        (and result), e.g. a value
        nobody observes by :data:`UNOBSERVED` (so that states differing only in
        such values become one state), or a dequeue's by the elements it must
        not take (see :class:`Queue`). Whatever it returns must leave the
        verdict unchanged; it only makes the search smaller. Default: nothing.
        """
        return {}

    def order_hints(self, ops: list[tuple[str, Any, Any, bool, int]]) -> list[float] | None:
        """Optional search order: for one part's ``(f, arg, ret, required, call)``,
        a number per op; of the ops that could be linearized next, the search
        tries lower numbers first. Only speed depends on it. Default: None
        (call order, which needs no sorting)."""
        return None

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
        if op.f not in self.fs:
            return (
                f"model {self.name!r} has no op f={op.f!r} "
                f"(it knows {', '.join(sorted(self.fs))})"
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

    def simplify(self, ops: list[tuple[str, Any, Any, bool, int, float]]) -> dict[int, Any]:
        # A value is observed when an ok read returns it or some cas expects it.
        # Setting the register to a value nobody observes can only be undone by
        # a later write, so such a write (or cas) of unknown outcome is unneeded.
        # A required write of such a value leaves a state in which no read or
        # cas can succeed until the next write, whatever the value: all such
        # values are one (UNOBSERVED).
        observed = {ret for f, _, ret, req, *_ in ops if f == "read" and req}
        observed.update(arg[0] for f, arg, _, _, *_ in ops if f == "cas")
        out: dict[int, Any] = {}
        for i, (f, arg, _, req, *_) in enumerate(ops):
            if f not in ("write", "cas"):
                continue
            new = arg if f == "write" else arg[1]
            if not _hashable(new) or new in observed:
                continue
            if not req:
                out[i] = DROP
            else:
                # the result too, so that all such writes are interchangeable
                new_arg = UNOBSERVED if f == "write" else (arg[0], UNOBSERVED)
                out[i] = Replace(new_arg, new_arg)
        return out

    def is_absorbing(self, f: str, arg: Any) -> bool:
        # No read and no cas succeeds on UNOBSERVED (simplify makes sure of it).
        return f == "write" and arg is UNOBSERVED

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "read":
            if ret is MISSING or ret == state:
                return True, state
            return False, f"read {show(ret)} but the value is {show(state)}"
        if f == "write":
            return True, arg
        return False, f"unknown op {f!r}"


class CasRegister(Register):
    """A register with compare-and-set: ``cas [old, new]`` swaps when the value is ``old``."""

    name = "cas-register"
    fs = frozenset({"read", "write", "cas"})

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "cas":
            old, new = arg
            if state == old:
                return True, new
            return False, f"can't CAS {show(state)} from {show(old)} to {show(new)}"
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

    def is_read_only(self, f: str, arg: Any) -> bool:
        return all(m[0] in ("r", "read") for m in arg)

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
                    return False, f"read {show(v)} from key {show(k)} but the value is {show(cur)}"
            else:
                state = state.set(k, v)
        return True, state

    def describe_op(self, f: str, arg: Any, ret: Any) -> str:
        return f"{f} {show(arg if ret is MISSING else ret)}"


DROP: Any = object()
"""Returned by :meth:`Spec.simplify` for an op to leave out."""

_KEEP: Any = object()


class Replace:
    """Returned by :meth:`Spec.simplify`: the op's new arg (and result, if given)."""

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
"""Stands for every value that no op ever observes (see :meth:`Spec.simplify`)."""


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
    ``null`` gives the argument.
    """

    name = "kv"
    fs = frozenset({"read", "write", "append"})

    def step(self, state: Any, f: str, arg: Any, ret: Any) -> StepResult:
        if f == "read":
            if ret is MISSING or ret == state:
                return True, state
            return False, f"read {show(ret)} but the value is {show(state)}"
        if f == "write":
            return True, arg
        if f == "append":
            if state is None:
                return True, arg
            if not isinstance(state, str) or not isinstance(arg, str):
                return False, f"can't append {show(arg)} to {show(state)}: both must be strings"
            return True, state + arg
        return False, f"unknown op {f!r}"


class Mutex(Spec):
    """A lock: ``acquire`` when free, ``release`` when held. The state is True when held."""

    name = "mutex"
    fs = frozenset({"acquire", "release"})
    read_only_fs = frozenset()
    default_init = False

    def coerce_init(self, init: Any) -> Any:
        if not isinstance(init, bool):
            raise ConfigError(f"--init for mutex must be true (held) or false, got {init!r}")
        return init

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

    def simplify(self, ops: list[tuple[str, Any, Any, bool, int, float]]) -> dict[int, Any]:
        # An element no ok read contains can only be added after the last read.
        seen: set[Any] = set()
        for f, _, ret, req, *_ in ops:
            if f == "read" and req and isinstance(ret, (tuple, frozenset)):
                seen.update(ret)
        return {
            i: DROP for i, (f, arg, _, req, *_) in enumerate(ops)
            if not req and f == "add" and _hashable(arg) and arg not in seen
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
            return False, f"read {show(seen)} but the set is {show(state)}"
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

    def simplify(self, ops: list[tuple[str, Any, Any, bool, int, float]]) -> dict[int, Any]:
        # An element no ok dequeue returns is either never removed (then leaving
        # it out changes no ok result) or removed by a dequeue of unknown outcome
        # (leave both out): its enqueue of unknown outcome is unneeded.
        # And an element that ok dequeues return as many times as it is enqueued
        # must not be taken by a dequeue of unknown outcome: such a dequeue gets
        # those elements as its arg and refuses to take them.
        enq: Counter[Any] = Counter()
        deq: Counter[Any] = Counter()
        for f, arg, ret, req, *_ in ops:
            if not _hashable(arg if f == "enqueue" else ret):
                return {}
            if f == "enqueue":
                enq[arg] += 1
            elif req and ret is not None:
                deq[ret] += 1
        # Elements no ok dequeue returns are all alike (UNOBSERVED): the order
        # of their enqueues then makes no difference to the state.
        out: dict[int, Any] = {}
        taken = frozenset(v for v, n in deq.items() if n >= enq[v])
        # An element enqueued once and dequeued once (by an ok dequeue) gets
        # its dequeue's interval: an enqueue of x cannot go while some y waits
        # in the queue whose dequeue began after x's dequeue returned (x would
        # come out after y), so the search need not find that out later.
        deq_span = {
            ret: (call, ret_at) for f, _, ret, req, call, ret_at in ops
            if f == "dequeue" and req and ret is not None and deq[ret] == 1 and enq[ret] == 1
        }
        began = {x: span[0] for x, span in deq_span.items()}
        for i, (f, arg, _, req, *_) in enumerate(ops):
            if f == "enqueue" and arg not in deq:
                out[i] = Replace(UNOBSERVED, UNOBSERVED) if req else DROP
            elif f == "enqueue" and arg in deq_span:
                out[i] = Replace(_Enqueue(arg, deq_span[arg][1], began))
            elif f == "dequeue" and not req:
                out[i] = Replace(_Taken(taken))
        return out

    def order_hints(self, ops: list[tuple[str, Any, Any, bool, int]]) -> list[float] | None:
        # Enqueue first what is dequeued first.
        first_deq: dict[Any, int] = {}
        for f, _, ret, req, call in ops:
            if f == "dequeue" and req and _hashable(ret):
                first_deq.setdefault(ret, call)
        hints: list[float] = []
        for f, arg, _, _, call in ops:
            if f == "enqueue":
                x = arg.x if type(arg) is _Enqueue else arg
                hints.append(first_deq.get(x, math.inf) if _hashable(x) else math.inf)
            else:
                hints.append(call)
        return hints

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
                        return False, (
                            f"{show(arg.x)} would be dequeued after {show(y)}, but its "
                            f"dequeue returned before the dequeue of {show(y)} began"
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
                    return False, f"an ok dequeue returns {show(state[0])}, so this one cannot take it"
                return True, _AfterUnknownDequeue(state[1:])
            if not state:
                if ret is None:
                    return True, state
                return False, f"dequeued {show(ret)} but the queue is empty"
            if ret is None:
                return False, f"dequeued nothing but the queue is {show(state)}"
            if state[0] == ret:
                return True, state[1:]
            return False, f"dequeued {show(ret)} but the head is {show(state[0])}"
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

    def is_read_only(self, f: str, arg: Any) -> bool:
        if f == "txn":
            return all(m[0] in ("r", "read") for m in arg)
        return f == "read"

    def simplify(self, ops: list[tuple[str, Any, Any, bool, int, float]]) -> dict[int, Any]:
        # An element no ok read contains can only be appended after the last
        # read of its key: an append (or all-append txn) of unknown outcome
        # whose elements nobody reads is unneeded.
        seen: set[Any] = set()
        for f, arg, ret, req, *_ in ops:
            if not req:
                continue
            if f == "read" and isinstance(ret, tuple):
                seen.update((arg[0], v) for v in ret)
            elif f == "txn" and isinstance(ret, tuple):
                for mf, k, v in ret:
                    if mf != "append" and isinstance(v, tuple):
                        seen.update((k, x) for x in v)
        out = {}
        for i, (f, arg, _, req, *_) in enumerate(ops):
            if req:
                continue
            if f == "append":
                effects = [arg]
            elif f == "txn":
                effects = [(k, v) for mf, k, v in arg if mf == "append"]
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
                        return False, f"read {show(seen)} from key {show(k)} but the list is {show(cur)}"
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
                return False, f"read {show(seen)} from key {show(k)} but the list is {show(cur)}"
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

