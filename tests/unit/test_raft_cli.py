"""The node command line is a contract with the harness: pin its flags."""

from __future__ import annotations

import argparse

import pytest

from jepsenlike.commands import node
from jepsenlike.models.raft.bugs import BUGS, parse_bugs
from jepsenlike.models.raft.server import build_parser

CONTRACT = [
    "--id", "n1", "--client-addr", "127.0.0.1:9001", "--peer-addr", "127.0.0.1:9101",
    "--peers", "n2=127.0.0.1:9102,n3=127.0.0.1:9103", "--data-dir", "/tmp/d",
    "--bug", "stale-read", "--seed", "3", "--tick-ms", "10", "--election-ticks", "20",
    "--read-mode", "lease", "--no-fsync",
]


def _check(args: argparse.Namespace) -> None:
    assert args.id == "n1"
    assert args.client_addr == ("127.0.0.1", 9001)
    assert args.peer_addr == ("127.0.0.1", 9101)
    assert args.peers == {"n2": ("127.0.0.1", 9102), "n3": ("127.0.0.1", 9103)}
    assert args.data_dir == "/tmp/d" and args.bug == "stale-read" and args.seed == 3
    assert args.tick_ms == 10 and args.election_ticks == 20
    assert args.read_mode == "lease" and args.no_fsync


def test_python_m_command_line_parses_the_contract() -> None:
    _check(build_parser().parse_args(CONTRACT))


def test_jepsenlike_node_raft_takes_the_same_flags(monkeypatch) -> None:
    import jepsenlike.models.raft.server as raft_server

    parser = argparse.ArgumentParser()
    node.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["node", "raft", *CONTRACT])
    _check(args)
    ran = []
    monkeypatch.setattr(raft_server, "run", lambda a: ran.append(a) or 0)
    assert args.func(args) == 0
    assert ran == [args]  # dispatched to the raft server, not paxos


def test_bad_peer_list_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*CONTRACT[:6], "--peers", "n2:9102", "--data-dir", "d"])
    assert "expected ID=HOST:PORT" in capsys.readouterr().err


def test_unknown_bug_names_the_valid_ones() -> None:
    with pytest.raises(ValueError) as e:
        parse_bugs("stale-read,volatile-vot")
    assert "'volatile-vot'" in str(e.value)
    for name in BUGS:
        assert name in str(e.value)


def test_every_bug_is_documented() -> None:
    import pathlib

    doc = (pathlib.Path(__file__).parents[2] / "docs" / "raft-node.md").read_text()
    for name in BUGS:
        assert f"`{name}`" in doc, f"docs/raft-node.md does not describe --bug {name}"
