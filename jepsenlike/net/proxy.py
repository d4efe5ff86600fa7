"""Per-link userspace TCP proxies: partitions, latency and loss without root.

Theory of operation
-------------------
Every directed peer link ``src -> dst`` of a cluster gets its own
:class:`PerLinkProxy`: a loopback listener that forwards each accepted
connection to ``dst``'s real peer address. Node ``src`` is started with
``--peers dst=<address of proxy(src -> dst)>`` for every other node, so every
byte ``src`` sends to ``dst`` over a connection ``src`` opened crosses exactly
that proxy, and nothing else does. Clients of the system under test talk to
nodes directly; only peer traffic is faulted.

Direction rule. TCP is two-way, so the replies of ``dst`` travel back on the
connection ``src`` opened. The rule depends only on who sends a byte and who
receives it, never on who dialled: **a byte from X to Y is held while Y's
grudge contains X**. On link ``src -> dst`` that means the forward bytes (src
to dst) are held while ``dst`` drops ``src``, and the backward bytes (dst to
src, e.g. replies) are held while ``src`` drops ``dst``. This is what an
iptables ``INPUT -s X -j DROP`` on Y does to data, so a one-way grudge stays
one-way. (The second-order TCP effect that Y's ACKs are lost too, which would
stall X's *replies* after one window, is not modelled: with request/response
protocols there are no replies to requests that were held anyway.)

Held, not reset. A held direction stops reading its socket and stops writing
what it had already read; nothing is dropped and no connection is closed. The
kernel buffers fill, the sender's writes block, its timeouts fire: the node
sees a silent peer, as with dropped packets. On heal the held bytes are
delivered in order, as TCP retransmission would eventually do. Because the gate
is checked right before each write, no byte of a held direction is delivered
after :meth:`ProxyNet.apply_grudge` returns. A new connection on a link with a
held direction is accepted by the proxy (the client's ``connect`` succeeds: the
kernel completes the handshake before userspace sees it) but the proxy dials
``dst`` only once both directions are open, so ``dst`` never sees it before
the heal. EOF and resets are part of the byte stream and are held likewise.

Latency and jitter (``slow``). Each chunk is stamped when read and written no
earlier than ``read time + latency +/- jitter``; chunks are never reordered
(TCP is in order), so jitter only stretches gaps. Reading continues while
earlier chunks wait, so the link keeps its bandwidth under latency.

Loss (``flaky``). A proxy cannot drop bytes from inside a TCP stream without
corrupting it, and dropping a packet under TCP only delays it. So loss is
modelled at the level the protocols see: each chunk read aborts its whole
connection (RST both ways, queued bytes discarded) with the given probability.
For message-per-write protocols this loses the messages in flight and forces
a reconnect.

Threads and randomness. :class:`ProxyNet` runs all links on one asyncio loop
in one background thread; its public methods are thread-safe and return only
once the change is in force. Each link direction has its own
``random.Random`` seeded from ``(seed, src, dst, direction)``, so the draws
one link makes do not depend on traffic on other links. Chunk boundaries
depend on timing, so the same seed gives the same *stream* of draws, not the
same bytes dropped.

Nothing is left behind: :meth:`ProxyNet.stop` closes every listener and
connection, ends the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.grudge import Grudge, validate_grudge

Address = tuple[str, int]
Link = tuple[str, str]
T = TypeVar("T")

CHUNK = 64 * 1024
# Chunks a direction may hold between its reader and writer (backpressure bound:
# at most QUEUE_CHUNKS * CHUNK bytes per direction live in the proxy).
QUEUE_CHUNKS = 64
CALL_TIMEOUT_S = 30.0
_CLOSE_ROUNDS = 500  # x 10 ms: how long stop() waits for in-flight accepts
CLOSE_WAIT_S = 5.0

FORWARD = "forward"
BACKWARD = "backward"


class _Reset:
    """Marks a reset (RST, connection error) read from a socket, carried in order."""


_RESET = _Reset()


class _Abort(Exception):
    """Ends a connection abruptly (both sockets reset)."""


@dataclass
class LinkStats:
    """Counters of one link; read them through :meth:`ProxyNet.stats`."""

    connections: int = 0
    """Connections accepted from ``src``."""
    upstream_failures: int = 0
    """Connections closed because ``dst`` could not be reached."""
    dials: int = 0
    """Connections the proxy opened to ``dst`` (none while a direction is held)."""
    forward_bytes: int = 0
    """Bytes delivered from ``src`` to ``dst``."""
    backward_bytes: int = 0
    """Bytes delivered from ``dst`` back to ``src``."""
    dropped_connections: int = 0
    """Connections aborted by ``flaky``."""
    open_connections: int = 0


@dataclass
class _Direction:
    """Fault settings of one direction of a link, shared by its connections."""

    name: str
    gate: asyncio.Event
    rng: random.Random
    latency_s: float = 0.0
    jitter_s: float = 0.0
    drop_probability: float = 0.0

    def delay(self) -> float:
        if self.latency_s <= 0.0 and self.jitter_s <= 0.0:
            return 0.0
        jitter = self.rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
        return max(0.0, self.latency_s + jitter)

    def drops(self) -> bool:
        return self.drop_probability > 0.0 and self.rng.random() < self.drop_probability

    async def wait_open(self) -> None:
        # Re-check after waking: another callback may have closed the gate again.
        while not self.gate.is_set():
            await self.gate.wait()


def parse_address(addr: Address | str) -> Address:
    """``("127.0.0.1", 7000)`` or ``"127.0.0.1:7000"`` -> ``("127.0.0.1", 7000)``."""
    if isinstance(addr, str):
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"peer address {addr!r} is not host:port")
        return host, int(port)
    host, port = addr[0], addr[1]
    return str(host), int(port)


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close a socket with an RST (SO_LINGER 0), like a peer that vanished."""
    if writer is None:
        return
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class PerLinkProxy:
    """The proxy of one directed link ``src -> dst``; lives on an asyncio loop.

    Its coroutines and setters must run on the loop that runs it; use
    :class:`ProxyNet` to drive a whole cluster from other threads.
    """

    def __init__(
        self,
        src: str,
        dst: str,
        upstream: Address,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.src = src
        self.dst = dst
        self.upstream = upstream
        self.host = host
        self.port = port
        self.stats = LinkStats()
        self.forward = _Direction(FORWARD, asyncio.Event(), random.Random(f"{seed}/{src}->{dst}/fwd"))
        self.backward = _Direction(BACKWARD, asyncio.Event(), random.Random(f"{seed}/{src}->{dst}/bwd"))
        self.forward.gate.set()
        self.backward.gate.set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> Address:
        if self._server is None:
            raise RuntimeError(f"proxy {self.src}->{self.dst} is not listening yet")
        return self.host, self.port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        # Stop listening, then end the connections: since Python 3.12
        # Server.wait_closed() also waits for every connection, so it comes last.
        if self._server is not None:
            self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_WAIT_S)

    def set_blocked(self, *, forward: bool, backward: bool) -> None:
        for direction, blocked in ((self.forward, forward), (self.backward, backward)):
            if blocked:
                direction.gate.clear()
            else:
                direction.gate.set()

    def set_slow(self, latency_s: float, jitter_s: float) -> None:
        for direction in (self.forward, self.backward):
            direction.latency_s = latency_s
            direction.jitter_s = jitter_s

    def set_flaky(self, drop_probability: float) -> None:
        for direction in (self.forward, self.backward):
            direction.drop_probability = drop_probability

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.connections += 1
        self.stats.open_connections += 1
        uwriter: asyncio.StreamWriter | None = None
        try:
            # Dial dst only when a handshake could complete both ways: under a
            # partition dst must not even learn that src tried to connect.
            while not (self.forward.gate.is_set() and self.backward.gate.is_set()):
                await self.forward.wait_open()
                await self.backward.wait_open()
            if creader.at_eof():
                # src gave up (closed without sending) while held: its SYN would
                # never have reached dst, so dst never hears of it.
                cwriter.close()
                return
            self.stats.dials += 1
            try:
                ureader, uwriter = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.stats.upstream_failures += 1
                _abort(cwriter)
                return
            await self._pump_both(creader, cwriter, ureader, uwriter)
        except _Abort:
            _abort(cwriter)
            _abort(uwriter)
        except asyncio.CancelledError:
            # Only close() cancels a handler, and this task is the top of its own
            # stack: end it normally, since asyncio's stream callback (3.11) logs
            # a spurious error for a connection task that ends cancelled.
            _abort(cwriter)
            _abort(uwriter)
        finally:
            self.stats.open_connections -= 1
            self._handlers.discard(task)

    async def _pump_both(
        self,
        creader: asyncio.StreamReader,
        cwriter: asyncio.StreamWriter,
        ureader: asyncio.StreamReader,
        uwriter: asyncio.StreamWriter,
    ) -> None:
        fq: asyncio.Queue[tuple[float, bytes | _Reset]] = asyncio.Queue(QUEUE_CHUNKS)
        bq: asyncio.Queue[tuple[float, bytes | _Reset]] = asyncio.Queue(QUEUE_CHUNKS)
        tasks = [
            asyncio.create_task(self._read(self.forward, creader, fq)),
            asyncio.create_task(self._write(self.forward, uwriter, fq)),
            asyncio.create_task(self._read(self.backward, ureader, bq)),
            asyncio.create_task(self._write(self.backward, cwriter, bq)),
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise _Abort from task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Both directions delivered their EOF: an orderly close.
        for writer in (cwriter, uwriter):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(
        self,
        direction: _Direction,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes | _Reset]],
    ) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            # Not reading while held lets the kernel buffers fill: the sender stalls.
            await direction.wait_open()
            data: bytes | _Reset
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = _RESET
            if isinstance(data, bytes) and data and direction.drops():
                self.stats.dropped_connections += 1
                raise _Abort(f"flaky dropped {self.src}->{self.dst} ({direction.name})")
            # Never before an earlier chunk: jitter stretches gaps, it does not reorder.
            last = max(loop.time() + direction.delay(), last)
            await queue.put((last, data))
            if not data or isinstance(data, _Reset):
                return

    async def _write(
        self,
        direction: _Direction,
        writer: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes | _Reset]],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await direction.wait_open()
            # No await between the gate check and the write: once a block is in
            # force on the loop, nothing more crosses.
            if isinstance(data, _Reset):
                raise _Abort(f"peer reset on {self.src}->{self.dst} ({direction.name})")
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            if direction is self.forward:
                self.stats.forward_bytes += len(data)
            else:
                self.stats.backward_bytes += len(data)
            await writer.drain()


