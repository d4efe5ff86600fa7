"""Fixtures for the docker backend tests: a daemon, the node image, a 3-node raft cluster.

Every test here is skipped, with the reason, when the Docker SDK is missing or no
daemon answers. The node image is built once per session (the debootstrap rootfs
is cached under ~/.cache/jepsenlike, so only the first session on a machine pays
for it); each cluster fixture checks at the end that its run left nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        from jepsenlike.backends.docker.backend import DockerUnavailable, docker_client
    except ImportError as e:  # pragma: no cover - the package is ours
        pytest.skip(f"jepsenlike.backends.docker not importable: {e}")
    try:
        return docker_client(timeout=600)
    except DockerUnavailable as e:
        pytest.skip(f"docker tests need a Docker daemon: {e}")


@pytest.fixture(scope="session")
def node_image(docker_client: Any) -> Any:
    from jepsenlike.backends.docker.image import build_node_image, project_sources

    t0 = time.monotonic()
    image = build_node_image(docker_client, sources=project_sources())
    print(f"\nnode image {image.tag}: built={image.built} in {time.monotonic() - t0:.1f} s {image.steps}")
    return image


def assert_nothing_left(client: Any, run_id: str) -> None:
    from jepsenlike.backends.docker.cleanup import leftovers

    left = {k: [getattr(x, "name", x) for x in v] for k, v in leftovers(client, run_id).items()}
    assert left == {"containers": [], "networks": [], "volumes": []}, left


def wait_leader(backend: Any, timeout: float = 20.0, among: list[str] | None = None) -> str:
    """The id of a leader that acknowledges a write (so it really leads a majority)."""
    from jepsenlike.models.client import KVClient

    nodes = [backend.node(n) for n in (among or backend.node_ids)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = backend.system.leader(nodes)
        if leader is not None:
            c = KVClient(backend.node(leader).client_addr, timeout=2.0)
            try:
                if c.invoke("write", "__probe__", leader)["type"] == "ok":
                    return leader
            finally:
                c.close()
        time.sleep(0.1)
    raise AssertionError(f"no leader among {[n.id for n in nodes]} after {timeout} s")


@pytest.fixture
def cluster(docker_client: Any, node_image: Any, tmp_path: Path) -> Iterator[Any]:
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.systems.raft import RaftSystem

    backend = DockerBackend(
        RaftSystem(), 3, tmp_path / "run", image=node_image.tag, client=docker_client, seed=7,
        clocks=True,
    )
    try:
        backend.start()
        yield backend
    finally:
        backend.teardown()
        assert_nothing_left(docker_client, backend.run_id)
