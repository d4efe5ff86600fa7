"""Peer transport: one outbound TCP connection per directed link, framed JSON.

Theory of operation
-------------------
Node *i* sends to peer *j* only over the connection *i* dialled to *j*'s address; it
never writes on a connection *j* opened. So the traffic i->j passes through exactly
one TCP connection, and a proxy placed on that address (the harness does this)
controls exactly that direction. Inbound connections are read-only: the first frame
names the sender (``{"hello": "n1"}``), every later frame is a message handed to the
``on_message`` callback.

Frames are ``[length: u32 BE][JSON bytes]``. Each peer has a bounded queue;
:meth:`Transport.send` never blocks and drops the frame when the queue is full or the
link is down: the consensus protocols above tolerate loss, and an unbounded queue
would only turn a slow link into memory growth and stale messages.

A sender task per peer connects (with exponential backoff, capped), sends the hello
frame, then writes whatever is queued in one batch per wake-up. A write that cannot
drain within ``stall_timeout`` (the peer or a proxy stopped reading) closes the
connection and reconnects, discarding what was queued meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["Transport", "parse_peers", "parse_hostport"]

log = logging.getLogger(__name__)
_LEN = struct.Struct(">I")
MAX_FRAME = 64 << 20


def parse_hostport(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad address {s!r}: expected HOST:PORT, e.g. 127.0.0.1:9101")
    return host or "127.0.0.1", int(port)


def parse_peers(s: str) -> dict[str, tuple[str, int]]:
    """Parse ``"n2=127.0.0.1:9102,n3=127.0.0.1:9103"`` (empty string: no peers)."""
    peers: dict[str, tuple[str, int]] = {}
    for item in filter(None, (x.strip() for x in s.split(","))):
        name, sep, addr = item.partition("=")
        if not sep or not name:
            raise ValueError(f"bad peer {item!r}: expected ID=HOST:PORT, e.g. n2=127.0.0.1:9102")
        if name in peers:
            raise ValueError(f"peer {name!r} listed twice in {s!r}")
        peers[name] = parse_hostport(addr)
    return peers


class _Link:
    __slots__ = ("peer", "addr", "queue", "task", "connected", "dropped")

    def __init__(self, peer: str, addr: tuple[str, int], maxsize: int) -> None:
        self.peer = peer
        self.addr = addr
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize)
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.dropped = 0


class Transport:
    """Listens for peers on ``listen`` and dials each peer in ``peers``.

    Args:
        node_id: this node's id, sent in the hello frame.
        listen: address to accept peer connections on.
        peers: for each other node, the address this node dials to reach it.
        on_message: called with ``(sender_id, message_dict)`` for every inbound frame.
        queue_size: frames buffered per peer before new ones are dropped.
    """

    def __init__(
        self,
        node_id: str,
        listen: tuple[str, int],
        peers: dict[str, tuple[str, int]],
        on_message: Callable[[str, dict[str, Any]], None],
        queue_size: int = 4096,
        stall_timeout: float = 2.0,
    ) -> None:
        self.node_id = node_id
        self.listen = listen
        self.on_message = on_message
        self.stall_timeout = stall_timeout
        self.links = {p: _Link(p, a, queue_size) for p, a in peers.items()}
        self._server: asyncio.base_events.Server | None = None
        self._readers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._closing = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen[0], self.listen[1], reuse_address=True
        )
        for link in self.links.values():
            link.task = asyncio.create_task(self._sender(link), name=f"send-{link.peer}")

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = [link.task for link in self.links.values() if link.task]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        # Inbound tasks belong to asyncio.start_server: end them by closing sockets.
        readers = list(self._readers.items())
        for _, w in readers:
            w.close()
        if readers:
            await asyncio.wait([t for t, _ in readers], timeout=1.0)

    # -- sending --------------------------------------------------------------------

    def send(self, peer: str, msg: dict[str, Any]) -> bool:
        """Queue a message for ``peer``; False if it was dropped."""
        link = self.links.get(peer)
        if link is None or not link.connected:
            return False
        data = json.dumps(msg, separators=(",", ":")).encode()
        try:
            link.queue.put_nowait(_LEN.pack(len(data)) + data)
            return True
        except asyncio.QueueFull:
            link.dropped += 1
            return False

    async def _sender(self, link: _Link) -> None:
        backoff = 0.02
        hello = json.dumps({"hello": self.node_id}).encode()
        while not self._closing:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*link.addr), timeout=1.0
                )
                _set_nodelay(writer)
                writer.write(_LEN.pack(len(hello)) + hello)
                await asyncio.wait_for(writer.drain(), self.stall_timeout)
                link.connected = True
                backoff = 0.02
                log.debug("connected to %s at %s:%d", link.peer, *link.addr)
                # A closed connection shows up as EOF on our (unused) read side.
                eof = asyncio.create_task(reader.read(1))
                try:
                    while True:
                        get = asyncio.create_task(link.queue.get())
                        done, _ = await asyncio.wait(
                            {get, eof}, return_when=asyncio.FIRST_COMPLETED
                        )
                        if get not in done:
                            get.cancel()
                            raise ConnectionResetError("peer closed the connection")
                        frames = [get.result()]
                        while not link.queue.empty():
                            frames.append(link.queue.get_nowait())
                        writer.write(b"".join(frames))
                        if writer.transport.get_write_buffer_size() > 256 * 1024:
                            await asyncio.wait_for(writer.drain(), self.stall_timeout)
                finally:
                    eof.cancel()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, ConnectionError) as e:
                if link.connected:
                    log.info("link to %s lost: %s", link.peer, type(e).__name__)
            finally:
                link.connected = False
                _drain_queue(link.queue)
                if writer is not None:
                    writer.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    # -- receiving ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._readers[task] = writer
        _set_nodelay(writer)
        try:
            hello = json.loads(await _read_frame(reader))
            sender = hello.get("hello") if isinstance(hello, dict) else None
            if sender not in self.links:
                log.warning("inbound peer connection from unknown node %r; closing", sender)
                return
            while True:
                frame = await _read_frame(reader)
                try:
                    msg = json.loads(frame)
                except ValueError:
                    log.warning("bad frame from %s; closing", sender)
                    return
                try:
                    self.on_message(sender, msg)
                except Exception:  # a bad message must not kill the link
                    log.exception("handling message from %s failed", sender)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            self._readers.pop(task, None)
            writer.close()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = _LEN.unpack(await reader.readexactly(4))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes is too large")
    return await reader.readexactly(n)


def _drain_queue(q: asyncio.Queue[bytes]) -> None:
    while not q.empty():
        q.get_nowait()


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
