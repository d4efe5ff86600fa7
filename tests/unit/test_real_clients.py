"""The etcd and ZooKeeper clients classify outcomes by what may have happened (no server needed).

Against fake servers on loopback: a write whose request left and got no answer
(timeout, connection dropped mid-request, a 5xx) is ``info``; a read in the same
situation is ``fail`` (it changed nothing); a connection that never opens is
``fail`` for both; a 4xx (malformed) and a failed compare are ``fail``. The
gateway's JSON shapes (base64 keys and values, ``succeeded`` omitted when false)
are decoded as etcd 3.4 sends them.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jepsenlike.systems.etcd import EtcdClient, etcd_key
from jepsenlike.systems.zookeeper import ZKClient


@pytest.fixture
def fake_etcd() -> Iterator[Callable[[Callable[[str, dict], tuple[int, Any] | None]], str]]:
    servers = []

    def start(handler_fn: Callable[[str, dict], tuple[int, Any] | None]) -> str:
        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                out = handler_fn(self.path, body)
                if out is None:  # drop the connection without answering
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, doc = out
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *a: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def b64json(v: Any) -> str:
    return base64.b64encode(json.dumps(v).encode()).decode()


def test_gateway_shapes_decoded(fake_etcd):
    seen = []

    def handler(path: str, body: dict) -> tuple[int, Any]:
        seen.append((path, body))
        if path == "/v3/kv/range":
            return 200, {"header": {}, "kvs": [{"key": body["key"], "value": b64json(7), "mod_revision": "5"}]}
        if path == "/v3/kv/txn":
            return 200, {"header": {}}  # succeeded omitted: false
        return 200, {"header": {}}

    c = EtcdClient(fake_etcd(handler), timeout=1.0, serializable=True)
    assert c.invoke("read", 3) == {"type": "ok", "value": 7, "error": None}
    assert base64.b64decode(seen[0][1]["key"]).decode() == etcd_key(3) and seen[0][1]["serializable"] is True
    assert c.invoke("cas", 3, [7, 8])["type"] == "fail"  # compare failed: definite
    assert c.invoke("write", 3, 9)["type"] == "ok"


@pytest.mark.parametrize("answer, write_type", [
    (None, "info"),                                                  # connection dropped mid-request
    ((503, {"error": "etcdserver: request timed out", "code": 14}), "info"),
    ((400, {"error": "bad request", "code": 3}), "fail"),
])
def test_writes_that_may_have_happened_are_info_reads_fail(fake_etcd, answer, write_type):
    addr = fake_etcd(lambda path, body: answer)
    c = EtcdClient(addr, timeout=1.0)
    assert c.invoke("write", 1, 2)["type"] == write_type
    assert c.invoke("cas", 1, [2, 3])["type"] == write_type
    assert c.invoke("read", 1)["type"] == "fail"


def test_timeout_on_a_write_is_info(fake_etcd):
    gate = threading.Event()
    addr = fake_etcd(lambda path, body: (gate.wait(3), (200, {"header": {}}))[1])
    try:
        c = EtcdClient(addr, timeout=0.3)
        out = c.invoke("write", 1, 2)
        assert out["type"] == "info" and "timeout" in out["error"]
        assert c.invoke("read", 1)["type"] == "fail"
    finally:
        gate.set()


def closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def test_connection_never_opened_is_fail_for_writes_too():
    addr = closed_port()
    assert EtcdClient(addr, timeout=0.5).invoke("write", 1, 2)["type"] == "fail"
    assert EtcdClient(addr, timeout=0.5).invoke("txn", None, [["append", 1, 2]])["type"] == "fail"
    pytest.importorskip("kazoo")
    zk = ZKClient(addr, timeout=0.5)
    try:
        assert zk.invoke("write", 1, 2)["type"] == "fail"  # the session never connected
    finally:
        zk.close()


def test_append_txn_commits_guarded_by_mod_revision(fake_etcd):
    commits = []

    def handler(path: str, body: dict) -> tuple[int, Any]:
        if "compare" not in body:  # the snapshot
            return 200, {"header": {}, "responses": [
                {"response_range": {"kvs": [{"value": b64json([1]), "mod_revision": "9"}]}},
                {"response_range": {}}]}
        commits.append(body)
        return 200, {"header": {}, "succeeded": True}

    c = EtcdClient(fake_etcd(handler), timeout=1.0)
    out = c.invoke("txn", None, [["r", 1, None], ["append", 2, 5], ["r", 2, None]])
    assert out == {"type": "ok", "value": [["r", 1, [1]], ["append", 2, 5], ["r", 2, [5]]], "error": None}
    (commit,) = commits
    assert sorted(cmp["mod_revision"] for cmp in commit["compare"]) == ["0", "9"]
    assert all(cmp["target"] == "MOD" for cmp in commit["compare"])
    (put,) = commit["success"]
    assert json.loads(base64.b64decode(put["request_put"]["value"])) == [5]
