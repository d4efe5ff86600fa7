"""``jepsenlike check`` on hostile input, driven as a user drives it (a subprocess).

Every bad file gets one stderr line naming the file (and line and field where
there is one), the verdict ``error``, and does not stop the other files; bad
budgets are refused before any file is read; a closed pipe ends the command
quietly.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jepsenlike.history import Op
from jepsenlike.history_io import write_history


def jl(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "jepsenlike", "check", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )


GOOD_OPS = [Op(0, 0, 0, "invoke", "write", value=1), Op(1, 5, 0, "ok", "write", value=1),
            Op(2, 6, 1, "invoke", "read"), Op(3, 9, 1, "ok", "read", value=1)]


def good_line(**changes):
    d = {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", "value": 1}
    d.update(changes)
    return d


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.jsonl"
    write_history(path, GOOD_OPS)
    return path


def bad_files(tmp_path):
    """name -> (path, what the one-line error must say)."""
    out = {}
    d = tmp_path / "a-directory"
    d.mkdir()
    out["directory"] = (d, f"{d}: is a directory")
    b = tmp_path / "binary.jsonl"
    b.write_bytes(bytes(range(256)) * 4)
    out["binary"] = (b, f"{b}:1: not")
    u = tmp_path / "latin1.jsonl"
    u.write_bytes(json.dumps(good_line(value="caf\u00e9"), ensure_ascii=False).encode("latin-1")
                  + b"\n")
    out["non-utf8"] = (u, f"{u}:1: not UTF-8 text")
    deep = tmp_path / "deep.jsonl"
    deep.write_text(json.dumps(good_line())[:-1] + ', "key": ' + "[" * 3000 + "]" * 3000 + "}\n")
    out["deep"] = (deep, f"{deep}:1: not valid JSON: nested too deeply")
    t = tmp_path / "type-list.jsonl"
    t.write_text(json.dumps(good_line(type=[])) + "\n")
    out["type-list"] = (t, f"{t}:1: field 'type' is []")
    n = tmp_path / "nan.jsonl"
    n.write_text(json.dumps(good_line()) + "\n" + '{"index": 1, "time": 1, "process": 0, '
                 '"type": "ok", "f": "write", "value": NaN}\n')
    out["nan"] = (n, f"{n}:2: field 'value' holds NaN")
    inf = tmp_path / "inf.jsonl"
    inf.write_text('{"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", '
                   '"value": -Infinity}\n')
    out["infinity"] = (inf, f"{inf}:1: field 'value' holds -Infinity")
    tb = tmp_path / "true-index.jsonl"
    tb.write_text(json.dumps(good_line(index=True)) + "\n")
    out["bool-index"] = (tb, f"{tb}:1: field 'index' must be a non-negative integer, got True")
    e = tmp_path / "deep.edn"
    e.write_text("{:type :invoke, :f :write, :process 0, :value " + "[" * 3000 + "]" * 3000
                 + "}\n")
    out["deep-edn"] = (e, f"{e}:1: nested too deeply")
    en = tmp_path / "nan.edn"
    en.write_text("{:type :invoke, :f :write, :process 0, :value ##NaN}\n")
    out["nan-edn"] = (en, f"{en}:1: ##NaN is not a finite number")
    missing = tmp_path / "missing.jsonl"
    out["missing"] = (missing, f"{missing}: no such file")
    return out


def test_every_bad_file_is_one_line_and_the_others_are_still_checked(tmp_path, good):
    bad = bad_files(tmp_path)
    paths = [p for p, _ in bad.values()]
    # the good file last, so that it is checked after every failure
    p = jl(*paths, good, "--model", "register")
    assert p.returncode == 255, p.stderr
    assert "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("jepsenlike: error: ")]
    assert len(errors) == len(bad), p.stderr
    for (_path, message), line in zip(bad.values(), errors, strict=True):
        assert message in line, (message, line)
    assert len(p.stderr.splitlines()) == len(bad), "one line per bad file, nothing else"
    out = p.stdout.splitlines()
    assert out[: len(bad)] == [f"{path}: error" for path in paths]
    assert out[-1].startswith(f"{good}: linearizable (")


def test_json_output_marks_each_bad_file_and_keeps_going(tmp_path, good):
    bad = bad_files(tmp_path)
    p = jl(bad["nan"][0], bad["directory"][0], good, "--model", "register", "--json")
    assert p.returncode == 255
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert [o["verdict"] for o in out] == ["error", "error", "linearizable"]
    assert "field 'value' holds NaN" in out[0]["error"]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--timeout", "nan", "--timeout nan: must be a positive, finite number of seconds"),
        ("--timeout", "-1", "--timeout -1.0: must be a positive, finite number of seconds"),
        ("--timeout", "inf", "--timeout inf: must be a positive, finite number of seconds"),
        ("--timeout", "0", "--timeout 0.0: must be a positive, finite number of seconds"),
        ("--max-states", "0", "--max-states 0: must be at least 1"),
        ("--max-states", "-5", "--max-states -5: must be at least 1"),
    ],
)
def test_bad_budgets_are_refused_before_reading(good, flag, value, message):
    p = jl(good, "--model", "register", f"{flag}={value}")
    assert p.returncode == 255
    assert p.stdout == ""
    assert p.stderr.splitlines() == [f"jepsenlike: error: {message}"]


def test_good_budgets_are_accepted(good):
    p = jl(good, "--model", "register", "--timeout", "0.5", "--max-states", "1")
    assert p.returncode == 0, p.stderr


def test_a_closed_pipe_ends_quietly(good):
    # thousands of files' verdicts, read one line, then close the pipe (`| head -1`)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jepsenlike", "check", *[str(good)] * 3000, "--model",
         "register", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert json.loads(first)["verdict"] == "linearizable"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert code == 141, err
    assert err == "", err


def test_a_torn_last_line_is_checked_with_a_note(tmp_path, good):
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good.read_text() + '{"index": 4, "time": 20, "proc')
    p = jl(torn, "--model", "register", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["verdict"] == "linearizable" and out["torn_tail"] is True and out["events"] == 4
    assert p.stderr.splitlines() == [
        f"jepsenlike: note: {torn}:5: the last line is incomplete (the run was interrupted?); "
        "read the 4 complete events before it"]
    p = jl(torn, "--model", "register")
    assert p.stdout.startswith(f"{torn}: linearizable (") and "torn last line dropped" in p.stdout
