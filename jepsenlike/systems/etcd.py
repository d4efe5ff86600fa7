"""``etcd``: a cluster of Debian's etcd (Raft), driven through its v3 HTTP/JSON gateway.

Theory of operation
-------------------
Each node is ``/usr/bin/etcd`` (Debian: ``etcd-server``) named by its node id,
listening for clients on its client address and for peers on its peer
address, with ``--initial-cluster`` naming every member by its one peer URL.
etcd derives member and cluster ids from those URLs, so every peer must dial a
member at the same address: the system declares ``own_address`` and the local
backend runs each node in its own network namespace (root). A restarted node
reuses its data dir, where ``--initial-cluster-state new`` is ignored.

The client (:class:`EtcdClient`) speaks the gateway etcd serves on its client
port, with the stdlib's ``http.client`` (one keep-alive connection per worker
and node). Keys are ``jepsenlike/<key>``, values the JSON of the history
value; both travel base64-encoded, as the gateway wants bytes fields.

* ``read``  -- ``POST /v3/kv/range``; ``serializable: true`` when the system
  option ``reads=serializable`` (the member answers from its own state, which may
  be stale; the default ``linearizable`` goes through a quorum);
* ``write`` -- ``POST /v3/kv/put``;
* ``cas [old, new]`` -- ``POST /v3/kv/txn`` comparing the value with ``old``
  (``old`` None: the key's create revision is 0, i.e. it does not exist) and
  putting ``new`` on success; ``succeeded`` absent or false is a definite
  ``fail``;
* ``append`` (the set workload's add) and ``txn`` (list-append) --
  read-modify-write: one txn reads every key involved (a snapshot at one
  revision), the new lists are computed here, and one txn commits them guarded
  by ``mod_revision == <the one read>`` for *every* key read or written; a guard
  that fails is retried from the read (at most 5 times, then ``fail``: nothing
  was written). Read-only txns are just the snapshot.

Errors are classified by what may have happened: a read that does not answer is
``fail`` (a read changes nothing); a write whose request may have left is
``info`` on a timeout, a lost connection, a 5xx or an etcd error such as
``request timed out``; it is ``fail`` only when the connection was never opened,
the gateway refused the request as malformed (4xx), or a compare failed.

Readiness is ``GET /health`` answering ``{"health": "true"}`` (the member sees a
leader); the leader is the member whose ``/v3/maintenance/status`` names itself
leader at the highest raft term.

Clock faults are refused: etcd is a Go program, whose runtime reads the clock
through the vDSO, not through libc, so libfaketime cannot move it.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import shutil
import socket
import threading
from collections.abc import Mapping
from typing import Any

from jepsenlike.registry import Option
from jepsenlike.systems.base import ContainerRecipe, NodeSpec, System

ETCD = "/usr/bin/etcd"
APT_LINE = "apt-get install -y etcd-server"
PREFIX = "jepsenlike/"
RMW_ATTEMPTS = 5


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data or "")


def etcd_key(key: Any) -> str:
    """The etcd key holding history key ``key``."""
    return PREFIX + json.dumps(key, sort_keys=True)


class _Unsent(Exception):
    """The connection could not be opened: the request never left."""


class _Lost(Exception):
    """The request may have left, and no (usable) answer came back."""


class _Refused(Exception):
    """etcd answered with an error."""

    def __init__(self, status: int, doc: Any) -> None:
        self.status = status
        self.doc = doc
        msg = doc.get("error") or doc.get("message") if isinstance(doc, dict) else None
        super().__init__(f"http-{status}: {msg or doc!r}"[:300])


class EtcdClient:
    """One keep-alive HTTP connection to one etcd member's gateway.

    Args:
        address: ``host:port`` of the member's client URL.
        timeout: seconds for connect and for each answer.
        serializable: read with ``serializable: true`` (the member's own, maybe stale, state).
    """

    def __init__(self, address: str, timeout: float = 2.0, serializable: bool = False) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self.host, self.port = host, int(port)
        self.timeout = timeout
        self.serializable = serializable
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # -- the wire -------------------------------------------------------------

    def _connected(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None:
            # An idle keep-alive socket is readable only when the server closed it.
            try:
                readable, _, _ = select.select([self._conn.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [True]
            if readable:
                self._drop()
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError as e:
                raise _Unsent(f"connect: {type(e).__name__}: {e}") from None
            try:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def call(self, path: str, body: Mapping[str, Any] | None = None, method: str = "POST") -> Any:
        """One request; the parsed JSON answer. Raises _Unsent, _Lost or _Refused."""
        conn = self._connected()
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            if resp.will_close:
                self._drop()
        except TimeoutError:
            self._drop()
            raise _Lost("timeout") from None
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise _Lost(f"connection: {type(e).__name__}: {e}") from None
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            raise _Lost(f"bad-reply: HTTP {resp.status}: {raw[:200]!r}") from None
        if resp.status != 200 or (isinstance(doc, dict) and "error" in doc and "header" not in doc):
            raise _Refused(resp.status, doc)
        return doc

    # -- ops ------------------------------------------------------------------

    def _range(self, key: Any) -> dict[str, Any]:
        req: dict[str, Any] = {"key": _b64(etcd_key(key))}
        if self.serializable:
            req["serializable"] = True
        return req

    @staticmethod
    def _decode(kv: Mapping[str, Any] | None) -> tuple[Any, int]:
        """(value, mod_revision) of a range answer's kv; (None, 0) for a missing key."""
        if not kv:
            return None, 0
        return json.loads(_unb64(kv.get("value"))), int(kv.get("mod_revision") or 0)

    def _snapshot(self, keys: list[Any]) -> dict[Any, tuple[Any, int]]:
        """Every key's (value, mod_revision), read in one txn (one revision)."""
        doc = self.call("/v3/kv/txn", {"success": [{"request_range": self._range(k)} for k in keys]})
        out = {}
        for k, resp in zip(keys, doc.get("responses") or [], strict=False):
            kvs = (resp.get("response_range") or {}).get("kvs") or []
            out[json.dumps(k, sort_keys=True)] = self._decode(kvs[0] if kvs else None)
        if len(out) != len(keys):
            raise _Lost(f"bad-reply: txn answered {len(out)} of {len(keys)} ranges")
        return out

    def _put(self, key: Any, value: Any) -> dict[str, Any]:
        return {"request_put": {"key": _b64(etcd_key(key)), "value": _b64(json.dumps(value))}}

    def _guarded_commit(self, snap: Mapping[str, tuple[Any, int]], keys: list[Any],
                        writes: Mapping[str, tuple[Any, Any]]) -> bool:
        compare = [{"key": _b64(etcd_key(k)), "target": "MOD", "result": "EQUAL",
                    "mod_revision": str(snap[json.dumps(k, sort_keys=True)][1])} for k in keys]
        doc = self.call("/v3/kv/txn", {"compare": compare,
                                        "success": [self._put(k, v) for k, v in writes.values()]})
        return bool(doc.get("succeeded"))

    def _rmw(self, keys: list[Any], body: Any) -> Any:
        """Read ``keys``, ``body(values) -> (result, writes)``, commit guarded. Returns the completion."""
        for _ in range(RMW_ATTEMPTS):
            try:
                snap = self._snapshot(keys)
            except (_Unsent, _Lost, _Refused) as e:
                return _done("fail", error=f"read: {e}")  # nothing written yet
            result, writes = body({k: v for k, (v, _) in snap.items()})
            if isinstance(result, dict):  # a definite failure computed from the snapshot
                return result
            if not writes:
                return _done("ok", result)
            try:
                if self._guarded_commit(snap, keys, writes):
                    return _done("ok", result)
            except _Unsent as e:
                return _done("fail", error=str(e))
            except _Refused as e:
                return _done("fail" if 400 <= e.status < 500 else "info", error=str(e))
            except _Lost as e:
                return _done("info", error=str(e))
        return _done("fail", error="conflict: the keys changed under every attempt")

    def invoke(self, f: str, key: Any = None, value: Any = None) -> dict[str, Any]:
        """Run one op; answer a completion dict, never raise for network trouble."""
        with self._lock:
            try:
                return self._invoke(f, key, value)
            except _Unsent as e:
                return _done("fail", error=str(e))
            except _Refused as e:
                definite = f == "read" or 400 <= e.status < 500
                return _done("fail" if definite else "info", error=str(e))
            except _Lost as e:
                return _done("fail" if f == "read" else "info", error=str(e))

    def _invoke(self, f: str, key: Any, value: Any) -> dict[str, Any]:
        if f == "read":
            doc = self.call("/v3/kv/range", self._range(key))
            kvs = doc.get("kvs") or []
            return _done("ok", self._decode(kvs[0] if kvs else None)[0])
        if f == "write":
            self.call("/v3/kv/put", self._put(key, value)["request_put"])
            return _done("ok", value)
        if f == "cas":
            old, new = value
            k = _b64(etcd_key(key))
            cmp = ({"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"} if old is None
                   else {"key": k, "target": "VALUE", "result": "EQUAL", "value": _b64(json.dumps(old))})
            doc = self.call("/v3/kv/txn", {"compare": [cmp], "success": [self._put(key, new)]})
            if doc.get("succeeded"):
                return _done("ok", value)
            return _done("fail", error="cas-mismatch")
        if f == "append":
            def add(vals: dict[str, Any]) -> tuple[Any, dict[str, tuple[Any, Any]]]:
                cur = vals[json.dumps(key, sort_keys=True)]
                if cur is not None and not isinstance(cur, list):
                    return _done("fail", error="not-a-list"), {}
                return value, {json.dumps(key, sort_keys=True): (key, [*(cur or []), value])}
            return self._rmw([key], add)
        if f == "txn":
            return self._txn(value)
        return _done("fail", error=f"bad-op: unknown f {f!r}")

    def _txn(self, mops: list[list[Any]]) -> dict[str, Any]:
        keys: list[Any] = []
        for _, k, _ in mops:
            if k not in keys:
                keys.append(k)

        def apply(vals: dict[str, Any]) -> tuple[Any, dict[str, tuple[Any, Any]]]:
            state = dict(vals)
            writes: dict[str, tuple[Any, Any]] = {}
            out = []
            for mf, k, v in mops:
                ek = json.dumps(k, sort_keys=True)
                if mf == "r":
                    out.append([mf, k, state[ek]])
                    continue
                if mf == "w":
                    state[ek] = v
                else:
                    cur = state[ek]
                    if cur is not None and not isinstance(cur, list):
                        return _done("fail", error="not-a-list"), {}
                    state[ek] = [*(cur or []), v]
                writes[ek] = (k, state[ek])
                out.append([mf, k, v])
            return out, writes

        if all(m[0] == "r" for m in mops):
            try:
                snap = self._snapshot(keys)
            except (_Unsent, _Lost, _Refused) as e:
                return _done("fail", error=f"read: {e}")
            return _done("ok", apply({k: v for k, (v, _) in snap.items()})[0])
        return self._rmw(keys, apply)

    def status(self) -> dict[str, Any]:
        """The member's ``/v3/maintenance/status``. Raises when it does not answer."""
        with self._lock:
            try:
                return dict(self.call("/v3/maintenance/status", {}))
            except (_Unsent, _Lost, _Refused) as e:
                raise OSError(str(e)) from None

    def health(self) -> bool:
        with self._lock:
            try:
                return str(self.call("/health", None, method="GET").get("health")) == "true"
            except (_Unsent, _Lost, _Refused):
                return False

    def close(self) -> None:
        with self._lock:
            self._drop()


def _done(type_: str, value: Any = None, error: Any = None) -> dict[str, Any]:
    return {"type": type_, "value": value, "error": error}


class EtcdSystem(System):
    """A cluster of Debian's etcd 3.4 (Raft); client over the v3 HTTP/JSON gateway."""

    name = "etcd"
    description = "Debian's etcd (Raft) cluster; v3 JSON gateway client (register, append, set)"
    own_address = True
    can_tell_leader = True
    option_names = ()
    workloads = frozenset({"register", "append", "set"})
    faults = frozenset({"kill", "pause", "partition", "slow", "flaky"})
    refused_capabilities = {
        "clock": "etcd is a Go program: its runtime reads the clock through the vDSO, not libc, "
                 "so libfaketime cannot move it",
    }
    plugin_options = (
        Option("reads", str, "linearizable", "linearizable: reads go through a quorum; serializable: "
               "each member answers from its own, possibly stale, state",
               choices=("linearizable", "serializable")),
        Option("election-ms", int, 1000, "etcd's --election-timeout"),
        Option("heartbeat-ms", int, 100, "etcd's --heartbeat-interval"),
    )

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self.settings = {o.name: o.default for o in self.plugin_options}
        self.settings.update(settings or {})

    def unavailable_reason(self) -> str | None:
        if shutil.which("etcd") is None and not _exists(ETCD):
            return f"etcd is not installed; {APT_LINE}"
        return None

    def node_command(self, node: NodeSpec, peers: dict[str, str], *, bug: str | None, seed: int) -> list[str]:
        members = {node.id: node.peer_addr, **peers}
        cluster = ",".join(f"{n}=http://{a}" for n, a in sorted(members.items()))
        return [
            shutil.which("etcd") or ETCD,
            "--name", node.id,
            "--data-dir", node.data_dir,
            "--listen-client-urls", f"http://{node.client_addr}",
            "--advertise-client-urls", f"http://{node.client_addr}",
            "--listen-peer-urls", f"http://{node.peer_addr}",
            "--initial-advertise-peer-urls", f"http://{node.peer_addr}",
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"jepsenlike-{seed}",
            "--election-timeout", str(self.settings["election-ms"]),
            "--heartbeat-interval", str(self.settings["heartbeat-ms"]),
            "--logger", "zap", "--log-outputs", "stderr",
        ]

    def open_client(self, node: NodeSpec, timeout: float) -> EtcdClient:
        return EtcdClient(node.client_addr, timeout=timeout,
                          serializable=self.settings["reads"] == "serializable")

    def probe(self, node: NodeSpec, timeout: float = 1.0) -> bool:
        client = EtcdClient(node.client_addr, timeout=timeout)
        try:
            return client.health()
        finally:
            client.close()

    def leader(self, nodes: list[NodeSpec], timeout: float = 0.5) -> str | None:
        best: tuple[int, str] | None = None
        for node in nodes:
            st = self.status(node, timeout)
            if not st:
                continue
            header = st.get("header") or {}
            if st.get("leader") and st.get("leader") == header.get("member_id"):
                term = int(header.get("raft_term") or 0)
                if best is None or term > best[0]:
                    best = (term, node.id)
        return best[1] if best else None

    def container_recipe(self) -> ContainerRecipe | None:
        return ContainerRecipe(lines=[
            "RUN apt-get update && apt-get install -y --no-install-recommends etcd-server "
            "&& rm -rf /var/lib/apt/lists/*",
        ])


def _exists(path: str) -> bool:
    import os

    return os.access(path, os.X_OK)
