"""Finding and removing what docker runs leave behind, by label.

Theory of operation
-------------------
Every container, network and volume a :class:`~jepsenlike.backends.docker.backend.DockerBackend`
creates carries the labels ``jepsenlike.run=<run id>`` and
``jepsenlike.owner=<host>:<pid>`` (the harness process that made it). A run's
own teardown removes its resources by run id, after removing what it knows
by name, so a resource created just before a crash in the middle of
:meth:`start` is still found.

``jepsenlike docker clean`` (:func:`clean`) removes the resources of runs
whose owner process is gone -- a crashed or ``kill -9``-ed harness -- and
leaves runs whose owner still lives on this host alone, so it is safe next to a
running test (``--all`` removes those too). Order matters: containers first
(they hold network endpoints and volumes), then networks, then volumes.
Images are kept (they are a cache) unless ``images=True``, which removes
every ``jepsenlike.kind``-labelled image not used by a container.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

LABEL_RUN = "jepsenlike.run"
LABEL_NODE = "jepsenlike.node"
LABEL_OWNER = "jepsenlike.owner"


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Is the harness that made a resource still running (on this host)?"""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's run sharing this daemon: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Removed:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    kept_live_runs: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def total(self) -> int:
        return len(self.containers) + len(self.networks) + len(self.volumes) + len(self.images)


def leftovers(client: Any, run_id: str | None = None) -> dict[str, list[Any]]:
    """Containers, networks and volumes labelled by jepsenlike (of one run, if given)."""
    label = f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN
    filters = {"label": label}
    return {
        "containers": client.containers.list(all=True, filters=filters),
        "networks": client.networks.list(filters=filters),
        "volumes": client.volumes.list(filters=filters),
    }


def _labels(obj: Any) -> dict[str, str]:
    attrs = obj.attrs or {}
    labels = attrs.get("Labels") or attrs.get("Config", {}).get("Labels") or {}
    return dict(labels)


def remove_resources(
    client: Any, run_id: str | None = None, *, include_live: bool = True, result: Removed | None = None
) -> Removed:
    """Remove labelled containers, then networks, then volumes. Never raises."""
    import docker.errors

    out = result if result is not None else Removed()
    try:
        found = leftovers(client, run_id)
    except docker.errors.DockerException as e:
        out.errors.append(f"listing resources: {e}")
        return out

    def skip(obj: Any) -> bool:
        labels = _labels(obj)
        if include_live or not owner_alive(labels.get(LABEL_OWNER)):
            return False
        out.kept_live_runs.add(labels.get(LABEL_RUN, "?"))
        return True

    for c in found["containers"]:
        if skip(c):
            continue
        try:
            c.remove(force=True, v=True)
            out.containers.append(c.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            out.errors.append(f"container {c.name}: {e}")
    for n in found["networks"]:
        if skip(n):
            continue
        try:
            n.remove()
            out.networks.append(n.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            out.errors.append(f"network {n.name}: {e}")
    for v in found["volumes"]:
        if skip(v):
            continue
        try:
            v.remove(force=True)
            out.volumes.append(v.name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            out.errors.append(f"volume {v.name}: {e}")
    return out


def remove_images(client: Any, result: Removed | None = None) -> Removed:
    """Remove every jepsenlike-built image (system, then node, then base: each sits on the next)."""
    import docker.errors

    from jepsenlike.backends.docker.image import LABEL_KIND

    out = result if result is not None else Removed()
    images = client.images.list(filters={"label": LABEL_KIND})
    order = {"system": 0, "node": 1}  # each kind sits on the next; base images last
    images.sort(key=lambda im: order.get(_labels(im).get(LABEL_KIND, ""), 2))
    for im in images:
        name = im.tags[0] if im.tags else im.short_id
        try:
            client.images.remove(im.id, force=False)
            out.images.append(name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            out.errors.append(f"image {name}: {e}")
    return out


def clean(client: Any, *, images: bool = False, include_live: bool = False) -> Removed:
    """``jepsenlike docker clean``: leftovers of dead runs (all runs with ``include_live``)."""
    out = remove_resources(client, None, include_live=include_live)
    if images:
        remove_images(client, out)
    return out
