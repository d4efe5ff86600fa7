"""A system's own container recipe: a derived image FROM the node image, cached by its inputs.

The system here is the reference Raft node started through a wrapper script that
only its recipe puts into the image, so the cluster serves only if the recipe
was applied. Images built here are removed at the end of the module.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jepsenlike.systems.base import ContainerRecipe, NodeSpec
from jepsenlike.systems.raft import RaftSystem

from .conftest import assert_nothing_left, wait_leader

WRAPPER = b'#!/bin/sh\n# installed by the container recipe\nexec python3 -m jepsenlike.models.raft "$@"\n'


class WrappedRaft(RaftSystem):
    """Raft, started as ``mynode`` -- a program only the recipe installs."""

    name = "wrapped-raft"

    def container_recipe(self) -> ContainerRecipe:
        return ContainerRecipe(
            lines=[
                "COPY mynode /usr/local/bin/mynode",
                "ENV MYNODE_FLAVOUR=from-recipe",
                "RUN test -x /usr/local/bin/mynode",
            ],
            files={"mynode": WRAPPER},
        )

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        argv = super().node_command(node, peers, bug=bug, seed=seed)
        assert argv[:4] == [sys.executable, "-P", "-m", self.module]
        return ["mynode", *argv[4:]]


class BrokenRecipe(RaftSystem):
    name = "broken-recipe"

    def container_recipe(self) -> ContainerRecipe:
        return ContainerRecipe(lines=["RUN echo recipe-marker-output && exit 3"])


@pytest.fixture(scope="module")
def built_tags(docker_client: Any) -> Iterator[list[str]]:
    """Tags of the system images this module builds; removed at the end."""
    tags: list[str] = []
    yield tags
    import docker.errors

    for tag in tags:
        try:
            docker_client.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass


# -- without a daemon -------------------------------------------------------------


def test_recipe_hash_follows_lines_files_modes_and_node_image(tmp_path: Path) -> None:
    from jepsenlike.backends.docker.recipe import recipe_context, recipe_hash

    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho one\n")
    pkg = tmp_path / "pkg"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"junk")

    def recipe(**kw: Any) -> ContainerRecipe:
        args: dict[str, Any] = {
            "lines": ["COPY run.sh pkg /opt/mine/"],
            "files": {"run.sh": script, "pkg": pkg, "conf": b"a=1\n"},
        }
        return ContainerRecipe(**{**args, **kw})

    h = recipe_hash(recipe(), "jepsenlike-node:aaa")
    assert recipe_hash(recipe(), "jepsenlike-node:aaa") == h
    files, modes = recipe_context(recipe())
    assert sorted(files) == ["conf", "pkg/__init__.py", "run.sh"]
    assert modes["run.sh"] == 0o644 and modes["conf"] == 0o644

    script.write_text("#!/bin/sh\necho two\n")  # a host file's bytes
    h2 = recipe_hash(recipe(), "jepsenlike-node:aaa")
    assert h2 != h
    os.chmod(script, 0o755)  # its execute bit
    assert recipe_context(recipe())[1]["run.sh"] == 0o755
    h3 = recipe_hash(recipe(), "jepsenlike-node:aaa")
    assert h3 != h2
    (pkg / "extra.py").write_text("")  # a file added to a copied directory
    h4 = recipe_hash(recipe(), "jepsenlike-node:aaa")
    assert h4 != h3
    assert recipe_hash(recipe(files={"run.sh": script, "pkg": pkg, "conf": b"a=2\n"}), "jepsenlike-node:aaa") != h4
    assert recipe_hash(recipe(lines=["COPY run.sh /opt/"]), "jepsenlike-node:aaa") != h4
    assert recipe_hash(recipe(), "jepsenlike-node:bbb") != h4  # a new node image
    assert recipe_hash(recipe(), "jepsenlike-node:aaa") == h4


def test_recipe_refuses_what_the_backend_owns(tmp_path: Path) -> None:
    from jepsenlike.backends.docker.recipe import recipe_context
    from jepsenlike.errors import ConfigError

    for line in ("FROM debian", "ENTRYPOINT [\"x\"]", "cmd x"):
        with pytest.raises(ConfigError, match="not allowed"):
            ContainerRecipe(lines=[line])
    ContainerRecipe(lines=["RUN echo \\", "  cmd is an argument here"])  # a continued line
    for dest in ("/abs", "../up", "a/../../b", "Dockerfile"):
        with pytest.raises(ConfigError, match="context paths"):
            ContainerRecipe(files={dest: b""})
    with pytest.raises(ConfigError, match="does not exist"):
        recipe_context(ContainerRecipe(files={"x": tmp_path / "missing"}))
    assert RaftSystem().container_recipe() is None  # the reference nodes need none


# -- with a daemon ----------------------------------------------------------------


@pytest.mark.docker
def test_system_with_recipe_runs_on_the_docker_backend(
    docker_client: Any, node_image: Any, built_tags: list[str], tmp_path: Path
) -> None:
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.backends.docker.image import LABEL_HASH, LABEL_KIND
    from jepsenlike.backends.docker.recipe import LABEL_SYSTEM, SYSTEM_REPO, build_system_image

    system = WrappedRaft()
    backend = DockerBackend(system, 3, tmp_path / "run", image=node_image.tag, client=docker_client, seed=3)
    try:
        backend.start()
        assert backend.image is not None
        built_tags.append(backend.image.tag)
        assert backend.image_tag == backend.image.tag
        assert backend.image.tag.startswith(f"{SYSTEM_REPO}:wrapped-raft-")
        assert backend.image.base == backend.node_image_tag == node_image.tag
        labels = docker_client.images.get(backend.image.tag).labels
        assert labels[LABEL_KIND] == "system"
        assert labels[LABEL_SYSTEM] == "wrapped-raft"
        assert labels[LABEL_HASH] == backend.image.inputs_hash
        info = docker_client.api.inspect_container(backend.containers["n1"])
        assert info["Config"]["Image"] == backend.image.tag
        assert "mynode" in info["Config"]["Cmd"]

        rc, out = backend.exec("n2", ["sh", "-c", "cat /usr/local/bin/mynode; echo \"$MYNODE_FLAVOUR\""])
        assert rc == 0, out
        assert WRAPPER.decode() in out and "from-recipe" in out

        leader = wait_leader(backend)
        client = system.open_client(backend.node(leader), timeout=3.0)
        try:
            assert client.invoke("write", 5, "hello")["type"] == "ok"
            r = client.invoke("read", 5)
            assert (r["type"], r["value"]) == ("ok", "hello")
        finally:
            client.close()
    finally:
        backend.teardown()
        assert_nothing_left(docker_client, backend.run_id)

    # The same recipe on the same node image is found, not rebuilt.
    again = build_system_image(docker_client, system.name, system.container_recipe(), node_image=node_image.tag)
    assert (again.tag, again.built) == (backend.image.tag, False)


@pytest.mark.docker
def test_failing_recipe_names_the_system_and_the_step(
    docker_client: Any, node_image: Any, built_tags: list[str], tmp_path: Path
) -> None:
    from jepsenlike.backends.docker.backend import DockerBackend
    from jepsenlike.backends.docker.recipe import RecipeBuildError

    backend = DockerBackend(BrokenRecipe(), 3, tmp_path / "run", image=node_image.tag, client=docker_client)
    try:
        with pytest.raises(RecipeBuildError) as info:
            backend.start()
    finally:
        backend.teardown()
        assert_nothing_left(docker_client, backend.run_id)
    err = info.value
    assert err.system == "broken-recipe"
    assert err.step is not None and "RUN echo recipe-marker-output && exit 3" in err.step
    assert "non-zero code: 3" in err.error
    assert any("recipe-marker-output" in line for line in err.tail)
    message = str(err)
    assert "system 'broken-recipe'" in message
    assert re.search(r"at Step 2/\d+ : RUN echo recipe-marker-output && exit 3: ", message), message
    assert "recipe-marker-output" in message.split("last lines of the build log:", 1)[1]
