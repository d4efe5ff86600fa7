"""``jepsenlike clean``: remove what earlier, killed runs left behind.

Theory of operation
-------------------
A harness killed with SIGKILL cannot tear its cluster down. Each backend
records what it creates before it creates it, so that this command can find
the leftovers of every run whose harness is gone (runs still alive are left
alone):

* ``--backend local`` (the default): node processes of killed runs, found from
  the pid files in the runtime directory (pid and start time, so a reused pid is
  never killed) and from the environment markers every node carries
  (:mod:`jepsenlike.procguard`; nodes normally die with the harness through a
  parent-death signal, this catches what that cannot reach); then the netns
  mode's network namespaces, veth links, bridge and FORWARD rule
  (:mod:`jepsenlike.backends.netns`).
* ``--backend ssh --hosts-file FILE``: on every host, the node process groups
  of runs whose agent is gone, their run directories and the ``JEPSENLIKE``
  iptables chain (:func:`jepsenlike.backends.ssh.agent.clean`); each run's
  agent does this by itself when the harness dies, so this is for when the
  agent died too. ``--all`` also ends live runs; ``--purge`` also removes the
  installed venvs.

Docker leftovers: ``jepsenlike docker clean``.
"""

from __future__ import annotations

import argparse
from typing import Any

from jepsenlike.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "clean",
        help="remove what killed runs left behind (local: namespaces, links, rules; ssh: hosts)",
        description=(
            "Remove the leftovers of runs whose harness was killed. Local backend (default): "
            "node processes, and the network namespaces, veth links, the bridge and FORWARD rules of netns-mode runs. "
            "ssh backend: on every host of --hosts-file, the nodes of runs whose agent is gone, "
            "their run directories and the JEPSENLIKE iptables chain. Live runs are left alone. "
            "Docker: `jepsenlike docker clean`."
        ),
    )
    p.add_argument("--backend", choices=("local", "ssh"), default="local",
                   help="which backend's leftovers to remove (default: local)")
    p.add_argument("--dry-run", action="store_true", help="local: only list what would be removed")
    p.add_argument("--store", metavar="DIR", default=None,
                   help="local: only node processes of runs stored under DIR (default: all)")
    p.add_argument("--hosts-file", metavar="FILE", help="ssh: the hosts file of the runs")
    p.add_argument("--all", action="store_true", help="ssh: also end runs whose agent is still live")
    p.add_argument("--purge", action="store_true", help="ssh: also remove the installed venvs")
    p.add_argument("--option", dest="plugin_options", action="append", default=[],
                   metavar="ssh.KEY=VALUE", help="ssh backend options (user, key, remote_dir, ...)")
    p.set_defaults(func=_clean)


def _clean(args: argparse.Namespace) -> int:
    if args.backend == "ssh":
        return _clean_ssh(args)
    if args.hosts_file or args.all or args.purge or args.plugin_options:
        raise ConfigError("--hosts-file/--all/--purge/--option are for --backend ssh; "
                          "add --backend ssh or drop them")
    if args.store is not None and args.backend != "local":
        raise ConfigError("--store is for the local backend; drop it")
    return _clean_local(args)


def _clean_local(args: argparse.Namespace) -> int:
    from jepsenlike.backends.netns import clean_leftovers
    from jepsenlike.procguard import clean, runtime_dir

    procs = clean(dry_run=args.dry_run, store=args.store)
    kverb = "would kill" if args.dry_run else "killed"
    for pid, run in procs.killed:
        print(f"{kverb} pid {pid} (run {run})")
    runs = len({run for _, run in procs.killed})
    print(f"jepsenlike clean: {kverb} {len(procs.killed)} leftover process(es) of {runs} run(s); "
          f"removed {procs.pid_files_removed} pid file(s) from {runtime_dir()}"
          + (f"; {len(procs.live_runs)} live run(s) left alone" if procs.live_runs else ""))

    report = clean_leftovers(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for what, items in (("namespace", report.namespaces), ("link", report.links), ("rule", report.rules)):
        for item in items:
            print(f"{verb} {what} {item}")
    print(f"jepsenlike clean: {verb} {len(report.namespaces)} namespace(s), {len(report.links)} link(s), "
          f"{len(report.rules)} FORWARD rule(s)"
          + (f"; {len(report.live_tags)} live run(s) left alone" if report.live_tags else ""))
    return 0


def _clean_ssh(args: argparse.Namespace) -> int:
    from jepsenlike.backends.ssh.backend import SSHBackend, clean_hosts
    from jepsenlike.backends.ssh.hosts import read_hosts_file
    from jepsenlike.registry import resolve_settings

    if not args.hosts_file:
        raise ConfigError("--backend ssh: give --hosts-file FILE (the hosts file of the runs)")
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
