"""Nothing is left behind: Ctrl-C during a run, a harness killed with SIGKILL, `docker clean`."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import assert_nothing_left

pytestmark = pytest.mark.docker

HARNESS = textwrap.dedent(
    """
    import os, signal, sys, time
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.systems.raft import RaftSystem

    image, run_dir, mode = sys.argv[1:4]
    with DockerBackend(RaftSystem(), 2, run_dir, image=image) as b:
        b.start()
        print("ready", b.run_id, flush=True)
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit: a hard crash
        time.sleep(120)  # until SIGINT
    """
)


def start_harness(image: str, tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, image, str(tmp_path / "run"), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise AssertionError(f"harness did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[1]


def run_docker_command(*argv: str) -> int:
    from jepsenlike.commands import docker as docker_command

    parser = argparse.ArgumentParser(prog="jepsenlike")
    docker_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["docker", *argv])
    return int(args.func(args))


def test_ctrl_c_tears_the_run_down(docker_client: Any, node_image: Any, tmp_path: Path) -> None:
    from jepsenlike.backends.docker.cleanup import leftovers

    proc, run_id = start_harness(node_image.tag, tmp_path, "sleep")
    try:
        assert len(leftovers(docker_client, run_id)["containers"]) == 2
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # KeyboardInterrupt propagated after the teardown
    assert_nothing_left(docker_client, run_id)
    assert (tmp_path / "run" / "nodes" / "n1.log").stat().st_size > 0


def test_clean_removes_a_crashed_run_and_keeps_live_ones(
    docker_client: Any, node_image: Any, cluster: Any, tmp_path: Path, capsys: Any
) -> None:
    from jepsenlike.backends.docker.cleanup import leftovers

    proc, dead_run = start_harness(node_image.tag, tmp_path, "crash")
    assert proc.wait(30) == -signal.SIGKILL
    left = leftovers(docker_client, dead_run)
    assert len(left["containers"]) == 2 and len(left["networks"]) == 1 and len(left["volumes"]) == 2
    assert run_docker_command("clean") == 0
    out = capsys.readouterr().out
    assert "removed 2 containers" in out and "removed 1 networks" in out
    assert cluster.run_id in out  # named as kept: its harness (this process) lives
    assert_nothing_left(docker_client, dead_run)
    live = leftovers(docker_client, cluster.run_id)
    assert len(live["containers"]) == 3 and all(c.status == "running" for c in live["containers"])
    assert docker_client.images.get(node_image.tag)  # images are kept without --images
    assert os.path.isdir(tmp_path / "run" / "nodes" / "n1" / "control")  # host dirs of a crash stay
