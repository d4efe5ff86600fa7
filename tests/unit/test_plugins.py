"""Plugin loading: the four entry-point groups, validation, errors naming plugin and
distribution, and ``jepsenlike list``."""

from __future__ import annotations

import sys
import textwrap

import pytest

from jepsenlike.cli import main
from jepsenlike.errors import ConfigError, PluginError
from jepsenlike.nemesis import build_packages, nemesis_names
from jepsenlike.plugins import KINDS, entries, list_installed, load

PLUGIN_SRC = textwrap.dedent("""
    from jepsenlike.nemesis import FaultOp, Nemesis, NemesisPackage

    class Noop(Nemesis):
        name = "noop"
        fs = frozenset({"noop-start", "noop-stop"})
        def invoke(self, test, op):
            return op.complete({"nodes": ["n1"]})

    def noop_package(options):
        '''Does nothing, loudly.'''
        return NemesisPackage("noop", Noop(), (("noop-start", "noop-stop"),), (FaultOp("noop-stop"),))

    def bad_cycle_package(options):
        return NemesisPackage("bad", Noop(), (("boom", "noop-stop"),), (FaultOp("noop-stop"),))

    def no_args():
        return None

    class NotAChecker:
        name = "x"

    class GoodChecker:
        name = "always"
        description = "always valid"
        def check(self, history, test=None):
            from jepsenlike.checkers.result import Result
            return Result(True, {}, "")
""")


def install(tmp_path, monkeypatch, dist: str, module: str, groups: dict[str, dict[str, str]]) -> None:
    """A fake installed distribution: a module plus a dist-info with entry points."""
    (tmp_path / f"{module}.py").write_text(PLUGIN_SRC)
    info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    text = ""
    for group, eps in groups.items():
        text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    (info / "entry_points.txt").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_builtins_are_registered_through_the_same_entry_points():
    assert list(entries("nemesis"))[:12] == ["clock", "flaky", "flip-partition", "kill", "kill-cluster",
                                             "kill-elected", "leader-clock", "leader-pause", "partition",
                                             "pause", "shard-move", "slow"]
    assert {"raft", "paxos", "memory"} <= set(entries("systems"))
    assert {"register", "append", "set"} <= set(entries("workloads"))
    assert {"linearizable", "list-append", "set"} <= set(entries("checkers"))
    for kind in KINDS:
        for name, entry in entries(kind).items():
            if entry.distribution == "jepsenlike":
                assert load(kind, name).description, (kind, name)


def test_a_nemesis_plugin_loads_validates_and_builds(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "noop-plugin", "noop_plugin", {
        "jepsenlike.nemesis": {"noop": "noop_plugin:noop_package", "badcycle": "noop_plugin:bad_cycle_package",
                               "noargs": "noop_plugin:no_args", "gone": "noop_plugin:missing"},
    })
    assert {"noop", "badcycle", "noargs", "gone"} <= set(nemesis_names())
    plugin = load("nemesis", "noop")
    assert plugin.distribution == "noop-plugin" and plugin.description == "Does nothing, loudly."
    [pkg] = build_packages(["noop"])
    assert pkg.name == "noop" and pkg.start_fs == {"noop-start"}
    with pytest.raises(PluginError, match=r"nemesis plugin 'badcycle' \(noop_plugin:bad_cycle_package, "
                                          r"distribution noop-plugin\) built a bad package: .*'boom'"):
        build_packages(["badcycle"])
    with pytest.raises(PluginError, match=r"'noargs' .*distribution noop-plugin.* must take one argument"):
        load("nemesis", "noargs")
    with pytest.raises(PluginError, match=r"'gone' .*distribution noop-plugin\) failed to load: AttributeError"):
        load("nemesis", "gone")
    with pytest.raises(ConfigError, match="unknown nemesis 'nope'; available: clock, flaky, flip-partition, kill, kill-cluster, kill-elected, leader-clock, leader-pause, partition, pause, shard-move, slow"):
        build_packages(["nope"])


