"""``jepsenlike check --consistency-model``: the list-append verdict is about the chosen model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Elle's G-single (issue 14): T1 reads y empty although T0's append of 1 to y
# committed, and x's order puts T0 before T1.
ELLE_G_SINGLE = [
    {"process": 0, "type": "invoke", "f": "txn", "value": [["append", "x", 1], ["append", "y", 1]]},
    {"process": 1, "type": "invoke", "f": "txn", "value": [["append", "x", 2], ["r", "y", None]]},
    {"process": 2, "type": "invoke", "f": "txn", "value": [["r", "x", None]]},
    {"process": 0, "type": "ok", "f": "txn", "value": [["append", "x", 1], ["append", "y", 1]]},
    {"process": 1, "type": "ok", "f": "txn", "value": [["append", "x", 2], ["r", "y", []]]},
    {"process": 2, "type": "ok", "f": "txn", "value": [["r", "x", [1, 2]]]},
]


def jl(*args):
    return subprocess.run(
        [sys.executable, "-m", "jepsenlike", "check", *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture()
def g_single(tmp_path):
    path = tmp_path / "g-single.jsonl"
    path.write_text("".join(
        json.dumps({"index": i, "time": i, **op}) + "\n" for i, op in enumerate(ELLE_G_SINGLE)
    ))
    return path


def test_default_model_is_strict_serializable(g_single):
    out = jl(g_single, "--model", "list-append", "--json")
    assert out.returncode == 1, out.stderr
    res = json.loads(out.stdout.splitlines()[0])
    text = json.dumps(res)
    assert "G-single" in text and "strict-serializable" in text


@pytest.mark.parametrize("model, code", [
    ("read-uncommitted", 0), ("read-committed", 0), ("repeatable-read", 1),
    ("snapshot-isolation", 1), ("serializable", 1), ("strict-serializable", 1),
])
def test_verdict_follows_the_chosen_model(g_single, model, code):
    out = jl(g_single, "--model", "list-append", "--consistency-model", model)
    assert out.returncode == code, (out.stdout, out.stderr)


def test_unknown_model_is_one_line_error(g_single):
    out = jl(g_single, "--model", "list-append", "--consistency-model", "linearisable")
    assert out.returncode == 255
    assert out.stderr.strip().count("\n") == 0
    assert "unknown consistency model 'linearisable'" in out.stderr
