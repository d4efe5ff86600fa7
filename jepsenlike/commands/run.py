"""``jepsenlike run``: deploy a cluster, drive a workload under faults, check, store.

With no arguments: raft on 5 local nodes, the register workload, the faults
kill, pause, partition and clock, 30 seconds of load. Every setting is a flag
and may also come from a TOML file (``--config``); flags win over the file.

Output: a live progress line on stderr, then the verdict, a summary of the
anomalies, the run directory and the command that reproduces the run.
Exit: 0 valid, 1 invalid, 2 unknown, 255 error or crash. With
``--test-count N`` the runs use seeds ``seed, seed+1, ...`` and the exit code
is their merge: 1 if any run was invalid, else 255 if any crashed, else 2 if
any was unknown, else 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from jepsenlike.ci import PassPolicy, RunRecord, finish_suite
from jepsenlike.cli import EXIT_ERROR, exit_code_for
from jepsenlike.config import TestConfig, build_config
from jepsenlike.errors import JepsenlikeError

D = TestConfig()

# (field, metavar, help). Defaults are shown from TestConfig.
FLAGS: list[tuple[str, str, str]] = [
    ("system", "NAME", "system under test: raft, paxos, memory or a plugin"),
    ("backend", "NAME", "where nodes run: local (processes), docker (containers), in-process "
                        "(the memory system's) or a plugin"),
    ("nodes", "N", "number of nodes"),
    ("workload", "NAME", "register, append or set"),
    ("nemesis", "LIST", "faults, comma-separated: kill, pause, partition, clock, slow, flaky or a plugin "
                        "(jepsenlike list); 'none' for no faults"),
    ("nemesis_interval", "SECONDS", "mean fault duration and gap between faults"),
    ("targets", "LIST", "target specs faults draw from: one, minority, majority, all, leader, n1+n3"),
    ("time_limit", "SECONDS", "seconds of client load (warm-up + chaos)"),
    ("rate", "OPS", "client ops per second over all workers (0: unlimited)"),
    ("concurrency", "N", "client workers"),
    ("seed", "N", "seed of every random choice (default: random, printed)"),
    ("test_count", "N", "number of runs, with seeds seed, seed+1, ..."),
    ("bug", "NAME", "seeded bug passed to every node (e.g. stale-read)"),
    ("store", "DIR", "store directory"),
    ("routing", "MODE", "node per op: random, round-robin, weighted, leader"),
    ("routing_weights", "LIST", "weights for --routing weighted: NODE=WEIGHT, comma-separated "
                                "(nodes not listed weigh 1), e.g. n1=4,n2=1"),
    ("groups", "G", "replica groups of a sharded system (shardkv); alone, it makes 3G nodes"),
    ("keys", "N", "keys in use at a time"),
    ("ops_per_key", "N", "ops per key before keys rotate"),
    ("op_timeout", "SECONDS", "client timeout per op (then info)"),
    ("warmup", "SECONDS", "seconds without faults at the start"),
    ("recovery", "SECONDS", "seconds of load after healing"),
    ("ready_timeout", "SECONDS", "seconds to wait for nodes to become ready"),
    ("check_timeout", "SECONDS", "linearizability search budget (then unknown)"),
    ("name", "NAME", "test name in the store (default SYSTEM-WORKLOAD)"),
    ("partition_shapes", "LIST", "partition shapes: one, halves, majority, majorities-ring, bridge, asymmetric, leader, "
                                    "group (one replica group off the rest; --groups)"),
    ("grudge", "GRUDGE", "explicit partition instead of shapes: NODE=SENDER+SENDER;... e.g. n1=n2+n3;n2=n1"),
    ("clock_faults", "LIST", "clock faults to draw from: bump, strobe, drift"),
    ("clock_skew", "SECONDS", "largest clock bump / strobe delta"),
    ("slow_latency_ms", "MS", "latency the slow nemesis adds to a link"),
    ("slow_jitter_ms", "MS", "jitter the slow nemesis adds to a link"),
    ("flaky_probability", "P", "chance a chunk on a flaky link aborts its connection"),
    ("system_options", "LIST", "node options KEY=VALUE, comma-separated (e.g. read-mode=lease)"),
    ("checkers", "LIST", "extra checkers to run (plugins; see jepsenlike list)"),
    ("schedule", "FILE", "replay this fault schedule (JSON Lines of {\"at\": s, \"f\": ..., \"value\": ...}, "
                         "or an earlier run's history.jsonl) instead of the random plan"),
]


def _default_text(name: str) -> str:
    v = getattr(D, name)
    if isinstance(v, tuple):
        return ",".join(v) or "none"
    return "random" if v is None and name == "seed" else ("none" if v is None else f"{v:g}" if isinstance(v, float) else str(v))


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        # No prefix matching: --partition must not silently mean --partition-shapes.
        allow_abbrev=False,
        help="deploy a cluster, run a workload under faults, check and store the history",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--config", metavar="FILE", help="TOML file with any of the settings below")
    for name, metavar, text in FLAGS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, metavar=metavar, default=None,
                       help=f"{text} (default: {_default_text(name)})")
    p.add_argument("--option", dest="plugin_options", action="append", metavar="NAME.KEY=VALUE",
                   help="a setting of plugin NAME (repeatable; `jepsenlike list` shows each plugin's "
                        "options); in a --config file: an [options.NAME] table")
    p.add_argument("--hosts-file", metavar="FILE",
                   help="--backend ssh: the hosts, one [user@]host[:port] [key=PATH] per line "
                        "(the same as --option ssh.hosts_file=FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--junit-xml", metavar="FILE", help="write JUnit XML: one testcase per run")
    p.add_argument("--summary-md", metavar="FILE",
                   help="write a Markdown summary (appended when FILE is $GITHUB_STEP_SUMMARY)")
    p.add_argument("--pass-policy", default="all", metavar="POLICY",
                   help="valid runs needed for exit 0 with --test-count: all, any, N or P%% "
                        "(default: all)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``jepsenlike run``; an unexpected exception is a crash: traceback and exit 255."""
    try:
        return _run(args)
    except (JepsenlikeError, KeyboardInterrupt):
        raise
    except Exception:
        print("jepsenlike: the harness crashed (a bug; please report it):", file=sys.stderr)
        traceback.print_exc()
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    from jepsenlike.runner import run_test

    flags = {name: getattr(args, name) for name, _, _ in FLAGS}
    flags["plugin_options"] = args.plugin_options
    if getattr(args, "hosts_file", None):
        hosts = f"ssh.hosts_file={Path(args.hosts_file).resolve()}"
        flags["plugin_options"] = [*(args.plugin_options or []), hosts]
    config = build_config(flags, args.config)
    policy = PassPolicy.parse(args.pass_policy)
    policy.validate_for(config.test_count)
    records: list[RunRecord] = []

    def finish() -> int:
        done = finish_suite(records, pass_policy=policy, junit_xml_path=args.junit_xml,
                            summary_md_path=args.summary_md)
        if config.test_count > 1 or args.pass_policy != "all":
            print(done.message, flush=True)
        return done.exit_code

    verdicts: list[Any] = []
    crashed = 0
    for i in range(config.test_count):
        cfg = dataclasses.replace(config, seed=config.seed + i, test_count=1) if config.test_count > 1 else config
        if config.test_count > 1:
            print(f"=== run {i + 1}/{config.test_count} (seed {cfg.seed})", flush=True)
        line = None if args.quiet else ProgressLine(sys.stderr)
        try:
            outcome = run_test(cfg, progress=line.update if line else None)
        except KeyboardInterrupt as e:
            if line:
                line.finish()
            where = _interrupted_where(e, cfg.store)
            print(f"jepsenlike: interrupted{where}", file=sys.stderr, flush=True)
            return 130
        except JepsenlikeError as e:
            if line:
                line.finish()
            records.append(RunRecord.crashed(cfg.test_name, cfg.seed, f"{type(e).__name__}: {e}"))
            if config.test_count == 1:
                finish()
                raise
            print(f"jepsenlike: error: {e}", file=sys.stderr, flush=True)
            crashed += 1
            continue
        except Exception as e:
            if line:
                line.finish()
            print("jepsenlike: the harness crashed (a bug; please report it):", file=sys.stderr)
            traceback.print_exc()
            records.append(RunRecord.crashed(cfg.test_name, cfg.seed, f"{type(e).__name__}: {e}"))
            crashed += 1
            continue
        finally:
            if line:
                line.finish()
        print_report(outcome.results, outcome.run_dir, cfg, sys.stdout)
        verdicts.append(outcome.valid)
        records.append(RunRecord.from_run_dir(outcome.run_dir))
    if config.test_count > 1:
        summary = Counter("valid" if v is True else "invalid" if v is False else "unknown" for v in verdicts)
        print(f"=== {config.test_count} runs: {summary['valid']} valid, {summary['invalid']} invalid, "
              f"{summary['unknown']} unknown, {crashed} crashed")
    return finish()


