"""A small keep-alive HTTP/1.1 server for JSON APIs, on asyncio streams.

Theory of operation
-------------------
Each connection is one task that reads a request head (up to ``\\r\\n\\r\\n``), a
``Content-Length`` body, calls ``handler(method, path, body) -> (status, obj)`` and
writes the JSON reply. Connections stay open until the client closes them or sends
``Connection: close``; the server never closes an idle connection, so a client never
has to guess whether a request on a reused connection reached us. Requests on one
connection are handled one at a time (no pipelining); concurrency comes from many
connections. Chunked bodies are refused with 411. Nothing here knows about Raft.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["HttpServer", "Handler"]

log = logging.getLogger(__name__)

Handler = Callable[[str, str, bytes], Awaitable[tuple[int, Any]]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}
MAX_BODY = 16 << 20


class HttpServer:
    """Serve ``handler`` on ``host:port``."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, backlog=1024
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends the connection tasks; cancelling the tasks that
        # asyncio.start_server created makes asyncio log spurious errors.
        conns = list(self._conns.items())
        for _, w in conns:
            w.close()
        if conns:
            await asyncio.wait([t for t, _ in conns], timeout=1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    await self._reply(writer, 413, {"error": "header too large"}, close=True)
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    await self._reply(writer, 400, {"error": "bad request line"}, close=True)
                    return
                method, path, version = parts
                length = 0
                close = version == "HTTP/1.0"
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value.strip())
                    elif name == "connection":
                        v = value.strip().lower()
                        close = v == "close" or (close and v != "keep-alive")
                    elif name == "transfer-encoding":
                        await self._reply(writer, 411, {"error": "send Content-Length"}, close=True)
                        return
                if length > MAX_BODY:
                    await self._reply(writer, 413, {"error": "body too large"}, close=True)
                    return
                body = await reader.readexactly(length) if length else b""
                try:
                    status, obj = await self.handler(method, path.split("?", 1)[0], body)
                except Exception:
                    log.exception("handler failed for %s %s", method, path)
                    status, obj = 500, {"error": "internal"}
                await self._reply(writer, status, obj, close)
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self._conns.pop(task, None)
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, obj: Any, close: bool) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        if writer.transport.get_write_buffer_size() > 64 * 1024:
            await writer.drain()
