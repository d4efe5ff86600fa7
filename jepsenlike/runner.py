"""The runner: one test run from config to stored verdict, as named phases.

Theory of operation
-------------------
:func:`run_test` prepares a :class:`Run` (the parts, the run directory and
``test.json``), then runs the phases of :data:`PHASES` in order, each a
function of the :class:`Run`:

``setup``    start the cluster through the backend and wait until every node is
             ready (and, when the system can tell, until there is a leader);
             open ``history.jsonl`` (time 0 of the history), set up the nemesis,
             build the client workers;
``warmup``   start the client workers; no faults until ``warmup`` ends;
``chaos``    interpret the nemesis generator (:mod:`jepsenlike.gen`; the
             packages' plan, or ``--schedule``) on its own thread until
             ``time_limit``; each fault is an invocation and an ``info``
             completion of the ``nemesis`` process and a line of ``nemesis.log``;
             a fault that raises is recorded as ``info`` with the error and its
             traceback goes to ``nemesis-errors.log``;
``heal``     the generator's final part: every package's heal ops;
``recover``  wait until every node answers again (and a leader exists), keep
             the load on ``recovery`` more seconds, stop the workers;
``final``    each worker runs its share of the workload's final ops (e.g. reads).

Resources live on one :class:`contextlib.ExitStack` (``Run.stack``): the
nemesis log, the backend, the history writer, the nemesis, the clients and the
threads; closing it (with further signals deferred) releases them in reverse
order whatever happened before (exception, Ctrl-C, SIGTERM). Then ``test.json``
gets the phase times, and the *check* (:func:`jepsenlike.analysis.check_run`)
reads ``history.jsonl`` back from disk -- the verdict is about the file, not
about memory -- and writes ``results.json`` (a refused or never-fired fault
makes the verdict ``unknown``; see :mod:`jepsenlike.coverage`).

A package the backend lacks a capability for is *refused*: left out of the
run, recorded with the reason in ``test.json`` (``faults.refused``). A run that
is interrupted leaves its partial history (and a ``results.json`` saying so);
a run that crashes leaves the prefix written so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from jepsenlike.analysis import check_run, write_report
from jepsenlike.backends import CLOCK, Backend, backend_refusals, make_backend
from jepsenlike.backends.owned import FaultLedger
from jepsenlike.capabilities import check_workload, fault_refusal, plan_faults
from jepsenlike.checkers.result import UNKNOWN
from jepsenlike.client import Router
from jepsenlike.config import DEFAULT_NEMESES, TestConfig, parse_routing_weights
from jepsenlike.confirm import confirm_completion
from jepsenlike.errors import HarnessBug
from jepsenlike.gen import Generator, run_final, run_generator
from jepsenlike.generator import Phases, Tally, Worker, derive_rng, start_thread
from jepsenlike.history_io import HistoryWriter
from jepsenlike.nemesis import (
    FaultOp,
    Nemesis,
    NemesisContractError,
    NemesisPackage,
    PackageOptions,
    Validate,
    build_packages,
    compose,
    refusal,
)
from jepsenlike.nemesis.schedule import (
    chaos_generator,
    load_schedule,
    min_chaos_seconds,
    schedule_generator,
    schedule_json,
)
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
NEMESIS_ERRORS = "nemesis-errors.log"
"""Tracebacks of faults that raised, in the run directory."""


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
    """The running test, as a nemesis sees it (see :class:`~jepsenlike.nemesis.NemesisContext`).

    ``config`` is the run's :class:`~jepsenlike.config.TestConfig`, ``system`` the
    system under test. Inside a composed nemesis each member gets
    :meth:`owned_by` its name: the same context with a backend view on which
    its grudges and clock changes are its own (:mod:`jepsenlike.backends.owned`).
    """

    config: TestConfig
    system: System
    backend: Any
    rng: Any
    leaders: LeaderCache
    node_ids: list[str] = field(default_factory=list)
    ledger: FaultLedger | None = None

    def leader(self) -> str | None:
        return self.leaders.fresh()

    def owned_by(self, owner: str) -> RunContext:
        if self.ledger is None:
            return self
        return dataclasses.replace(self, backend=self.ledger.view(owner))

    def on_nodes(self, nodes: tuple[str, ...] | None) -> RunContext:
        """The context restricted to ``nodes`` (an op's ``nodes`` field), cluster order kept."""
        if nodes is None:
            return self
        return dataclasses.replace(self, node_ids=[n for n in self.node_ids if n in nodes])


class NemesisDriver:
    """Performs fault ops through the nemesis and records both events of each."""

    def __init__(self, nemesis: Nemesis, ctx: RunContext, history: HistoryWriter, log: TextIO,
                 errors_path: Path | None = None) -> None:
        self.nemesis, self.ctx, self.history, self.log = nemesis, ctx, history, log
        self.errors_path = errors_path
        self.fired: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def _save_traceback(self, op: FaultOp, e: BaseException, at_s: float) -> None:
        if self.errors_path is None:
            return
        try:
            with open(self.errors_path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {at_s:.3f}s nemesis op {op.f} value={op.value!r}\n")
                fh.write("".join(traceback.format_exception(e)))
        except OSError:  # a full store: the run stops through the store guard, not here
            pass

    def fire(self, op: FaultOp) -> FaultOp:
        inv = self.history.record("nemesis", "invoke", op.f, value=op.value)
        try:
            done = confirm_completion(self.ctx, op, self.nemesis.invoke(self.ctx.on_nodes(op.nodes), op))
        except NemesisContractError:
            raise
        except Exception as e:  # a fault that could not be applied is recorded, not fatal
            self._save_traceback(op, e, inv.time / 1e9)
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

    def run_chaos(self, gen: Generator, now: Callable[[], float], stop: threading.Event) -> None:
        """Interpret ``gen`` until it ends or ``stop`` (thread body; errors kept in ``error``)."""
        try:
            run_generator(gen, self.fire, now, stop)
        except BaseException as e:
            # a generator that raised: keep its traceback (a failed store write is not one)
            if not isinstance(e, NemesisContractError | StoreWriteError):
                self._save_traceback(FaultOp("(generator)"), e, now())
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


@dataclass
class Run:
    """One run in progress: its parts, resources and the state the phases share."""

    config: TestConfig
    system: System
    workload: Workload
    packages: list[NemesisPackage]
    nemesis: Nemesis
    plan: Phases
    run_dir: Path
    test_doc: dict[str, Any]
    nemesis_gen: Generator
    say: Callable[[str], None]
    progress: Progress | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    backend: Backend | None = None
    leaders: LeaderCache | None = None
    history: GuardedHistory | None = None
    ballast: Ballast | None = None
    stopped_because: str | None = None
    ctx: RunContext | None = None
    driver: NemesisDriver | None = None
    workers: list[Worker] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    phases: dict[str, int] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    keys_seen: set[Any] = field(default_factory=set)
    keys_lock: threading.Lock = field(default_factory=threading.Lock)
    stop_clients: threading.Event = field(default_factory=threading.Event)
    stop_nemesis: threading.Event = field(default_factory=threading.Event)
    stop_final: threading.Event = field(default_factory=threading.Event)

    def now_s(self) -> float:
        return (time.monotonic_ns() - self.history.start_ns) / 1e9 if self.history else 0.0

    def mark(self, phase: str) -> None:
        self.phases[phase] = int(self.now_s() * 1e9)

    def tick(self, phase: str) -> None:
        if self.history is not None:
            self.history.check()  # a store write that failed in any thread stops the run here
        if self.progress:
            el = self.now_s()
            self.progress({"phase": phase, "elapsed": el, "remaining": max(0.0, self.plan.chaos_end - el),
                           "counts": self.tally.snapshot(), "faults": self.nemesis.active()})

    def sleep_until(self, t: float, phase: str) -> None:
        while True:
            left = t - self.now_s()
            if left <= 0:
                return
            self.tick(phase)
            time.sleep(min(0.25, left))


# -- preparation ----------------------------------------------------------------------


def _select_packages(config: TestConfig, system: System,
                     fault_names: list[str]) -> tuple[list[NemesisPackage], dict[str, str]]:
    """The packages this backend and system can run, and the refused ones with the reason."""
    requested = build_packages(fault_names, PackageOptions.from_config(config))
    caps, cap_reasons = backend_refusals(config.backend, system, config.nodes, config.plugin_options)
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
    return packages, refused


def _nemesis_generator(config: TestConfig, packages: list[NemesisPackage], plan: Phases,
                       test_doc: dict[str, Any]) -> Generator:
    """The packages' seeded plan, or the ``--schedule`` replay (recorded in ``test_doc``)."""
    if not config.schedule:
        return chaos_generator(packages, config.nemesis_interval, plan.warmup_end, plan.chaos_end,
                               derive_rng(config.seed, "schedule"))
    entries = load_schedule(config.schedule)
    handled = {f for p in packages for f in p.nemesis.fs}
    test_doc["schedule"] = {"file": config.schedule, "ops": schedule_json(entries),
                            "skipped_refused": sum(e.op.f not in handled for e in entries)}
    return schedule_generator([e for e in entries if e.op.f in handled], packages, plan.chaos_end)


def prepare(config: TestConfig, say: Callable[[str], None], progress: Progress | None) -> Run:
    """Build the parts from the config, create the run directory, write ``test.json``."""
    assert config.seed is not None, "build_config draws the seed"
    system = get_system(config.system, config.plugin_options)
    system.groups = config.groups or 1
    system.configure(config.system_option_map(), config.bug)
    check_workload(system, config.workload)
    workload = get_workload(config.workload, check_timeout=config.check_timeout,
                            plugin_options=config.plugin_options)
    fault_names, dropped = plan_faults(system, config.nemesis, DEFAULT_NEMESES)
    packages, refused = _select_packages(config, system, fault_names)
    plan = Phases.for_config(config)
    run_dir = new_run_dir(config.store, config.test_name)
    update_latest(config.store, run_dir)
    test_doc: dict[str, Any] = {
        "name": config.test_name, "config": config.to_dict(), "seed": config.seed,
        "versions": versions(), "command": sys.argv, "reproduce": config.reproduce_command(),
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
    gen = _nemesis_generator(config, packages, plan, test_doc)
    write_json(run_dir / TEST_FILE, test_doc)
    for name, why in dropped.items():
        say(f"jepsenlike: note: fault {name!r} left out of the default set: {why}")
    for name, why in refused.items():
        say(f"jepsenlike: warning: fault {name!r} refused, the verdict will be unknown: {why}")
    nemesis = Validate(compose(p.nemesis for p in packages))
    run = Run(config, system, workload, packages, nemesis, plan, run_dir, test_doc, gen, say, progress)
    # storeguard: room kept for the final records should the store fill up (jepsenlike.storeguard)
    run.ballast = Ballast(run_dir)
    return run


# -- the phases -------------------------------------------------------------------------


def phase_setup(run: Run) -> None:
    """Start the cluster, open the history, set up the nemesis and the workers."""
    config, system, stack = run.config, run.system, run.stack
    nemlog = GuardedLog(stack.enter_context(open(run.run_dir / NEMESIS_LOG, "w", encoding="utf-8")),
                        run.run_dir / NEMESIS_LOG)
    backend = make_backend(config.backend, system, config.nodes, run.run_dir,
                           bug=config.bug, seed=config.seed, ready_timeout=config.ready_timeout,
                           clocks=any(CLOCK in p.nemesis.requires for p in run.packages),
                           progress=run.say, plugin_options=config.plugin_options)
    run.backend = backend
    stack.callback(backend.teardown)
    run.leaders = leaders = LeaderCache(system, backend)
    run.say(f"jepsenlike: {config.test_name}: starting {config.nodes} {system.name} node(s) "
            f"(seed {config.seed}) in {run.run_dir}")
    backend.start()
    run.test_doc["nodes"] = {n.id: {"client_addr": n.client_addr, "peer_addr": n.peer_addr}
                             for n in backend.nodes}
    write_json(run.run_dir / TEST_FILE, run.test_doc)
    if system.can_tell_leader and not _wait_until(lambda: leaders.fresh() is not None, config.ready_timeout):
        run.say("jepsenlike: warning: no leader elected yet; starting anyway")

    # storeguard: a failed history write stops the run cleanly, the file cut to its last line
    run.history = GuardedHistory(HistoryWriter(run.run_dir / HISTORY_FILE), run.run_dir / HISTORY_FILE)
    run.test_doc["clock"] = wall_clock_doc(run.history.writer.wall_start_ns)
    nemlog.guard = run.history
    stack.callback(run.history.close)
    run.ctx = RunContext(config, system, backend, derive_rng(config.seed, "targets"), leaders,
                         backend.node_ids, FaultLedger(backend))
    run.nemesis.setup(run.ctx)
    stack.callback(_teardown_nemesis, run)
    run.driver = NemesisDriver(run.nemesis, run.ctx, run.history, nemlog, run.run_dir / NEMESIS_ERRORS)
    node_map = {n.id: n for n in backend.nodes}
    weights = parse_routing_weights(config.routing_weights, backend.node_ids, "--routing-weights")
    for w in range(config.concurrency):
        router = Router(backend.node_ids, lambda nid: system.open_client(node_map[nid], config.op_timeout),
                        config.routing, derive_rng(config.seed, "routing", w), w, leaders.cached,
                        weights=weights)
        run.workers.append(Worker(w, run.workload, config, run.history, router, run.tally,
                                  run.keys_seen, run.keys_lock))
    stack.callback(_close_clients, run)
    stack.callback(_stop_threads, run)


def wall_clock_doc(unix_ns: int) -> dict[str, Any]:
    """When history time 0 was on the wall clock (UTC, microseconds), to line up node logs."""
    import datetime

    at = datetime.datetime.fromtimestamp(unix_ns / 1e9, tz=datetime.UTC)
    local = at.astimezone()
    return {
        "history_start_unix_ns": unix_ns,
        "history_start_utc": at.isoformat(timespec="microseconds"),
        "history_start_local": local.isoformat(timespec="microseconds"),
        "note": "history time t (ns) happened at wall-clock history_start_unix_ns + t on the "
                "machine running jepsenlike (node clocks under a clock fault differ)",
    }


def phase_warmup(run: Run) -> None:
    """Client load without faults until the end of warm-up."""
    run.phases["warmup"] = 0  # time 0 of the history
    run.threads = [start_thread(w.run_load, run.stop_clients, name=f"worker-{w.index}") for w in run.workers]
    run.sleep_until(run.plan.warmup_end, "warmup")


def phase_chaos(run: Run) -> None:
    """The nemesis generator on its own thread until the end of the chaos phase."""
    assert run.driver is not None
    run.mark("chaos")
    t = start_thread(run.driver.run_chaos, run.nemesis_gen, run.now_s, run.stop_nemesis, name="nemesis")
    run.sleep_until(run.plan.chaos_end, "chaos")
    run.stop_nemesis.set()
    t.join()
    if run.driver.error:
        raise run.driver.error


def phase_heal(run: Run) -> None:
    """The generator's final part: every package's heal ops."""
    assert run.driver is not None
    run.mark("heal")
    run_final(run.nemesis_gen, run.driver.fire, run.now_s)


def phase_recover(run: Run) -> None:
    """Wait until the cluster answers (and leads) again, keep the load ``recovery`` s, stop it."""
    run.mark("recover")
    system, backend, config = run.system, run.backend, run.config
    assert backend is not None and run.leaders is not None
    leaders = run.leaders

    def recovered() -> bool:
        if not all(system.probe(n, timeout=0.5) for n in backend.nodes):
            return False
        return not system.can_tell_leader or leaders.fresh() is not None

    if not _wait_until(recovered, config.ready_timeout, lambda: run.tick("recover")):
        run.say(f"jepsenlike: warning: cluster not fully recovered {config.ready_timeout:g} s after healing")
    run.sleep_until(run.now_s() + config.recovery, "recover")
    run.stop_clients.set()
    for t in run.threads:
        t.join()


def phase_final(run: Run) -> None:
    """Each worker runs its share of the workload's final ops (retried until ok or the deadline)."""
    run.mark("final")
    config = run.config
    final_ops = run.workload.final_ops(sorted(run.keys_seen, key=repr))
    if final_ops:
        deadline = time.monotonic() + max(10.0, 5 * config.op_timeout)
        shares = [final_ops[i::config.concurrency] for i in range(config.concurrency)]
        run.threads = [start_thread(w.run_final, share, deadline, run.stop_final, name=f"final-{w.index}")
                       for w, share in zip(run.workers, shares, strict=True) if share]
        while any(t.is_alive() for t in run.threads):
            run.tick("final")
            time.sleep(0.1)
    run.mark("end")
    run.tick("done")
    for w in run.workers:
        if w.error:
            raise HarnessBug(f"worker {w.index} crashed: {type(w.error).__name__}: {w.error}") from w.error


PHASES: list[tuple[str, Callable[[Run], None]]] = [
    ("setup", phase_setup),
    ("warmup", phase_warmup),
    ("chaos", phase_chaos),
    ("heal", phase_heal),
    ("recover", phase_recover),
    ("final", phase_final),
]
"""The phases of a run, in order; the check follows once every resource is released."""


# -- teardown ---------------------------------------------------------------------------


def _stop_threads(run: Run) -> None:
    run.stop_clients.set()
    run.stop_nemesis.set()
    run.stop_final.set()
    for t in run.threads:
        t.join(timeout=run.config.op_timeout + 2)


def _close_clients(run: Run) -> None:
    for w in run.workers:
        w.router.close()


def _teardown_nemesis(run: Run) -> None:
    try:
        if run.ctx is not None:
            run.nemesis.teardown(run.ctx)
    except Exception as e:
        run.say(f"jepsenlike: nemesis teardown failed: {type(e).__name__}: {e}")


def _close(run: Run, interrupted: bool, crash: BaseException | None) -> None:
    """Release every resource (reverse order) and write the final ``test.json``."""
    try:
        run.stack.close()
    finally:
        if run.ballast is not None:
            run.ballast.release()  # room for the final records even on a full disk
        run.test_doc["phases"] = run.phases
        run.test_doc["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if interrupted:
            run.test_doc["interrupted"] = True
        if run.stopped_because:
            run.test_doc["interrupted_reason"] = run.stopped_because
        try:
            write_json(run.run_dir / TEST_FILE, run.test_doc)
        except OSError as e:
            run.say(f"jepsenlike: {run.run_dir / TEST_FILE} not updated: {e}")
        if crash is not None:
            write_json(run.run_dir / RESULTS_FILE, {
                "valid": UNKNOWN, "crashed": f"{type(crash).__name__}: {crash}",
                "traceback": "".join(traceback.format_exception(crash)),
                "explanation": "the run did not complete; nothing was checked",
            })


def execute(run: Run) -> bool:
    """Run every phase; release everything whatever happens. Returns True if interrupted.

    Raises whatever a phase raised (after cleanup), except KeyboardInterrupt.
    """
    interrupted = False
    crash: BaseException | None = None
    try:
        with signals_as_interrupts():
            for _name, phase in PHASES:
                phase(run)
    except KeyboardInterrupt:
        interrupted = True
    except StoreWriteError as e:
        interrupted, run.stopped_because = True, str(e)
    except OSError as e:
        if e.errno not in STORE_ERRNOS:
            crash = e
            raise
        interrupted, run.stopped_because = True, f"the store could not be written ({e})"
    except BaseException as e:
        crash = e
        raise
    finally:
        with deferred_signals() as held:
            _close(run, interrupted, crash)
    return interrupted or bool(held)  # a signal during cleanup is honoured now


def run_test(
    config: TestConfig,
    *,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run one test as configured: prepare, the phases, check (see the module docstring).

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
    run = prepare(config, say, progress)
    if execute(run):
        why = f"stopped: {run.stopped_because}" if run.stopped_because else "interrupted before the end"
        results: dict[str, Any] = {
            "valid": UNKNOWN, "interrupted": True,
            "explanation": f"{why}; the history is partial (re-check with: jepsenlike analyze {run.run_dir})"}
        if run.stopped_because:
            results["interrupted_reason"] = run.stopped_because
        try:
            write_json(run.run_dir / RESULTS_FILE, results)
        except OSError as e:
            say(f"jepsenlike: {run.run_dir / RESULTS_FILE} not written: {e}")
        if run.stopped_because:
            raise StoreWriteError(f"{run.stopped_because}; the run stopped (faults healed, nodes stopped); "
                                  f"check what was recorded with: jepsenlike analyze {run.run_dir}")
        raise KeyboardInterrupt(str(run.run_dir))
    results = check_run(run.run_dir, run.workload, run.test_doc,
                        fired=run.driver.fired if run.driver else [])
    write_report(run.run_dir, say)
    say("")
    return RunOutcome(results["valid"], run.run_dir, results, config)
