"""Client for the reference nodes' HTTP/JSON API (Raft now, Paxos later).

Theory of operation
-------------------
Every node serves ``POST /op`` and ``GET /status`` on its client address (see
``docs/raft-node.md``). :meth:`KVClient.invoke` turns whatever happens on the
wire into one of the three outcomes a history needs:

* ``ok``   -- the node says the operation took effect (or, for reads, what it saw);
* ``fail`` -- the operation certainly did not take effect: the node said so
  (``not-leader``, ``cas-mismatch``, a 4xx for a malformed request) or we never
  managed to open a connection, so nothing was sent;
* ``info`` -- anything else once the request may have left this process: timeout,
  connection reset, a garbled or 5xx reply. When in doubt, indefinite.

The one subtle case is keep-alive. A request written on a reused connection
that the server had already closed never reached it, but we cannot tell that
apart from a server that died mid-request, so it is ``info``. To keep this rare,
a reused socket is checked before sending: an idle HTTP connection is readable
only if the server closed it, and then we reconnect first. The server never closes
idle keep-alive connections on its own.

A :class:`KVClient` holds one connection and a lock: it is safe to share
between threads, but calls on one instance are serialised; give each worker
thread its own instance for concurrency.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from typing import Any

__all__ = ["KVClient", "parse_address"]


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (``http://`` prefix allowed) into ``(host, port)``."""
    addr = address
    if addr.startswith("http://"):
        addr = addr[len("http://") :]
    addr = addr.rstrip("/")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9001")
    return host or "127.0.0.1", int(port)


class KVClient:
    """One keep-alive HTTP connection to one node.

    Args:
        address: ``"host:port"`` of the node's client API.
        timeout: seconds to wait for connect and for the reply. Should exceed the
            server's own op timeout (default 1 s) so that the server, which knows
            more, usually decides between fail and info.
    """

    def __init__(self, address: str, timeout: float = 2.0) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # -- public API -------------------------------------------------------

    def invoke(self, f: str, key: Any = None, value: Any = None) -> dict[str, Any]:
        """Run one operation; never raises for network trouble.

        Returns:
            ``{"type": "ok"|"fail"|"info", "value": ..., "error": ...}``; ``leader``
            is added when a node answered ``not-leader`` with a hint.
        """
        body = json.dumps({"f": f, "key": key, "value": value}).encode()
        with self._lock:
            try:
                conn = self._connected()
            except OSError as e:
                # Nothing was sent: the operation certainly did not happen.
                self._drop()
                return _result("fail", error=f"connect: {_describe(e)}")
            try:
                conn.request(
                    "POST", "/op", body=body, headers={"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                raw = resp.read()
                status = resp.status
                if resp.will_close:
                    self._drop()
            except TimeoutError:
                self._drop()
                return _result("info", error="timeout")
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                return _result("info", error=f"connection: {_describe(e)}")
        return _interpret(status, raw)

    def status(self) -> dict[str, Any]:
        """Fetch ``GET /status``. Raises ``OSError`` or ``ValueError`` on failure."""
        with self._lock:
            try:
                conn = self._connected()
                conn.request("GET", "/status")
                resp = conn.getresponse()
                raw = resp.read()
                if resp.will_close:
                    self._drop()
            except BaseException:
                self._drop()
                raise
        if resp.status != 200:
            raise ValueError(f"GET /status on {self.address}: HTTP {resp.status}: {raw[:200]!r}")
        return json.loads(raw)

    def close(self) -> None:
        """Close the connection; the client reconnects if used again."""
        with self._lock:
            self._drop()

    def __enter__(self) -> KVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------

    def _connected(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None:
            # An idle keep-alive socket never has anything to read unless the server
            # closed it (it restarted, say). Find out now, while nothing is sent, so
            # that this costs a reconnect and not an indefinite outcome.
            try:
                readable, _, _ = select.select([self._conn.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [True]
            if readable:
                self._drop()
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()  # separate step: a failure here means nothing was sent
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


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _result(type_: str, value: Any = None, error: Any = None) -> dict[str, Any]:
    return {"type": type_, "value": value, "error": error}


def _interpret(status: int, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    if status == 200 and isinstance(doc, dict) and doc.get("type") in ("ok", "fail", "info"):
        out = _result(doc["type"], doc.get("value"), doc.get("error"))
        if doc.get("leader") is not None:
            out["leader"] = doc["leader"]
        return out
    if 400 <= status < 500:
        # The server refused to parse or route the request: it did not run it.
        err = doc.get("error") if isinstance(doc, dict) else None
        return _result("fail", error=err or f"http-{status}")
    return _result("info", error=f"bad-reply: HTTP {status}: {raw[:200]!r}")
