"""System images: a system's :class:`~jepsenlike.systems.base.ContainerRecipe` on top of the node image.

Theory of operation
-------------------
A :class:`~jepsenlike.systems.base.System` whose nodes need more than
jepsenlike's node image returns a recipe from
:meth:`~jepsenlike.systems.base.System.container_recipe`: Dockerfile lines and
files for the build context. :func:`build_system_image` turns it into an image:

1. the node image first -- the registry-free one, or (``recipe.base_image``)
   Path B FROM the user's image -- found or built as usual;
2. :func:`recipe_context` reads every file of the recipe (bytes as given; host
   files and directories from disk, with their execute bit);
3. the Dockerfile is ``FROM <node image tag>`` plus the recipe's lines; the tag
   is ``jepsenlike-system:<system name>-<hash12>``, the hash
   (:func:`~jepsenlike.backends.docker.image.inputs_hash`) covering that Dockerfile --
   so the node image's own input hash, which its tag carries -- and every
   context file's name, bytes and mode. An unchanged recipe finds its image;
   any change builds a new one, in seconds (only the recipe's layers);
4. the image is labelled like the others (``jepsenlike.kind=system``,
   ``jepsenlike.inputs-hash``, plus ``jepsenlike.system=<name>``), so
   ``jepsenlike docker clean --images`` removes it; after a build only the
   :data:`KEEP_SYSTEM_IMAGES` newest images of that system are kept.

A failing build raises :class:`RecipeBuildError`, which names the system, the
Dockerfile step that failed and the last lines of the build log.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from jepsenlike.backends.docker.image import (
    LABEL_HASH,
    LABEL_KIND,
    BuildFailure,
    ImageBuildError,
    NodeImage,
    Progress,
    _context_tar,
    _image_exists,
    _quiet,
    _walk,
    build_node_image,
    docker_build,
    inputs_hash,
)
from jepsenlike.errors import ConfigError
from jepsenlike.systems.base import ContainerRecipe

SYSTEM_REPO = "jepsenlike-system"
LABEL_SYSTEM = "jepsenlike.system"
#: Images kept per system after a build; older ones (earlier recipes) are removed.
KEEP_SYSTEM_IMAGES = 3


class RecipeBuildError(ImageBuildError):
    """A system's container recipe did not build.

    Attributes:
        system: the system's name.
        step: the Dockerfile step that failed (``Step 3/4 : RUN ...``), when known.
        error: the builder's error message.
        tail: the last lines of the build log.
    """

    def __init__(self, system: str, tag: str, failure: BuildFailure) -> None:
        self.system = system
        self.step = failure.step
        self.error = failure.error
        self.tail = failure.tail
        at = f" at {failure.step}" if failure.step else ""
        super().__init__(
            f"the container recipe of system {system!r} failed to build ({tag}){at}: "
            f"{failure.error}\nlast lines of the build log:\n" + ("\n".join(failure.tail) or "(empty)")
        )


def _tag_name(system_name: str) -> str:
    """The system's name as the start of a Docker tag ([A-Za-z0-9_.-], not leading . or -)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", system_name).lstrip(".-") or "system"
    return cleaned[:100]


def recipe_context(recipe: ContainerRecipe) -> tuple[dict[str, bytes], dict[str, int]]:
    """The recipe's build-context files (``{path: bytes}``) and their modes.

    Raises:
        ConfigError: a source path that does not exist.
    """
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}

    def add_file(dest: str, path: Path) -> None:
        files[dest] = path.read_bytes()
        modes[dest] = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644

    for dest, source in sorted(recipe.files.items()):
        dest = dest.replace("\\", "/").strip("/")
        if isinstance(source, bytes):
            files[dest] = source
            modes[dest] = 0o755 if source.startswith(b"#!") else 0o644
            continue
        path = Path(os.fspath(source))
        if path.is_dir():
            for f in _walk(path):
                add_file(f"{dest}/{f.relative_to(path).as_posix()}", f)
        elif path.is_file():
            add_file(dest, path)
        else:
            raise ConfigError(f"container recipe file {dest!r}: {path} does not exist")
    return files, modes


