"""The example system plugin (``examples/system-plugin``, tinykv), installed by pip and run.

Installed into a temporary ``--target`` (the test environment keeps only the
built-in systems); the ``jepsenlike`` commands run with it on ``PYTHONPATH``, so
the entry point is found from installed metadata as after a plain
``pip install ./examples/system-plugin``. tinykv with primary reads is correct
(valid under kills and partitions); with local reads a backup cut off from the
primary answers stale values, which the register checker catches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "system-plugin"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("plugin-site")
    source = tmp_path_factory.mktemp("plugin-src") / "system-plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--target", str(target), str(source)],
                       capture_output=True, text=True, timeout=300, cwd=source.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env.pop("JEPSENLIKE_NO_PLUGINS", None)
    return env


def jl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", *args], capture_output=True, text=True,
                          timeout=180, env=env)


def test_listed_with_its_option_and_distribution(plugin_env):
    p = jl(plugin_env, "list", "systems")
    assert p.returncode == 0, p.stderr
    assert "tinykv, a primary-backup key-value store (example system plugin)  [jepsenlike-tinykv]" in p.stdout
    assert "--option tinykv.reads='primary'" in p.stdout


def test_primary_reads_valid_under_kill_and_partition(plugin_env, tmp_path):
    p = jl(plugin_env, "run", "--quiet", "--system", "tinykv", "--nodes", "3", "--nemesis", "kill,partition",
           "--time-limit", "12", "--seed", "1", "--store", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "kill x" in p.stdout and "partition x" in p.stdout


def test_local_reads_stale_read_caught_under_partitions(plugin_env, tmp_path):
    p = jl(plugin_env, "run", "--quiet", "--system", "tinykv", "--nodes", "3", "--option", "tinykv.reads=local",
           "--nemesis", "partition", "--grudge", "n1=n3;n2=n3;n3=n1+n2", "--time-limit", "15", "--seed", "1",
           "--store", str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not linearizable" in p.stdout
