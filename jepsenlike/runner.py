"""The runner: one test run from config to stored verdict.

Theory of operation
-------------------
:func:`run_test` performs these steps, in order:

1. build the parts from the config: system, workload, nemesis packages; a
   package the backend lacks a capability for is *refused*: left out of the
   run, recorded with the reason in ``test.json`` (``faults.refused``), and
   the verdict becomes ``unknown`` (see :mod:`jepsenlike.coverage`);
2. create the run directory and write ``test.json`` (config, seed, versions,
   reproduce command); point ``store/latest`` at it;
3. start the cluster through the backend and wait until every node is ready
   (and, when the system can tell, until there is a leader);
4. open ``history.jsonl`` -- time 0 of the history is this moment -- and start
   the client workers (*warm-up*);
5. at the end of warm-up start the nemesis schedule (*chaos*); each fault is
   an invocation and an ``info`` completion of the ``nemesis`` process, and a
   line in ``nemesis.log``;
6. at ``time_limit`` stop the schedule and run every package's final ops,
   which heal every fault (*heal*);
7. wait until every node answers again (and a leader exists), keep the load
   on for ``recovery`` seconds (*recover*), then stop the workers;
8. run the workload's final ops, e.g. final reads (*final*);
9. tear down: nemesis teardown, backend teardown, history closed. This step
   runs whatever happened before (exception, Ctrl-C, SIGTERM), with further
   signals deferred until it is done;
10. read ``history.jsonl`` back from disk and check it -- the verdict is about
    the file, not about memory -- with the workload's checker and any extra
    ``checkers``; compute statistics and fault coverage (a requested fault that
    was refused or never fired makes the run ``unknown``), write ``results.json``.

The runner only writes the history; the checker only reads it. A run that is
interrupted leaves its partial history (and a ``results.json`` saying so); a
run that crashes leaves the prefix written so far.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from jepsenlike.backends import CLOCK, Backend, backend_refusals, make_backend
from jepsenlike.capabilities import check_workload, fault_refusal, plan_faults
from jepsenlike.checkers.result import UNKNOWN, Result, check_safe, merge_valid
from jepsenlike.client import Router
from jepsenlike.config import DEFAULT_NEMESES, TestConfig
from jepsenlike.confirm import confirm_completion
from jepsenlike.coverage import coverage_verdict, describe_coverage, fault_coverage
from jepsenlike.errors import HarnessBug
from jepsenlike.evidence import judge as judge_evidence
from jepsenlike.generator import Phases, Tally, Worker, derive_rng, start_thread
from jepsenlike.history import HistoryWriter, read_history
from jepsenlike.nemesis import (
    FaultOp,
    Nemesis,
    NemesisContractError,
    PackageOptions,
    Validate,
    build_packages,
    compose,
    min_chaos_seconds,
    plan_schedule,
    refusal,
)
from jepsenlike.stats import compute_stats
from jepsenlike.store import (
    HISTORY_FILE,
    NEMESIS_LOG,
    RESULTS_FILE,
    TEST_FILE,
    new_run_dir,
    update_latest,
    versions,
    write_json,
)
from jepsenlike.storeguard import STORE_ERRNOS, Ballast, GuardedHistory, GuardedLog, StoreWriteError
from jepsenlike.systems import System, get_system
from jepsenlike.workloads import Workload, get_workload

Progress = Callable[[dict[str, Any]], None]


@dataclass
class RunOutcome:
    """What a run produced."""

    valid: Any
    run_dir: Path
    results: dict[str, Any]
    config: TestConfig
    interrupted: bool = False


class LeaderCache:
    """Who leads, asked of the system at most every ``ttl`` seconds; never blocks readers."""

    def __init__(self, system: System, backend: Backend, ttl: float = 1.0) -> None:
        self.system, self.backend, self.ttl = system, backend, ttl
        self._value: str | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def fresh(self) -> str | None:
        if not self.system.can_tell_leader:
            return None
        value = self.system.leader(self.backend.nodes, timeout=0.3)
        self._value, self._at = value, time.monotonic()
        return value

    def cached(self) -> str | None:
        if time.monotonic() - self._at > self.ttl and self._lock.acquire(blocking=False):
            try:
                self.fresh()
            finally:
                self._lock.release()
        return self._value


@dataclass
class RunContext:
    """The running test, as a nemesis sees it (see :class:`~jepsenlike.nemesis.NemesisContext`)."""

    config: TestConfig
    system: System
    backend: Backend
    rng: Any
    leaders: LeaderCache
    node_ids: list[str] = field(default_factory=list)

    def leader(self) -> str | None:
        return self.leaders.fresh()


class NemesisDriver:
    """Fires fault ops through the nemesis and records both events of each."""

    def __init__(self, nemesis: Nemesis, ctx: RunContext, history: HistoryWriter, log: TextIO) -> None:
        self.nemesis, self.ctx, self.history, self.log = nemesis, ctx, history, log
        self.fired: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def fire(self, op: FaultOp) -> FaultOp:
        inv = self.history.record("nemesis", "invoke", op.f, value=op.value)
        try:
            done = confirm_completion(self.ctx, op, self.nemesis.invoke(self.ctx, op))
        except NemesisContractError:
            raise
        except Exception as e:  # a fault that could not be applied is recorded, not fatal
            done = op.complete(None, error=f"{type(e).__name__}: {e}")
        comp = self.history.record("nemesis", "info", done.f, value=done.value, error=done.error)
        entry = {"invoke_s": round(inv.time / 1e9, 3), "done_s": round(comp.time / 1e9, 3),
                 "f": op.f, "asked": op.value, "value": done.value, "error": done.error}
        self.fired.append(entry)
        self.log.write(
            f"{comp.time / 1e9:9.3f}s {op.f:<8} asked={op.value!r} done={done.value!r}"
            + (f" error={done.error}" if done.error else "") + "\n"
        )
        self.log.flush()
        return done

    def run_schedule(self, schedule: list[Any], stop: threading.Event) -> None:
        t0 = self.history.start_ns / 1e9
        try:
            for item in schedule:
                if stop.wait(max(0.0, t0 + item.at - time.monotonic())):
                    return
                self.fire(item.op)
        except BaseException as e:
            self.error = e


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """In the main thread: SIGTERM (like SIGINT) raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old_term = signal.signal(signal.SIGTERM, handler)
    old_int = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM while cleaning up; re-raise as KeyboardInterrupt afterwards."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    olds = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, old in olds.items():
            signal.signal(s, old)


