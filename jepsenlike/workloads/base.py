"""The Workload interface: what clients ask, how it maps to the node API, how it is checked.

Theory of operation
-------------------
A workload is three things:

* an **op plan** per worker: an endless iterator of invocations (:class:`Invocation`)
  drawn from the worker's own ``random.Random`` (split from the seed), so the
  same seed gives the same plan whatever the timing. A plan entry may leave a
  part to be filled from what the worker has observed (the register's cas
  takes the last value the worker saw for the key as ``old``): *what* is
  asked is planned, facts about the system are not;
* a **translation** between history ops and the node's client API
  (:meth:`Workload.request`, :meth:`Workload.completion_value`), so the history
  speaks the workload's language (``add`` for sets) whatever the wire says;
* a **checker** over the finished history, returning a
  :class:`~jepsenlike.checkers.result.Result`.

Keys rotate: each worker moves to a fresh group of ``keys`` keys every
``ops_per_group`` of its ops, which bounds the ops per key and keeps the
linearizability search cheap while every key still sees every worker.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jepsenlike.checkers.result import Result
from jepsenlike.history import History


@dataclass(frozen=True)
class Invocation:
    """One planned client op, in history terms."""

    f: str
    key: Any = None
    value: Any = None


@dataclass(frozen=True)
class PlanParams:
    """The config values a plan depends on."""

    concurrency: int
    keys: int = 3
    ops_per_key: int = 100

    @property
    def ops_per_group(self) -> int:
        """Ops one worker issues before moving to the next key group."""
        return max(1, (self.ops_per_key * self.keys) // max(1, self.concurrency))


class Workload(ABC):
    name: str = ""
    description: str = ""
    #: The sequential spec (:mod:`jepsenlike.checkers.specs`) its ops follow, for
    #: ``--checkers linearizable``; None when it has none.
    model: str | None = None

    @abstractmethod
    def plan(self, worker: int, params: PlanParams, rng: random.Random) -> Iterator[Invocation]:
        """The endless op plan of ``worker``."""

    def resolve(self, inv: Invocation, seen: dict[Any, Any]) -> Invocation:
        """Fill in parts of a planned op from what the worker has observed."""
        return inv

    def observe(self, inv: Invocation, completion: dict[str, Any], seen: dict[Any, Any]) -> None:
        """Update the worker's observations from a completion."""
        return None

    def request(self, inv: Invocation) -> tuple[str, Any, Any]:
        """The ``(f, key, value)`` sent to the node for this op."""
        return inv.f, inv.key, inv.value

    def completion_value(self, inv: Invocation, completion: dict[str, Any]) -> Any:
        """The value recorded in the history for this op's completion."""
        if completion.get("type") == "ok":
            return completion.get("value")
        return inv.value

    def final_ops(self, keys: list[Any]) -> list[Invocation]:
        """Ops to run after healing (e.g. final reads), one per entry, retried until ok."""
        return []

    @abstractmethod
    def check(self, history: History, test: dict[str, Any] | None = None) -> Result:
        """The workload's verdict on a finished history."""

    def checker_note(self) -> str | None:
        """Anything the user must know about how this workload is checked now."""
        return None

    def missing_evidence(self, history: History, test: dict[str, Any] | None = None) -> list[str]:
        """Kinds of acknowledged op the checker needs and the run lacks (each makes it unknown)."""
        return []

    def shape_errors(self, history: History) -> list[str]:
        """Acknowledged reads whose value cannot be a result of the op (each makes it invalid)."""
        return []


def key_for(worker_op: int, params: PlanParams, rng: random.Random) -> int:
    """The key of a worker's ``worker_op``-th op: a random key of its current group."""
    group = worker_op // params.ops_per_group
    return group * params.keys + rng.randrange(params.keys)


def unique_value(worker: int, worker_op: int, params: PlanParams) -> int:
    """A value no other op of the run writes: ``1 + worker + concurrency * op``."""
    return 1 + worker + params.concurrency * worker_op
