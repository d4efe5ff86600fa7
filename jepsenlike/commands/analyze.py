"""``jepsenlike analyze RUN_DIR``: check a stored run again, without the cluster.

Reads ``test.json`` (which workload, which config) and ``history.jsonl`` from
the run directory (or the newest run under a test directory or the store's
``latest``), runs the workload's checker and the statistics again, rewrites
``results.json`` and prints the same report as ``run``. Exit codes as
``run``: 0 valid, 1 invalid, 2 unknown, 255 error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from jepsenlike.cli import exit_code_for


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="re-check a stored run directory")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, a test directory, or STORE/latest")
    p.add_argument("--check-timeout", type=float, default=None, metavar="SECONDS",
                   help="linearizability search budget (default: the run's)")
    p.set_defaults(func=analyze_command)


def analyze_command(args: argparse.Namespace) -> int:
    """``jepsenlike analyze``; an unexpected exception is a crash: traceback and exit 255."""
    import traceback

    from jepsenlike.errors import JepsenlikeError

    try:
        return _analyze(args)
    except JepsenlikeError:
        raise
    except Exception:
        print("jepsenlike: analyze crashed (a bug; please report it):", file=sys.stderr)
        traceback.print_exc()
        return 255


def validate_stored(config: Any) -> None:
    """The few config fields analyze uses must have their types (a hand-edited test.json)."""
    if not isinstance(config.workload, str):
        raise TypeError(f"workload must be a string, got {config.workload!r}")
    if isinstance(config.check_timeout, bool) or not isinstance(config.check_timeout, int | float):
        raise TypeError(f"check_timeout must be a number, got {config.check_timeout!r}")


def _analyze(args: argparse.Namespace) -> int:
    from jepsenlike.analysis import check_run, write_report
    from jepsenlike.commands.run import print_report
    from jepsenlike.config import TestConfig
    from jepsenlike.errors import ConfigError
    from jepsenlike.numbers import check_number
    from jepsenlike.store import RESULTS_FILE, TEST_FILE, read_json, resolve_run_dir
    from jepsenlike.workloads import get_workload

    check_number("--check-timeout", args.check_timeout)
    run_dir = resolve_run_dir(args.run_dir)
    try:
        doc = read_json(run_dir / TEST_FILE)
    except (OSError, ValueError) as e:
        raise ConfigError(f"RUN_DIR: {run_dir / TEST_FILE} is not readable JSON ({e}); "
                          f"restore it or re-run the test") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise ConfigError(f"RUN_DIR: {run_dir / TEST_FILE} has no usable config (expected an object "
                          f"with a \"config\" object); restore it or re-run the test")
    try:
        config = TestConfig.from_dict(doc["config"])
        validate_stored(config)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"RUN_DIR: {run_dir / TEST_FILE} has no usable config: {e}") from None
    if args.check_timeout is not None:
        config = dataclasses.replace(config, check_timeout=args.check_timeout)
    workload = get_workload(config.workload, check_timeout=config.check_timeout,
                            plugin_options=config.plugin_options)
    fired = None
    old = run_dir / RESULTS_FILE
    if old.exists():
        try:
            fired = (read_json(old).get("nemesis") or {}).get("fired")
        except ValueError:
            fired = None
    results = check_run(run_dir, workload, doc, fired=fired)
    write_report(run_dir, lambda line: print(line, file=sys.stderr))
    if doc.get("interrupted"):
        results["interrupted"] = True
    print_report(results, run_dir, config, sys.stdout)
    return exit_code_for(results["valid"])
