"""``jepsenlike clean --backend ssh --hosts-file FILE``: what crashed runs left on real hosts.

Theory of operation
-------------------
Each host's agent ends its run by itself when the harness goes away (end of
file on its ssh session, or silence longer than its lease); this command is
for what remains when even the agent died. On every host of the hosts file it
runs :func:`jepsenlike.backends.ssh.agent.clean` with the host's ``python3``:
node process groups of runs whose agent is gone are killed, their run
directories removed, and the ``JEPSENLIKE`` iptables chain deleted when no
agent is live. ``--all`` also ends live runs; ``--purge`` also removes the
installed venvs. For the docker backend, see ``jepsenlike docker clean``.
"""

from __future__ import annotations

import argparse
from typing import Any

from jepsenlike.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "clean",
        help="remove what crashed ssh runs left on the hosts (nodes, iptables chain, files)",
        description=(
            "On every host of the hosts file: kill the nodes of ssh runs whose agent is gone, "
            "remove their run directories and the JEPSENLIKE iptables chain. Each run's agent "
            "does this by itself when the harness dies; this is for when the agent died too."
        ),
    )
    p.add_argument("--backend", default="ssh", metavar="NAME", help="ssh (docker: `jepsenlike docker clean`)")
    p.add_argument("--hosts-file", metavar="FILE", required=True, help="the hosts file of the runs")
    p.add_argument("--all", action="store_true", help="also end runs whose agent is still live")
    p.add_argument("--purge", action="store_true", help="also remove the installed venvs")
    p.add_argument("--option", dest="plugin_options", action="append", default=[],
                   metavar="ssh.KEY=VALUE", help="ssh backend options (user, key, remote_dir, ...)")
    p.set_defaults(func=_clean)


def _clean(args: argparse.Namespace) -> int:
    from jepsenlike.backends.ssh.backend import SSHBackend, clean_hosts
    from jepsenlike.backends.ssh.hosts import read_hosts_file
    from jepsenlike.registry import resolve_settings

    if args.backend != "ssh":
        raise ConfigError(f"--backend {args.backend}: clean handles ssh; for docker run "
                          "`jepsenlike docker clean`")
    raw: dict[str, str] = {}
    for item in args.plugin_options:
        key, eq, value = item.partition("=")
        if not eq or not key.startswith("ssh."):
            raise ConfigError(f"--option {item!r}: write ssh.KEY=VALUE")
        raw[key[4:]] = value
    s = resolve_settings("ssh", SSHBackend.plugin_options, raw)
    hosts = read_hosts_file(args.hosts_file, user=s["user"], key=s["key"] or None,
                            known_hosts=s["known_hosts"] or None)
    done = clean_hosts(hosts, everything=args.all, purge=args.purge, remote_dir=s["remote_dir"],
                       host_key_checking=s["host_key_checking"],
                       connect_timeout=s["connect_timeout"])
    for host, lines in done.items():
        print(f"{host}: " + ("; ".join(lines) if lines else "nothing to remove"))
    return 0
