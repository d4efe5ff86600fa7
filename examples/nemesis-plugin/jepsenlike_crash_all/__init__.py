"""``crash-all``: every node loses power at the same instant, then all come back.

A cluster-wide crash is the one fault where no node survives to remember
anything: whatever a node acknowledged must be on its disk. It finds missing
fsyncs and state kept only in memory (e.g. a vote or a promise).

Fault ops:

* ``crash-all`` -- SIGKILL every node that is up, one right after the other;
  completion ``{"nodes": [...killed...]}``;
* ``recover-all`` -- restart every node this nemesis killed, on its own data;
  completion ``{"nodes": [...restarted...]}``. It is also the final op, so the
  cluster is whole again when the run heals.

Needs the backend capability ``kill``. Install with
``pip install ./examples/nemesis-plugin`` and run ``jepsenlike run --nemesis crash-all``.
"""

from __future__ import annotations

from jepsenlike.nemesis import FaultOp, Nemesis, NemesisContext, NemesisPackage, PackageOptions

__all__ = ["CrashAllNemesis", "crash_all_package"]


class CrashAllNemesis(Nemesis):
    """Kills every node that is up; restarts the ones it killed."""

    name = "crash-all"
    fs = frozenset({"crash-all", "recover-all"})
    requires = frozenset({"kill"})

    def __init__(self) -> None:
        self.crashed: list[str] = []

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "crash-all":
            victims = [n for n in test.node_ids if test.backend.node_state(n) == "up"]
            for n in victims:
                test.backend.kill(n)
            self.crashed = sorted(set(self.crashed) | set(victims))
            return op.complete({"nodes": victims})
        restarted, self.crashed = self.crashed, []
        for n in restarted:
            test.backend.restart(n)
        return op.complete({"nodes": restarted})

    def active(self) -> dict[str, list[str]]:
        return {"crashed": list(self.crashed)} if self.crashed else {}


def crash_all_package(options: PackageOptions) -> NemesisPackage:
    """Crash every node at once (power loss), then recover them all."""
    return NemesisPackage(
        name="crash-all",
        nemesis=CrashAllNemesis(),
        cycles=(("crash-all", "recover-all"),),
        final=(FaultOp("recover-all"),),
        targets=("all",),  # start ops carry this as their value; this nemesis ignores it
    )