def _wait_until(pred: Callable[[], bool], timeout: float, tick: Callable[[], None] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        if tick:
            tick()
        time.sleep(0.1)


def run_test(
    config: TestConfig,
    *,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run one test as configured; see the module docstring for the steps.

    Args:
        config: a validated config with a seed.
        progress: called about 4 times a second with a live snapshot.
        say: where one-line status messages go (default: stderr).

    Raises:
        KeyboardInterrupt: on Ctrl-C/SIGTERM, after cleanup (partial history kept).
        NodeStartError: the cluster did not come up (after cleanup).
        ConfigError, PluginError, HarnessBug.
    """
    say = say or (lambda s: print(s, file=sys.stderr, flush=True))
    assert config.seed is not None, "build_config draws the seed"
    system = get_system(config.system)
    system.configure(config.system_option_map(), config.bug)
    check_workload(system, config.workload)
    workload = get_workload(config.workload, check_timeout=config.check_timeout)
    fault_names, dropped = plan_faults(system, config.nemesis, DEFAULT_NEMESES)
    requested = build_packages(fault_names, PackageOptions.from_config(config))
    caps, cap_reasons = backend_refusals(config.backend, system, config.nodes)
    packages, refused = [], {}
    for pkg in requested:
        why = refusal(pkg.nemesis, caps, f"backend {config.backend!r}")
        if why:
            missing = sorted(set(pkg.nemesis.requires) - set(caps))
            refused[pkg.name] = why + "".join(f": {cap_reasons[c]}" for c in missing if c in cap_reasons)
        elif why := fault_refusal(system, pkg.name, pkg.nemesis.requires):
            refused[pkg.name] = why
        else:
            packages.append(pkg)
    nemesis = Validate(compose(p.nemesis for p in packages))
    phases_plan = Phases.for_config(config)

    run_dir = new_run_dir(config.store, config.test_name)
    update_latest(config.store, run_dir)
    test_doc: dict[str, Any] = {
        "name": config.test_name,
        "config": config.to_dict(),
        "seed": config.seed,
        "versions": versions(),
        "command": sys.argv,
        "reproduce": config.reproduce_command(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if note := workload.checker_note():
        test_doc["checker_note"] = note
    test_doc["faults"] = {
        "requested": fault_names,
        **({"dropped": dropped} if dropped else {}),
        "packages": {p.name: {"start": sorted(p.start_fs), "stop": sorted(p.stop_fs), "lane": p.lane}
                     for p in packages},
        "refused": refused,
        # the shortest --time-limit whose chaos phase starts every fault (coverage hints at it)
        "min_time_limit": math.ceil(10 * (config.warmup + min_chaos_seconds(packages, config.nemesis_interval)
                                          + 0.05)) / 10,
    }
    write_json(run_dir / TEST_FILE, test_doc)
    for name, why in dropped.items():
        say(f"jepsenlike: note: fault {name!r} left out of the default set: {why}")
    for name, why in refused.items():
        say(f"jepsenlike: warning: fault {name!r} refused, the verdict will be unknown: {why}")

    backend = make_backend(config.backend, system, config.nodes, run_dir,
                           bug=config.bug, seed=config.seed, ready_timeout=config.ready_timeout,
                           clocks=any(CLOCK in p.nemesis.requires for p in packages),
                           progress=say)
    leaders = LeaderCache(system, backend)
    # storeguard: a failed write to the store stops the run cleanly (see jepsenlike.storeguard).
    ballast = Ballast(run_dir)
    history: GuardedHistory | None = None
    nemlog = GuardedLog(open(run_dir / NEMESIS_LOG, "w", encoding="utf-8"), run_dir / NEMESIS_LOG)
    stopped_because: str | None = None
    phases: dict[str, int] = {}
    stop_clients, stop_nemesis, stop_final = threading.Event(), threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    workers: list[Worker] = []
    driver: NemesisDriver | None = None
    ctx: RunContext | None = None
    interrupted = False
    crash: BaseException | None = None
    tally = Tally()

    def now_s() -> float:
        return (time.monotonic_ns() - history.start_ns) / 1e9 if history else 0.0

    def snapshot(phase: str) -> dict[str, Any]:
        el = now_s()
        return {"phase": phase, "elapsed": el, "remaining": max(0.0, phases_plan.chaos_end - el),
                "counts": tally.snapshot(), "faults": nemesis.active()}

    def tick(phase: str) -> None:
        if history is not None:
            history.check()  # a store write that failed in any thread stops the run here
        if progress:
            progress(snapshot(phase))

    def sleep_until(t: float, phase: str) -> None:
        while True:
            left = t - now_s()
            if left <= 0:
                return
            tick(phase)
            time.sleep(min(0.25, left))

    try:
        with signals_as_interrupts():
            say(f"jepsenlike: {config.test_name}: starting {config.nodes} {system.name} node(s) "
                f"(seed {config.seed}) in {run_dir}")
            backend.start()
            test_doc["nodes"] = {n.id: {"client_addr": n.client_addr, "peer_addr": n.peer_addr}
                                 for n in backend.nodes}
            write_json(run_dir / TEST_FILE, test_doc)
            if system.can_tell_leader and not _wait_until(lambda: leaders.fresh() is not None, config.ready_timeout):
                say("jepsenlike: warning: no leader elected yet; starting anyway")

            history = GuardedHistory(HistoryWriter(run_dir / HISTORY_FILE), run_dir / HISTORY_FILE)
            nemlog.guard = history
            ctx = RunContext(config, system, backend, derive_rng(config.seed, "targets"), leaders, backend.node_ids)
            nemesis.setup(ctx)
            driver = NemesisDriver(nemesis, ctx, history, nemlog)
            keys_seen: set[Any] = set()
            keys_lock = threading.Lock()
            node_map = {n.id: n for n in backend.nodes}
            for w in range(config.concurrency):
                router = Router(backend.node_ids, lambda nid: system.open_client(node_map[nid], config.op_timeout),
                                config.routing, derive_rng(config.seed, "routing", w), w, leaders.cached)
                workers.append(Worker(w, workload, config, history, router, tally, keys_seen, keys_lock))

            phases["warmup"] = 0
            threads = [start_thread(w.run_load, stop_clients, name=f"worker-{w.index}") for w in workers]
            sleep_until(phases_plan.warmup_end, "warmup")

            phases["chaos"] = int(now_s() * 1e9)
            schedule = plan_schedule(packages, config.nemesis_interval, phases_plan.warmup_end,
                                     phases_plan.chaos_end, derive_rng(config.seed, "schedule"))
            nem_thread = start_thread(driver.run_schedule, schedule, stop_nemesis, name="nemesis")
            sleep_until(phases_plan.chaos_end, "chaos")
            stop_nemesis.set()
            nem_thread.join()
            if driver.error:
                raise driver.error

            phases["heal"] = int(now_s() * 1e9)
            for pkg in packages:
                for op in pkg.final:
                    driver.fire(op)
            phases["recover"] = int(now_s() * 1e9)

            def recovered() -> bool:
                if not all(system.probe(n, timeout=0.5) for n in backend.nodes):
                    return False
                return not system.can_tell_leader or leaders.fresh() is not None

            if not _wait_until(recovered, config.ready_timeout, lambda: tick("recover")):
                say(f"jepsenlike: warning: cluster not fully recovered {config.ready_timeout:g} s after healing")
            sleep_until(now_s() + config.recovery, "recover")
            stop_clients.set()
            for t in threads:
                t.join()

            phases["final"] = int(now_s() * 1e9)
            final_ops = workload.final_ops(sorted(keys_seen, key=repr))
            if final_ops:
                deadline = time.monotonic() + max(10.0, 5 * config.op_timeout)
                shares = [final_ops[i::config.concurrency] for i in range(config.concurrency)]
                threads = [start_thread(w.run_final, share, deadline, stop_final, name=f"final-{w.index}")
                           for w, share in zip(workers, shares, strict=True) if share]
                while any(t.is_alive() for t in threads):
                    tick("final")
                    time.sleep(0.1)
            phases["end"] = int(now_s() * 1e9)
            tick("done")
            for w in workers:
                if w.error:
                    raise HarnessBug(f"worker {w.index} crashed: {type(w.error).__name__}: {w.error}") from w.error
    except KeyboardInterrupt:
        interrupted = True
    except StoreWriteError as e:
        interrupted, stopped_because = True, str(e)
    except OSError as e:
        if e.errno not in STORE_ERRNOS:
            crash = e
            raise
        interrupted, stopped_because = True, f"the store could not be written ({e})"
    except BaseException as e:
        crash = e
        raise
    finally:
        with deferred_signals() as held:
            stop_clients.set()
            stop_nemesis.set()
            stop_final.set()
            for t in threads:
                t.join(timeout=config.op_timeout + 2)
            for w in workers:
                w.router.close()
            try:
                if ctx is not None:
                    nemesis.teardown(ctx)
            except Exception as e:
                say(f"jepsenlike: nemesis teardown failed: {type(e).__name__}: {e}")
            backend.teardown()
            if history:
                history.close()
            nemlog.close()
            ballast.release()  # room for the final records even on a full disk
            test_doc["phases"] = phases
            test_doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            if interrupted:
                test_doc["interrupted"] = True
            if stopped_because:
                test_doc["interrupted_reason"] = stopped_because
            try:
                write_json(run_dir / TEST_FILE, test_doc)
            except OSError as e:
                say(f"jepsenlike: {run_dir / TEST_FILE} not updated: {e}")
            if crash is not None:
                write_json(run_dir / RESULTS_FILE, {
                    "valid": UNKNOWN, "crashed": f"{type(crash).__name__}: {crash}",
                    "traceback": "".join(traceback.format_exception(crash)),
                    "explanation": "the run did not complete; nothing was checked",
                })

    if held and crash is None:
        interrupted = True  # a signal arrived during cleanup: honour it now
    if interrupted:
        why = f"stopped: {stopped_because}" if stopped_because else "interrupted before the end"
        results = {"valid": UNKNOWN, "interrupted": True,
                   "explanation": f"{why}; the history is partial "
                                  f"(re-check with: jepsenlike analyze {run_dir})"}
        if stopped_because:
            results["interrupted_reason"] = stopped_because
        try:
            write_json(run_dir / RESULTS_FILE, results)
        except OSError as e:
            say(f"jepsenlike: {run_dir / RESULTS_FILE} not written: {e}")
        if stopped_because:
            raise StoreWriteError(f"{stopped_because}; the run stopped (faults healed, nodes stopped); "
                                  f"check what was recorded with: jepsenlike analyze {run_dir}")
        raise KeyboardInterrupt(str(run_dir))

    results = check_run(run_dir, workload, test_doc, fired=driver.fired if driver else [])
    write_report(run_dir, say)
    say("")
    return RunOutcome(results["valid"], run_dir, results, config)


def write_report(run_dir: Path, say: Callable[[str], None]) -> None:
    """Write report.html and the plots; a report never changes or hides a verdict."""
    try:
        from jepsenlike.report import write_run_report

        write_run_report(run_dir)
    except Exception as e:
        say(f"jepsenlike: report not written: {type(e).__name__}: {e}")


def check_run(
    run_dir: Path,
    workload: Workload,
    test_doc: dict[str, Any],
    fired: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read a run's history from disk, check it, and write ``results.json``."""
    hist = read_history(run_dir / HISTORY_FILE)
    phases = test_doc.get("phases") or {}
    result: Result = check_safe(workload.check, hist, test_doc)
    stats = compute_stats(hist, phases)
    verdicts = [result.valid]
    explanation = result.explanation

    def add(text: str) -> None:
        nonlocal explanation
        explanation = (explanation + "\n" if explanation else "") + text

    extra: dict[str, Any] = {}
    for name in (test_doc.get("config") or {}).get("checkers") or []:
        res = _run_extra_checker(name, hist, test_doc)
        extra[name] = res.to_dict()
        verdicts.append(res.valid)
        if res.valid is not True and res.explanation:
            add(f"{name}: {res.explanation}")
    if stats["totals"].get("ok", 0) == 0:
        verdicts.append(UNKNOWN)
        add("no client op succeeded: the run proves nothing")
    for valid, reason in judge_evidence(workload, hist, test_doc):
        verdicts.append(valid)
        add(reason)
    nemesis_doc: dict[str, Any] = {"fired": fired if fired is not None else stats["faults"]}
    if isinstance(test_doc.get("faults"), dict):
        end = phases.get("end")
        coverage = fault_coverage(hist, test_doc["faults"], end_ns=end if isinstance(end, int) else None)
        covered, reasons = coverage_verdict(coverage)
        nemesis_doc["coverage"] = coverage
        nemesis_doc["summary"] = describe_coverage(coverage)
        verdicts.append(covered)
        for reason in reasons if not test_doc.get("interrupted") else ():
            add(reason)
    interrupted = bool(test_doc.get("interrupted"))
    if interrupted:  # the marker survives analyze; the partial run is not blamed on its faults
        reason = test_doc.get("interrupted_reason")
        verdicts.append(UNKNOWN)
        add(f"the run was interrupted{f' ({reason})' if reason else ''}: the history is partial, "
            "so fault coverage and availability describe only the part that ran")
    results: dict[str, Any] = {
        "valid": merge_valid(verdicts),
        "explanation": explanation,
        "workload": {"name": workload.name, **result.to_dict()},
        "stats": stats,
        "nemesis": nemesis_doc,
        "reproduce": test_doc.get("reproduce"),
        "seed": test_doc.get("seed"),
    }
    if interrupted:
        results["interrupted"] = True
        if test_doc.get("interrupted_reason"):
            results["interrupted_reason"] = test_doc["interrupted_reason"]
    if extra:
        results["checkers"] = extra
    if note := workload.checker_note():
        results["checker_note"] = note
    write_json(run_dir / RESULTS_FILE, results)
    return results


def _run_extra_checker(name: str, hist: Any, test_doc: dict[str, Any]) -> Result:
    """Load and run one ``jepsenlike.checkers`` plugin; any failure is ``unknown``, never a crash."""
    from jepsenlike.plugins import load

    try:
        obj = load("checkers", name).obj
        checker = obj() if isinstance(obj, type) else obj
    except Exception as e:  # ConfigError, PluginError: the run is kept, the verdict says why
        return Result(UNKNOWN, {"error": str(e)}, f"checker {name!r} could not be loaded: {e}")
    res = check_safe(checker.check, hist, test_doc)
    if not isinstance(res, Result):
        why = f"checker plugin {name!r} returned {type(res).__name__}, not a Result"
        return Result(UNKNOWN, {"error": why}, why)
    return res
