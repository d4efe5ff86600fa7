"""``jepsenlike docker hosts up|down``: sshd containers to run the ssh backend against.

Theory of operation
-------------------
:func:`hosts_up` makes, in a directory of its own (default
``~/.cache/jepsenlike/hosts/default``):

1. an ed25519 key pair ``id_ed25519`` / ``id_ed25519.pub`` (``ssh-keygen``);
2. a bridge network ``jl-hosts-<id>`` on a free ``/24`` of the docker backend's
   pool (:func:`jepsenlike.backends.docker.backend.candidate_subnets`), hosts
   at ``.10``, ``.11``, ...;
3. N containers ``jl-hosts-<id>-h1..hN`` from the hosts image
   (:mod:`jepsenlike.backends.ssh.hosts_image`) with ``CAP_NET_ADMIN``, the
   public key authorized for root, and sshd listening on port 22;
4. once each sshd answers with its banner, ``known_hosts`` (each container's
   fresh ed25519 host key, read with ``docker exec``) and the hosts file
   ``hosts``: one ``root@IP key=... known_hosts=...`` line per container, which
   it also returns (the command prints it).

Everything carries the docker backend's labels (``jepsenlike.run=hosts-<id>``)
plus ``jepsenlike.hosts=<dir>``; the owner label is ``hosts:<hosts file>``,
which :func:`jepsenlike.backends.docker.cleanup.owner_alive` counts as alive
while that hosts file exists. So ``jepsenlike docker clean`` keeps hosts in
use, removes them once their hosts file is gone, and ``--all`` removes them
regardless. :func:`hosts_down` removes the containers and the network by the
run label recorded in ``hosts.json``, and the files it made.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jepsenlike.backends.docker import cleanup
from jepsenlike.errors import ConfigError

LABEL_HOSTS = "jepsenlike.hosts"
FIRST_HOST = 10
FILES = ("hosts", "hosts.json", "known_hosts", "id_ed25519", "id_ed25519.pub")


def default_dir() -> Path:
    from jepsenlike.backends.docker.image import cache_root

    return cache_root() / "hosts" / "default"


def _wait_sshd(ip: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, 22), timeout=1.0) as s:
                s.settimeout(2.0)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise ConfigError(f"sshd on {ip}:22 did not answer within {timeout:g} s ({last}); "
                      "see `docker logs` of the host container")


def hosts_up(n: int, directory: Path | None = None, *, client: Any | None = None,
             progress: Callable[[str], None] = lambda _l: None) -> str:
    """Start ``n`` sshd containers and write ``directory/hosts``; returns its text."""
    import docker.errors
    import docker.types

    from jepsenlike.backends.docker.backend import candidate_subnets, docker_client, host_routes
    from jepsenlike.backends.ssh.hosts_image import build_hosts_image

    if not 1 <= n <= 200:
        raise ConfigError(f"hosts up N: N must be 1..200; got {n}")
    d = (directory or default_dir()).resolve()
    if (d / "hosts.json").exists():
        raise ConfigError(f"{d} already holds hosts; run `jepsenlike docker hosts down --dir {d}` first")
    d.mkdir(parents=True, exist_ok=True)
    client = client or docker_client()
    image = build_hosts_image(client, progress)
    key = d / "id_ed25519"
    for f in (key, key.with_suffix(".pub")):
        f.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jepsenlike-hosts",
                    "-f", str(key)], check=True, capture_output=True)
    pub = key.with_suffix(".pub").read_text().strip()
    hid = uuid.uuid4().hex[:8]
    name = f"jl-hosts-{hid}"
    labels = {cleanup.LABEL_RUN: f"hosts-{hid}", cleanup.LABEL_OWNER: f"hosts:{d / 'hosts'}",
              LABEL_HOSTS: str(d)}
    (d / "hosts.json").write_text(json.dumps({"id": hid, "network": name, "run": f"hosts-{hid}"}))
    (d / "hosts").write_text(f"# being created: {name}\n")  # keeps `docker clean` off them meanwhile
    taken = host_routes()
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(KeyError, ValueError):
                import ipaddress

                taken.append(ipaddress.IPv4Network(cfg["Subnet"], strict=False))
    subnet = None
    for cand in candidate_subnets(taken, random.Random(hid)):
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(cand), gateway=str(cand[1]))])
        try:
            client.networks.create(name, driver="bridge", ipam=ipam, labels=labels)
            subnet = cand
            break
        except docker.errors.APIError as e:
            if "overlap" not in str(e).lower():
                raise
    if subnet is None:
        raise ConfigError("no free /24 for the hosts network; remove unused docker networks")
    addrs = list(subnet.hosts())
    ips = [str(addrs[FIRST_HOST - 1 + i]) for i in range(n)]
    api = client.api
    try:
        for i, ip in enumerate(ips):
            hc = api.create_host_config(cap_add=["NET_ADMIN"], network_mode=name)
            nc = api.create_networking_config({name: api.create_endpoint_config(ipv4_address=ip)})
            c = api.create_container(image.tag, name=f"{name}-h{i + 1}", hostname=f"h{i + 1}",
                                     environment={"AUTHORIZED_KEY": pub}, labels=labels,
                                     host_config=hc, networking_config=nc, detach=True)
            api.start(c["Id"])
        known = []
        for i, ip in enumerate(ips):
            _wait_sshd(ip, 30.0)
            ex = api.exec_create(f"{name}-h{i + 1}", ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            hostkey = api.exec_start(ex["Id"]).decode().split()
            known.append(f"{ip} {hostkey[0]} {hostkey[1]}")
    except BaseException:
        hosts_down(d, client=client)
        raise
    (d / "known_hosts").write_text("\n".join(known) + "\n")
    lines = [f"# jepsenlike docker hosts {name}; remove with: jepsenlike docker hosts down --dir {d}"]
    lines += [f"root@{ip} key={key} known_hosts={d / 'known_hosts'}" for ip in ips]
    text = "\n".join(lines) + "\n"
    (d / "hosts").write_text(text)
    return text


def hosts_down(directory: Path | None = None, *, client: Any | None = None) -> list[str]:
    """Remove the containers and network of ``directory``'s hosts, and its files."""
    from jepsenlike.backends.docker.backend import docker_client

    d = (directory or default_dir()).resolve()
    try:
        meta = json.loads((d / "hosts.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"no hosts in {d} (no hosts.json); nothing to take down") from None
    client = client or docker_client()
    removed: list[str] = []
    flt = {"label": f"{cleanup.LABEL_RUN}={meta['run']}"}
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(Exception):
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
    for net in client.networks.list(filters=flt):
        with contextlib.suppress(Exception):
            net.remove()
            removed.append(f"network {net.name}")
    for f in FILES:
        (d / f).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()
    return removed
