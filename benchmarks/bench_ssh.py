"""The ssh backend against local and docker, with the same system (3 raft nodes).

Measures, per backend:

* ``ready s``   -- ``start()`` until every node answers (ssh: wheel lookup, install
  check, agents, nodes; docker: image lookup, network, containers; local: processes);
* ``leader s``  -- further until a leader acknowledges a write;
* one fault action each, seconds for the backend call to return: ``kill``
  (SIGKILL and reap), ``restart``, ``pause``, ``resume``, ``grudge`` (cut one
  node off: rules on every node), ``heal``, ``clock`` (a bump);
* ``ops/s``     -- acknowledged writes per second from 4 client threads to the
  leader for ``--seconds`` s (no faults);
* ``teardown s``.

The ssh backend needs hosts: ``--hosts-file FILE`` (default: start 3 with
``jepsenlike docker hosts up`` in a temporary directory and take them down
after). The first ssh start on fresh hosts also installs the wheel; the run
here is a second start, so the figure is the steady one (the install time of
the first is printed separately).

Run:  python benchmarks/bench_ssh.py [--seconds 5] [--backends local,docker,ssh] [--hosts-file F]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jepsenlike.backends import make_backend
from jepsenlike.models.client import KVClient
from jepsenlike.systems.raft import RaftSystem


def wait_leader(b: Any, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = b.system.leader(b.nodes, timeout=0.5)
        if leader:
            try:
                if KVClient(b.node(leader).client_addr, timeout=2.0).invoke(
                        "write", "__bench__", 1)["type"] == "ok":
                    return str(leader)
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("no leader acknowledged a write")


def throughput(b: Any, leader: str, seconds: float, threads: int = 4) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        c = KVClient(b.node(leader).client_addr, timeout=2.0)
        k = 0
        while time.monotonic() < stop:
            k += 1
            try:
                if c.invoke("write", f"k{i}", k)["type"] == "ok":
                    counts[i] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds


def timed(fn: Any, *args: Any) -> float:
    t0 = time.monotonic()
    fn(*args)
    return time.monotonic() - t0


def bench(name: str, run_dir: Path, seconds: float, options: dict[str, dict[str, Any]]) -> dict[str, float]:
    system = RaftSystem()
    from jepsenlike.backends import CLOCK, backend_capabilities

    clocks = CLOCK in backend_capabilities(name, system, 3)
    b = make_backend(name, system, 3, run_dir, ready_timeout=60, clocks=clocks,
                     plugin_options=options)
    row: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        b.start()
        row["ready s"] = time.monotonic() - t0
        leader = wait_leader(b)
        row["leader s"] = time.monotonic() - t0
        victim = next(n for n in b.node_ids if n != leader)
        row["kill"] = timed(b.kill, victim)
        row["restart"] = timed(b.restart, victim)
        row["pause"] = timed(b.pause, victim)
        row["resume"] = timed(b.resume, victim)
        others = [n for n in b.node_ids if n != victim]
        grudge = {victim: set(others), **{n: {victim} for n in others}}
        row["grudge"] = timed(b.apply_grudge, grudge)
        row["heal"] = timed(b.heal_network)
        row["clock"] = float("nan")
        if clocks:
            row["clock"] = timed(b.clock(victim).bump, 5.0)
            b.clock(victim).reset()
        leader = wait_leader(b)
        row["ops/s"] = throughput(b, leader, seconds)
    finally:
        t0 = time.monotonic()
        b.teardown()
        row["teardown s"] = time.monotonic() - t0
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--backends", default="local,docker,ssh")
    ap.add_argument("--hosts-file")
    args = ap.parse_args()
    names = args.backends.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ssh-"))
    hosts_dir = None
    rows: dict[str, dict[str, float]] = {}
    try:
        options: dict[str, dict[str, Any]] = {}
        if "ssh" in names:
            hosts_file = args.hosts_file
            if not hosts_file:
                from jepsenlike.backends.ssh.dockerhosts import hosts_up

                hosts_dir = tmp / "hosts"
                t0 = time.monotonic()
                hosts_up(3, hosts_dir)
                print(f"docker hosts up 3: {time.monotonic() - t0:.1f} s")
                hosts_file = str(hosts_dir / "hosts")
            options = {"ssh": {"hosts_file": hosts_file}}
            t0 = time.monotonic()
            b = make_backend("ssh", RaftSystem(), 3, tmp / "install", plugin_options=options)
            b.start()
            print(f"first ssh start (wheel + install if needed): {time.monotonic() - t0:.1f} s "
                  f"{ {k: round(v, 2) for k, v in b.timings.items()} }")
            b.teardown()
        for name in names:
            rows[name] = bench(name, tmp / name, args.seconds, options if name == "ssh" else {})
    finally:
        if hosts_dir is not None:
            from jepsenlike.backends.ssh.dockerhosts import hosts_down

            hosts_down(hosts_dir)
    cols = list(next(iter(rows.values())))
    print()
    print(f"{'backend':<8}" + "".join(f"{c:>11}" for c in cols))
    for name, row in rows.items():
        print(f"{name:<8}" + "".join(
            f"{row[c]:>11.0f}" if c == "ops/s" else f"{row[c]:>11.3f}" for c in cols))
    print("\nfault columns: seconds for the backend call to return (one action each)")


if __name__ == "__main__":
    main()
