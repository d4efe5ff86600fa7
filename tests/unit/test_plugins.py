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
    assert list(entries("nemesis"))[:6] == ["clock", "flaky", "kill", "partition", "pause", "slow"]
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
    with pytest.raises(ConfigError, match="unknown nemesis 'nope'; available: clock, flaky, kill, partition, pause, slow"):
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
    assert "  partition  Cut peer traffic by a grudge" in out
    install(tmp_path, monkeypatch, "noop-plugin", "noop_plugin", {
        "jepsenlike.nemesis": {"noop": "noop_plugin:noop_package", "gone": "noop_plugin:missing"},
    })
    assert main(["list", "nemesis"]) == 255
    out = capsys.readouterr().out
    assert "Systems" not in out
    assert "noop       Does nothing, loudly.  [noop-plugin]" in out
    assert "gone       BROKEN: nemesis plugin 'gone'" in out
    rows = {r.name: r for r in list_installed()["nemesis"]}
    assert rows["gone"].error and rows["noop"].error is None
