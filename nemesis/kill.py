"""``kill``: SIGKILL nodes, later restart them on the same data.

Fault ops: ``kill`` (value: a target spec; completion value
``{"nodes": [...killed...]}``) and ``start`` (restarts every node this
nemesis killed; completion ``{"nodes": [...restarted...]}``). Needs the
backend capability ``kill``. Its final op is ``start``.
"""

from __future__ import annotations

from jepsenlike.backends.base import KILL
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.targets import resolve_targets


class KillNemesis(Nemesis):
    name = "kill"
    fs = frozenset({"kill", "start"})
    requires = frozenset({KILL})

    def __init__(self) -> None:
        self.killed: list[str] = []

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "kill":
            spec = op.value or "one"
            leader = test.leader() if spec == "leader" else None
            nodes = resolve_targets(spec, test.node_ids, test.rng, leader)
            for n in nodes:
                test.backend.kill(n)
                if n not in self.killed:
                    self.killed.append(n)
            value: dict = {"nodes": nodes, "targets": spec}
            if spec == "leader" and leader is None:
                value["note"] = "no leader known; chose one node"
            return op.complete(value)
        restarted = [n for n in test.node_ids if n in self.killed]
        for n in restarted:
            test.backend.restart(n)
        self.killed = []
        return op.complete({"nodes": restarted})

    def active(self) -> dict[str, list[str]]:
        return {"killed": list(self.killed)} if self.killed else {}
