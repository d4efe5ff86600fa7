"""``jepsenlike run`` / ``analyze`` from the command line: errors, the store, memory runs, workloads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepsenlike.history_io import read_history

pytestmark = pytest.mark.integration

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, *args], capture_output=True, text=True, timeout=timeout)


def mem_run(store, *args: str) -> subprocess.CompletedProcess[str]:
    # memory has no network and no clocks: the default partition and clock faults would be
    # refused (verdict unknown), so these runs ask for the faults it can take.
    return cli("run", "--system", "memory", "--quiet", "--time-limit", "2", "--warmup", "0.5",
               "--recovery", "0.3", "--nemesis-interval", "0.4", "--nemesis", "kill,pause",
               "--store", str(store), *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nemesis", "partiton"], "jepsenlike: error: --nemesis: unknown nemesis 'partiton'; available: clock, flaky, flip-partition, kill, kill-cluster, kill-elected, leader-clock, leader-pause, partition, pause, shard-move, slow"),
        (["--system", "rafft"], "--system: unknown system 'rafft'; available: etcd, memory, paxos, raft, shardkv, zookeeper"),
        (["--workload", "bank"], "--workload: unknown workload 'bank'; available: append, register, set"),
        (["--nodes", "zero"], "--nodes: expected an integer, got 'zero'"),
        (["--routing", "nearest"], "--routing: unknown routing 'nearest'; available: random, round-robin, weighted, leader"),
        (["--bug", "stale-reads"], "--bug: system 'raft' has no bug 'stale-reads'; available: stale-read"),
        (["--config", "/nonexistent.toml"], "--config: no such file: /nonexistent.toml"),
    ],
)
def test_bad_flags_exit_255_with_the_documented_message(tmp_path, args, message):
    p = cli("run", "--store", str(tmp_path), *args)
    assert p.returncode == 255
    assert message in p.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was created


def test_unknown_flag_is_a_usage_error_not_unknown(tmp_path):
    p = cli("run", "--store", str(tmp_path), "--partition")
    assert p.returncode == 255 and "unrecognized arguments: --partition" in p.stderr


def test_memory_run_stores_everything_and_analyze_agrees(tmp_path):
    store = tmp_path / "store"
    p = mem_run(store, "--seed", "7", "--nodes", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = (store / "latest").resolve()
    assert run_dir.parent == store / "memory-register"
    assert (store / "memory-register" / "latest").resolve() == run_dir
    assert {f.name for f in run_dir.iterdir()} >= {"test.json", "history.jsonl", "results.json", "nemesis.log"}
    test = json.loads((run_dir / "test.json").read_text())
    assert test["seed"] == 7 and test["config"]["system"] == "memory" and test["versions"]["jepsenlike"]
    assert set(test["phases"]) == {"warmup", "chaos", "heal", "recover", "final", "end"}
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert set(results["stats"]["availability"]) >= {"warmup", "chaos", "recover"}
    assert results["stats"]["latency_ms"]["read"]["p50"] >= 0
    hist = read_history(run_dir / "history.jsonl")
    nem = [op for op in hist.nemesis_ops()]
    assert nem and all(op.type in ("invoke", "info") for op in nem)
    assert len((run_dir / "nemesis.log").read_text().splitlines()) == len(nem) // 2
    assert f"Run dir: {run_dir}" in p.stdout or str(run_dir) in p.stdout
    a = cli("analyze", str(store / "latest"))
    assert a.returncode == 0 and "Verdict: VALID" in a.stdout


def test_same_seed_same_fault_plan(tmp_path):
    def faults(store):
        p = mem_run(store, "--seed", "21", "--nodes", "5", "--rate", "200")
        assert p.returncode == 0, p.stderr
        hist = read_history(store / "latest" / "history.jsonl")
        return [(op.f, op.value) for op in hist.nemesis_ops() if op.type == "invoke"]

    a, b = faults(tmp_path / "a"), faults(tmp_path / "b")
    # A fault planned a few ms before the end of chaos may miss the cut in one run.
    n = min(len(a), len(b))
    assert n >= 3 and abs(len(a) - len(b)) <= 1 and a[:n] == b[:n]


def test_memory_stale_read_bug_is_invalid_and_analyze_exits_1(tmp_path):
    store = tmp_path / "store"
    p = mem_run(store, "--seed", "3", "--bug", "stale-read", "--nemesis", "none", "--rate", "500")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Verdict: INVALID" in p.stdout and "not linearizable" in p.stdout
    assert cli("analyze", str(store / "latest")).returncode == 1


@pytest.mark.parametrize("workload", ["set", "append"])
def test_other_workloads_are_valid_on_a_correct_system(tmp_path, workload):
    p = mem_run(tmp_path, "--workload", workload, "--seed", "5")
    assert p.returncode == 0, p.stdout + p.stderr
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    if workload == "set":
        keys = results["workload"]["keys"]
        assert keys and all(k["lost_count"] == 0 and "final_read_size" in k for k in keys.values())
        hist = read_history(tmp_path / "latest" / "history.jsonl")
        final_at = json.loads((tmp_path / "latest" / "test.json").read_text())["phases"]["final"]
        assert any(op.f == "read" and op.time >= final_at for op in hist)
    else:
        assert results["workload"]["stats"]["ops"] > 0  # the cycle checker looked at the txns


def test_set_workload_catches_lost_adds_of_the_stale_read_bug(tmp_path):
    p = mem_run(tmp_path, "--workload", "set", "--bug", "stale-read", "--nemesis", "none", "--seed", "2",
                "--rate", "500")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "set anomalies" in p.stdout and "stale" in p.stdout


def test_test_count_merges_exit_codes(tmp_path):
    p = mem_run(tmp_path, "--test-count", "2", "--seed", "10", "--nemesis", "pause")
    assert p.returncode == 0, p.stderr
    assert "=== run 2/2 (seed 11)" in p.stdout and "2 runs: 2 valid" in p.stdout
    assert len([d for d in (tmp_path / "memory-register").iterdir() if d.name != "latest"]) == 2


def test_toml_config_file_drives_a_run(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text(f'system = "memory"\nnodes = 3\ntime-limit = 1.5\nnemesis = ["kill"]\nseed = 99\n'
                    f'store = "{tmp_path / "s"}"\nwarmup = 0.3\nrecovery = 0.2\n')
    p = cli("run", "--quiet", "--config", str(conf))
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "s" / "latest" / "test.json").read_text())["config"]["nodes"] == 3


def test_analyze_errors(tmp_path):
    p = cli("analyze", str(tmp_path / "nope"))
    assert p.returncode == 255 and "RUN_DIR: no such directory" in p.stderr
    p = cli("analyze", str(tmp_path))
    assert p.returncode == 255 and "is not a run directory" in p.stderr
