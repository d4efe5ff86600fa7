"""The store: run directories, the latest links, atomic JSON, finding runs again."""

from __future__ import annotations

import json

import pytest

from jepsenlike.errors import ConfigError
from jepsenlike.store import new_run_dir, resolve_run_dir, update_latest, write_json


def test_run_dirs_are_fresh_and_grouped_by_test(tmp_path):
    a = new_run_dir(tmp_path, "raft-register", now=1_700_000_000.25)
    b = new_run_dir(tmp_path, "raft-register", now=1_700_000_000.25)
    assert a != b and a.parent == b.parent == tmp_path / "raft-register"
    assert a.name.endswith(".250") and b.name == a.name + "-1"


def test_latest_links_follow_the_newest_run(tmp_path):
    a = new_run_dir(tmp_path, "t", now=1.0)
    update_latest(tmp_path, a)
    b = new_run_dir(tmp_path, "t", now=2.0)
    update_latest(tmp_path, b)
    assert (tmp_path / "latest").resolve() == b.resolve()
    assert (tmp_path / "t" / "latest").resolve() == b.resolve()
    assert not (tmp_path / "latest").readlink().is_absolute()  # the store can be moved


def test_write_json_is_atomic_and_readable(tmp_path):
    p = tmp_path / "results.json"
    write_json(p, {"valid": True, "s": {3, 1}, "t": (1, 2)})
    assert json.loads(p.read_text()) == {"valid": True, "s": [1, 3], "t": [1, 2]}
    assert [x.name for x in tmp_path.iterdir()] == ["results.json"]


def test_resolve_run_dir(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        resolve_run_dir(tmp_path / "nope")
    run = new_run_dir(tmp_path, "t")
    with pytest.raises(ConfigError, match="not a run directory"):
        resolve_run_dir(run)
    (run / "history.jsonl").write_text("")
    with pytest.raises(ConfigError, match="has no test.json"):
        resolve_run_dir(run)
    (run / "test.json").write_text("{}")
    update_latest(tmp_path, run)
    assert resolve_run_dir(run) == run.resolve()
    assert resolve_run_dir(tmp_path) == run.resolve()  # via store/latest
    assert resolve_run_dir(tmp_path / "t") == run.resolve()  # via test/latest
