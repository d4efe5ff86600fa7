"""The node image: built here, without an image registry, and cached by its inputs.

Theory of operation
-------------------
A node container needs a Python 3.11, iptables (partitions), iproute2 (``tc``
for latency), libfaketime (clock faults), procps, and this project's source.
Nothing else: the reference nodes use the standard library only.

**Path A (default, no registry).** Two layers of caching:

1. *Root filesystem.* ``debootstrap --variant=minbase --include=<packages>``
   makes a minimal Debian bookworm tree from the Debian mirror (the only thing
   fetched from the network), trimmed of docs and apt caches and packed into a
   tarball under ``~/.cache/jepsenlike/rootfs/`` (``$JEPSENLIKE_CACHE``
   overrides the root). Its name carries :func:`rootfs_key`, a hash of the
   suite, variant, architecture, mirror and package list, so a changed package
   list makes a new tarball and an unchanged one is never rebuilt. This is the
   expensive step (minutes); it runs once per machine. ``debootstrap`` needs
   root; it is installed with ``apt-get`` when missing and we are root.
2. *Base image.* The tarball is ``docker import``-ed as
   ``jepsenlike-base:<rootfs key>`` (labelled ``jepsenlike.kind=base``); skipped
   when an image with that tag exists.

**Path B (``base_image=...``, for users with a registry).** Any Debian-like
image with Python >= 3.11 (e.g. ``python:3.11-slim``): the generated
Dockerfile ``apt-get install``-s the tools and ``pip install``-s the project
source from the build context. Not exercised by this repository's tests (no
registry here); the recipe is :func:`dockerfile_for_base_image`.

**Node image.** A generated Dockerfile ``FROM`` the base copies the project's
packages -- ``jepsenlike`` and the packages installed under its namespace from
other directories (``models``, ``nemesis``, ``checkers``; found through the
import system, so an editable install and a wheel both work) -- to
``/opt/jepsenlike`` and puts that on ``PYTHONPATH``; ``python3 -m
jepsenlike.models.raft`` then runs inside. The tag is
``jepsenlike-node:<hash12>``, where the hash covers every source file copied
(path and bytes), the Dockerfile text and the base image's tag, so an unchanged
tree reuses the image and any edit builds a new one (seconds: only the COPY
layer). Images carry ``jepsenlike.kind`` and ``jepsenlike.inputs-hash`` labels,
which ``jepsenlike docker clean --images`` uses.

The build also links the architecture's ``libfaketimeMT.so.1`` to the fixed
path :data:`FAKETIME_LIB`, so the backend need not know the multiarch
directory, and checks that the node module imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jepsenlike.errors import JepsenlikeError

SUITE = "bookworm"
VARIANT = "minbase"
ROOTFS_PACKAGES: tuple[str, ...] = (
    "python3", "iptables", "iproute2", "libfaketime", "procps", "ca-certificates",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "JEPSENLIKE_DEBIAN_MIRROR"
CACHE_ENV = "JEPSENLIKE_CACHE"

BASE_REPO = "jepsenlike-base"
NODE_REPO = "jepsenlike-node"
LABEL_KIND = "jepsenlike.kind"
LABEL_HASH = "jepsenlike.inputs-hash"
LABEL_ROOTFS = "jepsenlike.rootfs-key"
# Node images kept after a build; older ones (earlier states of the tree) are removed.
KEEP_NODE_IMAGES = 3
# Bump when the recipe changes in a way the Dockerfile text does not show.
RECIPE_VERSION = "1"

#: Inside the node image: where the project lives and where libfaketime is linked.
PROJECT_DIR = "/opt/jepsenlike"
FAKETIME_LIB = "/opt/jepsenlike/lib/libfaketimeMT.so.1"

# Packages that install as jepsenlike.<name> from directories outside jepsenlike/
# (the package-dir mapping in pyproject.toml).
NAMESPACED_PACKAGES = ("models", "nemesis", "checkers")

# Trimmed from the rootfs: not needed to run a node, and half its size.
_TRIM = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "var/cache/apt/archives", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old",
)

Progress = Callable[[str], None]


class ImageBuildError(JepsenlikeError):
    """The node image could not be built; the message says which step failed and how to fix it."""


@dataclass(frozen=True)
class NodeImage:
    """A built (or found) node image."""

    tag: str
    inputs_hash: str
    base: str
    built: bool
    """False when an image with these inputs already existed."""
    seconds: float
    steps: dict[str, float]
    """Seconds per step that ran (``debootstrap``, ``import``, ``build``)."""


def _quiet(_: str) -> None:
    pass


def cache_root() -> Path:
    """``$JEPSENLIKE_CACHE``, else ``$XDG_CACHE_HOME/jepsenlike``, else ``~/.cache/jepsenlike``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "jepsenlike"


