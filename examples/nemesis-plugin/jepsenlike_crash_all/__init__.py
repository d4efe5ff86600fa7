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

Option ``spare`` (int, default 0): leave that many nodes running (the first
ones by id), so the fault becomes "all but N crash at once"; set it with
``--option crash-all.spare=1`` or, in a ``--config`` file::

    [options.crash-all]
    spare = 1

Needs the backend capability ``kill``. Install with
``pip install ./examples/nemesis-plugin`` and run ``jepsenlike run --nemesis crash-all``.
"""

from __future__ import annotations

from jepsenlike.nemesis import FaultOp, Nemesis, NemesisContext, NemesisPackage, PackageOptions
from jepsenlike.registry import Option

__all__ = ["CrashAllNemesis", "crash_all_package"]


class CrashAllNemesis(Nemesis):
    """Kills every node that is up; restarts the ones it killed."""

    name = "crash-all"
    fs = frozenset({"crash-all", "recover-all"})
    requires = frozenset({"kill"})

    def __init__(self, spare: int = 0) -> None:
        self.spare = spare
        self.crashed: list[str] = []

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == "crash-all":
            victims = [n for n in sorted(test.node_ids)[self.spare:] if test.backend.node_state(n) == "up"]
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
        nemesis=CrashAllNemesis(spare=options.settings["spare"]),
        cycles=(("crash-all", "recover-all"),),
        final=(FaultOp("recover-all"),),
        targets=("all",),  # start ops carry this as their value; this nemesis ignores it
    )


crash_all_package.plugin_options = (  # type: ignore[attr-defined]
    Option("spare", int, 0, "nodes left running (the first ones by id)"),
)
