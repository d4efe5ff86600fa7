"""``zookeeper``: an ensemble of Debian's ZooKeeper (Zab), driven through kazoo.

Theory of operation
-------------------
Each node is one JVM running ``org.apache.zookeeper.server.quorum.QuorumPeerMain``
from Debian's ``/usr/share/java/zookeeper.jar`` (package ``zookeeper``) on a
configuration the node command writes into the node's data dir: ``myid``,
``dataDir``, the client port on the node's client address, and
``server.I=<ip>:<peer port>:<peer port + 1>`` for every member (quorum and
election ports). Members are named by one address every peer dials, so the
system declares ``own_address`` and the local backend runs each node in its
own network namespace (root). The four-letter commands ``srvr`` and ``ruok``
are enabled: readiness is ``srvr`` naming a ``Mode`` (the member is in a
quorum); the leader is the member whose ``srvr`` says ``Mode: leader``.

The client (:class:`ZKClient`) is one ``kazoo`` session per worker and node,
connected to that node only, started lazily on the first op. Every call waits
at most the op timeout (kazoo's async call, then ``get(timeout)``).

* register: key ``k`` is the znode ``/jepsenlike/r/<k>``, its data the JSON of
  the value. ``read`` is ``get`` (missing: None); with the system option
  ``reads=sync`` (the default) a ``sync()`` first makes the member catch up with
  the leader, which ZooKeeper's docs give as the way to read the latest value;
  ``reads=local`` reads the member's own state, which ZooKeeper only promises to
  be sequentially consistent. ``write`` is ``set`` (``create`` when missing).
  ``cas [old, new]`` reads the znode (after a sync in sync mode), compares with
  ``old`` here and then ``set``-s with the version it read, so a concurrent
  change makes it fail (``BadVersion``); ``old`` None is ``create`` (fails if it
  exists).
* set: ``append(k, v)`` (the set workload's add) is a sequential znode
  ``/jepsenlike/s/<k>/<v>-`` (empty data); ``read(k)`` of a key without a
  register znode lists the children and answers their values in sequence order.
* append: a ``txn`` of reads and appends reads every key's znode (after a sync in
  sync mode), computes the new lists here, and commits one ``multi`` holding, per
  key, ``set_data`` with the version read (or ``create`` when it was absent) for
  written keys and ``check`` of the version read for read-only ones (a read-only
  key that was absent: ``create`` + ``delete``, which fails if it appeared). A
  multi that fails is retried from the reads (5 times, then ``fail``). Read-only
  txns commit their checks too: separate gets are no snapshot until checked.

Errors are classified by what may have happened: a read that fails or times
out is ``fail``; a write is ``fail`` only when the session never connected (so
nothing was sent) or ZooKeeper answered a definite refusal (``BadVersion``,
``NodeExists``, ``NoNode``); a timeout, ``ConnectionLoss`` or an expired
session is ``info``.

kazoo is an optional dependency (``pip install 'jepsenlike[zookeeper]'``);
without it, or without Debian's ``zookeeper`` package, the system is refused
with the install line.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import threading
from collections.abc import Mapping
from typing import Any

from jepsenlike.registry import Option
from jepsenlike.systems.base import ContainerRecipe, NodeSpec, System

ZK_JAR = "/usr/share/java/zookeeper.jar"
SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"
APT_LINE = "apt-get install -y zookeeper"
PIP_LINE = "pip install 'jepsenlike[zookeeper]'"
ROOT = "/jepsenlike"
TXN_ATTEMPTS = 5


# kazoo logs every dropped connection at WARNING; under faults that is expected noise, and
# the history records what each op saw.
logging.getLogger("kazoo").addHandler(logging.NullHandler())
logging.getLogger("kazoo").propagate = False


def four_letter(address: str, word: str, timeout: float = 1.0) -> str:
    """Send a four-letter command to ``host:port`` and answer the reply ('' on any error)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.sendall(word.encode())
            chunks = []
            while True:
                data = s.recv(4096)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""


