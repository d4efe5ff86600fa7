"""``jepsenlike list``: what is installed -- nemeses, systems, backends, workloads, checkers.

One line per plugin with its distribution and a one-line description, grouped
by kind, and under it one line per option the plugin declares (set with
``--option NAME.KEY=VALUE``). Every plugin is loaded and checked against its interface; a broken
one is listed with the error instead of its description, and the exit code is
255 (0 when everything loads).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jepsenlike.cli import EXIT_ERROR, EXIT_VALID

TITLES = {"nemesis": "Nemeses (--nemesis)", "systems": "Systems (--system)",
          "backends": "Backends (--backend)", "workloads": "Workloads (--workload)",
          "checkers": "Checkers (--checkers)"}


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="list installed nemeses, systems, backends, workloads and checkers (plugins)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("kind", nargs="?", choices=list(TITLES), help="only this kind")
    p.set_defaults(func=list_command)


def list_command(args: argparse.Namespace) -> int:
    from jepsenlike.plugins import list_installed

    listing = list_installed()
    broken = 0
    out = sys.stdout
    for kind, rows in listing.items():
        if args.kind and kind != args.kind:
            continue
        out.write(f"{TITLES[kind]}:\n")
        width = max((len(r.name) for r in rows), default=0)
        for r in rows:
            dist = "" if r.distribution == "jepsenlike" else f"  [{r.distribution}]"
            if r.error:
                broken += 1
                out.write(f"  {r.name:<{width}}  BROKEN: {r.error}{dist}\n")
            else:
                out.write(f"  {r.name:<{width}}  {r.description}{dist}\n")
                for opt in r.options:
                    out.write(f"  {'':<{width}}    --option {r.name}.{opt.describe()}\n")
        out.write("\n")
    out.flush()
    return EXIT_ERROR if broken else EXIT_VALID
