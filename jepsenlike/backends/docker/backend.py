"""The ``docker`` backend: one container per node on a private bridge network.

Theory of operation
-------------------
:meth:`DockerBackend.start`:

1. finds or builds the node image (:mod:`jepsenlike.backends.docker.image`; cached by
   its inputs, so this is a lookup after the first build) and, when the system
   has a :meth:`~jepsenlike.systems.base.System.container_recipe`, the system
   image on top of it (:mod:`jepsenlike.backends.docker.recipe`, cached the same way);
2. creates a bridge network of the run's own, labelled with the run id, on a
   ``/24`` from ``172.28.0.0/14`` that overlaps no Docker network and no host
   route (Docker refuses overlapping pools, so a lost race is retried on the
   next subnet). Choosing the subnet ourselves lets every node get a fixed
   address (``.10``, ``.11``, ...) before any container exists -- every node's
   ``--peers`` needs all of them -- and keeps it across ``docker kill`` and
   ``docker start``;
3. per node: a labelled named volume for its data (``/data``), a host
   *control directory* ``<run_dir>/nodes/<id>/control`` bind-mounted read-only
   at ``/jepsenlike`` (libfaketime's control file and the iptables/netem state,
   see :mod:`jepsenlike.backends.docker.iptables`), and a container that runs the
   system's node command behind the rule-loading prologue. The container gets
   ``CAP_NET_ADMIN`` and nothing else beyond Docker's defaults;
4. starts all containers and polls the system's readiness probe on each
   container's address, which the host reaches directly over the bridge.

Faults, all without touching the host's own firewall:

* ``kill``: ``docker kill`` (SIGKILL to PID 1, which is the node);
  ``restart``: ``docker start`` of the same container -- same volume, same
  address, and the current partition/netem reloaded before the node runs;
* ``pause``/``resume``: ``docker pause``/``unpause`` (the cgroup freezer);
* ``net``: :meth:`apply_grudge` / :meth:`heal_network` through iptables in
  each node's namespace; :meth:`slow_links` / :meth:`flaky_links` through
  ``tc`` (prio + netem) in the sending node when the kernel has ``sch_netem``
  and ``sch_prio`` (probed once; refused with tc's message if not). Docker
  refuses ``exec`` in a paused container, so a change for a paused node is
  written to its control files and loaded right after it is thawed (one exec
  round trip with the old rules);
* ``clock`` (with ``clocks=True``): every node runs with libfaketime
  preloaded, reading its control file through the bind mount; :meth:`clock`
  returns the node's :class:`~jepsenlike.faketime.FaketimeClock`, which the
  host drives.

Teardown (idempotent, never raises; also from ``atexit``): container logs are
saved to ``<run_dir>/nodes/<id>.log``, then containers, the network and the
volumes are removed -- first by the names we know, then by the run-id label,
so resources made by a start that failed half-way go too -- and the control
directories are deleted. Leftovers of a harness that died hard are removed
by ``jepsenlike docker clean`` (:mod:`jepsenlike.backends.docker.cleanup`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shlex
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jepsenlike.backends.base import (
    CLOCK,
    KILL,
    NET,
    PAUSE,
    Backend,
    ClockControl,
    Link,
    NodeStartError,
    node_argv,
    track_live,
    untrack_live,
)
from jepsenlike.backends.docker import cleanup
from jepsenlike.backends.docker.image import FAKETIME_LIB, NodeImage, build_node_image
from jepsenlike.backends.docker.iptables import (
    CONTROL_DIR,
    TC_CLEAR,
    chain_rules,
    netem_args,
    restore_command,
    tc_script,
    wrap_command,
)
from jepsenlike.backends.docker.recipe import build_system_image
from jepsenlike.errors import ConfigError
from jepsenlike.faketime import FaketimeClock
from jepsenlike.systems.base import NodeSpec, System

CLIENT_PORT = 8000
PEER_PORT = 7000
DATA_DIR = "/data"
SUBNET_POOL = ipaddress.IPv4Network("172.28.0.0/14")  # 172.28.0.0 - 172.31.255.255
FIRST_HOST = 10  # .1 is the bridge's gateway (the host); nodes from .10

class DockerUnavailable(ConfigError):
    """No Docker SDK or no daemon answering; the message says which and how to fix it."""


class NetemUnavailable(ConfigError):
    """The kernel (or the container) cannot do ``tc netem``; the message has tc's answer."""


