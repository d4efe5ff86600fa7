"""benchmarks/bench_detection.py: its arithmetic on hand-made run dirs, the bug rows it
runs, and (slow) the script itself through a subprocess on one bug with tiny settings."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jepsenlike.models.paxos.bugs import BUGS as PAXOS_BUGS
from jepsenlike.models.raft.bugs import BUGS as RAFT_BUGS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_detection.py"
spec = importlib.util.spec_from_file_location("bench_detection", SCRIPT)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_detection"] = bench  # dataclasses look their module up
spec.loader.exec_module(bench)

KEYS = {"system", "bug", "runs", "caught", "control_runs", "control_valid", "median_detect_s", "witness_ops"}


def _run_dir(tmp_path: Path, results: dict) -> Path:
    ops = [
        (0, 1, "invoke", "write", 1, 5), (1, 1, "ok", "write", 1, 5),
        (2, "nemesis", "invoke", "pause-leader", None, None),
        (3, "nemesis", "info", "pause-leader", None, None),
        (4, 2, "invoke", "write", 1, 7), (5, 2, "ok", "write", 1, 7),
        (6, 3, "invoke", "read", 1, None), (7, 3, "ok", "read", 1, 5),
        (8, 4, "invoke", "read", 2, None), (9, 4, "ok", "read", 2, None),
    ]
    times = [0.1, 0.2, 2.0, 2.1, 3.0, 3.2, 3.5, 3.6, 3.7, 3.8]
    lines = []
    for (i, p, t, f, k, v), s in zip(ops, times, strict=True):
        lines.append(json.dumps({"index": i, "time": int(s * 1e9), "process": p, "type": t, "f": f,
                                 "key": k, "value": v}))
    (tmp_path / "history.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


def test_detect_time_is_from_the_first_fault_to_the_earliest_evidence_op_and_size_is_the_keys_ops(tmp_path):
    d = _run_dir(tmp_path, {"valid": False, "workload": {"key": 1, "failures": [
        {"key": 1, "op": {"index": 7}, "partial_linearizations": [{"steps": [{"index": 0}]}]}]}})
    detect, size = bench.measure_run(d)
    assert detect == pytest.approx(3.6 - 2.0)  # the stale read, not the context steps before the fault
    assert size == 3  # key 1 has three invocations


def test_a_witness_when_present_decides_both(tmp_path):
    # The witness lists invocations: the write 7 (invoked at 3.0 s) and the stale read that
    # missed it (3.5 s). The anomaly is seen at the read, the witness's latest op; its write
    # may predate every fault, so the earliest op would understate (or go negative).
    d = _run_dir(tmp_path, {"valid": False, "witness": {"ops": [4, 6], "reason": "stale read"},
                            "workload": {"key": 1, "failures": [{"key": 1, "op": {"index": 7}}]}})
    detect, size = bench.measure_run(d)
    assert detect == pytest.approx(3.5 - 2.0) and size == 2
    d = _run_dir(tmp_path, {"valid": False, "witness": {"ops": [0, 6], "reason": "stale read"}})
    assert bench.measure_run(d)[0] == pytest.approx(3.5 - 2.0)


def test_time_limit_replaces_the_documented_one_or_is_added():
    assert bench.with_time_limit(("--nemesis", "x", "--time-limit", "60"), 5) == ["--nemesis", "x", "--time-limit", "5"]
    assert bench.with_time_limit(("--nemesis", "x"), 7.5) == ["--nemesis", "x", "--time-limit", "7.5"]
    assert bench.with_time_limit(("--time-limit", "60"), None) == ["--time-limit", "60"]


def test_every_seeded_bug_of_raft_and_paxos_has_catch_and_control_runs_of_60_s():
    tables = bench.bug_tables()
    assert set(tables["raft"]) == set(RAFT_BUGS) and set(tables["paxos"]) == set(PAXOS_BUGS)
    for table in (RAFT_BUGS, PAXOS_BUGS):
        for bug in table.values():
            assert bug.catch and bug.control, bug.name
            for args in (bug.catch, bug.control):
                assert args[args.index("--time-limit") + 1] == "60", (bug.name, args)
                assert "--system" not in args and "--bug" not in args and "--seed" not in args
            # the control lacks the catch's fault: its nemesis differs (or its option does)
            assert bug.catch != bug.control
    pairs = bench.select(tables, "raft:stale-read,paxos:no-adopt")
    assert [(s, b) for s, b, _ in pairs] == [("raft", "stale-read"), ("paxos", "no-adopt")]
    with pytest.raises(SystemExit, match="unknown 'raft:nope'"):
        bench.select(tables, "raft:nope")


def test_bug_rows_are_valid_run_configurations_and_their_plugin_options_exist():
    from jepsenlike.cli import build_parser
    from jepsenlike.commands.run import FLAGS
    from jepsenlike.config import build_config
    from jepsenlike.nemesis import PackageOptions, build_packages

    parser = build_parser()
    for system, table in (("raft", RAFT_BUGS), ("paxos", PAXOS_BUGS)):
        for bug in table.values():
            for args in (bug.catch, bug.control):
                ns = parser.parse_args(["run", "--system", system, "--bug", bug.name, *args])
                flags = {name: getattr(ns, name) for name, _, _ in FLAGS}
                flags["plugin_options"] = ns.plugin_options
                config = build_config(flags)  # raises ConfigError on a bad value
                assert config.time_limit == 60
                names = [n for n in config.nemesis if n != "none"]
                build_packages(names, PackageOptions.from_config(config))  # options parse


@pytest.mark.slow
@pytest.mark.integration
def test_the_script_runs_one_bug_and_prints_consistent_json(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--bugs", "paxos:stale-read", "--runs", "1",
                        "--control-runs", "1", "--time-limit", "6", "--store", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 1 and set(rows[0]) == KEYS
    r = rows[0]
    assert (r["system"], r["bug"], r["runs"], r["control_runs"]) == ("paxos", "stale-read", 1, 1)
    assert 0 <= r["caught"] <= r["runs"] and 0 <= r["control_valid"] <= r["control_runs"]
    if r["caught"] == 0:
        assert r["median_detect_s"] is None and r["witness_ops"] is None
    else:
        assert r["median_detect_s"] is not None and r["median_detect_s"] >= 0 and r["witness_ops"] >= 1


def test_rows_written_with_out_render_as_the_readme_table(tmp_path, capsys):
    row = bench.Row("raft", "stale-read", runs=4, caught=3, control_runs=2, control_valid=2, median_detect_s=7.25,
                    witness_ops=12, catch_args=["--nemesis", "leader-pause", "--time-limit", "60"],
                    control_args=["--nemesis", "none", "--time-limit", "60"])
    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps(bench.asdict(row)) + "\n")
    assert bench.main(["--from", str(f), "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2] == ("| raft | `stale-read` | `--nemesis leader-pause --time-limit 60` | 3 of 4 | "
                        "`--nemesis none --time-limit 60` | 2 of 2 | 7.2 | 12 |")
