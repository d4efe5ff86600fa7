"""The node image: built without a registry, cached by its inputs, and able to run a node."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.docker


def test_image_is_labelled_and_cached_by_inputs(docker_client: Any, node_image: Any) -> None:
    from jepsenlike.backends.docker.image import (
        LABEL_HASH,
        LABEL_KIND,
        NODE_REPO,
        build_node_image,
        project_sources,
        rootfs_tarball_path,
    )

    assert node_image.tag == f"{NODE_REPO}:{node_image.inputs_hash[:12]}"
    labels = docker_client.images.get(node_image.tag).labels
    assert labels[LABEL_KIND] == "node"
    assert labels[LABEL_HASH] == node_image.inputs_hash
    assert docker_client.images.get(node_image.base).labels[LABEL_KIND] == "base"
    assert rootfs_tarball_path().is_file()  # later sessions skip debootstrap
    # The same inputs find the same image without building. (Other engineers may be
    # editing the tree, so the inputs are one snapshot, taken after the first build.)
    snapshot = project_sources()
    first = build_node_image(docker_client, sources=snapshot)
    again = build_node_image(docker_client, sources=snapshot)
    assert (again.tag, again.built, again.steps) == (first.tag, False, {})
    edited = {**snapshot, "jepsenlike/__init__.py": snapshot["jepsenlike/__init__.py"] + b"#"}
    from jepsenlike.backends.docker.image import dockerfile_from_rootfs, inputs_hash

    assert inputs_hash(dockerfile_from_rootfs(node_image.base), node_image.base, edited)[:12] != first.tag[-12:]


def test_inputs_hash_follows_every_input() -> None:
    from jepsenlike.backends.docker.image import dockerfile_from_rootfs, inputs_hash

    files = {"jepsenlike/a.py": b"x = 1\n", "jepsenlike/b.py": b""}
    df = dockerfile_from_rootfs("jepsenlike-base:k")
    h = inputs_hash(df, "base", files)
    assert inputs_hash(df, "base", dict(reversed(files.items()))) == h  # order is no input
    assert inputs_hash(df, "base", {**files, "jepsenlike/a.py": b"x = 2\n"}) != h
    assert inputs_hash(df, "base", {**files, "jepsenlike/c.py": b""}) != h
    assert inputs_hash(df + "#", "base", files) != h
    assert inputs_hash(df, "other", files) != h


def test_project_sources_include_the_namespaced_packages() -> None:
    from jepsenlike.backends.docker.image import project_sources

    files = project_sources()
    for must in (
        "jepsenlike/__init__.py", "jepsenlike/models/raft/__main__.py",
        "jepsenlike/nemesis/__init__.py", "jepsenlike/checkers/__init__.py",
    ):
        assert must in files
    assert not any("__pycache__" in name for name in files)


def test_image_runs_a_node_module_and_has_the_fault_tools(docker_client: Any, node_image: Any) -> None:
    from jepsenlike.backends.docker.image import FAKETIME_LIB

    script = (
        "python3 -c 'import sys; print(sys.version_info[:2])' && "
        "python3 -m jepsenlike.models.raft --help >/dev/null && echo raft-ok && "
        f"test -f {FAKETIME_LIB} && echo faketime-ok && iptables -V && tc -V >/dev/null && echo tc-ok"
    )
    out = docker_client.containers.run(
        node_image.tag, ["sh", "-c", script], remove=True, network_disabled=True
    ).decode()
    assert "(3, 11)" in out
    assert "raft-ok" in out and "faketime-ok" in out and "tc-ok" in out
    assert "nf_tables" in out
