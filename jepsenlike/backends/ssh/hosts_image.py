"""The *hosts* image: a Debian host with sshd, for testing the ssh backend here.

Theory of operation
-------------------
``jepsenlike docker hosts up`` needs containers that look like the machines a
user would point ``--backend ssh`` at: Debian bookworm with ``sshd``, ``sudo``,
``python3`` (with ``venv``), ``iptables`` and ``libfaketime``. The image is
built ``FROM`` the docker backend's registry-free base image
(:func:`jepsenlike.backends.docker.image.ensure_base_image`, the cached
debootstrap rootfs, which already has python3, iptables, iproute2, libfaketime
and procps) by a generated Dockerfile that ``apt-get install``-s
``openssh-server sudo python3-venv`` from the Debian mirror the rootfs came
from. The tag ``jepsenlike-hosts:<hash12>`` hashes the Dockerfile text, so
an unchanged recipe is a lookup. The project itself is *not* in this image:
the ssh backend installs its wheel on each host, as on a real machine.

A container's command (:data:`ENTRYPOINT_SCRIPT`) authorizes the public key
given in ``$AUTHORIZED_KEY`` for ``root`` and for ``jepsen`` (a user with
passwordless sudo, as on a cloud VM), generates fresh host
keys and runs ``sshd -D -e`` (key-only logins, no passwords).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from typing import Any

from jepsenlike.backends.docker.image import (
    LABEL_HASH,
    LABEL_KIND,
    NodeImage,
    _context_tar,
    _image_exists,
    docker_build,
    ensure_base_image,
)

HOSTS_REPO = "jepsenlike-hosts"
HOSTS_PACKAGES = ("openssh-server", "sudo", "python3-venv")

ENTRYPOINT_SCRIPT = r"""set -e
mkdir -p /root/.ssh /run/sshd
chmod 700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
mkdir -p /home/jepsen/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /home/jepsen/.ssh/authorized_keys
chown -R jepsen:jepsen /home/jepsen/.ssh
chmod 700 /home/jepsen/.ssh
chmod 600 /home/jepsen/.ssh/authorized_keys
rm -f /etc/ssh/ssh_host_*
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e
"""


def dockerfile(base_tag: str) -> str:
    """The hosts image on top of the node image's debootstrap base."""
    return f"""\
FROM {base_tag}
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      {' '.join(HOSTS_PACKAGES)} \\
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man \\
 && rm -f /etc/ssh/ssh_host_* \\
 && printf 'PermitRootLogin prohibit-password\\nPasswordAuthentication no\\nUseDNS no\\n' \\
      > /etc/ssh/sshd_config.d/jepsenlike.conf \\
 && useradd -m -s /bin/bash jepsen \\
 && printf 'jepsen ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/jepsen \\
 && chmod 440 /etc/sudoers.d/jepsen \\
 && python3 -m venv /tmp/venv-check && rm -rf /tmp/venv-check \\
 && ls /usr/lib/*/faketime/libfaketimeMT.so.1 && iptables -V
COPY entrypoint.sh /usr/local/sbin/jepsenlike-host
CMD ["sh", "/usr/local/sbin/jepsenlike-host"]
"""


def build_hosts_image(client: Any, progress: Callable[[str], None] = lambda _l: None) -> NodeImage:
    """Build (or find) ``jepsenlike-hosts:<hash>``; the first build fetches packages (~1 min)."""
    t0 = time.monotonic()
    base, steps = ensure_base_image(client, progress)
    text = dockerfile(base)
    digest = hashlib.sha256((text + "\0" + ENTRYPOINT_SCRIPT).encode()).hexdigest()
    tag = f"{HOSTS_REPO}:{digest[:12]}"
    if _image_exists(client, tag):
        return NodeImage(tag, digest, base, False, time.monotonic() - t0, steps)
    progress(f"building {tag} FROM {base}")
    t1 = time.monotonic()
    context = {"Dockerfile": text.encode(), "entrypoint.sh": ENTRYPOINT_SCRIPT.encode()}
    docker_build(client, tag, _context_tar(context), {LABEL_KIND: "hosts", LABEL_HASH: digest}, progress)
    steps["build"] = time.monotonic() - t1
    import docker.errors

    for old in client.images.list(filters={"label": f"{LABEL_KIND}=hosts"}):
        if tag not in old.tags:  # an earlier recipe's image; refused while a container uses it
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(old.id)
    return NodeImage(tag, digest, base, True, time.monotonic() - t0, steps)