def docker_client(timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` from the environment, or :class:`DockerUnavailable`."""
    try:
        import docker
    except ImportError as e:
        raise DockerUnavailable(
            "the docker backend needs the Docker SDK: pip install 'jepsenlike[docker]'"
        ) from e
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # the SDK raises several unrelated types here
        raise DockerUnavailable(
            f"no Docker daemon answers ({e}); start dockerd or set DOCKER_HOST"
        ) from e
    return client


def host_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host routes somewhere (from /proc/net/route), to avoid as subnets."""
    nets: list[ipaddress.IPv4Network] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) < 8:
                continue
            dest, mask = (int(f[1], 16).to_bytes(4, "little"), int(f[7], 16).to_bytes(4, "little"))
            if dest == b"\0\0\0\0":
                continue  # the default route covers everything; it does not forbid a subnet
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(f"{ipaddress.IPv4Address(dest)}/{ipaddress.IPv4Address(mask)}"))
    return nets


def candidate_subnets(
    taken: Iterable[ipaddress.IPv4Network], rng: random.Random, count: int = 20
) -> list[ipaddress.IPv4Network]:
    """Up to ``count`` /24s of :data:`SUBNET_POOL` overlapping none of ``taken``, in random order."""
    taken = list(taken)
    free = [s for s in SUBNET_POOL.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken)]
    rng.shuffle(free)
    return free[:count]


def probe_netem(client: Any, image: str) -> str | None:
    """Why slow/flaky links cannot work on this daemon's kernel, or None; ~1 s.

    Runs one throwaway container (``CAP_NET_ADMIN``, no network: the qdiscs go
    on its loopback, the kernel is the same) that tries the qdiscs :func:`~jepsenlike.backends.docker.iptables.tc_script`
    needs. For a harness that wants to refuse the slow/flaky nemeses before a run
    rather than when they fire.
    """
    script = (
        "tc qdisc add dev lo root netem delay 10ms || exit 3; tc qdisc del dev lo root; "
        "tc qdisc add dev lo root handle 1: prio bands 4 || exit 4"
    )
    container = client.containers.run(
        image, ["sh", "-c", script], cap_add=["NET_ADMIN"], detach=True, network_mode="none",
        labels={cleanup.LABEL_RUN: "probe-" + uuid.uuid4().hex[:8], cleanup.LABEL_OWNER: cleanup.owner_label()},
    )
    try:
        rc = container.wait(timeout=60)["StatusCode"]
        out = container.logs().decode("utf-8", "replace").strip()
    finally:
        container.remove(force=True)
    if rc == 0:
        return None
    what = {3: "sch_netem", 4: "sch_prio"}.get(rc, "a working tc")
    return f"slow/flaky links need tc netem, but the kernel has no {what}: tc said: {out}"


class DockerBackend(Backend):
    """Nodes as containers on a private bridge network.

    Args:
        system: the system to run (its node command runs in the container; an
            ``argv[0]`` equal to this interpreter becomes ``python3``).
        n_nodes: cluster size.
        run_dir: where ``nodes/<id>.log`` and the control directories go.
        bug: seeded bug passed to every node, or None.
        seed: the run's seed, passed to every node (and used to pick the subnet).
        ready_timeout: seconds to wait for all nodes to become ready.
        image: a node image tag to use as is; default: build or find the node image.
            When the system has a :meth:`~jepsenlike.systems.base.System.container_recipe`,
            its image is built (or found) on top of this one and the nodes run that.
        base_image: with no ``image``, build FROM this image (Path B) instead of debootstrap
            (a recipe's own ``base_image`` wins).
        client: a ``docker.DockerClient``; default from the environment.
        iptables: ``nft`` (default, bookworm's) or ``legacy``.
        progress: called with image-build progress lines.
        clocks: preload libfaketime in every node, for :meth:`clock` (off by default,
            like the local backend: the Debian build breaks ``time.sleep`` in Python).
    """

    name = "docker"
    capabilities = frozenset({KILL, PAUSE, NET, CLOCK})
    min_ready_timeout = 30.0

    @staticmethod
    def capabilities_here(n_nodes: int = 2) -> tuple[frozenset[str], dict[str, str]]:
        """What this backend can do, and why not the rest, without starting anything.

        libfaketime and iptables are in the image, so only the cluster's size limits
        it. (Slow/flaky links also need ``sch_netem`` in the host kernel; that is
        known only once a container runs: :meth:`netem_unavailable_reason`.)
        """
        caps = {KILL, PAUSE, NET, CLOCK}
        refusals: dict[str, str] = {}
        if n_nodes < 2:
            caps.discard(NET)
            refusals[NET] = "a single node has no peer links to cut"
        return frozenset(caps), refusals

    def __init__(
        self,
        system: System,
        n_nodes: int,
        run_dir: str | os.PathLike[str],
        *,
        bug: str | None = None,
        seed: int = 0,
        ready_timeout: float = 30.0,
        image: str | None = None,
        base_image: str | None = None,
        client: Any | None = None,
        iptables: str = "nft",
        progress: Callable[[str], None] | None = None,
        clocks: bool = False,
    ) -> None:
        super().__init__()
        self.capabilities, self.refusals = self.capabilities_here(n_nodes)
        self.want_clocks = clocks
        if n_nodes < 1 or n_nodes > 200:
            raise ConfigError(f"the docker backend runs 1..200 nodes; got {n_nodes}")
        if iptables not in ("nft", "legacy"):
            raise ConfigError(f"iptables must be 'nft' or 'legacy'; got {iptables!r}")
        self.system = system
        self.n_nodes = n_nodes
        self.run_dir = Path(run_dir)
        self.bug = bug
        self.seed = seed
        self.ready_timeout = ready_timeout
        self.image_tag = image
        self.base_image = base_image
        self.iptables = iptables
        self.progress = progress or (lambda _line: None)
        self.client = client
        self.run_id = uuid.uuid4().hex[:10]
        self.labels = {cleanup.LABEL_RUN: self.run_id, cleanup.LABEL_OWNER: cleanup.owner_label()}
        self.network_name = f"jl-{self.run_id}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.image: NodeImage | None = None
        #: With a system recipe: the node image the system image was built on.
        self.node_image_tag: str | None = None
        self.containers: dict[str, str] = {}  # node id -> container id
        self.volumes: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.clocks: dict[str, FaketimeClock] = {}
        self._grudge: dict[str, set[str]] = {}
        self._delay: dict[Link, tuple[float, float]] = {}  # link -> (latency, jitter) ms
        self._loss: dict[Link, float] = {}  # link -> drop probability
        self._stale_rules: set[str] = set()  # paused nodes whose rules changed meanwhile
        self._netem_reason: str | None = None
        self._netem_checked = False
        self._lock = threading.RLock()
        self._torn_down = False
        self._started = False
        self.timings: dict[str, float] = {}

    # -- layout -------------------------------------------------------------------

    def container_name(self, node_id: str) -> str:
        return f"jl-{self.run_id}-{node_id}"

    def control_dir(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / node_id / "control"

    def log_path(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / f"{node_id}.log"

    def log_files(self) -> dict[str, Path]:
        return {n.id: self.log_path(n.id) for n in self.nodes}

    def ip(self, node_id: str) -> str:
        return self.node(node_id).peer_addr.rsplit(":", 1)[0]

    def _lay_out(self, subnet: ipaddress.IPv4Network) -> None:
        hosts = list(subnet.hosts())
        self.nodes = [
            NodeSpec(
                id=f"n{i + 1}",
                client_addr=f"{hosts[FIRST_HOST - 1 + i]}:{CLIENT_PORT}",
                peer_addr=f"{hosts[FIRST_HOST - 1 + i]}:{PEER_PORT}",
                data_dir=DATA_DIR,
            )
            for i in range(self.n_nodes)
        ]

    def peers_of(self, node: NodeSpec) -> dict[str, str]:
        return {n.id: n.peer_addr for n in self.nodes if n.id != node.id}

    def command(self, node: NodeSpec) -> list[str]:
        """The node's argv inside the container (before the rule-loading prologue)."""
        return node_argv(self.system, node, self.peers_of(node), bug=self.bug, seed=self.seed,
                         python="python3")

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Build/find the image, create network, volumes and containers, wait until ready."""
        with self._lock:
            if self._started:
                raise RuntimeError("DockerBackend.start() was already called; make a new backend")
            self._started = True
        track_live(self)
        if self.client is None:
            self.client = docker_client()
        t0 = time.monotonic()
        recipe = self.system.container_recipe()
        if self.image_tag is None:
            self.image = build_node_image(
                self.client, base_image=(recipe.base_image if recipe else None) or self.base_image,
                progress=self.progress,
            )
            self.image_tag = self.image.tag
        if recipe is not None:
            self.node_image_tag = self.image_tag
            self.image = build_system_image(
                self.client, self.system.name, recipe, node_image=self.image_tag, progress=self.progress
            )
            self.image_tag = self.image.tag
        self.timings["image"] = time.monotonic() - t0
        t0 = time.monotonic()
        self._create_network()
        self._lay_out(self.subnet)  # type: ignore[arg-type]
        self._grudge = {n.id: set() for n in self.nodes}
        self.timings["network"] = time.monotonic() - t0
        t0 = time.monotonic()
        # Container creation and start are daemon round trips of ~0.1-0.5 s each;
        # doing the nodes in parallel is what keeps a 5-node start short.
        with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
            list(pool.map(self._create_node, self.nodes))
        self.timings["create"] = time.monotonic() - t0
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
            list(pool.map(lambda n: self.client.api.start(self.containers[n.id]), self.nodes))
        for n in self.nodes:
            self.state[n.id] = "up"
        self.timings["start"] = time.monotonic() - t0
        t0 = time.monotonic()
        self.wait_ready(self.node_ids, self.ready_timeout)
        self.timings["wait_ready"] = time.monotonic() - t0

    def _create_network(self) -> None:
        import docker.errors

        taken = host_routes()
        for net in self.client.networks.list():
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(KeyError, ValueError):
                    taken.append(ipaddress.IPv4Network(cfg["Subnet"], strict=False))
        rng = random.Random(f"{self.seed}/{self.run_id}")
        last: Exception | None = None
        for subnet in candidate_subnets(taken, rng):
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))]
            )
            try:
                self.client.networks.create(
                    self.network_name, driver="bridge", ipam=ipam, labels=dict(self.labels),
                    check_duplicate=True,
                )
                self.subnet = subnet
                return
            except docker.errors.APIError as e:
                if "overlap" not in str(e).lower():
                    raise
                last = e  # another run took it between our look and our create
        raise ConfigError(
            f"no free /24 in {SUBNET_POOL} for the run's bridge network ({last}); "
            "remove unused networks (`jepsenlike docker clean`, `docker network prune`)"
        )

    def _write_net_state(self, node_id: str) -> None:
        """The node's partition and netem state, as files the container reads."""
        d = self.control_dir(node_id)
        drops = [self.ip(src) for src in sorted(self._grudge.get(node_id, ()))]
        for name, text in (
            ("start.rules", chain_rules(drops, with_jump=True)),
            ("rules", chain_rules(drops, with_jump=False)),
            ("tc.sh", tc_script(self._netem_for(node_id))),
        ):
            tmp = d / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, d / name)  # a starting container sees old or new, never half

    def _create_node(self, node: NodeSpec) -> None:
        labels = {**self.labels, cleanup.LABEL_NODE: node.id}
        control = self.control_dir(node.id)
        control.mkdir(parents=True, exist_ok=True)
        self._write_net_state(node.id)
        env = {"PYTHONUNBUFFERED": "1"}
        if self.want_clocks:
            clock = FaketimeClock(control / "faketime", library=FAKETIME_LIB)
            self.clocks[node.id] = clock
            env = clock.env_for_process(base=env)
            # the host writes <control>/faketime; the node reads it through the bind mount
            env["FAKETIME_TIMESTAMP_FILE"] = f"{CONTROL_DIR}/faketime"
        vol = self.client.volumes.create(name=f"{self.container_name(node.id)}-data", labels=labels)
        self.volumes[node.id] = vol.name
        api = self.client.api
        host_config = api.create_host_config(
            binds={
                vol.name: {"bind": DATA_DIR, "mode": "rw"},
                str(control.resolve()): {"bind": CONTROL_DIR, "mode": "ro"},
            },
            cap_add=["NET_ADMIN"],
            network_mode=self.network_name,
            log_config={"Type": "json-file", "Config": {}},
        )
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(ipv4_address=self.ip(node.id))}
        )
        created = api.create_container(
            self.image_tag,
            command=wrap_command(self.command(node), self.iptables),
            name=self.container_name(node.id),
            hostname=node.id,
            environment=env,
            labels=labels,
            host_config=host_config,
            networking_config=networking,
            detach=True,
        )
        self.containers[node.id] = created["Id"]

    def _container_state(self, node_id: str) -> dict[str, Any]:
        return self.client.api.inspect_container(self.containers[node_id])["State"]

    def wait_ready(self, node_ids: list[str], timeout: float) -> None:
        """Poll until every listed node answers its probe (or its container exits)."""
        deadline = time.monotonic() + timeout
        pending = list(node_ids)
        while pending:
            for nid in list(pending):
                if self.system.probe(self.node(nid), timeout=0.5):
                    pending.remove(nid)
                    continue
                st = self._container_state(nid)
                if not st.get("Running"):
                    raise NodeStartError(
                        self._start_failure(nid, f"exited with status {st.get('ExitCode')}")
                    )
            if pending:
                if time.monotonic() > deadline:
                    raise NodeStartError(
                        self._start_failure(pending[0], f"was not ready after {timeout:g} s")
                    )
                time.sleep(0.05)

    def logs(self, node_id: str, tail: int | str = "all") -> str:
        """The container's output so far (all its starts)."""
        raw = self.client.api.logs(self.containers[node_id], stdout=True, stderr=True, tail=tail)
        return raw.decode("utf-8", "replace")

    def _start_failure(self, nid: str, what: str) -> str:
        node = self.node(nid)
        try:
            tail = self.logs(nid, tail=20)
        except Exception as e:  # the message is for a person; say why the log is missing
            tail = f"(no log: {e})"
        hint = ""
        if "exit 97" in what or "status 97" in what:
            hint = "\n(status 97: iptables-restore failed inside the container; try iptables='legacy')"
        return (
            f"node {nid} ({self.system.name}, container {self.container_name(nid)}, client "
            f"{node.client_addr}) {what}.{hint}\ncommand: {shlex.join(self.command(node))}\n"
            f"last lines of its log:\n{tail.strip() or '(empty)'}"
        )

    def collect_logs(self) -> None:
        """Write every container's log to ``<run_dir>/nodes/<id>.log`` (replacing it)."""
        for nid in list(self.containers):
            with contextlib.suppress(Exception):
                path = self.log_path(nid)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.logs(nid))

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        try:
            for clock in self.clocks.values():
                with contextlib.suppress(Exception):
                    clock.close()
            if self.client is not None:
                self.collect_logs()
                removed = cleanup.Removed()
                for cid in self.containers.values():
                    with contextlib.suppress(Exception):
                        self.client.api.remove_container(cid, force=True, v=True)
                cleanup.remove_resources(self.client, self.run_id, result=removed)
        except Exception as e:  # teardown never raises; say what may be left
            print(
                f"jepsenlike: docker teardown of run {self.run_id} incomplete ({e}); "
                "`jepsenlike docker clean` removes what is left",
                file=sys.stderr,
            )
        finally:
            for n in self.nodes:
                shutil.rmtree(self.control_dir(n.id), ignore_errors=True)
                with contextlib.suppress(OSError):
                    self.control_dir(n.id).parent.rmdir()  # only if now empty
            untrack_live(self)

    # -- kill / pause -------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        with self._lock:
            cid = self.containers[node_id]
            if self.state.get(node_id) == "paused":
                # A frozen task cannot act on SIGKILL until thawed; Docker refuses outright.
                self.client.api.unpause(cid)
            if self._container_state(node_id).get("Running"):
                with contextlib.suppress(Exception):
                    self.client.api.kill(cid)
                self.client.api.wait(cid, timeout=30)
            self.state[node_id] = "killed"

    def restart(self, node_id: str) -> None:
        """Start the killed node's container again: same volume, address and partition."""
        with self._lock:
            if self._torn_down:
                return
            if self._container_state(node_id).get("Running"):
                return
            self._write_net_state(node_id)
            self._stale_rules.discard(node_id)
            self.client.api.start(self.containers[node_id])
            self.state[node_id] = "up"

    def stop(self, node_id: str, grace: float = 1.0) -> None:
        """``docker stop``: SIGTERM, SIGKILL after ``grace``."""
        with self._lock:
            cid = self.containers[node_id]
            if self.state.get(node_id) == "paused":
                self.client.api.unpause(cid)
            self.client.api.stop(cid, timeout=max(1, int(grace)))
            self.state[node_id] = "killed"

    def pause(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "up":
                return
            self.client.api.pause(self.containers[node_id])
            self.state[node_id] = "paused"

    def resume(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "paused":
                return
            cid = self.containers[node_id]
            if node_id in self._stale_rules:
                # Load what changed while it was frozen before it runs again. exec is
                # refused in a paused container, so thaw and load at once; the node
                # gets at most the time of one exec round trip with its old rules.
                self.client.api.unpause(cid)
                self._load_net_state(node_id)
                self._load_tc(node_id)
                self._stale_rules.discard(node_id)
            else:
                self.client.api.unpause(cid)
            self.state[node_id] = "up"

    def node_state(self, node_id: str) -> str:
        with self._lock:
            return self.state.get(node_id, "up")

    def observer(self) -> Any:
        from jepsenlike.confirm import DockerObserver

        return DockerObserver(self)

    # -- exec ---------------------------------------------------------------------

    def exec(self, node_id: str, argv: list[str], timeout: float = 30.0) -> tuple[int, str]:
        """Run ``argv`` in the node's container (without the faketime preload)."""
        api = self.client.api
        ex = api.exec_create(
            self.containers[node_id], argv, stdout=True, stderr=True,
            environment={"LD_PRELOAD": ""},
        )
        out = api.exec_start(ex["Id"], demux=False)
        rc = api.exec_inspect(ex["Id"])["ExitCode"]
        return int(rc if rc is not None else -1), (out or b"").decode("utf-8", "replace")

    def _load_net_state(self, node_id: str) -> None:
        import docker.errors

        try:
            rc, out = self.exec(node_id, restore_command(self.iptables, f"{CONTROL_DIR}/rules"))
        except docker.errors.APIError as e:
            # Killed or paused by another thread since we looked: the files already
            # hold the new rules, and restart/resume loads them.
            with self._lock:
                st = self.state.get(node_id)
                if st == "paused":
                    self._stale_rules.add(node_id)
                if st in ("paused", "killed"):
                    return
            raise RuntimeError(f"exec in {self.container_name(node_id)} failed: {e}") from e
        if rc != 0:
            raise RuntimeError(
                f"iptables-restore in {self.container_name(node_id)} failed ({rc}): {out.strip()}"
            )

    # -- net ----------------------------------------------------------------------

    @property
    def grudge(self) -> dict[str, set[str]]:
        with self._lock:
            return {n: set(v) for n, v in self._grudge.items()}

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        """Replace the partition: node Y drops packets from X while ``X in grudge[Y]``.

        Returns once the rules are loaded in every running, unpaused node.
        """
        from jepsenlike.nemesis.grudge import validate_grudge

        normal = validate_grudge(grudge, self.node_ids)
        with self._lock:
            changed = [n for n in self.node_ids if normal.get(n, set()) != self._grudge.get(n, set())]
            self._grudge = {n: set(normal.get(n, set())) for n in self.node_ids}
            for nid in changed:
                self._write_net_state(nid)
            live = [n for n in changed if self.state.get(n) == "up"]
            self._stale_rules.update(n for n in changed if self.state.get(n) == "paused")
            # killed nodes read the files when they restart
        if live:
            with ThreadPoolExecutor(max_workers=min(8, len(live))) as pool:
                list(pool.map(self._load_net_state, live))

    def heal_network(self) -> None:
        """End every partition."""
        self.apply_grudge({n: set() for n in self.node_ids})

    heal = heal_network

    def netem_unavailable_reason(self) -> str | None:
        """Why slow/flaky links cannot be made here (probed once, on a running node), or None."""
        with self._lock:
            if self._netem_checked:
                return self._netem_reason
            probe = next((n for n in self.node_ids if self.state.get(n) == "up"), None)
            if probe is None:
                return "no running node to probe tc netem on"
            reason = None
            for what, script in (
                ("sch_netem", "tc qdisc add dev eth0 root netem delay 10ms"),
                ("sch_prio", "tc qdisc add dev eth0 root handle 1: prio bands 4"),
            ):
                rc, out = self.exec(probe, ["sh", "-c", f"{script}; rc=$?; {TC_CLEAR}; exit $rc"])
                if rc != 0:
                    reason = (
                        f"slow/flaky links need tc netem, but the kernel has no {what}: "
                        f"`{script}` in a node container said: {out.strip()}"
                    )
                    break
            self._netem_reason = reason
            self._netem_checked = True
            return reason

    def _netem_for(self, src: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for dst in self.node_ids:
            lat, jit = self._delay.get((src, dst), (0.0, 0.0))
            args = netem_args(lat, jit, self._loss.get((src, dst), 0.0))
            if args:
                out[self.ip(dst)] = args
        return out

    def _links(self, links: Iterable[Link] | None) -> list[Link]:
        if links is None:
            return [(s, d) for s in self.node_ids for d in self.node_ids if s != d]
        chosen = [(str(s), str(d)) for s, d in links]
        for s_, d in chosen:
            if s_ not in self.node_ids or d not in self.node_ids or s_ == d:
                raise ConfigError(
                    f"no link {s_} -> {d}; links join two different nodes of {', '.join(self.node_ids)}"
                )
        return chosen

    def _update_tc(self, change: Callable[[], None]) -> None:
        reason = self.netem_unavailable_reason()
        with self._lock:
            saved = (dict(self._delay), dict(self._loss))
            before = {n: self._netem_for(n) for n in self.node_ids}
            change()
            after = {n: self._netem_for(n) for n in self.node_ids}
            if reason is not None and any(after.values()):
                self._delay, self._loss = saved  # refused: nothing changed
                raise NetemUnavailable(reason)
            changed = [n for n in self.node_ids if before[n] != after[n]]
            for nid in changed:
                self._write_net_state(nid)
            live = [n for n in changed if self.state.get(n) == "up"]
            self._stale_rules.update(n for n in changed if self.state.get(n) == "paused")
        for nid in live:
            self._load_tc(nid)

    def _load_tc(self, node_id: str) -> None:
        rc, out = self.exec(node_id, ["sh", "-c", f"{TC_CLEAR}; sh -e {CONTROL_DIR}/tc.sh"])
        if rc != 0:
            raise NetemUnavailable(f"tc in {self.container_name(node_id)} failed: {out.strip()}")

    def slow_links(self, links: Iterable[Link] | None, latency_ms: float, jitter_ms: float) -> None:
        """Delay what ``src`` sends to ``dst`` on each link (None: all); 0, 0 removes the delay."""
        if latency_ms < 0 or jitter_ms < 0:
            raise ConfigError(f"slow needs latency_ms >= 0 and jitter_ms >= 0; got {latency_ms}, {jitter_ms}")
        chosen = self._links(links)

        def change() -> None:
            for link in chosen:
                if latency_ms or jitter_ms:
                    self._delay[link] = (latency_ms, jitter_ms)
                else:
                    self._delay.pop(link, None)

        self._update_tc(change)

    def flaky_links(self, links: Iterable[Link] | None, drop_probability: float) -> None:
        """Drop packets ``src`` sends to ``dst`` with this probability (None: all links; 0 stops)."""
        if not 0.0 <= drop_probability <= 1.0:
            raise ConfigError(f"drop_probability must be in [0, 1]; got {drop_probability}")
        chosen = self._links(links)

        def change() -> None:
            for link in chosen:
                if drop_probability:
                    self._loss[link] = drop_probability
                else:
                    self._loss.pop(link, None)

        self._update_tc(change)

    # -- clock --------------------------------------------------------------------

    def clock(self, node_id: str) -> ClockControl:
        """The node's wall clock (libfaketime control file on the bind mount)."""
        try:
            return self.clocks[node_id]
        except KeyError:
            if node_id not in self.node_ids:
                raise KeyError(f"no node {node_id!r}; nodes are {', '.join(self.node_ids)}") from None
            raise RuntimeError(
                f"no clock control for {node_id}: the nodes were started without it (clocks=False)"
            ) from None

    def bump_clock(self, node_id: str, seconds: float) -> None:
        self.clock(node_id).bump(seconds)

    def reset_clocks(self) -> None:
        for c in self.clocks.values():
            c.reset()


__all__ = [
    "CLOCK", "NET", "DockerBackend", "DockerUnavailable", "NetemUnavailable", "docker_client",
    "probe_netem",
]