class ProxyNet:
    """All ``n * (n - 1)`` peer links of a cluster, run in one background thread.

    ``peers`` maps each node to the address it listens on for peer traffic.
    After :meth:`start`, node ``src`` must dial ``dst`` at ``address(src, dst)``.
    Every method is thread-safe and returns once the change is in force.
    """

    def __init__(
        self,
        peers: Mapping[str, Address | str],
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        avoid: Iterable[int] = (),
    ) -> None:
        if len(peers) < 2:
            raise ConfigError(f"a proxy network needs at least 2 nodes; got {sorted(peers)}")
        self.peers = {node: parse_address(addr) for node, addr in peers.items()}
        # Ports chosen for the nodes but not yet bound by them (their client and
        # peer ports): a listener the kernel hands one of these would take it
        # from the node that starts next, so such a pick is held and redone.
        self.avoid = {int(p) for p in avoid} | {port for _, port in self.peers.values()}
        self.seed = seed
        self.host = host
        self.nodes = sorted(self.peers)
        self._links: dict[Link, PerLinkProxy] = {}
        self._grudge: Grudge = {n: set() for n in self.nodes}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Open every link's listener; addresses are known when this returns."""
        if self._thread is not None:
            raise RuntimeError("ProxyNet already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jepsenlike-proxynet", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._open_all())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Close every listener and connection, stop the loop, join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                self._call(self._close_all())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            self._links.clear()
            self._loop = None
            self._thread = None

    def __enter__(self) -> ProxyNet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------

    def address(self, src: str, dst: str) -> Address:
        """Where ``src`` dials ``dst``."""
        return self._link(src, dst).address

    def peer_addresses(self, src: str) -> dict[str, Address]:
        """Everything ``src`` needs for its ``--peers`` flag."""
        return {dst: self.address(src, dst) for dst in self.nodes if dst != src}

    def peers_for(self, src: str) -> dict[str, str]:
        """``peer_addresses`` as ``"host:port"`` strings, the form node command lines take."""
        return {dst: f"{h}:{p}" for dst, (h, p) in self.peer_addresses(src).items()}

    @property
    def links(self) -> list[Link]:
        """Every directed link, ``(src, dst)``, sorted."""
        return [(s, d) for s in self.nodes for d in self.nodes if s != d]

    # -- faults ----------------------------------------------------------------

    @property
    def grudge(self) -> Grudge:
        """The grudge in force (a copy)."""
        return {n: set(v) for n, v in self._grudge.items()}

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        """Replace the partition: bytes from X to Y are held while ``X in grudge[Y]``."""
        normal = validate_grudge(grudge, self.nodes)
        self._call(self._set_grudge(normal))

    def heal(self) -> None:
        """End every partition; held bytes are delivered in order."""
        self._call(self._set_grudge({n: set() for n in self.nodes}))

    def slow(
        self, links: Iterable[Link] | None = None, *, latency_ms: float, jitter_ms: float = 0.0
    ) -> None:
        """Delay every chunk on ``links`` (default: all) by latency +/- jitter."""
        if latency_ms < 0 or jitter_ms < 0:
            raise ConfigError(
                f"slow needs latency_ms >= 0 and jitter_ms >= 0; got {latency_ms}, {jitter_ms}"
            )
        chosen = self._chosen(links)
        self._call(self._each(chosen, lambda p: p.set_slow(latency_ms / 1e3, jitter_ms / 1e3)))

    def flaky(self, links: Iterable[Link] | None = None, *, drop_probability: float) -> None:
        """Abort connections on ``links`` at random: each chunk with this probability."""
        if not 0.0 <= drop_probability <= 1.0:
            raise ConfigError(f"drop_probability must be in [0, 1]; got {drop_probability}")
        chosen = self._chosen(links)
        self._call(self._each(chosen, lambda p: p.set_flaky(drop_probability)))

    def fast(self, links: Iterable[Link] | None = None) -> None:
        """Remove latency and loss (not partitions) from ``links`` (default: all)."""
        chosen = self._chosen(links)

        def reset(proxy: PerLinkProxy) -> None:
            proxy.set_slow(0.0, 0.0)
            proxy.set_flaky(0.0)

        self._call(self._each(chosen, reset))

    def stats(self) -> dict[Link, LinkStats]:
        """A snapshot of every link's counters."""

        async def snapshot() -> dict[Link, LinkStats]:
            return {k: LinkStats(**vars(p.stats)) for k, p in sorted(self._links.items())}

        return self._call(snapshot())

    # -- internals -------------------------------------------------------------

    def _link(self, src: str, dst: str) -> PerLinkProxy:
        try:
            return self._links[(src, dst)]
        except KeyError:
            if not self._links:
                raise RuntimeError("ProxyNet is not started; call start() first") from None
            raise ConfigError(
                f"no link {src!r} -> {dst!r}; links join two different nodes of: "
                f"{', '.join(self.nodes)}"
            ) from None

    def _chosen(self, links: Iterable[Link] | None) -> list[PerLinkProxy]:
        if links is None:
            return list(self._links.values())
        return [self._link(src, dst) for src, dst in links]

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            coro.close()
            raise RuntimeError("ProxyNet is not running; call start() first")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(CALL_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def _open_all(self) -> None:
        held: list[socket.socket] = []
        try:
            for src in self.nodes:
                for dst in self.nodes:
                    if src != dst:
                        proxy = PerLinkProxy(src, dst, self.peers[dst], seed=self.seed, host=self.host)
                        self._links[(src, dst)] = proxy
                        await self._start_clear_of_avoided(proxy, held)
        finally:
            for sock in held:
                sock.close()

    async def _start_clear_of_avoided(self, proxy: PerLinkProxy, held: list[socket.socket]) -> None:
        """Start ``proxy`` on a kernel-chosen port that is not one of ``self.avoid``.

        Binding port 0 may return a port the harness picked for a node a moment
        ago (picked, then released for the node to bind). Such a port is held
        open by a placeholder socket until every listener is up, so the kernel
        cannot hand it out again in this round.
        """
        for _ in range(64):
            await proxy.start()
            if proxy.port not in self.avoid:
                return
            port = proxy.port
            await proxy.close()
            proxy.port = 0
            proxy._server = None
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        raise ConfigError(f"proxy {proxy.src}->{proxy.dst}: no free port outside the nodes' own after 64 tries")

    async def _close_all(self) -> None:
        await asyncio.gather(*(p.close() for p in self._links.values()), return_exceptions=True)
        # A connection accepted just before its listener closed is still on its
        # way to a handler (asyncio accepts in a task, then starts the handler in
        # another), invisible to close(). This loop is ours alone, so wait for
        # every other task to finish, cancelling handlers as they appear.
        me = asyncio.current_task()
        for _ in range(_CLOSE_ROUNDS):
            others = [t for t in asyncio.all_tasks() if t is not me]
            if not others:
                break
            for proxy in self._links.values():
                for task in list(proxy._handlers):
                    task.cancel()
            await asyncio.wait(others, timeout=0.01)
        else:
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()
        # Aborted transports close their sockets in callbacks queued just now.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _set_grudge(self, grudge: Grudge) -> None:
        for (src, dst), proxy in self._links.items():
            proxy.set_blocked(forward=src in grudge[dst], backward=dst in grudge[src])
        self._grudge = grudge

    @staticmethod
    async def _each(proxies: list[PerLinkProxy], change: Callable[[PerLinkProxy], None]) -> None:
        for proxy in proxies:
            change(proxy)
