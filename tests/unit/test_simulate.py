"""The generic simulator, schedule replay and ``jepsenlike simulate``.

Known-verdict schedules: each seeded bug has a hand-written schedule that breaks it
and passes without the bug, so the simulator, the invariants and the history
checkers are tested against verdicts known independently of the search.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jepsenlike.cli import main
from jepsenlike.models.consensus import ConsensusCore
from jepsenlike.models.paxos.sim import PaxosSystem
from jepsenlike.models.raft.sim import RaftSystem
from jepsenlike.models.simsearch import run_schedule, search
from jepsenlike.models.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
PB = f"{ROOT / 'examples' / 'primary-backup' / 'pb.py'}:PrimaryBackupSystem"

ELECT = {"do": "elapse", "ticks": 20, "load": True}


def sched(system: str, bug: str | None, *steps: dict, nodes: int = 3) -> dict:
    return {"system": system, "bug": bug, "nodes": nodes, "seed": 0, "steps": list(steps)}


def test_both_cores_implement_the_protocol() -> None:
    for system in (RaftSystem(), PaxosSystem()):
        sim = Simulator(system, 3)
        assert all(isinstance(sim.nodes[i].core, ConsensusCore) for i in sim.ids)


@pytest.mark.parametrize("system", ["raft", "paxos"])
def test_a_schedule_replays_bit_for_bit(system: str) -> None:
    s = sched(
        system, None, ELECT,
        {"do": "partition", "isolate": ["leader"]},
        {"do": "elapse", "ticks": 20, "load": True, "loss": 0.3, "reorder": True},
        {"do": "crash", "node": "n2"},
        {"do": "client", "f": "cas", "node": "all", "arg": 3},
        {"do": "elapse", "ticks": 10, "load": True, "dup": 0.3},
    )
    a, b = run_schedule(s), run_schedule(s)
    assert a.valid is True and b.valid is True
    assert len(a.history) > 20
    assert json.dumps(a.history) == json.dumps(b.history)


def test_crash_keeps_only_what_was_persisted() -> None:
    sim = Simulator(RaftSystem(), 3)
    sim.step(ELECT)
    leader = sim.leader()
    assert leader is not None
    log_before = sim.core(leader).log.last_index
    assert log_before > 1
    sim.step({"do": "crash", "node": leader})
    assert sim.nodes[leader].core is None
    sim.step({"do": "restart", "node": leader})
    # The log was persisted before its appends were sent, so it all comes back.
    assert sim.core(leader).log.last_index == log_before
    # volatile-vote: the storage forgets term and vote, so the restarted core does.
    bad = Simulator(RaftSystem(frozenset({"volatile-vote"})), 3)
    bad.step(ELECT)
    i = bad.leader()
    assert i is not None and bad.core(i).term >= 1
    bad.step({"do": "crash", "node": i})
    bad.step({"do": "restart", "node": i})
    assert bad.core(i).term == 0


def test_partition_isolates_and_heal_restores() -> None:
    sim = Simulator(RaftSystem(), 3)
    sim.step(ELECT)
    old = sim.leader()
    sim.step({"do": "partition", "isolate": [old]})
    sim.step({"do": "elapse", "ticks": 40})
    new = sim.leader()
    assert new is not None and new != old
    sim.step({"do": "heal"})
    sim.step({"do": "elapse", "ticks": 40})
    assert sim.core(old).role != "leader"


def test_clock_offsets_reach_only_wall_clock_drivers() -> None:
    sim = Simulator(RaftSystem(), 3)
    sim.step({"do": "clock", "node": "n1", "delta": -5.0})
    assert sim.now("n1") == sim.now("n2")
    sim = Simulator(RaftSystem(frozenset({"lease-without-bound"})), 3)
    sim.step({"do": "clock", "node": "n1", "delta": -5.0})
    assert sim.now("n1") == sim.now("n2") - 5.0


def test_compaction_and_snapshot_catch_up_keep_replicas_equal() -> None:
    for system in ("raft", "paxos"):
        s = sched(
            system, None, ELECT,
            {"do": "partition", "isolate": ["n3"]},
            {"do": "elapse", "ticks": 30, "load": True},
            {"do": "compact", "node": "leader"},
            {"do": "compact", "node": "follower"},
            {"do": "heal"},
            {"do": "elapse", "ticks": 30, "load": True},
        )
        o = run_schedule(s)
        assert o.valid is True, (system, o.failure)


def test_message_steps_deliver_drop_duplicate() -> None:
    sim = Simulator(PaxosSystem(), 3)
    sim.step({"do": "tick", "node": "n1", "ticks": 25})
    assert sim.inflight
    n = len(sim.inflight)
    sim.step({"do": "drop", "msg": 0})
    assert len(sim.inflight) == n - 1
    sim.step({"do": "duplicate", "msg": 0})
    assert len(sim.inflight) >= n - 1  # the copy stays in flight
    sim.step({"do": "flush"})
    assert not sim.inflight


def test_bad_steps_are_named() -> None:
    sim = Simulator(RaftSystem(), 3)
    with pytest.raises(ValueError, match="unknown 'do'"):
        sim.step({"do": "explode"})
    with pytest.raises(ValueError, match="node 'n9'"):
        sim.step({"do": "crash", "node": "n9"})


# --------------------------------------------------------- known-verdict schedules

LEASE = (
    ELECT,
    {"do": "clock", "node": "leader", "delta": -1.0},
    {"do": "partition", "isolate": ["leader"]},
    {"do": "elapse", "ticks": 30, "load": True},
)
EARLY_ACK = (
    {"do": "elapse", "ticks": 20},
    {"do": "partition", "isolate": ["leader"]},
    {"do": "client", "f": "write", "node": "leader"},
    {"do": "elapse", "ticks": 30},
)
CRASH_RESTART = (
    ELECT,
    {"do": "crash", "node": "follower"},
    {"do": "restart", "node": "crashed"},
    {"do": "elapse", "ticks": 20, "load": True},
)
# Found by ``simulate --bug stale-read`` (and shrunk): a leader that reads locally serves a
# stale value once another leader took over -- a new one that has not applied the old
# leader's acknowledged writes yet (raft, after a crash) or an old one cut off (paxos).
STALE_RAFT = (
    {"do": "elapse", "ticks": 40, "load": True},
    {"do": "elapse", "ticks": 5, "load": True, "dup": 0.1, "loss": 0.1},
    {"do": "elapse", "ticks": 10, "load": True, "reorder": True, "loss": 0.1, "dup": 0.1},
    {"do": "elapse", "ticks": 20, "load": True, "loss": 0.1, "reorder": True, "dup": 0.1},
    {"do": "elapse", "ticks": 5, "load": True},
    {"do": "elapse", "ticks": 5, "load": True},
    {"do": "elapse", "ticks": 40, "load": True},
    {"do": "crash", "node": "leader"},
    {"do": "elapse", "ticks": 20, "load": True, "loss": 0.3, "dup": 0.1},
)
STALE_PAXOS = (
    {"do": "elapse", "ticks": 25, "load": True},
    {"do": "partition", "isolate": ["leader"]},
    {"do": "elapse", "ticks": 15, "load": True},
)

CASES = [
    ("raft", "stale-read", STALE_RAFT, "history"),
    ("raft", "lease-without-bound", LEASE, "history"),
    ("raft", "early-ack", EARLY_ACK, "history"),
    ("paxos", "stale-read", STALE_PAXOS, "history"),
    ("paxos", "volatile-acceptor", CRASH_RESTART, "promises kept"),
]


@pytest.mark.parametrize(("system", "bug", "steps", "claim"), CASES)
def test_known_schedule_fails_with_the_bug_and_passes_without(system, bug, steps, claim) -> None:
    bad = run_schedule(sched(system, bug, *steps))
    assert bad.valid is False and bad.claim == claim, bad.failure
    good = run_schedule(sched(system, None, *steps))
    assert good.valid is True, good.failure


# Found by ``simulate --bug volatile-vote`` and kept as a regression schedule.
VOLATILE_VOTE = (
    {"do": "elapse", "ticks": 40, "load": True, "reorder": True},
    {"do": "elapse", "reorder": True, "ticks": 5, "load": True, "dup": 0.1},
    *[{"do": "elapse", "ticks": 5, "load": True}] * 4,
    {"do": "crash", "node": "leader"},
    {"do": "elapse", "ticks": 5, "load": True},
    {"do": "elapse", "ticks": 5, "load": True},
    {"do": "crash", "node": "n2"},
    {"do": "elapse", "ticks": 5, "load": True},
)


def test_volatile_vote_breaks_election_safety() -> None:
    bad = run_schedule(sched("raft", "volatile-vote", *VOLATILE_VOTE))
    assert bad.claim == "election safety", bad.failure
    assert run_schedule(sched("raft", None, *VOLATILE_VOTE)).valid is True


# --------------------------------------------------------- search and CLI


def test_search_finds_and_shrinks_the_primary_backup_bug() -> None:
    res = search(PB, frozenset({"backup-reads"}), 3, seed=0, examples=300, time_limit=None)
    assert res.found is not None and res.found.valid is False
    assert len(res.found.steps) <= 20
    # The shrunk schedule replays to the same failure, bit for bit.
    again = run_schedule(res.schedule)
    assert again.valid is False and json.dumps(again.history) == json.dumps(res.found.history)
    clean = search(PB, frozenset(), 3, seed=0, examples=40, time_limit=None)
    assert clean.found is None and clean.schedules == 40


def test_cli_search_writes_the_run_dir_and_replay_matches(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    rc = main([
        "simulate", "--system", "paxos", "--bug", "stale-read", "--examples", "600",
        "--store", str(store), "--quiet",
    ])
    assert rc == 1
    run = (store / "latest").resolve()
    sched_doc = json.loads((run / "schedule.json").read_text())
    assert set(sched_doc) >= {"system", "bug", "nodes", "seed", "steps"}
    assert sched_doc["bug"] == "stale-read" and 0 < len(sched_doc["steps"]) <= 20
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is False and results["simulation"]["schedules"] >= 1
    assert (run / "report.html").exists()
    rc = main(["simulate", "--replay", str(run / "schedule.json"), "--store", str(store)])
    assert rc == 1
    again = (store / "latest").resolve()
    assert again != run
    assert (again / "history.jsonl").read_bytes() == (run / "history.jsonl").read_bytes()
    assert "INVALID" in capsys.readouterr().out


def test_cli_clean_search_exits_0_and_bad_input_255(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    assert main(["simulate", "--system", "raft", "--examples", "10", "--store", store,
                 "--quiet"]) == 0
    assert main(["simulate", "--system", "raft", "--bug", "nope", "--store", store]) == 255
    assert main(["simulate", "--system", "zab", "--store", store]) == 255
    assert main(["simulate", "--system", "raft", "--tick-seconds", "0", "--store", store]) == 255
    assert main(["simulate", "--replay", str(tmp_path / "missing.json"), "--store", store]) == 255


def test_translation_to_wall_clock_nemesis_ops(tmp_path: Path) -> None:
    from jepsenlike.models.simtranslate import translate, write_run_schedule

    s = sched("raft", "lease-without-bound", *LEASE)
    s["steps"] = [*s["steps"], {"do": "heal"}, {"do": "crash", "node": "n2"},
                  {"do": "elapse", "ticks": 10}, {"do": "restart", "node": "n2"},
                  {"do": "drop", "msg": 3}]
    ops, notes = translate(s, tick_seconds=0.05, start_at=5.0)
    # The simulated leader is n1 (seed 0); after the partition n3 leads, so the crash
    # of n2 hit a follower: the real kill takes any one node. The clock delta, -1
    # simulated second (100 ticks of 10 ms), is 100 real ticks of 0.05 s. The restart
    # came 0.5 s after the kill; it is held to 1 s. The clock step fires inside the
    # partition of the same instant.
    assert ops == [
        {"at": 6.0, "f": "start-partition", "value": "leader"},
        {"at": 6.0, "f": "bump-clock", "value": {"target": "leader", "delta": -5.0}},
        {"at": 7.5, "f": "stop-partition", "value": None},
        {"at": 7.5, "f": "kill", "value": "one"},
        {"at": 8.5, "f": "start", "value": None},
    ]
    assert any("drop" in n for n in notes)
    assert any("n2, not the leader" in n for n in notes)
    out = tmp_path / "faults.jsonl"
    write_run_schedule(s, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == ops
    assert all(set(d) == {"at", "f", "value"} for d in lines)


def test_translation_targets_by_the_role_a_node_had_in_the_simulation() -> None:
    from jepsenlike.models.simtranslate import translate

    # Seed 0 elects n1: a crash of "n1" is a crash of the leader, whatever its real id.
    prefix = [ELECT, {"do": "crash", "node": "n1"}, {"do": "elapse", "ticks": 30}]
    sim = Simulator(RaftSystem(), 3)
    for step in prefix:
        sim.step(step)
    new = sim.leader()
    other = next(i for i in ("n2", "n3") if i != new)
    assert new in ("n2", "n3")
    for isolated, shape in ((new, "leader"), (other, "one")):
        s = sched("raft", None, *prefix, {"do": "partition", "isolate": [isolated]},
                  {"do": "elapse", "ticks": 30})
        ops, _ = translate(s, start_at=0.0)
        assert [(o["f"], o["value"]) for o in ops] == [
            ("kill", "leader"), ("start-partition", shape), ("stop-partition", None), ("start", None)]
    # A selector that matched nobody did nothing in the simulation and is left out.
    s = sched("raft", None, {"do": "crash", "node": "leader"}, {"do": "elapse", "ticks": 5})
    ops, notes = translate(s)
    assert ops == [] and any("hit no node" in n for n in notes)


def test_clock_steps_of_one_instant_fire_inside_its_cut() -> None:
    from jepsenlike.models.simtranslate import translate

    clock = {"do": "clock", "node": "leader", "delta": -1.0}
    cut = {"do": "partition", "isolate": ["leader"]}

    def fs(*steps: dict) -> list[str]:
        return [o["f"] for o in translate(sched("raft", None, ELECT, *steps))[0]]

    # Either order in the simulation (the steps commute there): clock after the cut.
    assert fs(clock, cut) == fs(cut, clock) == ["start-partition", "bump-clock", "stop-partition"]
    # ... and before the heal of the same instant; a re-partition keeps its order.
    assert fs(cut, {"do": "elapse", "ticks": 30}, {"do": "heal"}, clock) == [
        "start-partition", "bump-clock", "stop-partition"]
    assert fs(cut, {"do": "elapse", "ticks": 30}, clock, cut) == [
        "start-partition", "stop-partition", "start-partition", "bump-clock", "stop-partition"]


def test_translation_holds_short_faults_and_heals_at_the_end() -> None:
    from jepsenlike.models.simtranslate import MIN_HOLD_SECONDS, translate

    s = sched("raft", None, ELECT, {"do": "partition", "isolate": ["leader"]},
              {"do": "elapse", "ticks": 2}, {"do": "heal"},
              {"do": "elapse", "ticks": 4}, {"do": "partition", "isolate": ["leader"]},
              {"do": "elapse", "ticks": 4})
    ops, _ = translate(s, tick_seconds=0.05, start_at=5.0)
    assert [o["f"] for o in ops] == ["start-partition", "stop-partition", "start-partition",
                                     "stop-partition"]
    t = [o["at"] for o in ops]
    assert t[0] == 6.0
    # 2 ticks (0.1 s) is too short to act on real nodes: the heal waits MIN_HOLD_SECONDS
    # and what follows keeps its distance (4 ticks) from it.
    assert t[1] == pytest.approx(t[0] + MIN_HOLD_SECONDS)
    assert t[2] == pytest.approx(t[1] + 0.2)
    # No heal in the schedule: the simulator heals after the last step, and so does the
    # translation (held long enough).
    assert t[3] == pytest.approx(t[2] + MIN_HOLD_SECONDS)


def test_translation_time_scale_matches_the_real_and_simulated_nodes() -> None:
    import argparse

    from jepsenlike.models.server.nodeargs import add_common_arguments, add_protocol_arguments
    from jepsenlike.models.simtranslate import (
        DEFAULT_TICK_SECONDS,
        REAL_ELECTION_TICKS,
        REAL_TICK_SECONDS,
        SIM_ELECTION_TICKS,
        client_timeout,
    )

    p = argparse.ArgumentParser()
    add_common_arguments(p)
    add_protocol_arguments(p, election_help="", snapshot_help="", batch_help="", bugs={})
    real = p.parse_args(["--id", "n1", "--client-addr", "h:1", "--peer-addr", "h:2", "--data-dir", "d"])
    assert real.tick_ms / 1000 == REAL_TICK_SECONDS
    assert real.election_ticks == REAL_ELECTION_TICKS
    assert RaftSystem().config.election_ticks == SIM_ELECTION_TICKS
    assert PaxosSystem().config.election_ticks == SIM_ELECTION_TICKS
    assert DEFAULT_TICK_SECONDS == pytest.approx(0.05)
    assert client_timeout() == pytest.approx(0.25)


@pytest.mark.parametrize(("system", "steps"), [("raft", STALE_RAFT), ("paxos", STALE_PAXOS)])
def test_append_workload_is_checked_by_the_graph_checker(system: str, steps: tuple) -> None:
    bad = run_schedule({**sched(system, "stale-read", *steps), "workload": "append"})
    assert bad.valid is False and bad.failure.startswith("list-append: found")
    good = run_schedule({**sched(system, None, *steps), "workload": "append"})
    assert good.valid is True
    assert {op["f"] for op in good.history} == {"txn"}


def test_run_command_replays_on_real_nodes_with_lease_reads() -> None:
    from jepsenlike.models.simtranslate import run_command, translate

    s = sched("raft", "lease-without-bound", *LEASE)
    cmd = run_command(s, "x/run-schedule.jsonl", translate(s)[0])
    # The last op (the heal after the schedule) is at 7.5 s; the run goes on 5 s more.
    assert cmd == (
        "jepsenlike run --system raft --nodes 3 --bug lease-without-bound "
        "--system-options read-mode=lease --keys 1 --concurrency 10 --op-timeout 0.25 "
        "--schedule x/run-schedule.jsonl --time-limit 13"
    )
    # The simulated workload runs on the real clients too.
    s = {**sched("paxos", "stale-read", ELECT), "workload": "append"}
    assert run_command(s, "y.jsonl", translate(s)[0]) == (
        "jepsenlike run --system paxos --nodes 3 --bug stale-read --workload append --keys 1 "
        "--concurrency 10 --op-timeout 0.25 --schedule y.jsonl --time-limit 10"
    )


def test_translated_schedule_loads_as_a_run_schedule(tmp_path: Path) -> None:
    from jepsenlike.models.simtranslate import write_run_schedule
    from jepsenlike.nemesis.schedule import load_schedule

    s = sched("raft", "lease-without-bound", *LEASE)
    s["steps"] = [*s["steps"], {"do": "crash", "node": "n2"}, {"do": "restart", "node": "n2"}]
    out = tmp_path / "run-schedule.jsonl"
    write_run_schedule(s, out)
    entries = load_schedule(out)
    assert [(e.at, e.op.f, e.op.value) for e in entries] == [
        (6.0, "start-partition", "leader"),
        (6.0, "bump-clock", {"target": "leader", "delta": -5.0}),
        (7.5, "kill", "one"),
        (8.5, "start", None),
        (8.5, "stop-partition", None),
    ]
    # The nemeses take every value, the clock one its scheduled delta.
    from jepsenlike.nemesis import PackageOptions, build_packages
    from jepsenlike.nemesis.schedule import check_schedule

    check_schedule(out, entries, build_packages(["clock", "partition", "kill"], PackageOptions()), 13)
