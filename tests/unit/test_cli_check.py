"""``jepsenlike check`` driven as a user drives it: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jepsenlike.checkers.synth import bad_example_history, example_history
from jepsenlike.edn import write_edn_history
from jepsenlike.history import Op
from jepsenlike.history_io import write_history

EXAMPLES = Path(__file__).resolve().parents[2] / "jepsenlike" / "examples"


def jl(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "jepsenlike", "check", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


@pytest.fixture()
def files(tmp_path):
    good = tmp_path / "good.jsonl"
    write_history(good, example_history().ops)
    bad = tmp_path / "bad.jsonl"
    write_history(bad, bad_example_history().ops)
    return good, bad


def test_shipped_examples_are_what_the_generator_makes_and_check_as_documented():
    assert (EXAMPLES / "cas-register.jsonl").read_text().splitlines() == [
        op.to_json() for op in example_history().ops
    ]
    assert (EXAMPLES / "cas-register-bad.jsonl").read_text().splitlines() == [
        op.to_json() for op in bad_example_history().ops
    ]
    p = jl(EXAMPLES / "cas-register.jsonl", "--model", "cas-register")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{EXAMPLES / 'cas-register.jsonl'}: linearizable (")
    p = jl(EXAMPLES / "cas-register-bad.jsonl", "--model", "cas-register")
    assert p.returncode == 1
    assert ": not-linearizable (" in p.stdout
    assert "can't CAS 1 from 0 to 2" in p.stdout


def test_one_verdict_line_per_file_and_invalid_wins(files):
    good, bad = files
    p = jl(good, bad, "--model", "cas-register")
    assert p.returncode == 1
    verdicts = [line for line in p.stdout.splitlines() if not line.startswith(" ")]
    assert verdicts[0].startswith(f"{good}: linearizable (200 ops, 1 key, ")
    assert verdicts[1].startswith(f"{bad}: not-linearizable (")
    assert len(verdicts) == 2
    explanation = p.stdout.split(verdicts[1])[1]
    assert "cannot be linearized" in explanation and "longest partial linearization" in explanation


def test_json_output_is_one_object_per_file_with_time(files):
    good, bad = files
    p = jl(good, bad, "--model", "cas-register", "--json")
    assert p.returncode == 1
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [o["file"] for o in out] == [str(good), str(bad)]
    assert [o["verdict"] for o in out] == ["linearizable", "not-linearizable"]
    assert out[0]["valid"] is True and out[1]["valid"] is False
    assert all(isinstance(o["time_s"], float) for o in out)
    assert out[1]["op"]["index"] == 6
    assert out[1]["reason"] == "can't CAS 1 from 0 to 2"
    assert out[1]["partial_linearizations"][0]["steps"][0]["index"] == 0


def test_unknown_exits_2(tmp_path):
    n = 9  # concurrent writes, each value read by a concurrent read, then an impossible read
    events = [(p, "invoke", "write", p) for p in range(n)]
    events += [(n + p, "invoke", "read", None) for p in range(n)]
    events += [(p, "ok", "write", p) for p in range(n)]
    events += [(n + p, "ok", "read", p) for p in range(n)]
    events += [(2 * n, "invoke", "read", None), (2 * n, "ok", "read", 99)]
    path = tmp_path / "hard.jsonl"
    write_history(path, [Op(i, i, p, t, f, None, v) for i, (p, t, f, v) in enumerate(events)])
    p = jl(path, "--model", "register", "--max-states", "100")
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout.startswith(f"{path}: unknown (")
    assert "memory budget" in p.stdout and "18 concurrent" in p.stdout
    p = jl(path, "--model", "register")
    assert p.returncode == 1


def test_unknown_model_lists_the_known_ones(files):
    p = jl(files[0], "--model", "cas-regster")
    assert p.returncode == 255
    assert "unknown model 'cas-regster'; known models: register, cas-register" in p.stderr
    assert p.stdout == ""


def test_bad_init_is_an_error(files):
    p = jl(files[0], "--model", "cas-register", "--init", "{nope")
    assert p.returncode == 255 and "--init" in p.stderr and "not valid JSON" in p.stderr


def test_init_sets_the_initial_state(tmp_path):
    path = tmp_path / "r.jsonl"
    write_history(path, [Op(0, 0, 0, "invoke", "read"), Op(1, 1, 0, "ok", "read", value=None)])
    assert jl(path, "--model", "cas-register").returncode == 0
    p = jl(path, "--model", "cas-register", "--init", "0")
    assert p.returncode == 1 and "read null but the value is 0" in p.stdout


def test_a_bad_file_is_reported_with_its_line_and_does_not_stop_the_others(files, tmp_path):
    good, bad = files
    broken = tmp_path / "broken.jsonl"
    lines = good.read_text().splitlines()
    lines[3] = lines[3][:25]
    broken.write_text("\n".join(lines[:10]) + "\n")
    p = jl(broken, good, bad, "--model", "cas-register")
    assert p.returncode == 255
    assert f"{broken}:4: not valid JSON" in p.stderr
    out = p.stdout.splitlines()
    assert out[0] == f"{broken}: error"
    assert any(line.startswith(f"{good}: linearizable") for line in out)
    assert any(line.startswith(f"{bad}: not-linearizable") for line in out)
    p = jl(tmp_path / "missing.jsonl", "--model", "cas-register", "--json")
    assert p.returncode == 255
    assert json.loads(p.stdout)["verdict"] == "error"
    assert "no such file" in p.stderr


def test_an_op_the_model_does_not_know_is_an_error(files):
    p = jl(files[0], "--model", "register")
    assert p.returncode == 255
    assert "model 'register' has no op f='cas'" in p.stderr


def test_edn_files_are_checked_too(tmp_path):
    path = tmp_path / "history.edn"
    write_edn_history(path, bad_example_history())
    p = jl(path, "--model", "cas-register")
    assert p.returncode == 1 and "not-linearizable" in p.stdout


def test_graph_checker_selection(files, tmp_path):
    try:
        import jepsenlike.checkers.graph  # noqa: F401
    except ImportError:
        p = jl(files[0], "--model", "cas-register", "--checker", "graph")
        assert p.returncode == 255 and "--checker graph is not available" in p.stderr
        return
    p = jl(files[1], "--model", "cas-register", "--checker", "graph", "--json")
    assert p.returncode in (1, 2), p.stderr
    assert json.loads(p.stdout)["checker"] == "graph"
    p = jl(files[0], "--model", "cas-register", "--checker", "wgl", "--json")
    assert json.loads(p.stdout)["checker"] == "wgl"


def test_all_keys_checks_past_the_first_bad_key(tmp_path):
    # Keys a and c are not linearizable (read 2 after the only write of 1); b is fine.
    events, i = [], 0
    for k in ("a", "b", "c"):
        for p, typ, f, v in ((0, "invoke", "write", 1), (0, "ok", "write", 1),
                             (1, "invoke", "read", None), (1, "ok", "read", 1 if k == "b" else 2)):
            events.append({"index": i, "time": i, "process": p, "type": typ, "f": f, "key": k,
                           "value": v})
            i += 1
    path = tmp_path / "two-bad.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    first = jl(path, "--model", "kv", "--json")
    every = jl(path, "--model", "kv", "--json", "--all-keys")
    assert first.returncode == every.returncode == 1
    one, both = json.loads(first.stdout), json.loads(every.stdout)
    assert [f["key"] for f in one["failures"]] == ["a"]
    assert "not checked" in one["explanation"]
    assert [f["key"] for f in both["failures"]] == ["a", "c"]
    assert both["checked_ops"] == 6
