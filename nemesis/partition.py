"""``partition``: cut peer traffic by a grudge, later heal it.

Fault ops: ``start-partition`` (value: a partition shape name from
:data:`~jepsenlike.nemesis.grudge.PARTITION_SHAPES`; ``"leader"``, which cuts
the current leader off from everyone -- one random node when no leader is
known, and the completion says so; ``"group"``, which cuts one whole replica group
of a system run with ``--groups`` off from the other groups; or ``"grudge"`` for the
grudge given in the config) and ``stop-partition``. The completion of a start
says exactly what was cut::

    {"shape": "majority", "grudge": {"n1": ["n4", "n5"], "n2": [...], "n3": [], ...},
     "text": "n1<-{n4,n5} n2<-{n4,n5} n4<-{n1,n2,n3} ..."}

``grudge[X]`` lists the nodes whose traffic X drops (every node is a key; an
empty list: hears everyone). A stop lifts this nemesis's grudge and says which
grudge it lifted (in a run, another nemesis's grudge stays in force: see
:mod:`jepsenlike.backends.owned`). Needs the backend capability ``net``. Its final op is
``stop-partition``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jepsenlike.backends.base import NET
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.grudge import (
    PARTITION_SHAPES,
    Grudge,
    complete_grudge,
    describe,
    partition_shape,
    validate_grudge,
)

EXPLICIT = "grudge"
"""The shape name that means "the grudge from the config"."""
LEADER = "leader"
"""The shape that isolates the current leader (it needs the running test, so it is not a pure shape)."""
GROUP = "group"
"""The shape that cuts one whole replica group off from the rest (systems run with ``--groups``)."""
SHAPES = (*PARTITION_SHAPES, LEADER, GROUP)
"""Every shape name the partition nemesis accepts (besides ``grudge``)."""


def grudge_as_lists(grudge: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """A grudge as JSON-ready sorted lists, every node a key."""
    return {node: sorted(drops) for node, drops in sorted(grudge.items())}


class PartitionNemesis(Nemesis):
    """Applies partition shapes (or one explicit grudge) through the backend's ``net``.

    Args:
        explicit: a grudge from the config; used when an op asks for ``"grudge"``.
    """

    name = "partition"
    fs = frozenset({"start-partition", "stop-partition"})
    requires = frozenset({NET})

    def __init__(self, explicit: Mapping[str, Sequence[str]] | None = None) -> None:
        self.explicit = explicit
        self.current: Grudge | None = None

    def _grudge_for(self, shape: str, test: NemesisContext, value: dict[str, Any]) -> Grudge:
        if shape == EXPLICIT:
            if self.explicit is None:
                raise ValueError("shape 'grudge' asked for, but the config gives no grudge")
            return validate_grudge(self.explicit, test.node_ids)
        if shape == LEADER:
            nodes = list(test.node_ids)
            leader = test.leader()
            if leader not in nodes:
                leader = test.rng.choice(sorted(nodes))
                value["note"] = "no leader known; isolated one random node"
            value["isolated"] = leader
            return complete_grudge([{leader}, set(nodes) - {leader}])
        if shape == GROUP:
            nodes = list(test.node_ids)
            layout = getattr(getattr(test, "system", None), "group_members", None)
            groups = [g for g in (layout(nodes) if callable(layout) else []) if g]
            if len(groups) < 2:
                victim = {test.rng.choice(sorted(nodes))}
                value["note"] = "the system runs no replica groups; isolated one random node"
            else:
                index = test.rng.randrange(len(groups))
                victim = set(groups[index])
                value["group"] = index
            value["isolated"] = sorted(victim)
            return complete_grudge([victim, set(nodes) - victim])
        return validate_grudge(partition_shape(shape)(test.node_ids, test.rng), test.node_ids)

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "start-partition":
            shape = op.value or "one"
            value: dict[str, Any] = {"shape": shape}
            grudge = self._grudge_for(shape, test, value)
            test.backend.apply_grudge(grudge)
            self.current = grudge
            value.update(grudge=grudge_as_lists(grudge), text=describe(grudge))
            if not any(grudge.values()):
                value["nodes"] = []  # nothing was cut: the fault did not take effect
            return op.complete(value)
        lifted = self.current
        test.backend.heal_network()
        self.current = None
        return op.complete({"healed": grudge_as_lists(lifted) if lifted else {},
                            "nodes": sorted(n for n, d in (lifted or {}).items() if d)})

    def active(self) -> dict[str, list[str]]:
        if not self.current:
            return {}
        return {"partitioned": [describe(self.current)]}