def _interrupted_where(e: KeyboardInterrupt, store: str) -> str:
    """Where the partial history is, when the interrupted run got as far as writing one."""
    run = str(e.args[0]) if e.args else ""
    if not run.startswith(store):
        return ""
    if (Path(run) / "history.jsonl").exists():
        return f"; partial history in {run}"
    return f" before any op was recorded (no history in {run})"


def verdict_word(valid: Any) -> str:
    return {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN") if isinstance(valid, bool) else "UNKNOWN"


def print_report(results: dict[str, Any], run_dir: Any, config: TestConfig, out: TextIO) -> None:
    """The end-of-run summary: verdict, anomalies, counts, run dir, reproduce command."""
    valid = results.get("valid")
    out.write(f"Verdict: {verdict_word(valid)}  ({config.workload} on {config.nodes} {config.system} "
              f"node(s), seed {config.seed}, exit {exit_code_for(valid)})\n")
    expl = (results.get("explanation") or "").strip()
    if expl and valid is not True:
        lines = expl.splitlines()
        for ln in lines[:12]:
            out.write(f"  {ln}\n")
        if len(lines) > 12:
            out.write(f"  ... ({len(lines) - 12} more lines in results.json)\n")
    elif expl:
        out.write(f"  {expl.splitlines()[0]}\n")
    if results.get("checker_note"):
        out.write(f"  note: {results['checker_note']}\n")
    stats = results.get("stats") or {}
    totals = stats.get("totals") or {}
    # Count the fault ops that touched something (a final heal with nothing to heal is left out).
    faults = Counter(f["f"] for f in (results.get("nemesis") or {}).get("fired", [])
                     if not isinstance(f.get("value"), dict) or f["value"].get("nodes") != [])
    out.write(f"  ops: {totals.get('ok', 0)} ok, {totals.get('fail', 0)} fail, {totals.get('info', 0)} info"
              + (f"; faults: {', '.join(f'{f} x{n}' for f, n in faults.items())}" if faults else "") + "\n")
    coverage = (results.get("nemesis") or {}).get("summary")
    if coverage:
        out.write(f"  fault coverage: {coverage}\n")
    avail = stats.get("availability") or {}
    if avail:
        out.write("  availability: " + ", ".join(
            f"{ph} {a['ok_fraction']:.0%}" for ph, a in avail.items() if ph != "all") + "\n")
    out.write(f"Run dir: {run_dir}\n")
    report = Path(run_dir) / "report.html"
    if report.exists():
        out.write(f"Report: {report}\n")
    out.write(f"Reproduce: {results.get('reproduce') or config.reproduce_command()}\n")
    out.flush()


class ProgressLine:
    """On a terminal, one status line rewritten in place (``\\r``, 4 times a second);
    piped or redirected, a plain line every ``every`` seconds (and at the end)."""

    def __init__(self, stream: TextIO, every: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self.last = 0.0
        self.width = 0
        self.shown = False

    def update(self, snap: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < (0.25 if self.tty else self.every) and snap.get("phase") != "done":
            return
        self.last = now
        c = snap.get("counts", {})
        faults = snap.get("faults") or {}
        fault_text = "; ".join(f"{k} {','.join(v)}" for k, v in faults.items()) or "none"
        phase = snap.get("phase", "")
        timing = f"{snap.get('elapsed', 0):5.1f}s"
        if phase in ("warmup", "chaos"):
            timing += f" ({snap.get('remaining', 0):4.1f}s left)"
        text = (f"[{phase:<7}] {timing}  ok {c.get('ok', 0)}  fail {c.get('fail', 0)}  "
                f"info {c.get('info', 0)}  faults: {fault_text}")
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.shown = True
        else:
            self.stream.write(text + "\n")
        self.width = len(text)
        self.stream.flush()

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
