"""A brute-force linearizability checker: the test oracle for the real search.

Theory of operation
-------------------
This checker exists to be obviously correct, not fast. It follows the
definition literally and shares nothing with :mod:`jepsenlike.checkers.linearizable`
except the spec's ``step``:

1. Every client invocation is an op. ``ok`` ops must be in the linearization;
   ``fail`` ops must not; ``info`` and never-completed ops may or may not be
   (their result is unknown, ``MISSING``). Nothing else is dropped: an info
   read is tried in and out like any other optional op.
2. For every subset of the optional ops, and every permutation of the required
   ops plus that subset, the permutation is a candidate linearization if it
   respects real time: no op appears before an op that completed before it was
   invoked (an op that never completed completes at +infinity).
3. A candidate is legal if running the spec on the ops in that order never
   rejects. Keyed specs keep one state per op key; map specs one state.

The history is linearizable iff some candidate is legal. The cost is
``2^optional * n!``: keep histories to about eight ops.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from jepsenlike.checkers.specs import MISSING, Spec, freeze, key_arg
from jepsenlike.history import NEMESIS, History

__all__ = ["MAX_OPS", "check_bruteforce"]

MAX_OPS = 10


def check_bruteforce(history: History, spec: Spec) -> bool:
    """True iff ``history`` is linearizable with respect to ``spec`` (small histories only).

    Raises:
        ValueError: more than :data:`MAX_OPS` ops remain after dropping ``fail`` ops.
    """
    required: list[tuple[int, float, Any, str, Any, Any]] = []
    optional: list[tuple[int, float, Any, str, Any, Any]] = []
    for op in history.ops:
        if op.type != "invoke" or op.process == NEMESIS:
            continue
        comp = history.completion_of(op)
        key = freeze(op.key) if spec.keyed else None
        arg = key_arg(spec, op, op.value)
        if comp is None:
            optional.append((op.index, math.inf, key, op.f, arg, MISSING))
        elif comp.type == "ok":
            required.append((op.index, comp.index, key, op.f, arg, freeze(comp.value)))
        elif comp.type == "info":
            optional.append((op.index, math.inf, key, op.f, arg, MISSING))
        # fail: never happened
    if len(required) + len(optional) > MAX_OPS:
        raise ValueError(f"too many ops for brute force: {len(required) + len(optional)}")
    for r in range(len(optional) + 1):
        for subset in itertools.combinations(optional, r):
            for order in itertools.permutations(required + list(subset)):
                if _respects_real_time(order) and _legal(spec, order):
                    return True
    return False


def _respects_real_time(order: tuple) -> bool:
    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            # order[j] comes after order[i]; illegal if order[j] completed before order[i] began
            if order[j][1] < order[i][0]:
                return False
    return True


def _legal(spec: Spec, order: tuple) -> bool:
    states: dict[Any, Any] = {}
    for _, _, key, f, arg, ret in order:
        state = states[key] if key in states else spec.init()
        ok, nxt = spec.step(state, f, arg, ret)
        if not ok:
            return False
        states[key] = nxt
    return True
