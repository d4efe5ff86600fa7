"""How long a docker-backed cluster takes to come up, cold and warm.

Measures, on this machine, seconds from ``DockerBackend(...).start()`` to:

* ``ready``  -- ``start()`` returned: every node answers ``GET /status``;
* ``leader`` -- additionally a leader acknowledged a write (the cluster serves),

for:

1. a fully cold start (only with ``--cold-rootfs``): no rootfs cache (a fresh
   temporary cache directory), no images -- debootstrap, import, build, start;
2. a cold image: the rootfs tarball cached, base and node images removed --
   import, build, start;
3. a warm image, 3 nodes and 5 nodes, ``--repeat`` times each (median, min,
   max), with the breakdown of the median run (image lookup, network, create,
   start, ready) and the teardown time.

Images are rebuilt by the cold cases and stay afterwards (they are a cache);
containers, networks and volumes are removed after each case.

Run:  python benchmarks/bench_docker.py [--repeat 5] [--cold-rootfs]
Target (not asserted): a 5-node cluster ready in < 10 s with a warm image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jepsenlike.backends.docker.backend import DockerBackend, docker_client
from jepsenlike.backends.docker.cleanup import leftovers, remove_images
from jepsenlike.backends.docker.image import CACHE_ENV, build_node_image, project_sources
from jepsenlike.models.client import KVClient
from jepsenlike.systems.raft import RaftSystem


def wait_leader(b: DockerBackend, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = b.system.leader(b.nodes, timeout=0.5)
        if leader:
            c = KVClient(b.node(leader).client_addr, timeout=2.0)
            try:
                if c.invoke("write", "bench", 1)["type"] == "ok":
                    return
            finally:
                c.close()
        time.sleep(0.02)
    raise RuntimeError(f"no leader after {timeout} s")


def one_start(client: Any, n: int, image: str | None, work: Path) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix="bench-docker-", dir=work))
    b = DockerBackend(RaftSystem(), n, run_dir, image=image, client=client)
    try:
        t0 = time.monotonic()
        b.start()
        ready = time.monotonic() - t0
        wait_leader(b)
        leader = time.monotonic() - t0
    finally:
        t1 = time.monotonic()
        b.teardown()
        down = time.monotonic() - t1
        shutil.rmtree(run_dir, ignore_errors=True)
    left = leftovers(client, b.run_id)
    if any(left.values()):
        raise RuntimeError(f"run {b.run_id} left {left}")
    return {**b.timings, "ready": ready, "leader": leader, "teardown": down}


def fmt(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="warm starts per cluster size")
    ap.add_argument(
        "--cold-rootfs", action="store_true",
        help="also time a start with no rootfs cache (runs debootstrap: minutes)",
    )
    args = ap.parse_args()
    client = docker_client(timeout=900)
    work = Path(tempfile.mkdtemp(prefix="bench-docker-"))
    rows: list[tuple[str, str, str, str]] = []
    try:
        if args.cold_rootfs:
            remove_images(client)
            saved = os.environ.get(CACHE_ENV)
            os.environ[CACHE_ENV] = str(work / "cache")
            try:
                r = one_start(client, 3, None, work)
            finally:
                if saved is None:
                    os.environ.pop(CACHE_ENV, None)
                else:
                    os.environ[CACHE_ENV] = saved
                shutil.rmtree(work / "cache", ignore_errors=True)
            rows.append(("cold: debootstrap + import + build, 3 nodes", fmt([r["ready"]]),
                         fmt([r["leader"]]), f"image {r['image']:.1f} s"))
        remove_images(client)
        r = one_start(client, 3, None, work)
        rows.append(("cold image (rootfs cached), 3 nodes", fmt([r["ready"]]), fmt([r["leader"]]),
                     f"image {r['image']:.1f} s (import + build)"))
        # One snapshot of the tree for the warm runs: other people editing it must not
        # turn a warm start into a build.
        image = build_node_image(client, sources=project_sources())
        for n in (3, 5):
            runs = [one_start(client, n, image.tag, work) for _ in range(args.repeat)]
            med = sorted(runs, key=lambda x: x["ready"])[len(runs) // 2]
            parts = ", ".join(f"{k} {med[k]:.2f}" for k in ("image", "network", "create", "start", "wait_ready"))
            rows.append((
                f"warm image, {n} nodes (x{args.repeat})",
                fmt([x["ready"] for x in runs]), fmt([x["leader"] for x in runs]),
                f"median run: {parts}; teardown {statistics.median(x['teardown'] for x in runs):.2f} s",
            ))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = client.version()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, Docker "
          f"{info.get('Version')}, storage {client.info().get('Driver')}; seconds")
    w0 = max(len(r[0]) for r in rows)
    print(f"{'case':<{w0}}  {'ready s':>20}  {'leader s':>20}  notes")
    print(f"{'-' * w0}  {'-' * 20}  {'-' * 20}  -----")
    for a, b, c, d in rows:
        print(f"{a:<{w0}}  {b:>20}  {c:>20}  {d}")


if __name__ == "__main__":
    main()