def test_a_name_registered_by_two_distributions_is_refused_naming_both(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "evil-plugin", "evil_plugin",
            {"jepsenlike.nemesis": {"kill": "evil_plugin:noop_package"}})
    with pytest.raises(PluginError) as e:
        entries("nemesis")
    msg = str(e.value)
    assert "nemesis plugin 'kill' is registered twice" in msg
    assert "distribution jepsenlike" in msg and "evil_plugin:noop_package, distribution evil-plugin" in msg
    monkeypatch.setenv("JEPSENLIKE_NO_PLUGINS", "1")
    assert entries("nemesis")["kill"].distribution == "jepsenlike"


def test_checker_plugins_are_checked_against_the_interface(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "chk-plugin", "chk_plugin", {
        "jepsenlike.checkers": {"always": "chk_plugin:GoodChecker", "broken": "chk_plugin:NotAChecker"},
    })
    assert load("checkers", "always").description == "always valid"
    with pytest.raises(PluginError, match=r"checker plugin 'broken' .*chk-plugin.* needs a check"):
        load("checkers", "broken")


def test_list_shows_every_kind_with_descriptions_and_marks_broken_plugins(tmp_path, monkeypatch, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for title in ("Nemeses (--nemesis):", "Systems (--system):", "Workloads (--workload):", "Checkers (--checkers):"):
        assert title in out
    assert "  partition       Cut peer traffic by a grudge" in out
    install(tmp_path, monkeypatch, "noop-plugin", "noop_plugin", {
        "jepsenlike.nemesis": {"noop": "noop_plugin:noop_package", "gone": "noop_plugin:missing"},
    })
    assert main(["list", "nemesis"]) == 255
    out = capsys.readouterr().out
    assert "Systems" not in out
    assert "noop            Does nothing, loudly.  [noop-plugin]" in out
    assert "gone            BROKEN: nemesis plugin 'gone'" in out
    rows = {r.name: r for r in list_installed()["nemesis"]}
    assert rows["gone"].error and rows["noop"].error is None


def _hist(*events):
    from jepsenlike.history import History

    return History.from_ops([{"index": i, "time": i, "process": p, "type": t, "f": f, "key": 0, "value": v}
                             for i, (p, t, f, v) in enumerate(events)])


def test_the_linearizable_checker_uses_the_workloads_model():
    from jepsenlike.checkers.plugins import LinearizableChecker

    checker = LinearizableChecker()
    # A set history: an add acknowledged before a read that misses it cannot be linearized.
    added = [(0, "invoke", "add", 1), (0, "ok", "add", 1)]
    stale = _hist(*added, (1, "invoke", "read", None), (1, "ok", "read", []))
    fresh = _hist(*added, (1, "invoke", "read", None), (1, "ok", "read", [1]))
    assert checker.check(stale, {"config": {"workload": "set"}}).valid is False
    assert checker.check(fresh, {"config": {"workload": "set"}}).valid is True
    # A register history: a read of a value nobody wrote.
    wrote = [(0, "invoke", "write", 1), (0, "ok", "write", 1)]
    bad = _hist(*wrote, (1, "invoke", "read", None), (1, "ok", "read", 2))
    good = _hist(*wrote, (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert checker.check(bad, {"config": {"workload": "register"}}).valid is False
    assert checker.check(good, {"config": {"workload": "register"}}).valid is True
    unknown = checker.check(good, {"config": {"workload": "no-such-workload"}})
    assert unknown.valid == "unknown" and "declares no sequential model" in unknown.explanation


def test_backends_are_plugins_and_a_system_names_the_ones_it_runs_on():
    from jepsenlike.config import build_config

    assert {"local", "docker", "in-process"} <= set(entries("backends"))
    assert build_config({"system": "memory"}).backend == "in-process"
    assert build_config({"system": "raft", "nemesis": "kill"}).backend == "local"
    with pytest.raises(ConfigError, match=r"^--backend: system 'memory' runs only on in-process; "
                                          r"use --backend in-process$"):
        build_config({"system": "memory", "backend": "local"})
    with pytest.raises(ConfigError, match=r"^--backend: system 'raft' has no in-harness cluster"):
        build_config({"system": "raft", "backend": "in-process"})


def test_options_are_typed_and_a_bad_key_or_value_names_the_valid_ones():
    from jepsenlike.registry import Option, resolve_settings

    opts = (Option("count", int, 1, "how many"), Option("rate", float, 0.5), Option("on", bool, False),
            Option("mode", str, "kill", choices=("kill", "pause")))
    assert resolve_settings("x", opts, {"count": "3", "on": "yes"}) == {
        "count": 3, "rate": 0.5, "on": True, "mode": "kill"}
    assert resolve_settings("x", opts, {"rate": 2, "mode": "pause"})["rate"] == 2.0
    with pytest.raises(ConfigError, match=r"^--option x.cuont: plugin 'x' has no option 'cuont'; "
                                          r"valid: count, rate, on, mode$"):
        resolve_settings("x", opts, {"cuont": "3"})
    with pytest.raises(ConfigError, match=r"^--option x.count: expected int, got '1.5'$"):
        resolve_settings("x", opts, {"count": "1.5"})
    with pytest.raises(ConfigError, match=r"^--option x.mode: 'stop' is not one of kill, pause$"):
        resolve_settings("x", opts, {"mode": "stop"})
    with pytest.raises(ConfigError, match="takes no options"):
        resolve_settings("y", (), {"k": "v"})


def test_a_system_plugin_with_options_gets_typed_settings_or_a_clear_error(tmp_path, monkeypatch):
    from jepsenlike.config import build_config
    from jepsenlike.systems import get_system

    (tmp_path / "opt_plugin.py").write_text(textwrap.dedent("""
        from jepsenlike.registry import Option
        from jepsenlike.systems.memory import MemorySystem

        class Tuned(MemorySystem):
            '''A memory system with a knob.'''
            plugin_options = (Option("knob", int, 3, "a knob"),)
            def __init__(self, settings):
                super().__init__()
                self.knob = settings["knob"]

        class Deaf(MemorySystem):
            '''Declares options but cannot take them.'''
            plugin_options = (Option("knob", int, 3, "a knob"),)
    """))
    info = tmp_path / "opt_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: opt-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[jepsenlike.systems]\ntuned = opt_plugin:Tuned\n"
                                           "deaf = opt_plugin:Deaf\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "opt_plugin", raising=False)
    c = build_config({"system": "tuned", "nemesis": "kill", "plugin_options": ["tuned.knob=7"]})
    assert c.plugin_options == {"tuned": {"knob": 7}} and c.backend == "in-process"
    assert "--option tuned.knob=7" in c.reproduce_command()
    assert get_system("tuned", c.plugin_options).knob == 7
    assert get_system("tuned").knob == 3
    assert build_config({"system": "tuned", "nemesis": "kill"}).plugin_options == {"tuned": {"knob": 3}}
    with pytest.raises(PluginError, match=r"^system plugin 'deaf' \(opt_plugin:Deaf, distribution opt-plugin\) "
                                          r"declares plugin_options but 'Deaf' takes no settings= argument"):
        get_system("deaf")
    # The config file's [options.NAME] table, under the flags key by key; errors name the file key.
    conf = tmp_path / "run.toml"
    conf.write_text('system = "tuned"\nnemesis = ["kill"]\n\n[options.tuned]\nknob = 5\n')
    assert build_config({}, conf).plugin_options == {"tuned": {"knob": 5}}
    assert build_config({"plugin_options": ["tuned.knob=8"]}, conf).plugin_options == {"tuned": {"knob": 8}}
    conf.write_text('system = "tuned"\nnemesis = ["kill"]\n\n[options.tuned]\nknbo = 5\n')
    with pytest.raises(ConfigError, match=r"run.toml: options.tuned.knbo: plugin 'tuned' has no option 'knbo'; "
                                          r"valid: knob$"):
        build_config({}, conf)
    with pytest.raises(ConfigError, match=r"^--option: expected NAME.KEY=VALUE, e.g. crash-all.spare=1, got 'knob'$"):
        build_config({"system": "tuned", "plugin_options": ["knob"]})
