"""``slow`` and ``flaky``: degrade the peer links of some nodes, later restore them.

* ``slow``: ``start-slow`` (value: a target spec) delays every chunk on every
  peer link to or from the targets by ``latency_ms +/- jitter_ms``; completion
  ``{"nodes": [...], "links": [["n1", "n2"], ...], "latency_ms": 50, "jitter_ms": 25}``.
  ``stop-slow`` removes the delay from the links it slowed.
* ``flaky``: ``start-flaky`` (value: a target spec) makes every chunk on those
  links abort its connection with probability ``drop_probability`` (see
  ``docs/faults.md``: a proxy cannot drop bytes inside a TCP stream); completion
  ``{"nodes": [...], "links": [...], "drop_probability": 0.05}``.
  ``stop-flaky`` ends it.

The two are independent: stopping one leaves the other in force. Both need the
backend capability ``net``; their final ops (``stop-slow``, ``stop-flaky``)
restore every link.
"""

from __future__ import annotations

from typing import Any

from jepsenlike.backends.base import NET, Link
from jepsenlike.nemesis.core import FaultOp, Nemesis, NemesisContext
from jepsenlike.nemesis.targets import resolve_targets


def links_touching(nodes: list[str], all_nodes: list[str]) -> list[Link]:
    """Every directed peer link with an end in ``nodes``, sorted."""
    chosen = set(nodes)
    return [(s, d) for s in all_nodes for d in all_nodes if s != d and (s in chosen or d in chosen)]


class _LinkNemesis(Nemesis):
    requires = frozenset({NET})
    start_f = ""
    stop_f = ""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.nodes: list[str] = []

    def _apply(self, test: NemesisContext, links: list[Link], on: bool) -> dict[str, Any]:
        raise NotImplementedError

    def invoke(self, test: NemesisContext, op: FaultOp) -> FaultOp:
        if op.f == self.start_f:
            spec = op.value or "one"
            leader = test.leader() if spec == "leader" else None
            nodes = resolve_targets(spec, test.node_ids, test.rng, leader)
            links = links_touching(nodes, list(test.node_ids))
            settings = self._apply(test, links, True)
            self.nodes = sorted(set(self.nodes) | set(nodes))
            self.links = sorted(set(self.links) | set(links))
            value: dict[str, Any] = {"nodes": nodes, "targets": spec,
                                     "links": [list(link) for link in links], **settings}
            if spec == "leader" and leader is None:
                value["note"] = "no leader known; chose one node"
            return op.complete(value)
        # Final op: restore every link, whatever this nemesis believes it touched.
        restored, self.links = self.links, []
        nodes, self.nodes = self.nodes, []
        self._apply(test, [], False)
        return op.complete({"nodes": nodes, "links": [list(link) for link in restored]})

    def active(self) -> dict[str, list[str]]:
        return {self.name: list(self.nodes)} if self.nodes else {}


class SlowNemesis(_LinkNemesis):
    """Latency and jitter on the targets' peer links."""

    name = "slow"
    fs = frozenset({"start-slow", "stop-slow"})
    start_f, stop_f = "start-slow", "stop-slow"

    def __init__(self, latency_ms: float = 50.0, jitter_ms: float = 25.0) -> None:
        super().__init__()
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms

    def _apply(self, test: NemesisContext, links: list[Link], on: bool) -> dict[str, Any]:
        if on:
            test.backend.slow_links(links, self.latency_ms, self.jitter_ms)
        else:
            test.backend.slow_links(None, 0.0, 0.0)
        return {"latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms}


class FlakyNemesis(_LinkNemesis):
    """Random connection drops on the targets' peer links."""

    name = "flaky"
    fs = frozenset({"start-flaky", "stop-flaky"})
    start_f, stop_f = "start-flaky", "stop-flaky"

    def __init__(self, drop_probability: float = 0.05) -> None:
        super().__init__()
        self.drop_probability = drop_probability

    def _apply(self, test: NemesisContext, links: list[Link], on: bool) -> dict[str, Any]:
        if on:
            test.backend.flaky_links(links, self.drop_probability)
        else:
            test.backend.flaky_links(None, 0.0)
        return {"drop_probability": self.drop_probability}
