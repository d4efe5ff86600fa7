"""Vacuous runs and wrong-shape reads (jepsenlike.evidence), and declared capabilities
(jepsenlike.capabilities), on hand-written histories whose verdict is known."""

from __future__ import annotations

from typing import Any

import pytest

from jepsenlike.capabilities import check_workload, fault_refusal, plan_faults
from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.config import DEFAULT_NEMESES
from jepsenlike.errors import ConfigError
from jepsenlike.evidence import judge
from jepsenlike.history import History
from jepsenlike.systems.memory import MemorySystem
from jepsenlike.systems.paxos import PaxosSystem
from jepsenlike.systems.raft import RaftSystem
from jepsenlike.workloads import get_workload


def hist(*ops: tuple[int, str, str, Any, Any]) -> History:
    """``(process, invoke|ok|fail|info, f, key, value)`` in order, times 1 s apart."""
    return History.from_ops([
        {"index": i, "time": (i + 1) * 10**9, "process": p, "type": t, "f": f, "key": k, "value": v}
        for i, (p, t, f, k, v) in enumerate(ops)
    ])


def test_a_set_run_without_an_acknowledged_add_is_unknown_even_though_reads_succeeded():
    h = hist((0, "invoke", "add", 1, 1), (0, "fail", "add", 1, 1),
             (1, "invoke", "read", 1, None), (1, "ok", "read", 1, None))
    verdicts = judge(get_workload("set"), h, {"phases": {"final": 0}})
    assert verdicts == [(UNKNOWN, "vacuous run: no add was acknowledged: no element can be lost or kept, "
                                  "the run proves nothing")]


def test_a_set_run_with_adds_and_a_final_read_is_not_vacuous_and_null_is_the_empty_set():
    h = hist((1, "invoke", "read", 1, None), (1, "ok", "read", 1, None),  # before any add: empty
             (0, "invoke", "add", 1, 7), (0, "ok", "add", 1, 7),
             (1, "invoke", "read", 1, None), (1, "ok", "read", 1, [7]))
    assert judge(get_workload("set"), h, {"phases": {"final": 5 * 10**9}}) == []
    # but a final phase with no read in it is vacuous
    late = judge(get_workload("set"), h, {"phases": {"final": 10 * 10**9}})
    assert [r for _, r in late] == ["vacuous run: no final read was acknowledged: the sets were never read back"]


def test_a_set_read_that_is_not_a_list_is_an_invalid_answer_of_the_system():
    h = hist((0, "invoke", "add", 1, 7), (0, "ok", "add", 1, 7),
             (1, "invoke", "read", 1, None), (1, "ok", "read", 1, 3))
    (valid, reason), = judge(get_workload("set"), h, {"phases": {"final": 0}})
    assert valid is False
    assert reason == ("system returned a read of the wrong shape: int 3 where a list was expected "
                      "(read of set 1 by process 1)")


def test_register_needs_an_acknowledged_write_and_read():
    only_reads = hist((0, "invoke", "read", 1, None), (0, "ok", "read", 1, None),
                      (1, "invoke", "write", 1, 5), (1, "fail", "write", 1, 5))
    assert [r for _, r in judge(get_workload("register"), only_reads, None)] == [
        "vacuous run: no write (or cas) was acknowledged: nothing was checked against a written value"]
    full = hist((1, "invoke", "write", 1, 5), (1, "ok", "write", 1, 5),
                (0, "invoke", "read", 1, None), (0, "ok", "read", 1, 5))
    assert judge(get_workload("register"), full, None) == []


def test_append_needs_appends_and_reads_and_refuses_non_list_reads():
    w = get_workload("append")
    txn = [["append", 1, 4], ["r", 1, None]]
    good = hist((0, "invoke", "txn", None, txn), (0, "ok", "txn", None, [["append", 1, 4], ["r", 1, [4]]]))
    assert judge(w, good, None) == []
    reads_only = hist((0, "invoke", "txn", None, [["r", 1, None]]), (0, "ok", "txn", None, [["r", 1, None]]))
    assert [r for _, r in judge(w, reads_only, None)] == [
        "vacuous run: no transaction with an append was acknowledged: nothing can be lost or reordered"]
    bad_read = hist((0, "invoke", "txn", None, txn), (0, "ok", "txn", None, [["append", 1, 4], ["r", 1, "4"]]))
    (valid, reason), = judge(w, bad_read, None)
    assert valid is False and "str '4' where a list was expected (read of 1 in txn by process 0)" in reason
    not_a_list = hist((0, "invoke", "txn", None, txn), (0, "ok", "txn", None, None))
    verdicts = judge(w, not_a_list, None)
    assert verdicts[0] == (False, "system returned a read of the wrong shape: null where the list of its 2 "
                                  "micro-ops was expected (txn by process 0)")


def test_the_append_history_keeps_what_the_system_answered():
    from jepsenlike.workloads.base import Invocation

    w = get_workload("append")
    inv = Invocation("txn", None, [["r", 1, None]])
    assert w.completion_value(inv, {"type": "ok", "value": 42}) == 42  # not masked by the invocation
    assert w.completion_value(inv, {"type": "fail", "value": None}) == [["r", 1, None]]
    s = get_workload("set")
    assert s.completion_value(Invocation("read", 1), {"type": "ok", "value": None}) is None


# -- capabilities ---------------------------------------------------------------


class NoDeclarations(MemorySystem):
    name = "plain"
    workloads = None
    faults = None


class Static(RaftSystem):
    name = "static-go"
    faults = frozenset({"kill", "pause", "partition"})
    workloads = frozenset({"register"})


def test_reference_systems_declare_what_they_support():
    for system in (RaftSystem(), PaxosSystem()):
        assert system.workloads == {"register", "set", "append"}
        assert {"kill", "pause", "partition", "clock"} <= system.faults
    assert MemorySystem().faults == {"kill", "pause"}


def test_an_undeclared_workload_is_refused_in_one_line_and_undeclared_systems_take_anything():
    with pytest.raises(ConfigError) as e:
        check_workload(Static(), "set")
    assert str(e.value) == ("--workload: system 'static-go' does not support workload 'set'; "
                            "it supports: register")
    check_workload(Static(), "register")
    check_workload(NoDeclarations(), "append")
    assert fault_refusal(NoDeclarations(), "clock", {"clock"}) is None


def test_faults_are_refused_by_kind_and_plugins_by_the_capability_they_need():
    assert fault_refusal(Static(), "clock") == (
        "system 'static-go' does not take clock faults (it declares: kill, partition, pause)")
    assert fault_refusal(Static(), "kill") is None
    assert "needs clock" in (fault_refusal(Static(), "my-clock-plugin", {"clock"}) or "")
    assert fault_refusal(Static(), "crash-all", {"kill"}) is None


def test_only_the_default_fault_set_is_trimmed():
    kept, dropped = plan_faults(Static(), DEFAULT_NEMESES, DEFAULT_NEMESES)
    assert kept == [n for n in DEFAULT_NEMESES if n != "clock"] and set(dropped) == {"clock"}
    asked = ("kill", "clock")
    assert plan_faults(Static(), asked, DEFAULT_NEMESES) == (["kill", "clock"], {})