def recipe_dockerfile(recipe: ContainerRecipe, node_tag: str) -> str:
    """``FROM`` the node image, then the recipe's lines."""
    return "\n".join([f"FROM {node_tag}", *recipe.lines]) + "\n"


def recipe_hash(recipe: ContainerRecipe, node_tag: str) -> str:
    """The hash naming the system image of ``recipe`` on ``node_tag`` (64 hex digits)."""
    return _hash(recipe, node_tag, *recipe_context(recipe))


def _hash(recipe: ContainerRecipe, node_tag: str, files: dict[str, bytes], modes: dict[str, int]) -> str:
    keyed = {f"{name}\0{modes[name]:o}": data for name, data in files.items()}
    return inputs_hash(recipe_dockerfile(recipe, node_tag), node_tag, keyed)


def build_system_image(
    client: Any,
    system_name: str,
    recipe: ContainerRecipe,
    *,
    node_image: str | None = None,
    base_image: str | None = None,
    progress: Progress = _quiet,
    force: bool = False,
) -> NodeImage:
    """Build (or find) the image of ``recipe`` on top of the node image.

    Args:
        client: a ``docker.DockerClient``.
        system_name: names the image and any error.
        recipe: the system's recipe.
        node_image: the node image tag to build on; default: find or build it
            (FROM ``recipe.base_image``, else ``base_image``, else the registry-free base).
        base_image: Path B base for the node image when the recipe names none.
        progress: called with one line of progress at a time.
        force: rebuild even when an image with these inputs exists.

    Returns:
        A :class:`~jepsenlike.backends.docker.image.NodeImage` whose ``base`` is the node image tag.

    Raises:
        RecipeBuildError: the recipe's build failed.
        ConfigError: a recipe file is missing.
    """
    t_start = time.monotonic()
    steps: dict[str, float] = {}
    if node_image is None:
        node = build_node_image(client, base_image=recipe.base_image or base_image, progress=progress)
        node_image, steps = node.tag, dict(node.steps)
    files, modes = recipe_context(recipe)
    dockerfile = recipe_dockerfile(recipe, node_image)
    digest = _hash(recipe, node_image, files, modes)
    tag = f"{SYSTEM_REPO}:{_tag_name(system_name)}-{digest[:12]}"
    if not force and _image_exists(client, tag):
        return NodeImage(tag, digest, node_image, False, time.monotonic() - t_start, steps)
    progress(f"building {tag} FROM {node_image} (container recipe of {system_name!r}, {len(files)} files)")
    t0 = time.monotonic()
    docker_build(
        client, tag, _context_tar({**files, "Dockerfile": dockerfile.encode()}, modes),
        {LABEL_KIND: "system", LABEL_HASH: digest, LABEL_SYSTEM: system_name}, progress,
        on_error=lambda failure: RecipeBuildError(system_name, tag, failure),
    )
    steps["recipe"] = time.monotonic() - t0
    prune_system_images(client, system_name, keep=KEEP_SYSTEM_IMAGES)
    return NodeImage(tag, digest, node_image, True, time.monotonic() - t_start, steps)


def prune_system_images(client: Any, system_name: str, keep: int = KEEP_SYSTEM_IMAGES) -> list[str]:
    """Remove all but the ``keep`` newest images of one system (in-use ones stay)."""
    import docker.errors

    images = client.images.list(
        name=SYSTEM_REPO, filters={"label": [f"{LABEL_KIND}=system", f"{LABEL_SYSTEM}={system_name}"]}
    )
    images.sort(key=lambda im: im.attrs.get("Created", ""), reverse=True)
    removed: list[str] = []
    for im in images[keep:]:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(im.id, noprune=False)
            removed.append(im.tags[0] if im.tags else im.short_id)
    return removed


__all__ = [
    "KEEP_SYSTEM_IMAGES", "LABEL_SYSTEM", "SYSTEM_REPO", "RecipeBuildError", "build_system_image",
    "prune_system_images", "recipe_context", "recipe_dockerfile", "recipe_hash",
]
