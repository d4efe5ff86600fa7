"""The example nemesis plugin (``examples/nemesis-plugin``), installed by pip and run.

pip installs it into a temporary ``--target`` directory (not into the test
environment, so that other tests keep seeing only the built-in nemeses) and
the ``jepsenlike`` commands run with that directory on ``PYTHONPATH``: the
entry point is discovered from the installed metadata exactly as after a
plain ``pip install ./examples/nemesis-plugin``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jepsenlike.history_io import read_history
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
]

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "nemesis-plugin"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("plugin-site")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("plugin-src") / "nemesis-plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    p = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, cwd=source.parent,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert list(target.glob("jepsenlike_crash_all-0.1.0.dist-info"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env.pop("JEPSENLIKE_NO_PLUGINS", None)
    return env


def jl(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_installed_plugin_is_listed_with_its_distribution(plugin_env):
    p = jl(plugin_env, "list", "nemesis")
    assert p.returncode == 0, p.stdout + p.stderr
    # Names are padded to the longest one listed, so the gap is not fixed.
    assert re.search(r"^  crash-all +Crash every node at once \(power loss\), then recover them all\.  "
                     r"\[jepsenlike-crash-all\]$", p.stdout, re.M), p.stdout
    # Without the plugin on the path it is not there.
    env = dict(plugin_env, PYTHONPATH="")
    assert "crash-all" not in jl(env, "list", "nemesis").stdout


def test_the_plugin_runs_against_raft_and_its_faults_are_recorded_and_covered(plugin_env, tmp_path):
    store = tmp_path / "store"
    p = jl(plugin_env, "run", "--quiet", "--nodes", "3", "--time-limit", "7", "--nemesis", "crash-all",
           "--nemesis-interval", "1.5", "--seed", "2", "--store", str(store))
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    cov = results["nemesis"]["coverage"]["crash-all"]
    assert cov["status"] == "fired" and cov["fired"] >= 1 and cov["seconds"] > 0
    hist = read_history(run_dir / "history.jsonl")
    crashes = [op for op in hist.nemesis_ops() if op.f == "crash-all" and op.type == "info"]
    assert crashes and all(op.value["nodes"] == ["n1", "n2", "n3"] for op in crashes)
    recovers = [op for op in hist.nemesis_ops() if op.f == "recover-all" and op.type == "info"]
    assert recovers[-1].value["nodes"] in ([], ["n1", "n2", "n3"])
    assert "fault coverage: crash-all x" in p.stdout


def crash_victims(run_dir: Path) -> list[list[str]]:
    hist = read_history(run_dir / "history.jsonl")
    return [op.value["nodes"] for op in hist.nemesis_ops() if op.f == "crash-all" and op.type == "info"]


def test_list_shows_the_plugins_option(plugin_env):
    p = jl(plugin_env, "list", "nemesis")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "--option crash-all.spare=0 (int): nodes left running (the first ones by id)" in p.stdout


def test_an_option_from_the_command_line_reaches_the_plugin_and_is_reproduced(plugin_env, tmp_path):
    store = tmp_path / "store"
    args = ["run", "--quiet", "--system", "memory", "--nodes", "3", "--time-limit", "4", "--warmup", "0.5",
            "--nemesis", "crash-all", "--nemesis-interval", "0.5", "--seed", "5", "--store", str(store)]
    p = jl(plugin_env, *args, "--option", "crash-all.spare=1")
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = (store / "latest").resolve()
    victims = crash_victims(run_dir)
    assert victims and all(v == ["n2", "n3"] for v in victims)
    test = json.loads((run_dir / "test.json").read_text())
    assert test["config"]["plugin_options"] == {"crash-all": {"spare": 1}}
    assert "--option crash-all.spare=1" in test["reproduce"]
    # The printed Reproduce: command replays the run with the same plugin setting.
    import shlex

    reproduce = shlex.split(test["reproduce"])
    assert reproduce[:2] == ["jepsenlike", "run"]
    again = jl(plugin_env, *reproduce[1:], "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = (store / "latest").resolve()
    assert rerun != run_dir
    assert json.loads((rerun / "test.json").read_text())["config"]["plugin_options"] == {"crash-all": {"spare": 1}}
    assert all(v == ["n2", "n3"] for v in crash_victims(rerun)) and crash_victims(rerun)


def test_an_option_from_the_config_file_reaches_the_plugin(plugin_env, tmp_path):
    store = tmp_path / "store"
    conf = tmp_path / "run.toml"
    conf.write_text('system = "memory"\nnodes = 3\nnemesis = ["crash-all"]\n\n[options.crash-all]\nspare = 2\n')
    p = jl(plugin_env, "run", "--config", str(conf), "--quiet", "--time-limit", "4", "--warmup", "0.5",
           "--nemesis-interval", "0.5", "--seed", "5", "--store", str(store))
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = (store / "latest").resolve()
    victims = crash_victims(run_dir)
    assert victims and all(v == ["n3"] for v in victims)
    test = json.loads((run_dir / "test.json").read_text())
    assert test["config"]["plugin_options"] == {"crash-all": {"spare": 2}}


@pytest.mark.parametrize(("option", "message"), [
    ("crash-all.sprae=1", "--option crash-all.sprae: plugin 'crash-all' has no option 'sprae'; valid: spare"),
    ("crash-all.spare=many", "--option crash-all.spare: expected int, got 'many'"),
    ("kill.spare=1", "--option kill.spare: no plugin 'kill' in this run; plugins in use: memory, in-process, "
                     "register, crash-all"),
])
def test_a_misspelt_option_is_a_one_line_error(plugin_env, tmp_path, option, message):
    p = jl(plugin_env, "run", "--system", "memory", "--nemesis", "crash-all", "--option", option,
           "--store", str(tmp_path / "store"))
    assert p.returncode == 255
    assert p.stderr.strip() == f"jepsenlike: error: {message}"
    assert not (tmp_path / "store").exists()
