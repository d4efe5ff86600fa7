"""The nemesis interface, its contract checks, and composition.

Theory of operation
-------------------
A :class:`Nemesis` changes the world on request. The runner hands it fault
ops (:class:`FaultOp`) of the ``nemesis`` process; the nemesis acts on the
backend and answers the *completion*: the same op with ``type == "info"``
(a fault is never ok or fail: we cannot know exactly when it took effect)
and a ``value`` saying exactly what it did, e.g. ``{"nodes": ["n2"]}``. Both
the invocation and the completion go into the history, so checkers and
people see faults on the same timeline as client ops.

Lifecycle: ``setup(test)`` once before the first fault (it mutates the
nemesis and returns it: ownership stays with the caller), ``invoke(test,
op)`` per fault, ``teardown(test)`` once at the end even after errors.
``test`` is the :class:`NemesisContext` of the run: the backend, the
nemesis rng, the node ids and a way to ask who the leader is.

Rules the harness enforces:

* :class:`Validate` wraps every nemesis the runner uses and rejects a
  completion that is not ``info`` or that changes ``f`` or ``process``
  (:class:`NemesisContractError` lists the problems).
* :func:`compose` routes ops to nemeses by ``f`` and refuses two nemeses
  that handle the same ``f``, naming both.
* Inside :class:`Composed`, each member acts through ``test.owned_by(name)``
  when the test offers it: the runner's context then hands the member a
  backend view on which grudges and clock offsets are owned by that member
  (:mod:`jepsenlike.backends.owned`), so healing one member's faults leaves
  another's in force.
* A nemesis lists the backend capabilities it ``requires``;
  :func:`refusal` says why a backend cannot run it.
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from jepsenlike.errors import ConfigError, HarnessBug


@dataclass(frozen=True)
class FaultOp:
    """An op of the ``nemesis`` process: an invocation or its completion."""

    f: str
    value: Any = None
    type: str = "invoke"
    process: str = "nemesis"
    error: str | None = None
    #: When set (e.g. by :func:`jepsenlike.gen.on_nodes`), the fault may target only these nodes.
    nodes: tuple[str, ...] | None = None

    def complete(self, value: Any, error: str | None = None) -> FaultOp:
        """The ``info`` completion of this invocation."""
        return replace(self, type="info", value=value, error=error)


class NemesisContext(Protocol):
    """What a nemesis may use of the running test."""

    backend: Any
    rng: random.Random
    node_ids: list[str]

    def leader(self) -> str | None:
        """The current leader, or None if unknown or the system cannot tell."""
        ...


class NemesisContractError(HarnessBug):
    """A nemesis answered something that breaks the contract."""

    def __init__(self, nemesis: str, op: FaultOp, completion: Any, problems: list[str]) -> None:
        self.op, self.completion, self.problems = op, completion, problems
        super().__init__(
            f"nemesis {nemesis!r} completed {op.f!r} wrongly: {'; '.join(problems)} "
            f"(invocation {op!r}, completion {completion!r})"
        )


class Nemesis(ABC):
    """Base class of fault injectors. Subclasses set ``name``, ``fs``, ``requires``."""

    name: str = ""
    #: The fault ``f``s this nemesis handles.
    fs: frozenset[str] = frozenset()
    #: Backend capabilities it needs (see :mod:`jepsenlike.backends.base`).
    requires: frozenset[str] = frozenset()

    def setup(self, test: NemesisContext) -> Nemesis:
        """Prepare; mutates and returns self."""
        return self

    @abstractmethod
    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        """Apply ``op``; return its ``info`` completion saying what was done."""

    def teardown(self, test: NemesisContext) -> None:
        """Release whatever setup took. Healing is the final ops' job, not this."""
        return None

    def active(self) -> dict[str, list[str]]:
        """Faults in force now, e.g. ``{"killed": ["n2"]}`` (for progress and results)."""
        return {}


def refusal(nemesis: Nemesis, capabilities: Iterable[str], backend: str = "this backend") -> str | None:
    """Why ``nemesis`` cannot run with these capabilities, or None if it can."""
    missing = sorted(set(nemesis.requires) - set(capabilities))
    if missing:
        return f"nemesis {nemesis.name!r} needs backend capability {', '.join(missing)}, which {backend} lacks"
    return None


class Validate(Nemesis):
    """Wraps a nemesis and checks each completion against the contract."""

    def __init__(self, inner: Nemesis) -> None:
        self.inner = inner
        self.name, self.fs, self.requires = inner.name, inner.fs, inner.requires

    def setup(self, test: NemesisContext) -> Nemesis:
        self.inner.setup(test)
        return self

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f not in self.fs:
            raise NemesisContractError(self.name, op, None, [f"f {op.f!r} is not one of {sorted(self.fs)}"])
        done = self.inner.invoke(test, op)
        problems = []
        if not isinstance(done, FaultOp):
            problems.append(f"completion must be a FaultOp, got {type(done).__name__}")
        else:
            if done.type != "info":
                problems.append(f"type must be 'info', got {done.type!r}")
            if done.f != op.f:
                problems.append(f"f changed from {op.f!r} to {done.f!r}")
            if done.process != op.process:
                problems.append(f"process changed from {op.process!r} to {done.process!r}")
        if problems:
            raise NemesisContractError(self.name, op, done, problems)
        return done

    def teardown(self, test: NemesisContext) -> None:
        self.inner.teardown(test)

    def active(self) -> dict[str, list[str]]:
        return self.inner.active()


@dataclass
class Composed(Nemesis):
    """Several nemeses behind one, each op routed by its ``f``."""

    members: list[Nemesis] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.route: dict[str, Nemesis] = {}
        for n in self.members:
            for f in n.fs:
                other = self.route.get(f)
                if other is not None:
                    raise ConfigError(
                        f"nemeses {other.name!r} and {n.name!r} are mutually incompatible; "
                        f"both use f {f!r}"
                    )
                self.route[f] = n
        self.name = "+".join(n.name for n in self.members)
        self.fs = frozenset(self.route)
        self.requires = frozenset().union(*(n.requires for n in self.members))
        self._lock = threading.Lock()

    def setup(self, test: NemesisContext) -> Nemesis:
        for n in self.members:
            n.setup(test)
        return self

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        target = self.route.get(op.f)
        if target is None:
            raise ConfigError(f"no nemesis handles f {op.f!r}; handled: {', '.join(sorted(self.fs))}")
        # Each member acts through its own view of the test when the test offers one
        # (the runner's does): grudges and clock offsets are then owned per member,
        # so one member's heal does not lift another's fault.
        owned = getattr(test, "owned_by", None)
        view = owned(target.name) if callable(owned) else test
        with self._lock:
            return target.invoke(view, op)

    def teardown(self, test: NemesisContext) -> None:
        errors = []
        for n in self.members:
            try:
                n.teardown(test)
            except Exception as e:  # tear down the rest before reporting
                errors.append(e)
        if errors:
            raise errors[0]

    def active(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n in self.members:
            out.update(n.active())
        return out


def compose(nemeses: Iterable[Nemesis]) -> Composed:
    """One nemesis routing by ``f``; raises ConfigError on overlapping ``f``s."""
    return Composed(list(nemeses))
