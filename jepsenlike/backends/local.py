"""The ``local`` backend: every node is a process on this host.

Theory of operation
-------------------
:meth:`LocalBackend.start` picks free loopback ports (a client and a peer
port per node, by binding port 0 and reading back what the kernel chose),
creates ``<run_dir>/nodes/<id>/data``, and launches each node with the
system's command line in a *new session*, so the node is the leader of its
own process group: signals go to the whole group (``os.killpg``), and a
Ctrl-C typed at the harness's terminal reaches the harness only, which then
tears the nodes down itself. Each node's stdout and stderr go to
``<run_dir>/nodes/<id>.log`` (appended across restarts, with a marker line).

Readiness is polled with the system's probe until it answers or
``ready_timeout`` passes; a node that exits or times out raises
:class:`~jepsenlike.backends.base.NodeStartError` with its exit status and the
tail of its log.

Faults: ``kill`` is SIGKILL to the group and ``restart`` runs the same
command on the same data dir; ``pause``/``resume`` are SIGSTOP/SIGCONT.

Network (capability ``net``): before the first node starts, a
:class:`~jepsenlike.net.proxy.ProxyNet` (seeded from the run's seed) opens one
userspace proxy per directed peer link, and each node's ``--peers`` are the
proxy addresses :meth:`ProxyNet.peers_for` gives it; partitions, latency and
connection drops are applied there (see ``docs/faults.md``). Clients talk to
nodes directly.

Addressable nodes (``network=netns``, chosen by ``auto`` when the system
declares ``own_address``: it names each member by one address every peer
dials, as etcd and ZooKeeper do): instead of proxies, each node runs in its own
network namespace on a bridge, with its own address and the fixed ports
:data:`NETNS_PORTS`, and partitions are iptables rules inside the namespaces
(:mod:`jepsenlike.backends.netns`; needs root). Rootless, such a system is
refused up front with the reason; the proxies only work for systems that dial
the addresses they are given.

Clocks (capability ``clock``, only when :func:`~jepsenlike.faketime.search_libfaketime`
finds the library; otherwise :attr:`LocalBackend.refusals` says why): each
node gets one :class:`~jepsenlike.faketime.FaketimeClock` on
``<run_dir>/nodes/<id>.faketime`` for the whole run, restarts included, and
is started with its ``env_for_process()``. Clocks are only preloaded when the
run asks for clock faults (``clocks=True``): the preload makes every wall-clock
read of a node reread its control file.

Nodes are forked through :func:`jepsenlike.procguard.spawn`: each dies with
the harness even when the harness is SIGKILLed (a parent-death signal), and
``jepsenlike clean`` finds what an earlier killed run left.

Nothing is left behind: :meth:`LocalBackend.teardown` (SIGCONT + SIGTERM,
then SIGKILL after a short grace; then the proxies are stopped and the clock
driver threads joined) runs from the runner's ``finally``; every
live backend is also registered for ``atexit``. ``SIGINT``/``SIGTERM`` are
turned into exceptions by the runner so that the ``finally`` runs.
Data dirs are removed at teardown unless ``keep_data``; logs stay.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jepsenlike import procguard
from jepsenlike.backends.base import (
    CLOCK,
    KILL,
    NET,
    PAUSE,
    Backend,
    ClockControl,
    Link,
    NodeStartError,
    track_live,
    untrack_live,
)
from jepsenlike.backends.netns import NetnsNet
from jepsenlike.backends.netns import unavailable_reason as netns_unavailable
from jepsenlike.errors import ConfigError
from jepsenlike.faketime import FaketimeClock, search_libfaketime
from jepsenlike.net.proxy import ProxyNet
from jepsenlike.registry import Option
from jepsenlike.systems.base import NodeSpec, System

#: Client and peer port of every node in netns mode (each node has its own address).
NETNS_PORTS = (7000, 7001)
NETWORK_MODES = ("auto", "proxy", "netns")


def network_mode(system: System | None, requested: str = "auto") -> str:
    """``proxy`` or ``netns`` for this system; ConfigError when the choice cannot work here."""
    own = bool(getattr(system, "own_address", False))
    mode = requested if requested != "auto" else ("netns" if own else "proxy")
    if mode == "proxy" and own:
        raise ConfigError(f"--option local.network=proxy: system {system.name!r} names each member by one "
                          "address every peer dials, which per-link proxies cannot give; use "
                          "--option local.network=netns (as root)")
    if mode == "netns":
        why = netns_unavailable()
        if why:
            who = f"system {system.name!r} needs one address per member: " if own else ""
            raise ConfigError(f"--backend local: {who}{why}")
    return mode


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the kernel says are free now (held open together)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a file ('' if it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _await_stopped(pid: int, stopped: bool, timeout: float = 1.0) -> None:
    """Signals are delivered asynchronously: wait (on Linux, via /proc) until the
    process is (or is no longer) stopped, so a fault's completion is recorded after
    it took effect."""
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            return
        if (state in ("T", "t")) == stopped:
            return
        time.sleep(0.002)


class LocalBackend(Backend):
    """Nodes as local processes, one process group each.

    Args:
        system: the system to run.
        n_nodes: cluster size.
        run_dir: where ``nodes/<id>/data`` and ``nodes/<id>.log`` go.
        bug: seeded bug passed to every node, or None.
        seed: the run's seed, passed to every node.
        ready_timeout: seconds to wait for all nodes to become ready.
        host: the loopback address to bind.
        keep_data: keep data dirs after teardown.
        clocks: give every node a libfaketime clock (:meth:`clock`).
        proxies: route peer links through per-link proxies (:class:`ProxyNet`, the ``net``
            capability); False: nodes dial each other directly (benchmarks measure the
            nodes alone) and network faults are refused.
        initial_grudge: a partition in force from before the first node starts (a node
            cut off from birth); needs ``proxies``.
    """

    name = "local"
    capabilities = frozenset({KILL, PAUSE, NET, CLOCK})
    plugin_options = (
        Option("network", str, "auto", "proxy: per-link proxies (rootless); netns: a network namespace "
               "per node on a bridge (root); auto: netns when the system needs one address per member",
               choices=NETWORK_MODES),
    )

    @staticmethod
    def capabilities_here(n_nodes: int = 2, system: System | None = None,
                          settings: Mapping[str, object] | None = None) -> tuple[frozenset[str], dict[str, str]]:
        """What this backend can do on this machine, and why not the rest.

        Raises:
            ConfigError: ``system`` needs an address per member and netns mode cannot run here.
        """
        if system is not None:
            network_mode(system, str((settings or {}).get("network", "auto")))
        caps = {KILL, PAUSE, NET, CLOCK}
        refusals: dict[str, str] = {}
        if n_nodes < 2:
            caps.discard(NET)
            refusals[NET] = "a single node has no peer links to cut"
        found = search_libfaketime()
        if found.path is None:
            caps.discard(CLOCK)
            refusals[CLOCK] = found.reason
        return frozenset(caps), refusals

    def __init__(
        self,
        system: System,
        n_nodes: int,
        run_dir: str | os.PathLike[str],
        *,
        bug: str | None = None,
        seed: int = 0,
        ready_timeout: float = 20.0,
        host: str = "127.0.0.1",
        keep_data: bool = False,
        clocks: bool = False,
        proxies: bool = True,
        initial_grudge: Mapping[str, Iterable[str]] | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__()
        self.mode = network_mode(system, str((settings or {}).get("network", "auto")))
        self.netns: NetnsNet | None = None
        self.capabilities, self.refusals = self.capabilities_here(n_nodes)
        if not proxies and NET in self.capabilities:
            self.capabilities = self.capabilities - {NET}
            self.refusals = {**self.refusals, NET: "the nodes were started without peer proxies (proxies=False)"}
        if initial_grudge is not None and NET not in self.capabilities:
            raise ValueError(f"initial_grudge needs the peer proxies, but {self.refusals[NET]}")
        self.initial_grudge = initial_grudge
        self.net: ProxyNet | None = None
        self.clocks: dict[str, FaketimeClock] = {}
        self._want_clocks = clocks and CLOCK in self.capabilities
        if clocks and CLOCK not in self.capabilities:
            raise NodeStartError(f"clock faults asked for, but {self.refusals[CLOCK]}")
        self.system = system
        self.run_dir = Path(run_dir)
        self.bug = bug
        self.seed = seed
        self.ready_timeout = ready_timeout
        self.keep_data = keep_data
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state: dict[str, str] = {}
        self._lock = threading.RLock()
        self._torn_down = False
        self._retired: list[subprocess.Popen[bytes]] = []
        self.host = host
        self._lay_out(n_nodes)

    def _lay_out(self, n_nodes: int) -> None:
        if self.mode == "netns":
            self.netns = self.netns or NetnsNet([f"n{i + 1}" for i in range(n_nodes)])
            self.netns.subnet = None
            self.netns.subnet = self.netns._pick_subnet()
            self.nodes = [
                NodeSpec(id=nid, client_addr=f"{self.netns.ip(nid)}:{NETNS_PORTS[0]}",
                         peer_addr=f"{self.netns.ip(nid)}:{NETNS_PORTS[1]}",
                         data_dir=str(self.run_dir / "nodes" / nid / "data"))
                for nid in self.netns.node_ids
            ]
            return
        ports = free_ports(2 * n_nodes, self.host)
        self.nodes = [
            NodeSpec(
                id=f"n{i + 1}",
                client_addr=f"{self.host}:{ports[2 * i]}",
                peer_addr=f"{self.host}:{ports[2 * i + 1]}",
                data_dir=str(self.run_dir / "nodes" / f"n{i + 1}" / "data"),
            )
            for i in range(n_nodes)
        ]

    def peers_of(self, node: NodeSpec) -> dict[str, str]:
        """For every other node, the address ``node`` dials: its proxy when the net is up."""
        if self.net is not None and self.netns is None:
            return self.net.peers_for(node.id)
        return {n.id: n.peer_addr for n in self.nodes if n.id != node.id}

    def _start_net(self) -> None:
        """(Re)build the per-link proxies for the current layout, before any node starts."""
        self._stop_net()
        if self.netns is not None:
            self.netns.setup()
            if self.initial_grudge is not None:
                self.netns.apply_grudge(self.initial_grudge)
            self.net = self.netns  # type: ignore[assignment]  # same fault methods as ProxyNet
        elif NET in self.capabilities:
            net = ProxyNet({n.id: n.peer_addr for n in self.nodes}, seed=self.seed, host=self.host,
                           avoid=[int(n.client_addr.rsplit(":", 1)[1]) for n in self.nodes])
            net.start()
            if self.initial_grudge is not None:
                net.apply_grudge(self.initial_grudge)
            self.net = net

    def _stop_net(self) -> None:
        net, self.net = self.net, None
        if isinstance(net, NetnsNet):
            net.teardown()
        elif net is not None:
            net.stop()

    def _start_clocks(self) -> None:
        if self._want_clocks and not self.clocks:
            for n in self.nodes:
                self.clocks[n.id] = FaketimeClock(self.run_dir / "nodes" / f"{n.id}.faketime")

    def command(self, node: NodeSpec) -> list[str]:
        return self.system.node_command(node, self.peers_of(node), bug=self.bug, seed=self.seed)

    def log_path(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / f"{node_id}.log"

    def log_files(self) -> dict[str, Path]:
        return {n.id: self.log_path(n.id) for n in self.nodes}

    # -- lifecycle --------------------------------------------------------------

    def start(self, attempts: int = 3) -> None:
        """Start every node and wait until each is ready.

        The free ports were free when chosen; another process may take one
        before our node binds it. A start that fails with "address already in
        use" in a node's log is retried on fresh ports, up to ``attempts`` times.
        """
        track_live(self)
        self._start_clocks()
        for attempt in range(1, attempts + 1):
            self._start_net()
            for node in self.nodes:
                Path(node.data_dir).mkdir(parents=True, exist_ok=True)
                self._spawn(node, "started")
            try:
                self.wait_ready(self.node_ids, self.ready_timeout)
                return
            except NodeStartError:
                clash = any("address already in use" in tail(self.log_path(n)).lower() for n in self.node_ids)
                if not clash or attempt == attempts:
                    raise
            for proc in self.procs.values():
                self._signal(proc, signal.SIGKILL)
                proc.wait()
            self._retired.extend(self.procs.values())
            self.procs.clear()
            self.state.clear()
            for node in self.nodes:
                shutil.rmtree(node.data_dir, ignore_errors=True)
            self._lay_out(len(self.nodes))

    def _spawn(self, node: NodeSpec, why: str) -> None:
        argv = (self.netns.exec_prefix(node.id) if self.netns else []) + self.command(node)
        log = self.log_path(node.id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(f"--- jepsenlike: {why} at {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n".encode())
            fh.flush()
            clock = self.clocks.get(node.id)
            # procguard: the node dies with the harness, even on SIGKILL (parent-death signal).
            proc = procguard.spawn(
                argv,
                run_dir=self.run_dir,
                node=node.id,
                env=clock.env_for_process() if clock is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        with self._lock:
            old = self.procs.get(node.id)
            if old is not None:
                self._retired.append(old)
            self.procs[node.id] = proc
            self.state[node.id] = "up"

    def wait_ready(self, node_ids: list[str], timeout: float) -> None:
        """Poll until every listed node answers its probe.

        Raises:
            NodeStartError: naming the node, why, and the tail of its log.
        """
        deadline = time.monotonic() + timeout
        pending = list(node_ids)
        while pending:
            for nid in list(pending):
                proc = self.procs[nid]
                rc = proc.poll()
                if rc is not None:
                    raise NodeStartError(self._start_failure(nid, f"exited with status {rc}"))
                if self.system.probe(self.node(nid), timeout=0.5):
                    pending.remove(nid)
            if pending:
                if time.monotonic() > deadline:
                    nid = pending[0]
                    raise NodeStartError(
                        self._start_failure(nid, f"was not ready after {timeout:g} s")
                    )
                time.sleep(0.05)

    def _start_failure(self, nid: str, what: str) -> str:
        node = self.node(nid)
        return (
            f"node {nid} ({self.system.name}, client {node.client_addr}) {what}.\n"
            f"command: {' '.join(self.command(node))}\n"
            f"last lines of {self.log_path(nid)}:\n{tail(self.log_path(nid)) or '(empty)'}"
        )

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
            procs = dict(self.procs)
        for proc in procs.values():
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                self._signal(proc, signal.SIGCONT)
        deadline = time.monotonic() + 1.0
        for proc in procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in procs.values():
            # Also SIGKILL groups whose leader is gone: a node's own children may remain.
            self._signal(proc, signal.SIGKILL)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable
                pass
        try:
            self._stop_net()
        except Exception:  # pragma: no cover - teardown never raises
            pass
        for clock in self.clocks.values():
            clock.close(remove=True)
        if not self.keep_data:
            for node in self.nodes:
                shutil.rmtree(node.data_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    Path(node.data_dir).parent.rmdir()  # only if now empty
        for proc in (*self._retired, *procs.values()):
            procguard.forget(proc)
        untrack_live(self)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, node_id: str, grace: float = 1.0) -> None:
        """Stop one node: SIGTERM (and SIGCONT, in case it is paused), SIGKILL after ``grace``."""
        with self._lock:
            proc = self.procs[node_id]
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
                self._signal(proc, signal.SIGCONT)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
            self._signal(proc, signal.SIGKILL)
            proc.wait()
            self.state[node_id] = "killed"

    # -- faults -----------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        with self._lock:
            proc = self.procs[node_id]
            self._signal(proc, signal.SIGKILL)
            proc.wait()
            self.state[node_id] = "killed"

    def restart(self, node_id: str) -> None:
        with self._lock:
            if self._torn_down:
                return
            proc = self.procs[node_id]
            if proc.poll() is None:
                return
            self._spawn(self.node(node_id), "restarted")

    def pause(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "up":
                return
            self._signal(self.procs[node_id], signal.SIGSTOP)
            _await_stopped(self.procs[node_id].pid, True)
            self.state[node_id] = "paused"

    def resume(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "paused":
                return
            self._signal(self.procs[node_id], signal.SIGCONT)
            _await_stopped(self.procs[node_id].pid, False)
            self.state[node_id] = "up"

    def _require_net(self) -> ProxyNet:
        if self.net is None:
            raise RuntimeError(f"network faults unavailable: {self.refusals.get(NET, 'the proxies are not running')}")
        return self.net

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        self._require_net().apply_grudge(grudge)

    def heal_network(self) -> None:
        self._require_net().heal()

    def slow_links(self, links: Iterable[Link] | None, latency_ms: float, jitter_ms: float) -> None:
        self._require_net().slow(links, latency_ms=latency_ms, jitter_ms=jitter_ms)

    def flaky_links(self, links: Iterable[Link] | None, drop_probability: float) -> None:
        self._require_net().flaky(links, drop_probability=drop_probability)

    def clock(self, node_id: str) -> ClockControl:
        try:
            return self.clocks[node_id]
        except KeyError:
            why = self.refusals.get(CLOCK, "the nodes were started without clock control (clocks=False)")
            raise RuntimeError(f"no clock control for {node_id}: {why}") from None

    def node_state(self, node_id: str) -> str:
        with self._lock:
            return self.state.get(node_id, "up")

    def observer(self) -> Any:
        from jepsenlike.confirm import LocalObserver

        return LocalObserver(self)

    def pids(self) -> list[int]:
        """Process ids of every node process this backend ever started."""
        return [p.pid for p in (*self._retired, *self.procs.values())]