def _mode(address: str, timeout: float) -> str | None:
    for line in four_letter(address, "srvr", timeout).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class ZKClient:
    """One kazoo session to one ZooKeeper member.

    Args:
        address: ``host:port`` of the member's client port.
        timeout: seconds each op waits.
        sync_reads: ``sync()`` before every read (and before a cas's read).
    """

    def __init__(self, address: str, timeout: float = 2.0, sync_reads: bool = True) -> None:
        self.address = address
        self.timeout = timeout
        self.sync_reads = sync_reads
        self._zk: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        from kazoo.client import KazooClient

        if self._zk is None:
            zk = KazooClient(hosts=self.address, timeout=max(4.0, 2 * self.timeout),
                             connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
                             command_retry=None)
            try:
                zk.start(timeout=self.timeout)
            except Exception:
                zk.stop()
                zk.close()
                raise
            self._zk = zk
        return self._zk

    def _wait(self, async_result: Any) -> Any:
        return async_result.get(timeout=self.timeout)

    @staticmethod
    def _path(kind: str, key: Any) -> str:
        return f"{ROOT}/{kind}/{json.dumps(key, sort_keys=True).replace('/', '_')}"

    def invoke(self, f: str, key: Any = None, value: Any = None) -> dict[str, Any]:
        """Run one op; answer a completion dict, never raise for network trouble."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        with self._lock:
            try:
                zk = self._client()
            except Exception as e:
                return _done("fail", error=f"connect: {type(e).__name__}: {e}")
            try:
                return self._invoke(zk, f, key, value)
            except BadVersionError:
                return _done("fail", error="cas-mismatch (version changed)")
            except NodeExistsError:
                return _done("fail", error="cas-mismatch (exists)")
            except NoNodeError:
                return _done("fail", error="no-node")
            except Exception as e:  # timeout, ConnectionLoss, SessionExpired, ...
                return _done("fail" if f == "read" else "info", error=f"{type(e).__name__}: {e}"[:300])

    def _sync(self, zk: Any, path: str) -> None:
        if self.sync_reads:
            self._wait(zk.sync_async(path))

    def _get(self, zk: Any, path: str) -> tuple[Any, Any]:
        from kazoo.exceptions import NoNodeError

        try:
            data, stat = self._wait(zk.get_async(path))
        except NoNodeError:
            return None, None
        return (json.loads(data) if data else None), stat

    def _invoke(self, zk: Any, f: str, key: Any, value: Any) -> dict[str, Any]:
        from kazoo.exceptions import NoNodeError

        rpath = self._path("r", key)
        if f == "read":
            self._sync(zk, ROOT)
            val, stat = self._get(zk, rpath)
            if stat is not None:
                return _done("ok", val)
            try:
                children = self._wait(zk.get_children_async(self._path("s", key)))
            except NoNodeError:
                return _done("ok", None)
            elems = sorted(children, key=lambda c: c.rsplit("-", 1)[1])
            return _done("ok", [json.loads(c.rsplit("-", 1)[0]) for c in elems])
        if f == "write":
            data = json.dumps(value).encode()
            try:
                self._wait(zk.set_async(rpath, data))
            except NoNodeError:
                self._ensure(zk, f"{ROOT}/r")
                try:
                    self._wait(zk.create_async(rpath, data))
                except Exception as e:
                    from kazoo.exceptions import NodeExistsError

                    if not isinstance(e, NodeExistsError):
                        raise
                    self._wait(zk.set_async(rpath, data))
            return _done("ok", value)
        if f == "cas":
            old, new = value
            data = json.dumps(new).encode()
            if old is None:
                self._ensure(zk, f"{ROOT}/r")
                self._wait(zk.create_async(rpath, data))
                return _done("ok", value)
            self._sync(zk, ROOT)
            cur, stat = self._get(zk, rpath)
            if stat is None or cur != old:
                return _done("fail", error="cas-mismatch")
            self._wait(zk.set_async(rpath, data, version=stat.version))
            return _done("ok", value)
        if f == "append":
            parent = self._path("s", key)
            self._ensure(zk, parent)
            self._wait(zk.create_async(f"{parent}/{json.dumps(value)}-", b"", sequence=True))
            return _done("ok", value)
        if f == "txn":
            return self._txn(zk, value)
        return _done("fail", error=f"bad-op: {f!r} is not supported by the zookeeper system")

    def _txn(self, zk: Any, mops: list[list[Any]]) -> dict[str, Any]:
        """List-append txn: read every key, compute, commit one multi guarded by versions."""
        keys: list[Any] = []
        for _, k, _ in mops:
            if k not in keys:
                keys.append(k)
        self._ensure(zk, f"{ROOT}/r")
        for _ in range(TXN_ATTEMPTS):
            try:
                self._sync(zk, ROOT)
                snap = {json.dumps(k): self._get(zk, self._path("r", k)) for k in keys}
            except Exception as e:
                return _done("fail", error=f"read: {type(e).__name__}: {e}"[:300])
            state = {ek: v for ek, (v, _) in snap.items()}
            written: set[str] = set()
            out = []
            for mf, k, v in mops:
                ek = json.dumps(k)
                if mf == "r":
                    out.append([mf, k, state[ek]])
                    continue
                cur = state[ek]
                if mf == "append" and cur is not None and not isinstance(cur, list):
                    return _done("fail", error="not-a-list")
                state[ek] = v if mf == "w" else [*(cur or []), v]
                written.add(ek)
                out.append([mf, k, v])
            # Always commit, read-only txns too: separate gets are no snapshot, and the
            # multi's version checks make the reads one (they were all still current).
            t = zk.transaction()
            for k in keys:
                ek, path = json.dumps(k), self._path("r", k)
                stat = snap[ek][1]
                if ek in written:
                    data = json.dumps(state[ek]).encode()
                    if stat is None:
                        t.create(path, data)
                    else:
                        t.set_data(path, data, version=stat.version)
                elif stat is None:  # still absent: create and delete it in the same multi
                    t.create(path, b"")
                    t.delete(path)
                else:
                    t.check(path, stat.version)
            results = self._wait(t.commit_async())  # a timeout or connection loss: info
            if not any(isinstance(r, Exception) for r in results):
                return _done("ok", out)
        return _done("fail", error="conflict: the keys changed under every attempt")

    def _ensure(self, zk: Any, path: str) -> None:
        """Create ``path`` and its parents (persistent, empty) where missing."""
        from kazoo.exceptions import NodeExistsError

        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            try:
                self._wait(zk.create_async(p, b""))
            except NodeExistsError:
                pass

    def status(self) -> dict[str, Any]:
        """``srvr`` as a dict; raises OSError when the member does not answer."""
        text = four_letter(self.address, "srvr", self.timeout)
        if not text:
            raise OSError(f"{self.address} did not answer srvr")
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def close(self) -> None:
        with self._lock:
            zk, self._zk = self._zk, None
        if zk is not None:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass


def _done(type_: str, value: Any = None, error: Any = None) -> dict[str, Any]:
    return {"type": type_, "value": value, "error": error}


class ZooKeeperSystem(System):
    """An ensemble of Debian's ZooKeeper 3.8 (Zab); client through kazoo."""

    name = "zookeeper"
    description = "Debian's ZooKeeper (Zab) ensemble through kazoo (register, set, append)"
    own_address = True
    can_tell_leader = True
    option_names = ()
    workloads = frozenset({"register", "set", "append"})
    plugin_options = (
        Option("reads", str, "sync", "sync: sync() before each read (the latest value); local: the "
               "member's own state (sequentially consistent only)", choices=("sync", "local")),
        Option("tick-ms", int, 200, "ZooKeeper's tickTime"),
        Option("sync-limit", int, 10, "ZooKeeper's syncLimit (ticks a follower may lag before "
               "it drops out)"),
        Option("heap-mb", int, 192, "the JVM's -Xmx"),
    )

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = {o.name: o.default for o in self.plugin_options}
        self.settings.update(settings or {})

    def unavailable_reason(self) -> str | None:
        if not os.path.exists(ZK_JAR):
            return f"ZooKeeper is not installed; {APT_LINE}"
        if shutil.which("java") is None:
            return f"java is not installed; {APT_LINE} (it depends on default-jre)"
        try:
            import kazoo  # noqa: F401
        except ImportError:
            return f"the kazoo client library is missing; {PIP_LINE}"
        return None

    def config_text(self, node: NodeSpec, members: Mapping[str, str]) -> str:
        host, _, port = node.client_addr.rpartition(":")
        lines = [
            f"tickTime={self.settings['tick-ms']}",
            "initLimit=20",
            f"syncLimit={self.settings['sync-limit']}",
            f"dataDir={node.data_dir}",
            f"clientPort={port}",
            f"clientPortAddress={host}",
            "4lw.commands.whitelist=srvr,ruok,mntr,stat",
            "admin.enableServer=false",
            "autopurge.purgeInterval=0",
        ]
        for nid, peer in sorted(members.items()):
            phost, _, pport = peer.rpartition(":")
            lines.append(f"server.{_myid(nid)}={phost}:{pport}:{int(pport) + 1}")
        return "\n".join(lines) + "\n"

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        members = {node.id: node.peer_addr, **peers}
        cfg = os.path.join(node.data_dir, "zoo.cfg")
        classpath = ZK_JAR + (f":{SLF4J_SIMPLE}" if os.path.exists(SLF4J_SIMPLE) else "")
        java = [
            shutil.which("java") or "java", f"-Xmx{self.settings['heap-mb']}m", "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1", "-Dzookeeper.admin.enableServer=false",
            "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg,
        ]
        script = (f"mkdir -p {shlex.quote(node.data_dir)} && "
                  f"printf '%s\\n' {_myid(node.id)} > {shlex.quote(os.path.join(node.data_dir, 'myid'))} && "
                  f"printf '%s' {shlex.quote(self.config_text(node, members))} > {shlex.quote(cfg)} && "
                  f"exec {shlex.join(java)}")
        return ["sh", "-c", script]

    def container_recipe(self) -> ContainerRecipe | None:
        """Debian's zookeeper (and its JRE) in the node image; kazoo stays on the harness side."""
        return ContainerRecipe(lines=[
            "RUN apt-get update && apt-get install -y --no-install-recommends zookeeper libslf4j-java "
            "&& rm -rf /var/lib/apt/lists/*",
        ])

    def open_client(self, node: NodeSpec, timeout: float) -> ZKClient:
        return ZKClient(node.client_addr, timeout=timeout, sync_reads=self.settings["reads"] == "sync")

    def probe(self, node: NodeSpec, timeout: float = 1.0) -> bool:
        return _mode(node.client_addr, timeout) in ("leader", "follower", "standalone")

    def status(self, node: NodeSpec, timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            return ZKClient(node.client_addr, timeout).status()
        except OSError:
            return None

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        for node in nodes:
            if _mode(node.client_addr, timeout) == "leader":
                return node.id
        return None


def _myid(node_id: str) -> int:
    digits = "".join(ch for ch in node_id if ch.isdigit())
    return int(digits) if digits else 1
