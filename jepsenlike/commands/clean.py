"""``jepsenlike clean``: remove what earlier, killed runs left behind on this host.

A harness killed with SIGKILL cannot tear its cluster down. For the local
backend's netns mode that means network namespaces, veth links, a bridge and
one FORWARD rule; each run records what it creates in a state file before it
creates it (:mod:`jepsenlike.backends.netns`), and this command removes the
leftovers of every run whose harness is gone (runs still alive are left
alone). Docker leftovers: ``jepsenlike docker clean``.
"""

from __future__ import annotations

import argparse
from typing import Any

from jepsenlike.cli import EXIT_VALID


def register(sub: Any) -> None:
    p = sub.add_parser("clean", help="remove network namespaces, links and rules left by killed runs",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.set_defaults(func=clean_command)


def clean_command(args: argparse.Namespace) -> int:
    from jepsenlike.backends.netns import clean_leftovers

    report = clean_leftovers(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for what, items in (("namespace", report.namespaces), ("link", report.links), ("rule", report.rules)):
        for item in items:
            print(f"{verb} {what} {item}")
    print(f"jepsenlike clean: {verb} {len(report.namespaces)} namespace(s), {len(report.links)} link(s), "
          f"{len(report.rules)} FORWARD rule(s)"
          + (f"; {len(report.live_tags)} live run(s) left alone" if report.live_tags else ""))
    return EXIT_VALID
