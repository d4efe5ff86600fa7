"""The ``ssh`` backend: one node per real host, reached with the OpenSSH client.

Theory of operation
-------------------
:meth:`SSHBackend.start`, for every host of the hosts file in parallel
(:mod:`jepsenlike.backends.ssh.hosts` for the file and the ssh options):

1. *install*: the project's wheel, built here once per source tree with
   ``pip wheel --no-deps`` (cached under ``~/.cache/jepsenlike/wheels/<hash>``,
   the hash of :func:`~jepsenlike.backends.docker.image.project_sources`), is
   piped over ssh and ``pip install``-ed into ``REMOTE/venv-<hash>`` made with
   the host's ``python3 -m venv`` (``REMOTE`` = option ``remote_dir``, default
   ``/var/tmp/jepsenlike``). A venv that is already there is reused, so this
   is one ssh round trip after the first run. A system that needs its own
   programs runs its :func:`host_recipe` (shell lines, as root) once per host;
2. *agent*: one long-lived ssh session per host runs
   :mod:`jepsenlike.backends.ssh.agent` (as root, ``sudo -n`` for other users)
   for this run, with ``REMOTE/runs/<run id>`` as its directory. The agent
   creates the iptables chain ``JEPSENLIKE``, starts and signals the node, and
   removes everything of the run on the host when the session ends for any
   reason (the harness's teardown, its death, silence longer than the lease);
3. *nodes*: node ``n<i>`` runs on host ``i`` (client port 8000, peer port
   7000 on the host's address), from the venv's python, with data in the run
   directory; readiness is the system's probe from here.

Faults go through the agent: ``kill`` is SIGKILL to the node's process group
and ``restart`` starts it again with the same data; ``pause``/``resume`` are
SIGSTOP/SIGCONT; a grudge is, on each receiving host, the chain holding one
``DROP`` per source address, loaded atomically with ``iptables-restore
--noflush`` (the harness's own traffic comes from elsewhere and is never
cut); ``clock`` preloads the host's libfaketime into the node and rewrites its
control file through the agent (:class:`RemoteClock`, a
:class:`~jepsenlike.faketime.FaketimeClock` whose writes go over the wire).
Slow and flaky links (tc netem) are not offered here yet.

Teardown (idempotent, never raises; also from ``atexit``): every node is
killed, its log is fetched to ``<run_dir>/nodes/<id>.log`` and a listing of
its data dir to ``<run_dir>/nodes/<id>.data.txt``; then ``bye`` makes each
agent remove the chain and the run's directory, and the ssh masters are
stopped. What stays on a host is only the venv (a cache; ``jepsenlike clean
--backend ssh --purge`` removes it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
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
from jepsenlike.backends.docker.iptables import CHAIN, chain_rules
from jepsenlike.backends.ssh.hosts import SSH, Host, read_hosts_file
from jepsenlike.errors import ConfigError, JepsenlikeError
from jepsenlike.faketime import FaketimeClock
from jepsenlike.registry import Option
from jepsenlike.systems.base import NodeSpec, System

CLIENT_PORT = 8000
PEER_PORT = 7000
DEFAULT_REMOTE_DIR = "/var/tmp/jepsenlike"


class AgentError(JepsenlikeError):
    """The agent on a host refused a request or its session ended; the message says which."""


def _project_root() -> Path:
    import jepsenlike

    root = Path(jepsenlike.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise ConfigError("the ssh backend builds the project's wheel from its source tree, but "
                          f"{root} has no pyproject.toml; install jepsenlike editable (pip install -e)")
    return root


def source_hash() -> str:
    from jepsenlike.backends.docker.image import project_sources

    h = hashlib.sha256()
    for name, data in sorted(project_sources().items()):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:12]


def build_wheel(digest: str) -> Path:
    """The project's wheel for source hash ``digest`` (built with ``pip wheel`` once)."""
    from jepsenlike.backends.docker.image import _file_lock, cache_root

    out = cache_root() / "wheels" / digest
    with _file_lock(cache_root() / "wheels" / f"{digest}.lock"):
        found = sorted(out.glob("jepsenlike-*.whl"))
        if found:
            return found[0]
        tmp = Path(str(out) + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # From a fresh copy of the sources: setuptools' build/ directory in the tree
        # would keep files deleted since, and the wheel must be the tree as it is.
        src = tmp / "src"
        root = _project_root()
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        for name in ("pyproject.toml", "README.md"):
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, src / name)
        for name in ("jepsenlike", "models", "nemesis", "checkers"):
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=skip)
        # Without build isolation first (offline, uses the installed setuptools and wheel);
        # where those cannot build it, pip's isolated build fetches them.
        for extra in (["--no-build-isolation"], []):
            r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *extra, "-q",
                                "-w", str(tmp), str(src)], capture_output=True, text=True)
            if r.returncode == 0:
                break
        if r.returncode != 0:
            raise ConfigError(f"pip wheel of the project failed: {r.stderr.strip()[-800:]}")
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    # Every edit of the tree makes a wheel: keep the three newest (and builds in progress).
    now = time.time()
    dirs = sorted((d for d in out.parent.iterdir() if d.is_dir() and d != out
                   and not (d.name.endswith(".tmp") and now - d.stat().st_mtime < 600)),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for old in dirs[2:]:
        shutil.rmtree(old, ignore_errors=True)
        Path(f"{old}.lock").unlink(missing_ok=True)
    return sorted(out.glob("jepsenlike-*.whl"))[0]


INSTALL_SCRIPT = r"""set -e
V="$1/venv-$2"; W="$1/wheel-$2/$3"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "needs python3 >= 3.11, found $(python3 -V 2>&1)"; exit 3; }
if [ -f "$V/.ok" ]; then cat > /dev/null; echo reused; exit 0; fi
rm -rf "$V" "$1/wheel-$2"; mkdir -p "$1/wheel-$2"; cat > "$W"
python3 -m venv "$V" || { echo "python3 -m venv failed: apt-get install python3-venv"; exit 4; }
"$V/bin/python" -m pip install -q --no-deps --no-index --disable-pip-version-check "$W"
rm -rf "$1/wheel-$2"; touch "$V/.ok"
# keep the three newest venvs (each source tree makes one) and no half-installed ones
for d in $(ls -dt "$1"/venv-* | tail -n +4) "$1"/wheel-*.whl; do rm -rf "$d"; done
for d in "$1"/venv-*; do [ -f "$d/.ok" ] || rm -rf "$d"; done
echo installed
"""


class Agent:
    """The harness's end of one host's agent session: one request, one answer, in order."""

    def __init__(self, ssh: SSH, argv: list[str], log: Path) -> None:
        self.ssh = ssh
        self.lock = threading.Lock()
        self.err = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.info = self._read()
        if not self.info.get("ok"):
            raise AgentError(f"agent on {ssh.host}: {self.info.get('error')}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            raise AgentError(f"the agent session to {self.ssh.host} ended (ssh exit "
                             f"{self.proc.returncode}); see ssh-agents.log in the run directory")
        return dict(json.loads(line))

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        with self.lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                raise AgentError(f"the agent session to {self.ssh.host} is gone ({e})") from e
            reply = self._read()
        if not reply.get("ok"):
            raise AgentError(f"agent on {self.ssh.host}: {reply.get('error')}")
        return reply

    def close(self, timeout: float = 20.0) -> None:
        with contextlib.suppress(Exception):
            self.call("bye")
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.err.close()


class RemoteClock(FaketimeClock):
    """A node's libfaketime control file on its host, rewritten through the agent.

    The local ``control_file`` only names the clock; every line goes to
    ``remote_path`` (relative to the agent's run directory).
    """

    def __init__(self, agent: Agent, remote_path: str, local_name: Path, library: str) -> None:
        self._agent = agent
        self._remote_path = remote_path
        super().__init__(local_name, library=library, resolution=0.05)

    def _write(self, line: str) -> None:
        self._agent.call("write", path=self._remote_path, text=line + "\n")


class SSHBackend(Backend):
    """One node per host of a hosts file, over ssh.

    Args:
        system: the system to run (its node command's ``argv[0]``, when it is this
            interpreter, becomes the host venv's python).
        n_nodes: cluster size; at most the number of hosts (node ``n<i>`` on host ``i``).
        run_dir: where logs, data listings and ``ssh-agents.log`` go.
        settings: the ``ssh`` plugin options (:attr:`plugin_options`).
    """

    name = "ssh"
    capabilities = frozenset({KILL, PAUSE, NET, CLOCK})
    min_ready_timeout = 30.0
    plugin_options = (
        Option("hosts_file", str, "", "the hosts file: one [user@]host[:port] [key=PATH] "
               "[known_hosts=PATH] [addr=IP] per line (or --hosts-file)"),
        Option("user", str, "root", "login user where a line names none (others use sudo -n)"),
        Option("key", str, "", "identity file where a line names none"),
        Option("known_hosts", str, "", "known_hosts file where a line names none"),
        Option("host_key_checking", str, "yes", "StrictHostKeyChecking: yes, or accept-new to "
               "trust hosts seen for the first time", choices=("yes", "accept-new", "no")),
        Option("connect_timeout", float, 10.0, "seconds for an ssh connection"),
        Option("remote_dir", str, DEFAULT_REMOTE_DIR, "where the venv and run directories live on "
               "each host"),
        Option("lease", float, 20.0, "seconds without word from the harness after which a host's "
               "agent ends the run there"),
    )

    @staticmethod
    def capabilities_here(n_nodes: int = 2) -> tuple[frozenset[str], dict[str, str]]:
        """Signals, iptables and libfaketime on the hosts; a single node has no links to cut."""
        caps = {KILL, PAUSE, NET, CLOCK}
        refusals: dict[str, str] = {}
        if n_nodes < 2:
            caps.discard(NET)
            refusals[NET] = "a single node has no peer links to cut"
        return frozenset(caps), refusals

    def __init__(self, system: System, n_nodes: int, run_dir: str | os.PathLike[str], *,
                 bug: str | None = None, seed: int = 0, ready_timeout: float = 30.0,
                 clocks: bool = False, progress: Callable[[str], None] | None = None,
                 settings: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.capabilities, self.refusals = self.capabilities_here(n_nodes)
        s = {o.name: o.default for o in self.plugin_options}
        s.update(settings or {})
        if not s["hosts_file"]:
            raise ConfigError("--backend ssh needs the hosts: --hosts-file FILE (one "
                              "[user@]host[:port] per line; `jepsenlike docker hosts up N` makes one)")
        self.hosts: list[Host] = read_hosts_file(
            s["hosts_file"], user=s["user"], key=s["key"] or None,
            known_hosts=s["known_hosts"] or None)
        if n_nodes > len(self.hosts):
            raise ConfigError(f"--nodes {n_nodes}: the hosts file {s['hosts_file']} lists "
                              f"{len(self.hosts)} hosts; give --nodes {len(self.hosts)} or more hosts")
        self.settings = s
        self.system = system
        self.recipe = host_recipe(system)
        self.n_nodes = n_nodes
        self.run_dir = Path(run_dir)
        self.bug = bug
        self.seed = seed
        self.ready_timeout = ready_timeout
        self.want_clocks = clocks
        self.progress = progress or (lambda _l: None)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.remote_dir = s["remote_dir"].rstrip("/") or "/"
        self.remote_run = f"{self.remote_dir}/runs/{self.run_id}"
        self.ssh: dict[str, SSH] = {}
        self.agents: dict[str, Agent] = {}
        self.venv = ""
        self.clocks: dict[str, RemoteClock] = {}
        self.state: dict[str, str] = {}
        self._env: dict[str, dict[str, str]] = {}
        self._grudge: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._started = False
        self._torn_down = False
        self._stop_ping = threading.Event()
        self.timings: dict[str, float] = {}

    # -- layout ---------------------------------------------------------------------

    def host_of(self, node_id: str) -> Host:
        return self.hosts[self.node_ids.index(node_id)]

    def log_path(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / f"{node_id}.log"

    def log_files(self) -> dict[str, Path]:
        return {n.id: self.log_path(n.id) for n in self.nodes}

    def _lay_out(self) -> None:
        self.nodes = [
            NodeSpec(id=f"n{i + 1}", client_addr=f"{h.ip}:{CLIENT_PORT}",
                     peer_addr=f"{h.ip}:{PEER_PORT}", data_dir=f"{self.remote_run}/data/n{i + 1}")
            for i, h in enumerate(self.hosts[: self.n_nodes])
        ]

    def command(self, node: NodeSpec) -> list[str]:
        peers = {n.id: n.peer_addr for n in self.nodes if n.id != node.id}
        return node_argv(self.system, node, peers, bug=self.bug, seed=self.seed,
                         python=f"{self.venv}/bin/python")

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Install on every host, start one agent per host, start the nodes, wait until ready."""
        with self._lock:
            if self._started:
                raise RuntimeError("SSHBackend.start() was already called; make a new backend")
            self._started = True
        track_live(self)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "nodes").mkdir(exist_ok=True)
        self._lay_out()
        self._grudge = {n.id: set() for n in self.nodes}
        t0 = time.monotonic()
        digest = source_hash()
        wheel = build_wheel(digest)
        self.venv = f"{self.remote_dir}/venv-{digest}"
        self.timings["wheel"] = time.monotonic() - t0
        hosts = self.hosts[: self.n_nodes]
        for n, h in zip(self.nodes, hosts, strict=True):
            self.ssh[n.id] = SSH(h, connect_timeout=self.settings["connect_timeout"],
                                 host_key_checking=self.settings["host_key_checking"])
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
            list(pool.map(lambda nid: self._install(nid, wheel, digest), self.node_ids))
        self.timings["install"] = time.monotonic() - t0
        recipe = self.recipe
        if recipe:
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
                list(pool.map(lambda nid: self._run_recipe(nid, recipe), self.node_ids))
            self.timings["recipe"] = time.monotonic() - t0
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(8, len(self.nodes))) as pool:
            list(pool.map(self._start_agent, self.node_ids))
        threading.Thread(target=self._ping, name="ssh-agent-ping", daemon=True).start()
        self.timings["agents"] = time.monotonic() - t0
        t0 = time.monotonic()
        for n in self.nodes:
            self._spawn(n.id)
        self.wait_ready(self.node_ids, self.ready_timeout)
        self.timings["wait_ready"] = time.monotonic() - t0

    def _install(self, nid: str, wheel: Path, digest: str) -> None:
        ssh = self.ssh[nid]
        r = ssh.run(["sh", "-c", INSTALL_SCRIPT, "install", self.remote_dir, digest, wheel.name],
                    input=wheel.read_bytes(),
                    timeout=300, check=False)
        if r.returncode != 0:
            out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()[-600:]
            raise NodeStartError(f"installing jepsenlike on {ssh.host} failed ({r.returncode}): {out}")
        self.progress(f"{ssh.host}: {r.stdout.decode().strip()}")

    def _run_recipe(self, nid: str, recipe: list[str]) -> None:
        """The system's host recipe, once per host and recipe (a marker file remembers it)."""
        ssh = self.ssh[nid]
        digest = hashlib.sha256("\n".join(recipe).encode()).hexdigest()[:12]
        marker = f"{self.remote_dir}/recipe-{self.system.name}-{digest}.ok"
        script = "set -e\n" + "\n".join(recipe) + f"\nmkdir -p {shlex.quote(self.remote_dir)}" \
            f"\ntouch {shlex.quote(marker)}\n"
        r = ssh.run(["sh", "-c", f"test -f {shlex.quote(marker)} || sh -c {shlex.quote(script)}"],
                    timeout=900, check=False)
        if r.returncode != 0:
            out = (r.stdout + r.stderr).decode("utf-8", "replace").strip()[-800:]
            raise NodeStartError(f"the host recipe of system {self.system.name!r} failed on "
                                 f"{ssh.host} ({r.returncode}): {out}")

    def _start_agent(self, nid: str) -> None:
        ssh = self.ssh[nid]
        argv = ssh.argv([f"{self.venv}/bin/python", "-m", "jepsenlike.backends.ssh.agent",
                         self.remote_run, "--lease", str(self.settings["lease"])])
        agent = Agent(ssh, argv, self.run_dir / "ssh-agents.log")
        with self._lock:
            self.agents[nid] = agent
        if self.want_clocks:
            lib = agent.info.get("faketime")
            if not lib:
                raise NodeStartError(f"clock faults need libfaketime on {ssh.host}: "
                                     "apt-get install libfaketime there")
            clock = RemoteClock(agent, f"clock/{nid}", self.run_dir / "nodes" / nid / "faketime",
                                library=lib)
            env = clock.env_for_process(base={"PYTHONUNBUFFERED": "1"})
            env["FAKETIME_TIMESTAMP_FILE"] = f"{self.remote_run}/clock/{nid}"
            self.clocks[nid] = clock
            self._env[nid] = env
        else:
            self._env[nid] = {"PYTHONUNBUFFERED": "1"}

    def _ping(self) -> None:
        interval = max(1.0, float(self.settings["lease"]) / 3)
        while not self._stop_ping.wait(interval):
            for agent in list(self.agents.values()):
                with contextlib.suppress(Exception):
                    agent.call("ping")

    def _spawn(self, nid: str) -> None:
        node = self.node(nid)
        self.agents[nid].call("spawn", node=nid, argv=self.command(node), env=self._env[nid],
                              mkdirs=[node.data_dir])
        self.state[nid] = "up"

    def wait_ready(self, node_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(node_ids)
        while pending:
            for nid in list(pending):
                if self.system.probe(self.node(nid), timeout=0.5):
                    pending.remove(nid)
                    continue
                st = self.agents[nid].call("status", node=nid)
                if not st["running"]:
                    raise NodeStartError(self._failure(nid, f"exited with status {st['returncode']}"))
            if pending:
                if time.monotonic() > deadline:
                    raise NodeStartError(self._failure(pending[0], f"was not ready after {timeout:g} s"))
                time.sleep(0.1)

    def _failure(self, nid: str, what: str) -> str:
        try:
            tail = "\n".join(self._read(nid, f"nodes/{nid}.log", 4000).splitlines()[-20:])
        except Exception as e:  # for a person: say why the log is missing
            tail = f"(no log: {e})"
        return (f"node {nid} ({self.system.name}, host {self.host_of(nid)}) {what}.\n"
                f"command: {shlex.join(self.command(self.node(nid)))}\nlast lines of its log:\n"
                f"{tail.strip() or '(empty)'}")

    def _read(self, nid: str, rel: str, limit: int = 16 << 20) -> str:
        r = self.agents[nid].call("read", path=rel, limit=limit)
        return "" if r.get("missing") else base64.b64decode(r["data"]).decode("utf-8", "replace")

    def collect(self) -> None:
        """Fetch each node's log and a listing of its data dir into the run directory."""
        for n in self.nodes:
            if n.id not in self.agents:
                continue
            with contextlib.suppress(Exception):
                self.log_path(n.id).write_text(self._read(n.id, f"nodes/{n.id}.log"))
            with contextlib.suppress(Exception):
                listing = self.agents[n.id].call("listing", dir=n.data_dir)["text"]
                (self.run_dir / "nodes" / f"{n.id}.data.txt").write_text(listing)

    def teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
        try:
            self._stop_ping.set()
            for clock in self.clocks.values():
                with contextlib.suppress(Exception):
                    clock.close()
            for nid, agent in list(self.agents.items()):
                with contextlib.suppress(Exception):
                    agent.call("signal", node=nid, sig="KILL")
            self.collect()
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(self.agents)))) as pool:
                list(pool.map(lambda a: a.close(), list(self.agents.values())))
        except Exception as e:  # never raises; say what may be left
            print(f"jepsenlike: ssh teardown of run {self.run_id} incomplete ({e}); `jepsenlike "
                  "clean --backend ssh --hosts-file FILE` removes what is left", file=sys.stderr)
        finally:
            for ssh in self.ssh.values():
                with contextlib.suppress(Exception):
                    ssh.close()
            for n in self.nodes:
                with contextlib.suppress(OSError):
                    (self.run_dir / "nodes" / n.id).rmdir()
            untrack_live(self)

    # -- kill / pause -----------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        with self._lock:
            self.agents[node_id].call("signal", node=node_id, sig="KILL")
            self.state[node_id] = "killed"

    def restart(self, node_id: str) -> None:
        """Start the killed node again: same host, address and data."""
        with self._lock:
            if self._torn_down:
                return
            if self.agents[node_id].call("status", node=node_id)["running"]:
                return
            self._spawn(node_id)

    def pause(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "up":
                return
            self.agents[node_id].call("signal", node=node_id, sig="STOP")
            self.state[node_id] = "paused"

    def resume(self, node_id: str) -> None:
        with self._lock:
            if self.state.get(node_id) != "paused":
                return
            self.agents[node_id].call("signal", node=node_id, sig="CONT")
            self.state[node_id] = "up"

    def node_state(self, node_id: str) -> str:
        with self._lock:
            return self.state.get(node_id, "up")

    # -- net --------------------------------------------------------------------------

    def ip(self, node_id: str) -> str:
        return self.node(node_id).peer_addr.rsplit(":", 1)[0]

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        """Replace the partition: on Y's host, the chain drops packets from X while ``X in grudge[Y]``."""
        from jepsenlike.nemesis.grudge import validate_grudge

        normal = validate_grudge(grudge, self.node_ids)
        with self._lock:
            changed = [n for n in self.node_ids if normal.get(n, set()) != self._grudge.get(n, set())]
            self._grudge = {n: set(normal.get(n, set())) for n in self.node_ids}
            rules = {n: chain_rules([self.ip(s) for s in self._grudge[n]], with_jump=False)
                     for n in changed}
        if changed:
            with ThreadPoolExecutor(max_workers=min(8, len(changed))) as pool:
                list(pool.map(lambda n: self.agents[n].call("iptables", rules=rules[n]), changed))

    def heal_network(self) -> None:
        self.apply_grudge({n: set() for n in self.node_ids})

    def slow_links(self, links: Iterable[Link] | None, latency_ms: float, jitter_ms: float) -> None:
        raise ConfigError("the ssh backend does not slow links (no tc netem yet); use --backend docker")

    def flaky_links(self, links: Iterable[Link] | None, drop_probability: float) -> None:
        raise ConfigError("the ssh backend does not make links flaky (no tc netem yet); use --backend docker")

    # -- clock ------------------------------------------------------------------------

    def clock(self, node_id: str) -> ClockControl:
        try:
            return self.clocks[node_id]
        except KeyError:
            raise RuntimeError(f"no clock control for {node_id}: the nodes were started without it "
                               "(clocks=False)") from None


def host_recipe(system: System) -> list[str]:
    """The shell commands a system needs run on each host (as root) before its nodes start.

    A system declares them with a ``host_recipe()`` method returning a list of
    ``sh`` command lines (e.g. ``apt-get install -y etcd-server``); they run once
    per host and recipe text. A system with a docker
    :meth:`~jepsenlike.systems.base.System.container_recipe` but no host recipe is
    refused: its programs would be missing on the hosts.
    """
    fn = getattr(system, "host_recipe", None)
    lines = list(fn() or []) if callable(fn) else []
    if not lines and system.container_recipe() is not None:
        raise ConfigError(f"system {system.name!r} needs its own programs (it has a container "
                          "recipe); give it a host_recipe() listing the shell commands that "
                          "install them, to run it with --backend ssh")
    return [str(x) for x in lines]


def clean_hosts(hosts: list[Host], *, everything: bool = False, purge: bool = False,
                remote_dir: str = DEFAULT_REMOTE_DIR, host_key_checking: str = "yes",
                connect_timeout: float = 10.0) -> dict[str, list[str]]:
    """On each host: kill nodes of runs whose agent is gone, remove their dirs and the chain.

    Runs the agent module's ``clean`` with the system ``python3`` (its source on
    stdin), so it works where the venv is missing; ``purge`` also removes the
    venvs (``remote_dir`` altogether).
    """
    from jepsenlike.backends.ssh import agent as agent_mod

    source = Path(agent_mod.__file__).read_bytes()
    out: dict[str, list[str]] = {}
    for h in hosts:
        ssh = SSH(h, connect_timeout=connect_timeout, host_key_checking=host_key_checking)
        try:
            argv = ["python3", "-", "clean", remote_dir] + (["--all"] if everything else [])
            r = ssh.run(argv, input=source, timeout=60)
            lines = r.stdout.decode().splitlines()
            if purge:
                ssh.run(["rm", "-rf", remote_dir], timeout=60)
                lines.append(f"removed {remote_dir}")
            out[str(h)] = lines
        finally:
            ssh.close()
    return out


__all__ = ["CHAIN", "SSHBackend", "clean_hosts"]
