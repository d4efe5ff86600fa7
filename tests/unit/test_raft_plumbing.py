"""Server plumbing shared by the nodes: peer transport and the HTTP server, in-process."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from jepsenlike.models.client import KVClient, parse_address
from jepsenlike.models.server.http import HttpServer
from jepsenlike.models.server.transport import Transport, parse_peers


def _port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_parse_peers_and_addresses() -> None:
    assert parse_peers("n2=127.0.0.1:9102, n3=h:9103") == {
        "n2": ("127.0.0.1", 9102),
        "n3": ("h", 9103),
    }
    assert parse_peers("") == {}
    for bad in ["n2", "n2=host", "n2=h:1,n2=h:2", "=h:1"]:
        with pytest.raises(ValueError):
            parse_peers(bad)
    assert parse_address("http://127.0.0.1:9001/") == ("127.0.0.1", 9001)


def test_transport_delivers_each_direction_over_the_senders_own_connection() -> None:
    async def main() -> None:
        pa, pb = _port(), _port()
        got: dict[str, list] = {"a": [], "b": []}
        a = Transport("a", ("127.0.0.1", pa), {"b": ("127.0.0.1", pb)},
                      lambda s, m: got["a"].append((s, m)))
        b = Transport("b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)},
                      lambda s, m: got["b"].append((s, m)))
        await a.start()
        await b.start()
        for _ in range(200):
            if a.links["b"].connected and b.links["a"].connected:
                break
            await asyncio.sleep(0.01)
        assert a.send("b", {"x": 1}) and b.send("a", {"y": 2})
        for _ in range(200):
            if got["a"] and got["b"]:
                break
            await asyncio.sleep(0.01)
        assert got == {"a": [("b", {"y": 2})], "b": [("a", {"x": 1})]}
        # b restarts: a reconnects by itself and delivers again.
        await b.close()
        b = Transport("b", ("127.0.0.1", pb), {"a": ("127.0.0.1", pa)},
                      lambda s, m: got["b"].append((s, m)))
        await b.start()
        for _ in range(300):
            a.send("b", {"again": True})
            if ("a", {"again": True}) in got["b"]:
                break
            await asyncio.sleep(0.02)
        assert ("a", {"again": True}) in got["b"]
        await a.close()
        await b.close()

    asyncio.run(main())


def test_transport_drops_instead_of_queueing_without_bound() -> None:
    async def main() -> None:
        dead = _port()  # nobody listens: the link never connects
        t = Transport("a", ("127.0.0.1", _port()), {"b": ("127.0.0.1", dead)},
                      lambda s, m: None, queue_size=2)
        await t.start()
        assert not t.send("b", {"m": 1})  # link down: dropped at once
        assert not t.send("nobody", {"m": 1})
        await t.close()

    asyncio.run(main())


def test_http_server_keeps_connections_alive_and_answers_errors() -> None:
    async def handler(method: str, path: str, body: bytes):
        if path == "/op":
            return 200, {"type": "ok", "value": json.loads(body)["value"]}
        if path == "/status":
            return 200, {"up": True}
        return 404, {"error": "nope"}

    async def main() -> None:
        port = _port()
        server = HttpServer("127.0.0.1", port, handler)
        await server.start()
        client = KVClient(f"127.0.0.1:{port}")
        loop = asyncio.get_running_loop()
        r1 = await loop.run_in_executor(None, client.invoke, "write", "k", 1)
        sock1 = client._conn.sock  # type: ignore[union-attr]
        r2 = await loop.run_in_executor(None, client.invoke, "write", "k", 2)
        assert client._conn.sock is sock1  # type: ignore[union-attr]  # same connection
        st = await loop.run_in_executor(None, client.status)
        assert r1["value"] == 1 and r2["value"] == 2 and st == {"up": True}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404")
        writer.close()
        client.close()
        await server.close()

    asyncio.run(main())


def test_client_maps_server_errors_to_info_and_4xx_to_fail() -> None:
    async def handler(method: str, path: str, body: bytes):
        op = json.loads(body)
        if op["f"] == "boom":
            raise RuntimeError("handler bug")
        return 400, {"type": "fail", "error": "bad-request"}

    async def main() -> None:
        port = _port()
        server = HttpServer("127.0.0.1", port, handler)
        await server.start()
        client = KVClient(f"127.0.0.1:{port}")
        loop = asyncio.get_running_loop()
        r = await loop.run_in_executor(None, client.invoke, "boom", None, None)
        assert r["type"] == "info"  # 500: may or may not have happened
        r = await loop.run_in_executor(None, client.invoke, "read", "k", None)
        assert r == {"type": "fail", "value": None, "error": "bad-request"}
        client.close()
        await server.close()

    asyncio.run(main())
