"""``pause``: SIGSTOP nodes, later SIGCONT them.

Fault ops: ``pause`` (value: a target spec; completion value
``{"nodes": [...paused...]}``; a node that is down is skipped and listed
under ``skipped``) and ``resume`` (resumes every node this nemesis paused).
Needs the backend capability ``pause``. Its final op is ``resume``.
"""

from __future__ import annotations

from jepsenlike.backends.base import PAUSE
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.targets import resolve_targets


class PauseNemesis(Nemesis):
    name = "pause"
    fs = frozenset({"pause", "resume"})
    requires = frozenset({PAUSE})

    def __init__(self) -> None:
        self.paused: list[str] = []

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "pause":
            spec = op.value or "one"
            leader = test.leader() if spec == "leader" else None
            chosen = resolve_targets(spec, test.node_ids, test.rng, leader)
            done, skipped = [], []
            for n in chosen:
                if test.backend.node_state(n) != "up":
                    skipped.append(n)
                    continue
                test.backend.pause(n)
                done.append(n)
                if n not in self.paused:
                    self.paused.append(n)
            value: dict = {"nodes": done, "targets": spec}
            if skipped:
                value["skipped"] = skipped
            if spec == "leader" and leader is None:
                value["note"] = "no leader known; chose one node"
            return op.complete(value)
        resumed = [n for n in test.node_ids if n in self.paused and test.backend.node_state(n) == "paused"]
        for n in resumed:
            test.backend.resume(n)
        self.paused = []
        return op.complete({"nodes": resumed})

    def active(self) -> dict[str, list[str]]:
        return {"paused": list(self.paused)} if self.paused else {}
