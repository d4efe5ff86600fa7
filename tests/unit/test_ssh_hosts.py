"""Hosts files and the ssh command lines of the ssh backend (no host needed)."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
import time

import pytest

from jepsenlike.backends.ssh.hosts import SSH, Host, parse_hosts
from jepsenlike.errors import ConfigError


def test_parse_hosts_user_port_key_and_defaults():
    hosts = parse_hosts(
        "# cluster\n"
        "10.0.0.1\n"
        "admin@10.0.0.2:2222 key=/k/id known_hosts=/k/kh addr=192.168.1.2  # second\n"
        "\n"
        "ubuntu@db3.example /k/other\n",
        user="debian", key="/k/default",
    )
    assert hosts == [
        Host("10.0.0.1", "debian", 22, "/k/default", None, None),
        Host("10.0.0.2", "admin", 2222, "/k/id", "/k/kh", "192.168.1.2"),
        Host("db3.example", "ubuntu", 22, "/k/other", None, None),
    ]
    assert hosts[1].ip == "192.168.1.2"
    assert str(hosts[1]) == "admin@10.0.0.2:2222"


@pytest.mark.parametrize(("text", "message"), [
    ("", "lists no host"),
    ("h1:ssh\n", "port 'ssh' is not a number"),
    ("h1 colour=red\n", "unknown setting 'colour'"),
    ("h1\nh1\n", "lists a host twice"),
    ("@h1\n", r"hosts.txt:1: '@h1' is not \[user@\]host\[:port\]"),
])
def test_parse_hosts_errors_name_the_line_and_the_fix(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_hosts(text, "hosts.txt")


def test_agent_ends_the_run_when_the_harness_goes_silent(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jepsenlike.backends.ssh.agent", str(run_dir),
                             "--lease", "1", "--no-net"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    assert json.loads(proc.stdout.readline())["ok"]
    proc.stdin.write(json.dumps({"op": "spawn", "node": "n1", "argv": ["sleep", "60"]}) + "\n")
    proc.stdin.flush()
    pid = json.loads(proc.stdout.readline())["pid"]
    assert proc.wait(timeout=15) == 0  # stdin still open, but no request for over a second
    assert not run_dir.exists()
    with pytest.raises(ProcessLookupError):
        __import__("os").kill(pid, 0)


def test_ssh_argv_checks_host_keys_reuses_connections_and_uses_sudo_for_non_root(tmp_path):
    ssh = SSH(Host("10.0.0.5", "admin", 2200, "/k/id", "/k/kh"), connect_timeout=7,
              control_dir=str(tmp_path))
    argv = ssh.argv(["iptables", "-S"])
    opts = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"BatchMode=yes", "ConnectTimeout=7", "StrictHostKeyChecking=yes", "ControlMaster=auto",
            f"ControlPath={tmp_path}/%C", "IdentityFile=/k/id", "UserKnownHostsFile=/k/kh"} <= opts
    assert argv[argv.index("-p") + 1] == "2200" and argv[argv.index("-l") + 1] == "admin"
    assert argv[-3:] == ["10.0.0.5", "--", "sudo -n iptables -S"]
    root = SSH(Host("10.0.0.6"), host_key_checking="accept-new", control_dir=str(tmp_path))
    assert root.argv(["id"])[-1] == "id"
    assert "StrictHostKeyChecking=accept-new" in root.argv(["id"])
    with pytest.raises(ConfigError, match="host_key_checking"):
        SSH(Host("h"), host_key_checking="maybe")


def test_agent_protocol_runs_signals_and_cleans_up_on_end_of_input(tmp_path):
    """The agent as a local process (--no-net: this machine's firewall is not ours; the
    iptables part runs on real hosts in tests/ssh): spawn, status, kill, read, and on end of
    input every node is killed and the run dir is gone."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jepsenlike.backends.ssh.agent", str(run_dir),
                             "--lease", "30", "--no-net"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin and proc.stdout
    hello = json.loads(proc.stdout.readline())
    assert hello["ok"] and hello["pid"] == proc.pid, hello

    def call(**req):
        proc.stdin.write(json.dumps(req) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    r = call(op="spawn", node="n1", argv=["sh", "-c", "echo hello; exec sleep 60"], env={})
    assert r["ok"], r
    assert call(op="status", node="n1")["running"] is True
    deadline = time.monotonic() + 10
    log = ""
    while "hello" not in log and time.monotonic() < deadline:
        log = base64.b64decode(call(op="read", path="nodes/n1.log")["data"]).decode()
        time.sleep(0.05)
    assert "hello" in log
    assert call(op="signal", node="n1", sig="KILL") == {"ok": True, "running": False,
                                                         "returncode": -9}
    assert call(op="read", path="../../etc/passwd")["ok"] is False
    r = call(op="spawn", node="n2", argv=["sleep", "60"], env={})
    pid = r["pid"]
    proc.stdin.close()  # the harness is gone
    assert proc.wait(timeout=20) == 0
    assert not run_dir.exists()
    with pytest.raises(ProcessLookupError):
        import os
        os.kill(pid, 0)


def test_install_script_is_valid_sh():
    from jepsenlike.backends.ssh.backend import INSTALL_SCRIPT

    assert subprocess.run(["sh", "-n", "-c", INSTALL_SCRIPT]).returncode == 0
    assert shlex.split("a b")  # the script travels as one shlex-quoted argument


def test_docker_clean_keeps_hosts_while_their_hosts_file_exists(tmp_path):
    from jepsenlike.backends.docker.cleanup import owner_alive

    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("root@10.0.0.1\n")
    assert owner_alive(f"hosts:{hosts_file}") is True
    hosts_file.unlink()
    assert owner_alive(f"hosts:{hosts_file}") is False


def test_run_hosts_file_flag_becomes_the_ssh_option(tmp_path):
    from jepsenlike.cli import build_parser

    args = build_parser().parse_args(["run", "--backend", "ssh", "--hosts-file", "h.txt",
                                      "--option", "ssh.user=admin"])
    assert args.hosts_file == "h.txt"
    from jepsenlike.backends.ssh.backend import SSHBackend
    from jepsenlike.systems.raft import RaftSystem

    with pytest.raises(ConfigError, match="needs the hosts: --hosts-file"):
        SSHBackend(RaftSystem(), 3, tmp_path)
    (tmp_path / "h").write_text("a.example\nb.example\n")
    with pytest.raises(ConfigError, match="lists 2 hosts; give --nodes 2"):
        SSHBackend(RaftSystem(), 3, tmp_path, settings={"hosts_file": str(tmp_path / "h")})


def test_a_system_with_a_container_recipe_needs_a_host_recipe(tmp_path):
    from jepsenlike.backends.ssh.backend import SSHBackend, host_recipe
    from jepsenlike.systems.base import ContainerRecipe
    from jepsenlike.systems.raft import RaftSystem

    class Packaged(RaftSystem):
        name = "packaged"

        def container_recipe(self):
            return ContainerRecipe(lines=["RUN apt-get install -y etcd-server"])

    class Installed(Packaged):
        def host_recipe(self):
            return ["apt-get install -y etcd-server"]

    (tmp_path / "h").write_text("a.example\n")
    with pytest.raises(ConfigError, match="give it a host_recipe"):
        SSHBackend(Packaged(), 1, tmp_path, settings={"hosts_file": str(tmp_path / "h")})
    assert host_recipe(Installed()) == ["apt-get install -y etcd-server"]
    assert host_recipe(RaftSystem()) == []