def debian_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def mirror() -> str:
    return os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)


def rootfs_key(packages: tuple[str, ...] = ROOTFS_PACKAGES, mirror_url: str | None = None) -> str:
    """12 hex digits naming one rootfs recipe (suite, variant, arch, mirror, packages)."""
    recipe = "\n".join(
        [SUITE, VARIANT, debian_arch(), mirror_url or mirror(), *sorted(packages)]
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def rootfs_tarball_path(key: str | None = None) -> Path:
    return cache_root() / "rootfs" / f"{SUITE}-{VARIANT}-{key or rootfs_key()}.tar"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize builds of one artifact between processes (two test sessions, say)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_streaming(argv: list[str], progress: Progress, what: str) -> None:
    """Run ``argv``, passing each output line to ``progress``; raise with the tail on failure."""
    tail: list[str] = []
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        progress(line)
    rc = proc.wait()
    if rc != 0:
        raise ImageBuildError(
            f"{what} failed (exit status {rc}): {' '.join(argv)}\nlast lines:\n" + "\n".join(tail)
        )


def ensure_debootstrap(progress: Progress = _quiet) -> str:
    """Path of ``debootstrap``; installs the Debian package when missing and we are root."""
    found = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap") else None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ImageBuildError(
            "building the node image without a registry needs debootstrap: install it "
            "(`sudo apt-get install debootstrap`), or pass --base-image IMAGE to build FROM an "
            "image your registry serves"
        )
    progress("installing debootstrap with apt-get (it is missing)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "debootstrap"]):
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise ImageBuildError(f"{' '.join(argv)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


def ensure_rootfs_tarball(progress: Progress = _quiet, *, rebuild: bool = False) -> Path:
    """The cached rootfs tarball for :data:`ROOTFS_PACKAGES`, made with debootstrap if missing."""
    target = rootfs_tarball_path()
    with _file_lock(target.with_suffix(".lock")):
        if target.is_file() and not rebuild:
            return target
        if os.geteuid() != 0:
            raise ImageBuildError(
                f"debootstrap needs root to build the rootfs ({target} is not cached yet): run "
                "`sudo jepsenlike docker build` once, or pass --base-image IMAGE"
            )
        debootstrap = ensure_debootstrap(progress)
        # Same filesystem as the cache, so the final rename is atomic; removed in all cases.
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=target.parent))
        try:
            tree = work / "tree"
            _run_streaming(
                [
                    debootstrap, f"--variant={VARIANT}", f"--arch={debian_arch()}",
                    f"--include={','.join(ROOTFS_PACKAGES)}", SUITE, str(tree), mirror(),
                ],
                progress, "debootstrap",
            )
            for rel in _TRIM:
                p = tree / rel
                if p.is_dir():
                    for child in p.iterdir():
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child, ignore_errors=True)
                        else:
                            child.unlink(missing_ok=True)
            progress(f"packing {tree} into {target.name}")
            partial = work / "rootfs.tar"
            _run_streaming(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(tree), "-cf", str(partial), "."],
                progress, "tar",
            )
            os.replace(partial, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target


# -- project source --------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        # Bytecode caches and hidden dirs differ between machines; they are not inputs.
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for f in sorted(filenames):
            if not f.endswith((".pyc", ".pyo")) and not f.startswith("."):
                yield Path(dirpath) / f


def project_sources() -> dict[str, bytes]:
    """Every file of the installed project, keyed by its path under ``jepsenlike/``."""
    top = _package_dir("jepsenlike")
    if top is None:  # pragma: no cover - we are running from it
        raise ImageBuildError("cannot locate the jepsenlike package to copy into the image")
    roots: dict[str, Path] = {"jepsenlike": top}
    for sub in NAMESPACED_PACKAGES:
        loc = _package_dir(f"jepsenlike.{sub}")
        if loc is not None and not loc.is_relative_to(top):
            roots[f"jepsenlike/{sub}"] = loc
    files: dict[str, bytes] = {}
    for prefix, root in roots.items():
        for path in _walk(root):
            files[f"{prefix}/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return files


# -- recipes ---------------------------------------------------------------------


def dockerfile_from_rootfs(base_tag: str) -> str:
    """Path A: the node image on top of the imported debootstrap base."""
    return f"""\
FROM {base_tag}
COPY jepsenlike {PROJECT_DIR}/jepsenlike
ENV PYTHONPATH={PROJECT_DIR} PYTHONUNBUFFERED=1 LANG=C.UTF-8
RUN mkdir -p {PROJECT_DIR}/lib \\
 && ln -s "$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 | head -n1)" {FAKETIME_LIB} \\
 && test -e {FAKETIME_LIB} \\
 && python3 -m compileall -q {PROJECT_DIR}/jepsenlike \\
 && python3 -c "import jepsenlike.models.raft.server" \\
 && iptables -V && tc -V
WORKDIR /
CMD ["python3", "-c", "print('jepsenlike node image: pass a node command')"]
"""


def dockerfile_for_base_image(base_image: str) -> str:
    """Path B: any Debian-like image with Python >= 3.11 and pip (e.g. python:3.11-slim)."""
    return f"""\
FROM {base_image}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      iptables iproute2 libfaketime procps ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
COPY src /src
RUN python3 -m pip install --no-cache-dir --no-deps /src && rm -rf /src
ENV PYTHONUNBUFFERED=1
RUN mkdir -p {PROJECT_DIR}/lib \\
 && ln -s "$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 | head -n1)" {FAKETIME_LIB} \\
 && test -e {FAKETIME_LIB} \\
 && python3 -c "import jepsenlike.models.raft.server" \\
 && iptables -V && tc -V
CMD ["python3", "-c", "print('jepsenlike node image: pass a node command')"]
"""


# Path B installs the copied tree with pip: a minimal project file that packages
# exactly what project_sources() collected (the real pyproject maps directories
# that a wheel install no longer has).
_PATH_B_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "jepsenlike-node"
version = "0"
requires-python = ">=3.11"

[tool.setuptools.packages.find]
include = ["jepsenlike*"]

[tool.setuptools.package-data]
"*" = ["*"]
"""


def _context_tar(files: dict[str, bytes], modes: dict[str, int] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            info.mtime = 0  # the hash, not the mtime, says whether inputs changed
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@dataclass
class BuildFailure:
    """Where a ``docker build`` stopped: the step it was running and the log's last lines."""

    step: str | None
    error: str
    tail: list[str]


def docker_build(
    client: Any, tag: str, context: io.BytesIO, labels: dict[str, str], progress: Progress = _quiet,
    *, on_error: Callable[[BuildFailure], Exception] | None = None,
) -> None:
    """``docker build`` of a context tarball (classic builder, no pull), streaming progress.

    Raises ``on_error(failure)`` when the build fails (default: an
    :class:`ImageBuildError` naming the tag, the failing step and the log tail).
    """
    import docker.errors

    tail: list[str] = []
    step: str | None = None

    def fail(error: str) -> Exception:
        failure = BuildFailure(step, error.strip(), list(tail))
        if on_error is not None:
            return on_error(failure)
        at = f" at {step}" if step else ""
        return ImageBuildError(
            f"building {tag} failed{at}: {failure.error}\nlast lines:\n" + "\n".join(tail)
        )

    try:
        for chunk in client.api.build(
            fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
            labels=labels, pull=False,
        ):
            if "error" in chunk:
                raise fail(str(chunk["error"]))
            for line in str(chunk.get("stream", "")).splitlines():
                line = line.rstrip()
                if not line:
                    continue
                if line.startswith("Step ") and " : " in line:
                    step = line
                tail = (tail + [line])[-15:]
                progress(line)
    except docker.errors.APIError as e:
        raise fail(str(e)) from e


def inputs_hash(dockerfile: str, base: str, files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for part in (RECIPE_VERSION, dockerfile, base):
        h.update(part.encode() + b"\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


# -- building ----------------------------------------------------------------------


def _image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base_image(client: Any, progress: Progress = _quiet) -> tuple[str, dict[str, float]]:
    """Path A's base: ``jepsenlike-base:<rootfs key>``, importing the rootfs if needed."""
    key = rootfs_key()
    tag = f"{BASE_REPO}:{key}"
    steps: dict[str, float] = {}
    if _image_exists(client, tag):
        return tag, steps
    tarball = rootfs_tarball_path(key)
    if not tarball.is_file():
        t0 = time.monotonic()
        progress(f"no cached rootfs; running debootstrap {SUITE} (minutes, once per machine)")
        tarball = ensure_rootfs_tarball(progress)
        steps["debootstrap"] = time.monotonic() - t0
    t0 = time.monotonic()
    progress(f"importing {tarball.name} as {tag}")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL {LABEL_KIND}=base {LABEL_ROOTFS}={key}",
    ]
    out = client.api.import_image_from_file(
        str(tarball), repository=BASE_REPO, tag=key, changes=changes
    )
    if not _image_exists(client, tag):
        raise ImageBuildError(f"docker import of {tarball} did not produce {tag}: {out!r}")
    steps["import"] = time.monotonic() - t0
    return tag, steps


def build_node_image(
    client: Any | None = None,
    *,
    base_image: str | None = None,
    progress: Progress = _quiet,
    force: bool = False,
    sources: dict[str, bytes] | None = None,
) -> NodeImage:
    """Build (or find) the node image for the project as installed now.

    Args:
        client: a ``docker.DockerClient`` (default: ``docker.from_env()``).
        base_image: Path B: build FROM this image with apt-get + pip; default Path A.
        progress: called with one line of progress at a time.
        force: rebuild the node image even when the tag exists (the rootfs stays cached).
        sources: the project files to copy (default: :func:`project_sources` now); a
            caller that must get the same image twice from a tree that others are
            editing passes one snapshot.
    """
    if client is None:
        import docker

        client = docker.from_env()
    t_start = time.monotonic()
    steps: dict[str, float] = {}
    files = project_sources() if sources is None else sources
    if base_image is None:
        base, steps = ensure_base_image(client, progress)
        dockerfile = dockerfile_from_rootfs(base)
        context = {f"{name}": data for name, data in files.items()}
    else:
        base = base_image
        dockerfile = dockerfile_for_base_image(base)
        context = {f"src/{name}": data for name, data in files.items()}
        context["src/pyproject.toml"] = _PATH_B_PYPROJECT.encode()
    digest = inputs_hash(dockerfile, base, files)
    tag = f"{NODE_REPO}:{digest[:12]}"
    if not force and _image_exists(client, tag):
        return NodeImage(tag, digest, base, False, time.monotonic() - t_start, steps)
    context["Dockerfile"] = dockerfile.encode()
    progress(f"building {tag} FROM {base} ({len(files)} project files)")
    t0 = time.monotonic()
    docker_build(client, tag, _context_tar(context), {LABEL_KIND: "node", LABEL_HASH: digest}, progress)
    steps["build"] = time.monotonic() - t0
    prune_node_images(client, keep=KEEP_NODE_IMAGES)
    return NodeImage(tag, digest, base, True, time.monotonic() - t_start, steps)


def prune_node_images(client: Any, keep: int = 3) -> list[str]:
    """Remove all but the ``keep`` newest node images (every edit of the tree makes one).

    An image a container still uses is refused by the daemon and stays; the base
    images and the rootfs cache are never touched here.
    """
    import docker.errors

    images = client.images.list(name=NODE_REPO, filters={"label": f"{LABEL_KIND}=node"})
    images.sort(key=lambda im: im.attrs.get("Created", ""), reverse=True)
    removed: list[str] = []
    for im in images[keep:]:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(im.id, noprune=False)
            removed.append(im.tags[0] if im.tags else im.short_id)
    return removed
