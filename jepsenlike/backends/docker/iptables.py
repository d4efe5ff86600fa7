"""Partitions and slow links for the docker backend: the text of the rules, and tc netem.

Theory of operation
-------------------
Each node container has its own network namespace, so its own iptables. A
grudge ``{Y: {X, ...}}`` ("Y drops traffic from X") becomes, inside Y,
``-A JEPSENLIKE -s <ip of X>/32 -j DROP`` in a chain of our own that ``INPUT``
jumps to first. Owning a chain makes a change one atomic ``iptables-restore
--noflush``: declaring ``:JEPSENLIKE - [0:0]`` flushes that chain (and nothing
else) in the same commit that adds the new drops, so there is no moment with
the old grudge half-removed; Docker's own rules (it keeps none in the
container's INPUT) are untouched.

The namespace lives only as long as the container runs: ``docker kill`` +
``docker start`` gives a fresh namespace without our rules. So the backend
keeps, per node, in a directory bind-mounted read-only at :data:`CONTROL_DIR`:

* ``start.rules`` -- the chain, the ``INPUT`` jump and the current drops;
* ``rules``       -- the chain and the current drops (for changes at run time);
* ``tc.sh``       -- the ``tc`` commands for the node's slow/flaky links, or empty.

and every node command runs behind :func:`wrap_command`, a ``sh`` prologue that
loads ``start.rules`` (and the netem qdisc) and only then ``exec``-s the node:
a node restarted during a partition is partitioned before its first packet.
At run time the backend rewrites the files and ``docker exec``-s
``iptables-restore --noflush rules`` in each running node.

Slow and flaky links (:func:`tc_script`) use ``tc``: in the sending node, a
``prio`` qdisc on ``eth0`` whose extra bands each hold a ``netem`` (delay,
jitter, loss), and a ``u32`` filter per slowed destination address sending
that traffic to its band; all other traffic keeps the default bands. So the
link ``src -> dst`` is what ``src`` sends to ``dst`` (replies travel the link
``dst -> src``). Netem loss drops *packets*, which TCP retransmits: to the
nodes it looks like latency spikes, not lost messages (the local backend's
proxies abort connections instead). This needs ``sch_prio`` and ``sch_netem``
in the kernel; the backend probes for them and refuses with tc's message where
they are missing.

Only peer traffic is cut: the drops name node addresses, so the harness (which
reaches the nodes from the bridge's gateway address) keeps talking to every
node, as with the local backend's proxies.

Debian bookworm's ``iptables`` is the nf_tables variant; the container needs
only ``CAP_NET_ADMIN`` for it (``iptables-legacy`` is also in the image, for
kernels without nf_tables: ``variant="legacy"``).
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable

CHAIN = "JEPSENLIKE"
CONTROL_DIR = "/jepsenlike"
VARIANTS = {"nft": "iptables-restore", "legacy": "iptables-legacy-restore"}


def _check_ip(ip: str) -> str:
    return str(ipaddress.IPv4Address(ip))  # raises on anything that is not one address


def chain_rules(drop_from: Iterable[str], *, with_jump: bool) -> str:
    """``iptables-restore`` input: our chain holding a DROP per source address."""
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    if with_jump:
        lines.append(f"-I INPUT 1 -j {CHAIN}")
    lines += [f"-A {CHAIN} -s {_check_ip(ip)}/32 -j DROP" for ip in sorted(set(drop_from))]
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def restore_command(variant: str, path: str) -> list[str]:
    """argv that loads ``path`` (a file inside the container) without touching other chains."""
    return [VARIANTS[variant], "-w", "5", "--noflush", path]


def tc_script(netem_by_dst: dict[str, list[str]]) -> str:
    """``tc`` commands giving each destination address its own netem (empty: none).

    Destinations with the same netem arguments share a band; ``prio`` allows 16
    bands, 3 of which keep their default use, so up to 13 distinct settings.
    """
    if not netem_by_dst:
        return ""
    groups: dict[tuple[str, ...], list[str]] = {}
    for dst, args in sorted(netem_by_dst.items()):
        groups.setdefault(tuple(args), []).append(_check_ip(dst))
    if len(groups) > 13:
        raise ValueError(f"at most 13 distinct link settings per node; got {len(groups)}")
    lines = [
        # The default priomap, so untouched traffic is queued as without us.
        f"tc qdisc replace dev eth0 root handle 1: prio bands {3 + len(groups)} "
        "priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1",
    ]
    for i, (args, dsts) in enumerate(sorted(groups.items())):
        band = 4 + i
        lines.append(f"tc qdisc add dev eth0 parent 1:{band} handle {band}0: netem {' '.join(args)}")
        lines += [
            f"tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst {dst}/32 flowid 1:{band}"
            for dst in dsts
        ]
    return "\n".join(lines) + "\n"


TC_CLEAR = "tc qdisc del dev eth0 root 2>/dev/null; true"


def netem_args(latency_ms: float, jitter_ms: float = 0.0, loss: float = 0.0) -> list[str]:
    """The ``netem`` part of a ``tc qdisc`` command (empty: no qdisc)."""
    args: list[str] = []
    if latency_ms > 0 or jitter_ms > 0:
        args += ["delay", f"{latency_ms:g}ms"]
        if jitter_ms > 0:
            args += [f"{jitter_ms:g}ms"]
    if loss > 0:
        args += ["loss", f"{loss * 100:g}%"]
    return args


def wrap_command(argv: list[str], variant: str) -> list[str]:
    """The container command: restore our rules (and tc), then become the node.

    ``exec`` keeps the node as PID 1 of the container, so ``docker kill`` and
    ``docker pause`` act on the node itself.
    """
    prologue = (
        f"{shlex.join(restore_command(variant, CONTROL_DIR + '/start.rules'))} || exit 97; "
        f"if [ -s {CONTROL_DIR}/tc.sh ]; then sh -e {CONTROL_DIR}/tc.sh || exit 98; fi; "
        'exec "$@"'
    )
    return ["sh", "-c", prologue, "jepsenlike-node", *argv]
