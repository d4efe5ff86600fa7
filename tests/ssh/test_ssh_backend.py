"""The ssh backend against real sshd hosts: `jepsenlike docker hosts up 3`, then real runs.

One set of 3 hosts serves the whole module (the `hosts` fixture brings them up
with the CLI and takes them down at the end). Each run goes through the real
command line (`jepsenlike run --backend ssh --hosts-file ...`); after each, the
hosts are inspected with `docker exec` for what a run must not leave: a node
process, an iptables rule or chain of ours, a run directory (which holds the
libfaketime control files).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

JEPSENLIKE = [sys.executable, "-m", "jepsenlike"]
REMOTE = "/var/tmp/jepsenlike"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JEPSENLIKE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def docker_client() -> Any:
    if shutil.which("ssh") is None:
        pytest.skip("the ssh backend tests need the OpenSSH client (apt-get install openssh-client)")
    try:
        from jepsenlike.backends.docker.backend import DockerUnavailable, docker_client
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"docker SDK missing: {e}")
    try:
        return docker_client(timeout=600)
    except DockerUnavailable as e:
        pytest.skip(f"ssh tests need a Docker daemon for their hosts: {e}")


@pytest.fixture(scope="module")
def hosts(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("hosts")
    p = cli("docker", "hosts", "up", "3", "--dir", str(d), timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 3 and all(ln.startswith("root@") for ln in lines), p.stdout
    assert (d / "hosts").read_text() == p.stdout
    yield d
    if (d / "hosts.json").exists():
        cli("docker", "hosts", "down", "--dir", str(d))


def containers(client: Any, d: Path) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"jepsenlike.hosts={d}"})


def host_state(client: Any, d: Path) -> dict[str, dict[str, Any]]:
    """Per host: our processes (agent and node), node processes, our iptables lines, run dirs."""
    out = {}
    for c in containers(client, d):
        procs = c.exec_run(["sh", "-c", "ps -eo args | grep '^[^ ]*python.*-m jepsenlike' || true"])
        rules = c.exec_run(["sh", "-c", "iptables -S | grep JEPSENLIKE || true"])
        runs = c.exec_run(["sh", "-c", f"ls {REMOTE}/runs 2>/dev/null || true"])
        lines = procs.output.decode().split("\n")[:-1]
        out[c.name] = {
            "procs": lines,
            "nodes": [ln for ln in lines if "-m jepsenlike.models." in ln],
            "iptables": rules.output.decode().split("\n")[:-1],
            "runs": runs.output.decode().split(),
        }
    return out


def assert_clean(client: Any, d: Path, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        state = host_state(client, d)
        empty = all(not v["procs"] and not v["iptables"] and not v["runs"] for v in state.values())
        if empty or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(state) == 3 and empty, state


def run_ssh(d: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("run", "--backend", "ssh", "--hosts-file", str(d / "hosts"), "--nodes", "3",
               "--store", str(store), "--quiet", *args)


SCHEDULE = [
    {"at": 1.5, "f": "kill", "value": "one"},
    {"at": 3.0, "f": "start", "value": None},
    {"at": 5.0, "f": "pause", "value": "one"},
    {"at": 6.5, "f": "resume", "value": None},
    {"at": 7.5, "f": "start-partition", "value": "majority"},
    {"at": 9.5, "f": "stop-partition", "value": None},
    {"at": 10.0, "f": "bump-clock", "value": "one"},
    {"at": 11.0, "f": "strobe-clock", "value": "one"},
    {"at": 12.5, "f": "reset-clock", "value": None},
]


def test_raft_under_every_nemesis_is_valid_and_every_fault_fires(docker_client, hosts, tmp_path):
    sched = tmp_path / "faults.jsonl"
    sched.write_text("".join(json.dumps(op) + "\n" for op in SCHEDULE))
    p = run_ssh(hosts, tmp_path, "--nemesis", "kill,pause,partition,clock", "--schedule", str(sched),
                "--time-limit", "14", "--warmup", "1", "--seed", "7")
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = next(tmp_path.glob("raft-register/2*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    fired = {f["f"]: f for f in results["nemesis"]["fired"]}
    for op in SCHEDULE:
        assert op["f"] in fired and fired[op["f"]]["error"] is None, (op, fired.get(op["f"]))
    # the partition was a real grudge between real hosts
    assert fired["start-partition"]["value"]["grudge"], fired["start-partition"]
    # the killed node really died and came back: its log (fetched from its host) shows two starts
    killed = fired["kill"]["value"]["nodes"][0]
    log = (run_dir / "nodes" / f"{killed}.log").read_text()
    assert log.count("serving clients on") == 2, log[-2000:]
    for n in ("n1", "n2", "n3"):
        assert "raft.wal" in (run_dir / "nodes" / f"{n}.data.txt").read_text()
    assert_clean(docker_client, hosts, within=2.0)


def test_stale_read_bug_is_caught_under_leader_pause(docker_client, hosts, tmp_path):
    codes = []
    for seed in (1, 2, 3):
        p = run_ssh(hosts, tmp_path / str(seed), "--bug", "stale-read", "--nemesis", "leader-pause",
                    "--time-limit", "12", "--nemesis-interval", "1.5", "--seed", str(seed))
        codes.append(p.returncode)
        assert p.returncode in (0, 1), p.stdout + p.stderr
        if p.returncode == 1:
            break
    assert codes[-1] == 1, f"exit codes {codes}: stale reads never caught in 3 runs"
    assert_clean(docker_client, hosts, within=2.0)


def _start_and_wait_for_partition(docker_client: Any, hosts: Path, store: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*JEPSENLIKE, "run", "--backend", "ssh", "--hosts-file", str(hosts / "hosts"), "--nodes", "3",
         "--store", str(store), "--quiet", "--nemesis", "partition", "--time-limit", "120",
         "--nemesis-interval", "1", "--seed", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = host_state(docker_client, hosts)
            if any(any("-A JEPSENLIKE" in r for r in v["iptables"]) for v in state.values()):
                assert all(len(v["nodes"]) == 1 for v in state.values()), state
                return proc
            assert proc.poll() is None, "the run ended before it partitioned anything"
            time.sleep(0.3)
        raise AssertionError("no partition rule appeared on any host")
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def test_sigkill_of_the_harness_leaves_nothing_on_the_hosts(docker_client, hosts, tmp_path):
    proc = _start_and_wait_for_partition(docker_client, hosts, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # no teardown runs: the agents must end the run themselves
    proc.wait()
    assert_clean(docker_client, hosts, within=10.0)
    p = cli("clean", "--backend", "ssh", "--hosts-file", str(hosts / "hosts"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("nothing to remove") == 3, p.stdout


def test_clean_removes_what_a_dead_agent_left(docker_client, hosts, tmp_path):
    proc = _start_and_wait_for_partition(docker_client, hosts, tmp_path)
    for c in containers(docker_client, hosts):  # the supervisors die first: nodes are orphaned
        r = c.exec_run(["sh", "-c", "kill -9 $(cat /var/tmp/jepsenlike/runs/*/agent.pid)"])
        assert r.exit_code == 0, r.output
    deadline = time.monotonic() + 10
    while any("jepsenlike.backends.ssh.agent" in ln for v in host_state(docker_client, hosts).values()
              for ln in v["procs"]):
        assert time.monotonic() < deadline, "an agent survived kill -9"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    left = host_state(docker_client, hosts)
    assert all(len(v["nodes"]) == 1 and v["runs"] for v in left.values()), left
    assert any(any("-A JEPSENLIKE" in r for r in v["iptables"]) for v in left.values()), left
    p = cli("clean", "--backend", "ssh", "--hosts-file", str(hosts / "hosts"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("killed node n") == 3, p.stdout
    assert p.stdout.count("removed iptables chain JEPSENLIKE") == 3, p.stdout
    assert_clean(docker_client, hosts, within=2.0)


def test_ctrl_c_of_a_run_as_a_sudo_user_leaves_nothing(docker_client, hosts, tmp_path):
    """Log in as `jepsen` (not root; everything remote goes through sudo -n), Ctrl-C mid-run."""
    sudo_hosts = tmp_path / "hosts"
    sudo_hosts.write_text((hosts / "hosts").read_text().replace("root@", "jepsen@"))
    proc = subprocess.Popen(
        [*JEPSENLIKE, "run", "--backend", "ssh", "--hosts-file", str(sudo_hosts), "--nodes", "3",
         "--store", str(tmp_path), "--quiet", "--nemesis", "partition,kill", "--time-limit", "120",
         "--nemesis-interval", "1", "--seed", "9"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        history = None
        while time.monotonic() < deadline and history is None:
            found = list(tmp_path.glob("raft-register/2*/history.jsonl"))
            if found and found[0].stat().st_size > 2000 and any(
                    any("-A JEPSENLIKE" in r for r in v["iptables"])
                    for v in host_state(docker_client, hosts).values()):
                history = found[0]
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        assert history is not None, "the run never partitioned anything"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert (history.parent / "nodes" / "n1.log").read_text().count("serving clients on") >= 1
    assert_clean(docker_client, hosts, within=2.0)


def test_a_system_host_recipe_runs_once_per_host(docker_client, hosts, tmp_path):
    """The backend API directly, with a raft whose host recipe leaves a mark on each host."""
    from jepsenlike.backends.ssh.backend import SSHBackend
    from jepsenlike.systems.raft import RaftSystem

    class Marked(RaftSystem):
        def host_recipe(self) -> list[str]:
            return ['echo "$(hostname)" >> /var/tmp/recipe-ran']

    for attempt in (1, 2):  # the second start finds the recipe's marker and skips it
        b = SSHBackend(Marked(), 3, tmp_path / str(attempt),
                       settings={"hosts_file": str(hosts / "hosts")})
        try:
            b.start()  # every node answers its readiness probe, or this raises
        finally:
            b.teardown()
    for c in containers(docker_client, hosts):
        r = c.exec_run(["cat", "/var/tmp/recipe-ran"])
        assert r.exit_code == 0 and r.output.decode().split() == [c.name.rsplit("-", 1)[1]], r
    assert_clean(docker_client, hosts, within=2.0)


def test_hosts_down_removes_containers_network_and_files(docker_client, hosts):
    meta = json.loads((hosts / "hosts.json").read_text())
    p = cli("docker", "hosts", "down", "--dir", str(hosts))
    assert p.returncode == 0, p.stdout + p.stderr
    flt = {"label": f"jepsenlike.run={meta['run']}"}
    assert docker_client.containers.list(all=True, filters=flt) == []
    assert docker_client.networks.list(filters=flt) == []
    assert not any((hosts / f).exists() for f in ("hosts", "hosts.json", "id_ed25519", "known_hosts"))
