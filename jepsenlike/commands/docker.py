"""``jepsenlike docker build|clean``: the node image, and leftovers of crashed runs.

Theory of operation
-------------------
``build`` makes (or finds) the node image the docker backend uses, printing
progress with rich: the first build on a machine runs debootstrap (minutes),
later ones reuse the cached rootfs and base image and finish in seconds, or at
once when the project's source is unchanged (the tag is a hash of the inputs).
``--base-image IMAGE`` builds FROM an image a registry serves instead (apt-get +
pip inside). ``--system NAME`` then builds that system's own image on top,
when the system has a container recipe (:mod:`jepsenlike.backends.docker.recipe`). It
prints the tag on the last line of stdout, for scripts.

``clean`` removes containers, networks and volumes labelled by runs whose
harness process is gone (``--all``: every run, live or not), and with
``--images`` the jepsenlike images too. It prints what it removed; exit 0 when
everything listed could be removed, 255 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jepsenlike.errors import JepsenlikeError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "docker",
        help="build the docker node image; clean up leftovers of docker runs",
        description="Manage the docker backend's node image and leftover resources.",
    )
    dsub = p.add_subparsers(dest="docker_command", metavar="ACTION")
    b = dsub.add_parser(
        "build",
        help="build (or find) the node image",
        description=(
            "Build the node image without a registry (debootstrap of Debian bookworm, cached "
            "under ~/.cache/jepsenlike), or FROM --base-image. Prints the tag last."
        ),
    )
    b.add_argument("--base-image", metavar="IMAGE", help="build FROM this image (apt-get + pip)")
    b.add_argument("--force", action="store_true", help="rebuild the node image even if cached")
    b.add_argument(
        "--rebuild-rootfs", action="store_true",
        help="run debootstrap again even if the rootfs tarball is cached",
    )
    b.add_argument(
        "--system", metavar="NAME",
        help="also build the system's own image when it has a container recipe (prints that tag)",
    )
    b.add_argument("-q", "--quiet", action="store_true", help="print only the tag")
    b.set_defaults(func=_build)
    c = dsub.add_parser(
        "clean",
        help="remove containers, networks and volumes of crashed runs",
        description=(
            "Remove docker resources labelled by jepsenlike runs whose harness is gone. "
            "Images are kept unless --images."
        ),
    )
    c.add_argument("--images", action="store_true", help="also remove jepsenlike images")
    c.add_argument(
        "--all", action="store_true", help="also remove resources of runs that are still live"
    )
    c.set_defaults(func=_clean)
    p.set_defaults(func=lambda args: (p.print_help(), 255)[1])


def _build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from jepsenlike.backends.docker.backend import docker_client
    from jepsenlike.backends.docker.image import build_node_image, ensure_rootfs_tarball

    console = Console(stderr=True)
    recipe = None
    if args.system:
        from jepsenlike.systems import get_system

        system = get_system(args.system)
        recipe = system.container_recipe()
        if recipe is not None and recipe.base_image:
            args.base_image = recipe.base_image  # the system's own base wins
    client = docker_client(timeout=600)
    if args.rebuild_rootfs and not args.base_image:
        with console.status("debootstrap") as status:
            ensure_rootfs_tarball(lambda line: status.update(f"debootstrap: {line[:100]}"), rebuild=True)
        # the base image of the old tarball carries the same key: drop it so it is re-imported
        from jepsenlike.backends.docker.image import BASE_REPO, rootfs_key

        try:
            client.images.remove(f"{BASE_REPO}:{rootfs_key()}", force=True)
        except Exception:  # absent is fine
            pass
    if args.quiet:
        image = build_node_image(client, base_image=args.base_image, force=args.force)
    else:
        with console.status("building the node image") as status:

            def progress(line: str) -> None:
                # Step headers stay on screen; everything else only updates the spinner.
                if line.startswith(("Step ", "building", "importing", "no cached", "installing", "packing")):
                    console.print(f"[dim]{line}[/dim]", highlight=False)
                status.update(line[:110])

            image = build_node_image(client, base_image=args.base_image, force=args.force, progress=progress)
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in image.steps.items()) or "nothing to do"
        verb = "built" if image.built else "up to date"
        console.print(f"{image.tag}: {verb} in {image.seconds:.1f} s ({steps}); base {image.base}")
    if recipe is not None:
        from jepsenlike.backends.docker.recipe import build_system_image

        def show(line: str) -> None:
            if not args.quiet:
                console.print(f"[dim]{line}[/dim]", highlight=False)

        image = build_system_image(
            client, system.name, recipe, node_image=image.tag, force=args.force, progress=show
        )
        if not args.quiet:
            verb = "built" if image.built else "up to date"
            console.print(f"{image.tag}: {verb} in {image.seconds:.1f} s; base {image.base}")
    elif args.system and not args.quiet:
        console.print(f"system {args.system!r} has no container recipe: it runs in {image.tag}")
    print(image.tag)
    return 0


def _clean(args: argparse.Namespace) -> int:
    from jepsenlike.backends.docker.backend import docker_client
    from jepsenlike.backends.docker.cleanup import clean

    out = clean(docker_client(), images=args.images, include_live=args.all)
    for kind in ("containers", "networks", "volumes", "images"):
        names = getattr(out, kind)
        if names:
            print(f"removed {len(names)} {kind}: {', '.join(names)}")
    if out.kept_live_runs:
        print(
            f"kept runs whose harness is still running: {', '.join(sorted(out.kept_live_runs))} "
            "(--all removes them too)"
        )
    if not out.total():
        print("nothing to remove")
    for err in out.errors:
        print(f"jepsenlike: could not remove {err}", file=sys.stderr)
    if out.errors:
        raise JepsenlikeError(f"{len(out.errors)} resources could not be removed (see above)")
    return 0
