"""``jepsenlike clean``: kill the node processes that earlier, killed runs left behind.

A harness killed with SIGKILL cannot tear its cluster down. Its nodes die with
it through a parent-death signal; what that cannot reach (a node's own child
processes, or a platform without ``prctl``) is found here: from the pid files
in the runtime directory (pid and start time, so a reused pid is never
killed) and from the environment markers every node carries (see
:mod:`jepsenlike.procguard`). Runs whose harness is still alive are left
alone. Docker leftovers: ``jepsenlike docker clean``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jepsenlike.cli import EXIT_VALID


def register(sub: Any) -> None:
    p = sub.add_parser("clean", help="kill node processes left by earlier killed runs (local backend)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--dry-run", action="store_true", help="only list what would be killed")
    p.add_argument("--store", metavar="DIR", default=None, help="only runs stored under DIR (default: all)")
    p.set_defaults(func=clean_command)


def clean_command(args: argparse.Namespace) -> int:
    from jepsenlike.procguard import clean, runtime_dir

    report = clean(dry_run=args.dry_run, store=args.store)
    verb = "would kill" if args.dry_run else "killed"
    for pid, run in report.killed:
        print(f"{verb} pid {pid} (run {run})")
    runs = len({run for _, run in report.killed})
    print(f"jepsenlike clean: {verb} {len(report.killed)} leftover process(es) of {runs} run(s); "
          f"removed {report.pid_files_removed} pid file(s) from {runtime_dir()}"
          + (f"; {len(report.live_runs)} live run(s) left alone" if report.live_runs else ""),
          file=sys.stdout)
    return EXIT_VALID
