"""No vacuous verdicts, and systems' declared capabilities, through ``jepsenlike run``.

Small in-process system plugins (registered by an entry point in a throwaway
``*.dist-info`` on ``PYTHONPATH``, exactly as an installed plugin is found):

* ``noappend`` -- a store without appends (``append`` fails, a read of a key
  nothing was written to answers null), declaring nothing: ``--workload set``
  ends ``unknown`` (no add acknowledged), never valid;
* ``noappend-declared`` -- the same store declaring ``workloads = {"register"}``:
  ``--workload set`` is refused up front with a one-line error, nothing created;
* ``badshape`` -- reads of a set answer a number: ``invalid``, reported as the
  system's wrong-shape read;
* ``killonly`` -- declares ``faults = {"kill"}``: the default fault set drops the
  rest, saying so, and the run is valid; asking for ``pause`` by name is refused
  and the run is ``unknown``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.integration]

PLUGIN = textwrap.dedent('''
    from jepsenlike.systems.memory import MemoryCluster, MemorySystem


    class NoAppendCluster(MemoryCluster):
        def invoke(self, node, f, key, value, timeout):
            if f == "append":
                return {"type": "fail", "value": None, "error": "unsupported op append"}
            return super().invoke(node, f, key, value, timeout)


    class BadShapeCluster(MemoryCluster):
        def invoke(self, node, f, key, value, timeout):
            res = super().invoke(node, f, key, value, timeout)
            if f == "read" and res["type"] == "ok":
                res = dict(res, value=len(res["value"] or []))
            return res


    class NoAppend(MemorySystem):
        name = "noappend"
        workloads = None
        faults = None
        cluster_class = NoAppendCluster

        def make_cluster(self, nodes, *, bug, seed):
            self.cluster = self.cluster_class(nodes, bug=bug, seed=seed)
            return self.cluster


    class NoAppendDeclared(NoAppend):
        name = "noappend-declared"
        workloads = frozenset({"register"})


    class BadShape(NoAppend):
        name = "badshape"
        cluster_class = BadShapeCluster


    class KillOnly(MemorySystem):
        name = "killonly"
        faults = frozenset({"kill"})
''')


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    (site / "jl_testsys.py").write_text(PLUGIN)
    info = site / "jl_testsys-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jl-testsys\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[jepsenlike.systems]\nnoappend = jl_testsys:NoAppend\nnoappend-declared = jl_testsys:NoAppendDeclared\n"
        "badshape = jl_testsys:BadShape\nkillonly = jl_testsys:KillOnly\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.pop("JEPSENLIKE_NO_PLUGINS", None)
    return env


SHORT = ["--nodes", "3", "--time-limit", "2", "--warmup", "0.5", "--recovery", "0.3", "--seed", "1"]


def run(env: dict[str, str], store, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jepsenlike", "run", "--quiet", *SHORT, *args,
                           "--store", str(store)], capture_output=True, text=True, timeout=120, env=env)


def results_of(store) -> dict:
    return json.loads(((store / "latest").resolve() / "results.json").read_text())


def test_a_system_without_appends_under_the_set_workload_is_unknown_not_valid(plugin_env, tmp_path):
    p = run(plugin_env, tmp_path, "--system", "noappend", "--workload", "set", "--nemesis", "none")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Verdict: UNKNOWN" in p.stdout
    assert "vacuous run: no add was acknowledged" in p.stdout
    res = results_of(tmp_path)
    assert res["valid"] == "unknown" and res["stats"]["totals"].get("ok", 0) > 0  # reads did succeed


def test_a_workload_the_system_does_not_declare_is_refused_up_front(plugin_env, tmp_path):
    p = run(plugin_env, tmp_path, "--system", "noappend-declared", "--workload", "set", "--nemesis", "none")
    assert p.returncode not in (0, 1, 2), p.stdout + p.stderr
    err = [line for line in p.stderr.splitlines() if "error" in line]
    assert err and "system 'noappend-declared' does not support workload 'set'; it supports: register" in err[0]
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "latest").exists()


def test_a_read_of_the_wrong_shape_is_the_systems_error(plugin_env, tmp_path):
    p = run(plugin_env, tmp_path, "--system", "badshape", "--workload", "set", "--nemesis", "none")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Verdict: INVALID" in p.stdout
    assert "system returned a read of the wrong shape: int" in p.stdout and "where a list was expected" in p.stdout


def test_the_default_faults_drop_what_the_system_cannot_take_and_asked_ones_are_refused(plugin_env, tmp_path):
    p = run(plugin_env, tmp_path / "default", "--system", "killonly", "--nemesis-interval", "0.4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "fault 'pause' left out of the default set: system 'killonly' does not take pause faults" in p.stderr
    test_doc = json.loads(((tmp_path / "default" / "latest").resolve() / "test.json").read_text())
    assert test_doc["faults"]["requested"] == ["kill"]
    assert set(test_doc["faults"]["dropped"]) == {"pause", "partition", "clock"}
    asked = run(plugin_env, tmp_path / "asked", "--system", "killonly", "--nemesis", "kill,pause",
                "--nemesis-interval", "0.4")
    assert asked.returncode == 2, asked.stdout + asked.stderr
    assert "fault 'pause' was refused: system 'killonly' does not take pause faults" in asked.stdout
