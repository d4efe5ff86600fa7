"""``jepsenlike check``: check history files for linearizability.

Theory of operation
-------------------
Every file named on the command line is read (``.jsonl``, or ``.edn`` through
the Jepsen importer), checked against one model, and reported on its own: one
verdict line on stdout (``FILE: linearizable``, ``FILE: not-linearizable`` or
``FILE: unknown``, with op count, key count and seconds), then, for the last
two, the checker's explanation indented below it. With ``--json`` each file
instead gives one JSON object per line (``file``, ``verdict``, ``valid``,
``time_s``, and the checker's details).

A file that cannot be read or checked (bad line, op the model does not know)
does not stop the others: it gets the verdict ``error`` (the message, which
starts with ``file:line:``, goes to stderr) and the command exits 255 at the
end. Otherwise the exit code is 1 if any file is not linearizable, 2 if any is
unknown, and 0 if all are linearizable. A bad ``--model`` or ``--init`` is
reported before any file is read.

``--checker``: ``wgl`` is the linearizability search
(:mod:`jepsenlike.checkers.linearizable`); ``graph`` the dependency-graph
checker (:mod:`jepsenlike.checkers.graph`); ``auto`` (the default) uses the
graph checker for ``list-append`` when it is installed and the search
otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from jepsenlike.checkers.result import Result, check_safe, merge_valid
from jepsenlike.checkers.specs import SPECS, Spec, get_spec
from jepsenlike.errors import ConfigError, JepsenlikeError

VERDICTS = {True: "linearizable", False: "not-linearizable", "unknown": "unknown"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check history files for linearizability",
        description=(
            "Check one or more histories (.jsonl, or Jepsen .edn) against a model. "
            "One verdict line per file. Exit codes: 0 all linearizable, 1 any not "
            "linearizable, 2 any unknown (and none invalid), 255 any file could not be "
            "read or checked."
        ),
    )
    p.add_argument("histories", nargs="+", metavar="HISTORY", help="history files (.jsonl or .edn)")
    p.add_argument("--model", required=True, help=f"sequential model: {', '.join(SPECS)}")
    p.add_argument("--init", metavar="JSON", help="initial state as JSON (default: the model's)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per file before 'unknown'")
    p.add_argument(
        "--max-states", type=int, metavar="N",
        help="cached search states per key before 'unknown' (bounds memory)",
    )
    p.add_argument("--json", action="store_true", help="one JSON result per file instead of text")
    p.add_argument(
        "--checker", choices=("auto", "wgl", "graph"), default="auto",
        help="wgl: linearizability search; graph: dependency-graph checker; "
        "auto: graph for list-append, wgl otherwise",
    )
    p.add_argument("--graph-out", metavar="FILE", help="graph checker: write anomaly cycles here")
    p.add_argument(
        "--independent", choices=("auto", "yes", "no"), default="auto",
        help=".edn only: read Jepsen's [key value] op values as key + value "
        "(auto: when every read is invoked with [key nil])",
    )
    p.set_defaults(func=run)


def _parse_init(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--init {text!r} is not valid JSON: {e.msg}") from None


def _graph_module(required: bool) -> Any:
    try:
        import jepsenlike.checkers.graph as graph
    except ImportError as e:
        if required:
            raise ConfigError(f"--checker graph is not available here: {e}") from None
        return None
    return graph


def _read(path: str, independent: str) -> Any:
    from jepsenlike.history import read_history

    if Path(path).suffix == ".edn":
        from jepsenlike.edn import read_edn_history

        if not Path(path).exists():
            from jepsenlike.errors import HistoryError

            raise HistoryError(f"{path}: no such file")
        flag = {"auto": None, "yes": True, "no": False}[independent]
        return read_edn_history(path, independent=flag)
    return read_history(path)


def _graph_out_for(graph_out: str | None, path: str, many: bool) -> str | None:
    if graph_out is None or not many:
        return graph_out
    out = Path(graph_out)
    return str(out.with_name(f"{out.stem}.{Path(path).stem}{out.suffix}"))


def check_file(path: str, spec: Spec, args: argparse.Namespace, graph: Any) -> tuple[Result, str]:
    """Read and check one file; returns the result and the checker's name.

    Raises:
        JepsenlikeError: the file cannot be read, or has ops the model does not know.
    """
    history = _read(path, args.independent)
    if graph is not None:
        out = _graph_out_for(args.graph_out, path, len(args.histories) > 1)
        return _safely(lambda: graph.check_history(history, args.model, spec, out)), "graph"
    from jepsenlike.checkers.linearizable import check_linearizable

    return _safely(
        lambda: check_linearizable(
            history, spec, timeout=args.timeout, max_memory_states=args.max_states
        )
    ), "wgl"


def _safely(check: Any) -> Result:
    """A crashing checker gives "unknown" with its traceback; our own errors propagate."""
    try:
        return check()
    except JepsenlikeError:
        raise
    except Exception:
        return check_safe(_reraise, sys.exc_info()[1])


def _reraise(e: BaseException) -> Result:
    raise e


def run(args: argparse.Namespace) -> int:
    from jepsenlike.cli import EXIT_ERROR, exit_code_for
    from jepsenlike.numbers import check_number

    check_number("--timeout", args.timeout)
    check_number("--max-states", args.max_states, minimum=1, strict=False)
    spec = get_spec(args.model, _parse_init(args.init))
    graph = None
    if args.checker == "graph":
        graph = _graph_module(required=True)
    elif args.checker == "auto" and args.model == "list-append":
        graph = _graph_module(required=False)
        if graph is None:
            print("jepsenlike: note: graph checker not installed; using the WGL search",
                  file=sys.stderr)
    verdicts: list[Any] = []
    errors = 0
    for path in args.histories:
        t0 = time.monotonic()
        try:
            result, checker = check_file(path, spec, args, graph)
        except JepsenlikeError as e:
            errors += 1
            print(f"jepsenlike: error: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": path, "verdict": "error", "error": str(e)}))
            else:
                print(f"{path}: error")
            sys.stdout.flush()
            continue
        elapsed = time.monotonic() - t0
        verdicts.append(result.valid)
        verdict = VERDICTS.get(result.valid, "unknown")
        if args.json:
            out = {
                "file": path,
                "verdict": verdict,
                **result.to_dict(),
                "checker": checker,
                "model": args.model,
                "check_time_s": result.details.get("time_s"),
                "time_s": round(elapsed, 6),
            }
            print(json.dumps(out, default=str))
        else:
            stats = []
            if "ops" in result.details:
                stats.append(f"{result.details['ops']} ops")
            if "keys" in result.details:
                k = result.details["keys"]
                stats.append(f"{k} key" if k == 1 else f"{k} keys")
            stats.append(f"{elapsed:.3f} s")
            if checker != "wgl":
                stats.append(f"{checker} checker")
            print(f"{path}: {verdict} ({', '.join(stats)})")
            if result.valid is not True and result.explanation:
                for line in result.explanation.splitlines():
                    print(f"  {line}")
        sys.stdout.flush()
    if errors:
        return EXIT_ERROR
    return exit_code_for(merge_valid(verdicts))
