"""Fault confirmation (jepsenlike.confirm) on the docker backend: container state,
the iptables chain inside the node, and the node's clock -- each confirmed after
the backend did the fault and refuted when a completion only claims it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from jepsenlike.confirm import confirm_completion
from jepsenlike.nemesis import FaultOp

pytestmark = pytest.mark.docker


@dataclass
class Ctx:
    backend: Any
    system: Any


def confirm(backend: Any, f: str, value: dict, system: Any = None) -> dict:
    op = FaultOp(f, "one")
    return confirm_completion(Ctx(backend, system), op, op.complete(value)).value


def test_pause_and_kill_are_confirmed_by_the_container_state(cluster: Any) -> None:
    assert set(confirm(cluster, "pause", {"nodes": ["n2"]}).get("unconfirmed", {})) == {"n2"}
    cluster.pause("n2")
    assert "paused" in confirm(cluster, "pause", {"nodes": ["n2"]})["confirmed"]["n2"]
    cluster.resume("n2")
    assert set(confirm(cluster, "kill", {"nodes": ["n3"]}).get("unconfirmed", {})) == {"n3"}
    cluster.kill("n3")
    assert "not running" in confirm(cluster, "kill", {"nodes": ["n3"]})["confirmed"]["n3"]
    cluster.restart("n3")


def test_partition_is_confirmed_by_the_drop_rule_in_the_node(cluster: Any) -> None:
    grudge = {"n1": ["n2"], "n2": [], "n3": []}
    claimed = confirm(cluster, "start-partition", {"grudge": grudge})
    assert set(claimed.get("unconfirmed", {})) == {"n2->n1"}
    cluster.apply_grudge(grudge)
    done = confirm(cluster, "start-partition", {"grudge": grudge})
    assert set(done.get("confirmed", {})) == {"n2->n1"} and "drops" in done["confirmed"]["n2->n1"]
    cluster.heal_network()


def test_clock_bump_is_confirmed_by_date_inside_the_container(cluster: Any) -> None:
    cluster.clock("n1").bump(6.0)
    try:
        # no system hook: the probe is `date` in the container, under the node's preload
        assert cluster.observer().preload_loaded("n1")[0] is True  # the python node maps it
        done = confirm(cluster, "bump-clock", {"nodes": ["n1"], "offsets": {"n1": 6.0}})
        assert set(done.get("confirmed", {})) == {"n1"} and "probe" in done["confirmed"]["n1"]
        # and with the raft system's hook: the node's own /status time
        own = confirm(cluster, "bump-clock", {"nodes": ["n1"]}, system=cluster.system)
        assert "own clock" in own["confirmed"]["n1"]
    finally:
        cluster.clock("n1").reset()
