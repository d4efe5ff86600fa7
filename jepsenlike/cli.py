"""The ``jepsenlike`` command line.

Each subcommand lives in its own module under :mod:`jepsenlike.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed args and returning the exit code.

Exit codes, for every subcommand that produces a verdict: 0 valid, 1 invalid,
2 unknown (and nothing invalid), 255 error (bad input, crash).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jepsenlike import __version__
from jepsenlike.errors import JepsenlikeError

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNKNOWN = 2
EXIT_ERROR = 255

# Subcommand modules, in the order --help lists them.
COMMANDS = ["run", "analyze", "check", "show", "serve", "list", "node", "docker", "clean"]


def exit_code_for(valid: object) -> int:
    """Map a verdict (True, False, "unknown") to the documented exit code."""
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error exits 255 (2 means "unknown" here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="jepsenlike",
        description=(
            "Chaos testing and linearizability checking for distributed systems. "
            "Exit codes: 0 valid, 1 invalid, 2 unknown, 255 error."
        ),
    )
    parser.add_argument("--version", action="version", version=f"jepsenlike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"jepsenlike.commands.{name}").register(sub)
    return parser




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args.func(args))
    except JepsenlikeError as e:
        print(f"jepsenlike: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("jepsenlike: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a crash must not exit 1, which means "invalid"
        import traceback

        traceback.print_exc()
        print("jepsenlike: crashed (a bug in jepsenlike; please report it)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
