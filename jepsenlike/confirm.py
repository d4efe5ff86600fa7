"""Fault confirmation: did a fault take effect on the node it was aimed at?

Theory of operation
-------------------
A nemesis says what it *asked* the backend to do; that is not proof the node
felt it (a libfaketime that failed to preload, a static binary that reads the
clock without libc, a signal sent to the wrong process). After every start op
of a built-in fault, :func:`confirm_completion` looks at the node from the
outside and writes the answer into the completion's value, which goes into the
history like the rest of the fault::

    {"nodes": ["n2"], ..., "confirmed": {"n2": "state T (stopped) in /proc/4711/stat"}}
    {"nodes": ["n2"], ..., "unconfirmed": {"n2": "clock fault on n2 not confirmed: ..."}}
    {"nodes": ["n2"], ..., "unobservable": {"n2": "the node's clock could not be read"}}

:mod:`jepsenlike.coverage` counts a fault as fired only when no target is
``unconfirmed``; an unconfirmed fault makes the verdict ``unknown`` with its
reason. ``unobservable`` (the backend cannot look, e.g. a plugin nemesis or a
backend without an observer) is reported but does not decide anything.

What is looked at, per fault kind:

* ``kill`` -- the node's processes are gone: local, no live (non-zombie)
  process left in the node's process group (``/proc``); docker, the container
  is not running; in-process, the node is marked killed.
* ``pause`` -- the node is stopped: local, every process of its group is in
  state ``T`` in ``/proc/PID/stat``; docker, the container is paused.
* ``partition`` -- for every cut ``X -> Y`` (X in Y's grudge): local, a probe
  connection to the proxy of link ``X -> Y`` is *not* passed on to Y within
  a short window (the proxy's count of upstream dials stays put; any dial on
  that link, ours or the node's, means it passes); docker, Y's iptables chain
  holds the DROP rule for X's address.
* ``clock`` (bump, strobe, drift) -- libfaketime must be mapped into every
  live process of the node (``/proc/PID/maps``; in docker, of PID 1 of the
  container, which is the node: a static binary ignores ``LD_PRELOAD``, a
  library that failed to preload is not mapped); then the
  node's wall clock must differ from real time by about the offset the clock
  control is driving now: first the system's
  own reading (:meth:`System.wall_clock`, e.g. the ``time`` field of the
  reference nodes' ``/status``), else a probe process started with the node's
  own environment (the same ``LD_PRELOAD`` and control file; locally
  ``python -c 'print(time.time())'``, in docker ``date`` inside the container).
  The reading is bracketed by the harness's real time before and after, so the
  observed offset is an interval; it must overlap the expected one within
  :data:`CLOCK_TOLERANCE`. Samples are retaken (for at most
  :data:`CLOCK_BUDGET` seconds) while the expected offset is too small to tell
  from zero (a drift that has just begun, a strobe in its off phase).

The backend side is an *observer* (``backend.observer()``); the observers of the
local, in-process and docker backends live here, so backends only carry a
one-line hook.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

CLOCK_TOLERANCE = 0.05
"""Seconds the observed clock offset may differ from the expected one (plus the reading's own span)."""
CLOCK_BUDGET = 1.5
"""Seconds spent per node retaking clock samples before giving up."""
STROBE_SPAN = 0.04
"""Seconds: a reading of a strobing clock counts only if shorter (strobe periods are >= 0.05 s)."""
PROCESS_SETTLE = 0.5
"""Seconds a kill or pause may take to reach every process of the node."""
PARTITION_WINDOW = 0.25
"""Seconds a partition probe waits for the proxy to dial through."""

Link = tuple[str, str]
Observation = tuple[bool | None, str]
"""``(True, evidence)``, ``(False, why not)``, or ``(None, why it cannot be seen)``."""


class Observer(Protocol):
    """What a backend can see of its nodes (every method may answer None: cannot tell)."""

    def process_state(self, node_id: str) -> tuple[str, str] | None:
        """``("running" | "stopped" | "gone", evidence)``."""
        ...

    def wall_clock(self, node_id: str) -> float | None:
        """The wall time a process started like the node (same preload) reads now."""
        ...

    def links_pass(self, links: list[Link]) -> dict[Link, tuple[bool, str]] | None:
        """Per directed link ``(X, Y)``: do bytes from X reach Y now?"""
        ...

    # Optional: ``preload_loaded(node_id) -> (bool, evidence) | None`` -- is the clock
    # library loaded in the node's own processes (checked before any clock reading).


# -- the entry point ------------------------------------------------------------

START_FS = {"kill": "kill", "pause": "pause", "start-partition": "partition",
            "bump-clock": "clock", "strobe-clock": "clock", "drift-clock": "clock",
            # the targeted faults (jepsenlike.nemesis.targeted)
            "start-leader-clock": "partition+clock", "kill-elected": "kill", "pause-leader": "pause+partition",
            "start-flip": "partition", "flip-partition": "partition", "kill-cluster": "kill"}
"""Start ops whose effect is confirmed, and the fault kind each belongs to."""


def confirm_completion(ctx: Any, op: Any, done: Any) -> Any:
    """``done`` with ``confirmed`` / ``unconfirmed`` / ``unobservable`` added to its value.

    ``ctx`` is the run context (``backend``, ``system``); a completion that is
    not a built-in start op, failed, or touched nothing is returned as it is.
    Never raises: a failure to look is ``unobservable``.
    """
    kind = START_FS.get(op.f)
    value = done.value
    if kind is None or done.error or not isinstance(value, Mapping):
        return done
    try:
        results = _confirm(kind, ctx, dict(value))
    except Exception as e:  # looking must never break the run
        results = {n: (None, f"could not look: {type(e).__name__}: {e}") for n in value.get("nodes") or []}
    if not results:
        return done
    new = dict(value)
    for key, want in (("confirmed", True), ("unconfirmed", False), ("unobservable", None)):
        part = {k: why for k, (ok, why) in results.items() if ok is want}
        if part:
            new[key] = part
    return replace(done, value=new)


def _confirm(kind: str, ctx: Any, value: dict[str, Any]) -> dict[str, Observation]:
    backend = ctx.backend
    hook = getattr(backend, "observer", None)
    observer = hook() if callable(hook) else None
    nodes = [n for n in value.get("nodes") or [] if isinstance(n, str)]
    if "+" in kind:  # a combined fault: every part must be in force
        out: dict[str, Observation] = {}
        for part in kind.split("+"):
            out.update(_confirm(part, ctx, value))
        return out
    if kind == "partition":
        return confirm_partition(observer, value.get("grudge") or {})
    if kind == "clock":
        return {n: confirm_clock(ctx, observer, n) for n in nodes}
    want = "gone" if kind == "kill" else "stopped"
    return {n: confirm_process(observer, n, want, kind) for n in nodes}


def confirm_process(observer: Observer | None, node_id: str, want: str, kind: str,
                    settle: float = PROCESS_SETTLE) -> Observation:
    """Is ``node_id`` in process state ``want`` (``gone`` for kill, ``stopped`` for pause)?

    Signals reach the other processes of a group asynchronously, so the state is
    looked at again for up to ``settle`` seconds before the answer is no.
    """
    deadline = time.monotonic() + settle
    while True:
        seen = observer.process_state(node_id) if observer is not None else None
        if seen is None:
            return None, f"the backend cannot observe {node_id}'s process state"
        state, evidence = seen
        if state == want:
            return True, evidence
        if time.monotonic() >= deadline:
            return False, f"{kind} fault on {node_id} not confirmed: the node is {state} ({evidence})"
        time.sleep(0.02)


def confirm_partition(observer: Observer | None, grudge: Mapping[str, Iterable[str]]) -> dict[str, Observation]:
    """For each cut ``X -> Y`` of ``grudge``: does traffic from X still reach Y?"""
    links = sorted((x, y) for y, drops in grudge.items() for x in drops)
    if not links:
        return {}
    seen = observer.links_pass(links) if observer is not None else None
    if seen is None:
        return {f"{x}->{y}": (None, "the backend cannot observe its links") for x, y in links}
    out: dict[str, Observation] = {}
    for link in links:
        name = f"{link[0]}->{link[1]}"
        if link not in seen:
            out[name] = (None, "not observed")
            continue
        passes, evidence = seen[link]
        out[name] = ((False, f"partition {name} not confirmed: traffic still passes ({evidence})")
                     if passes else (True, evidence))
    return out


def _expected_offset(clock: Any) -> float | None:
    try:
        return float(clock.offset)
    except Exception:
        return None


def _read_clock(ctx: Any, observer: Observer | None, node_id: str) -> tuple[float, float, float, str] | None:
    """``(real before, node's wall time, real after, source)`` or None."""
    system = getattr(ctx, "system", None)
    hook = getattr(system, "wall_clock", None)
    if callable(hook):
        node = ctx.backend.node(node_id)
        before = time.time()
        seen = hook(node, 0.3)
        after = time.time()
        if seen is not None:
            return before, float(seen), after, "the node's own clock"
    if observer is not None:
        before = time.time()
        seen = observer.wall_clock(node_id)
        after = time.time()
        if seen is not None:
            return before, float(seen), after, "a probe process under the node's preload"
    return None


def confirm_clock(ctx: Any, observer: Observer | None, node_id: str,
                  budget: float = CLOCK_BUDGET, tolerance: float = CLOCK_TOLERANCE) -> Observation:
    """Does ``node_id``'s wall clock differ from real time by what its clock control drives?"""
    try:
        clock = ctx.backend.clock(node_id)
    except Exception as e:
        return None, f"no clock control for {node_id}: {e}"
    loaded = getattr(observer, "preload_loaded", None)
    preload = loaded(node_id) if callable(loaded) else None
    if preload is not None and not preload[0]:
        return False, f"clock fault on {node_id} not confirmed: {preload[1]}"
    deadline = time.monotonic() + budget
    last: tuple[float, float, str] | None = None
    while True:
        e0 = _expected_offset(clock)
        reading = _read_clock(ctx, observer, node_id)
        e1 = _expected_offset(clock)
        if e0 is None or e1 is None:
            return None, "the backend's clock control does not say what offset it drives"
        if reading is None:
            return None, f"{node_id}'s wall clock could not be read (no status hook, no probe)"
        before, wall, after, source = reading
        obs_lo, obs_hi = wall - after, wall - before
        exp_lo, exp_hi = min(e0, e1), max(e0, e1)
        # No strobe flip during the reading: equal ends, and for a strobing clock a
        # reading shorter than the shortest strobe period (two flips look like none).
        strobing = getattr(clock, "strobing", None)
        steady = exp_hi - exp_lo < tolerance and (
            after - before < STROBE_SPAN or not (callable(strobing) and strobing()))
        telling = min(abs(exp_lo), abs(exp_hi)) > (obs_hi - obs_lo) + 2 * tolerance
        if steady and telling:
            if obs_lo - tolerance <= exp_hi and exp_lo <= obs_hi + tolerance:
                return True, (f"{source} is {(obs_lo + obs_hi) / 2:+.2f} s off real time "
                              f"(expected {(exp_lo + exp_hi) / 2:+.2f} s)")
            last = ((obs_lo + obs_hi) / 2, (exp_lo + exp_hi) / 2, source)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if last is None:
        return None, f"the offset on {node_id} stayed too small to tell from real time"
    seen, want, source = last
    seen, want = round(seen, 1) + 0.0, round(want, 1) + 0.0  # no "-0.0"
    return False, (f"clock fault on {node_id} not confirmed: {source} moved {seen:+.1f} s of "
                   f"{want:+.1f} s requested (is libfaketime loaded? does the node read the clock "
                   "through libc?)")


# -- observers ------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, process group)`` of ``pid`` from ``/proc``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def group_states(pgid: int) -> dict[int, str]:
    """Every process of group ``pgid`` and its state letter (zombies included)."""
    out: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and st[1] == pgid:
                out[int(entry.name)] = st[0]
    return out


def process_group_state(pgid: int) -> tuple[str, str]:
    """``gone`` / ``stopped`` / ``running`` for a node's process group, with the evidence."""
    states = group_states(pgid)
    live = {pid: s for pid, s in states.items() if s not in ("Z", "X", "x")}
    if not live:
        return "gone", f"no live process in group {pgid}"
    stopped = {pid: s for pid, s in live.items() if s in ("T", "t")}
    shown = ", ".join(f"{pid}:{s}" for pid, s in sorted(live.items())[:4])
    if len(stopped) == len(live):
        return "stopped", f"state T (stopped) in /proc/PID/stat of group {pgid} ({shown})"
    return "running", f"/proc/PID/stat of group {pgid}: {shown}"


CLOCK_PROBE = [sys.executable, "-I", "-S", "-c", "import time; print(repr(time.time()))"]
"""The local clock probe: a process that prints the wall time it reads."""


def probe_wall_clock(env: Mapping[str, str], argv: list[str] | None = None, timeout: float = 5.0) -> float | None:
    """Run the clock probe with ``env`` (a node's environment); its printed time, or None."""
    try:
        out = subprocess.run(argv or CLOCK_PROBE, env=dict(env), capture_output=True, text=True,
                             timeout=timeout, check=False)
        return float(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


class LocalObserver:
    """Looks at a :class:`~jepsenlike.backends.local.LocalBackend`'s processes, proxies and clocks."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def process_state(self, node_id: str) -> tuple[str, str] | None:
        proc = self.backend.procs.get(node_id)
        if proc is None:
            return None
        return process_group_state(proc.pid)  # each node leads its own session and group

    def wall_clock(self, node_id: str) -> float | None:
        clock = self.backend.clocks.get(node_id)
        if clock is None:
            return None
        return probe_wall_clock(clock.env_for_process())

    def preload_loaded(self, node_id: str, settle: float = PROCESS_SETTLE) -> tuple[bool, str] | None:
        """Is libfaketime mapped into every live process of the node (``/proc/PID/maps``)?

        A static binary ignores ``LD_PRELOAD``, and a library that failed to
        preload is not mapped: then the node cannot see faked time, whatever a
        probe process sees. None when no live process can be looked at. A node
        (re)started a moment ago may not have run its loader yet (or not even
        exec'd), so a missing mapping is looked at again for ``settle`` s.
        """
        deadline = time.monotonic() + settle
        while True:
            answer = self._preload_once(node_id)
            if answer is None or answer[0] or time.monotonic() >= deadline:
                return answer
            time.sleep(0.05)

    def _preload_once(self, node_id: str) -> tuple[bool, str] | None:
        clock = self.backend.clocks.get(node_id)
        proc = self.backend.procs.get(node_id)
        if clock is None or proc is None:
            return None
        try:
            library = Path(clock.library).resolve()
        except Exception:
            return None
        missing, looked = [], 0
        for pid, state in group_states(proc.pid).items():
            if state in ("Z", "X", "x"):
                continue
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            looked += 1
            mapped = {Path(line.split(None, 5)[5]).name for line in maps.splitlines()
                      if len(line.split(None, 5)) == 6}
            if library.name not in mapped and str(library) not in maps:
                missing.append(pid)
        if not looked:
            return None
        if missing:
            return False, (f"libfaketime ({library.name}) is not loaded in the node's process(es) "
                           f"{', '.join(map(str, missing))} (a static binary, or a preload that failed: "
                           "see the node's log)")
        return True, f"libfaketime mapped in {looked} process(es)"

    def links_pass(self, links: list[Link]) -> dict[Link, tuple[bool, str]] | None:
        net = self.backend.net
        if net is None:
            return None
        return probe_proxy_links(net, links)


def probe_proxy_links(net: Any, links: list[Link], window: float = PARTITION_WINDOW) -> dict[Link, tuple[bool, str]]:
    """Open a probe connection per link and see whether its proxy dials the far end.

    A held link dials nobody (neither for the probe nor for the node's own
    reconnects); a link that passes dials the probe's connection through at once.
    """
    before = net.stats()
    socks: dict[Link, socket.socket] = {}
    out: dict[Link, tuple[bool, str]] = {}
    try:
        for link in links:
            try:
                socks[link] = socket.create_connection(net.address(*link), timeout=1.0)
            except OSError as e:
                out[link] = (False, f"the proxy of {link[0]}->{link[1]} did not accept a probe: {e}")
        time.sleep(window)
        after = net.stats()
    finally:
        for s in socks.values():
            with contextlib.suppress(OSError):
                s.close()
    for link in socks:
        dials = after[link].dials - before[link].dials
        out[link] = ((True, f"the proxy of {link[0]}->{link[1]} dialled {dials} connection(s) "
                            f"in {window:g} s") if dials else
                     (False, f"a probe connection to the proxy of {link[0]}->{link[1]} was held "
                             f"({window:g} s, no dial)"))
    return out


class InProcessObserver:
    """The in-process backend's simulated process states (its cluster's kill/pause switches)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def process_state(self, node_id: str) -> tuple[str, str] | None:
        cluster = self.backend.cluster
        if cluster is None or not hasattr(cluster, "killed"):
            return None
        with cluster.lock:
            if node_id in cluster.killed:
                return "gone", "the in-process node refuses connections (killed)"
            if node_id in cluster.paused:
                return "stopped", "the in-process node holds every request (paused)"
        return "running", "the in-process node serves requests"

    def wall_clock(self, node_id: str) -> float | None:
        return None

    def links_pass(self, links: list[Link]) -> dict[Link, tuple[bool, str]] | None:
        return None


class DockerObserver:
    """Looks at a docker backend's containers: inspect state, iptables chain, ``date`` inside."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def _inspect(self, node_id: str) -> dict[str, Any]:
        return self.backend.client.api.inspect_container(self.backend.containers[node_id])["State"]

    def process_state(self, node_id: str) -> tuple[str, str] | None:
        if node_id not in self.backend.containers:
            return None
        st = self._inspect(node_id)
        name = self.backend.container_name(node_id)
        if st.get("Paused"):
            return "stopped", f"container {name} is paused"
        if not st.get("Running"):
            return "gone", f"container {name} is not running ({st.get('Status')})"
        return "running", f"container {name} is running"

    def _exec(self, node_id: str, argv: list[str], preload: bool = True) -> tuple[int, str]:
        """Run ``argv`` in the container; with ``preload``, under the node's own environment."""
        api = self.backend.client.api
        env = None if preload else {"LD_PRELOAD": ""}
        ex = api.exec_create(self.backend.containers[node_id], argv, stdout=True, stderr=True,
                             environment=env)
        out = api.exec_start(ex["Id"], demux=False)
        rc = api.exec_inspect(ex["Id"])["ExitCode"]
        return int(rc if rc is not None else -1), (out or b"").decode("utf-8", "replace")

    def wall_clock(self, node_id: str) -> float | None:
        st = self.process_state(node_id)
        if st is None or st[0] != "running":
            return None
        rc, out = self._exec(node_id, ["date", "+%s.%N"])
        try:
            return float(out.strip().splitlines()[-1]) if rc == 0 else None
        except (ValueError, IndexError):
            return None

    def preload_loaded(self, node_id: str) -> tuple[bool, str] | None:
        """Is libfaketime mapped into the node (PID 1 of its container: the node ``exec``s)?"""
        if node_id not in getattr(self.backend, "clocks", {}):
            return None
        st = self.process_state(node_id)
        if st is None or st[0] != "running":
            return None
        rc, maps = self._exec(node_id, ["cat", "/proc/1/maps"], preload=False)
        if rc != 0:
            return None
        if "libfaketime" in maps:
            return True, "libfaketime mapped in the node (PID 1 of its container)"
        return False, ("libfaketime is not loaded in the node (PID 1 of its container): a static "
                       "binary, or a preload that failed (see the node's log)")

    def links_pass(self, links: list[Link]) -> dict[Link, tuple[bool, str]] | None:
        from jepsenlike.backends.docker.iptables import CHAIN

        binary = "iptables-legacy" if getattr(self.backend, "iptables", "nft") == "legacy" else "iptables"
        rules: dict[str, tuple[int, str]] = {}
        out: dict[Link, tuple[bool, str]] = {}
        for x, y in links:
            st = self.process_state(y)
            if st is None or st[0] != "running":
                continue  # a paused or killed node loads its rules when it runs again
            if y not in rules:
                rules[y] = self._exec(y, [binary, "-w", "5", "-S"], preload=False)
            rc, text = rules[y]
            if rc != 0:
                continue
            ip = self.backend.ip(x)
            jump = f"-j {CHAIN}" in text
            drop = f"-A {CHAIN} -s {ip}/32 -j DROP" in text
            out[(x, y)] = ((False, f"iptables in {y} drops {ip} ({x})") if jump and drop else
                           (True, f"iptables in {y} has no DROP for {ip} ({x})"
                                  + ("" if jump else f" and no jump to {CHAIN}")))
        return out
