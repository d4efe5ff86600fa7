"""ProxyNet on real loopback sockets: forwarding, held partitions, latency, loss, cleanup."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from jepsenlike.errors import ConfigError
from jepsenlike.nemesis.grudge import majorities_ring
from jepsenlike.net import ProxyNet

pytestmark = pytest.mark.integration

# How long we watch for bytes that must NOT arrive. A blocked byte never arrives,
# so this only bounds how long the test waits for a wrong delivery to show up.
QUIET_S = 0.4
WAIT_S = 5.0


class EchoNode:
    """A peer listener that records what it receives and echoes it back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = self.sock.getsockname()
        self.received = bytearray()
        self.accepted = 0
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                conn.close()  # peer finished: close our side too, like a server would
                return
            with self.lock:
                self.received += data
            try:
                conn.sendall(data)
            except OSError:
                return

    def got(self) -> bytes:
        with self.lock:
            return bytes(self.received)

    def close(self) -> None:
        # shutdown() wakes a thread blocked in accept(); close() alone does not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
        self.accept_thread.join(5)
        for t in self.threads:
            t.join(5)


def wait_for(predicate, timeout: float = WAIT_S) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def recv_exactly(sock: socket.socket, n: int, timeout: float = WAIT_S) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {buf!r}")
        buf += chunk
    return buf


def nothing_arrives(sock: socket.socket, quiet: float = QUIET_S) -> bool:
    """True when the connection stays open and silent for ``quiet`` seconds."""
    sock.settimeout(quiet)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    return False  # data or EOF: something crossed


@pytest.fixture
def cluster() -> Iterator[tuple[dict[str, EchoNode], ProxyNet]]:
    nodes = {n: EchoNode(n) for n in ("a", "b", "c")}
    net = ProxyNet({n: node.address for n, node in nodes.items()}, seed=42)
    net.start()
    try:
        yield nodes, net
    finally:
        net.stop()
        for node in nodes.values():
            node.close()


def dial(net: ProxyNet, src: str, dst: str) -> socket.socket:
    return socket.create_connection(net.address(src, dst), timeout=WAIT_S)


def test_forwards_both_ways_and_counts(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    assert sorted(net.peer_addresses("a")) == ["b", "c"]
    host, port = net.address("a", "c")
    assert net.peers_for("a")["c"] == f"{host}:{port}"
    assert net.address("a", "b") != nodes["b"].address
    with dial(net, "a", "b") as s:
        s.sendall(b"hello")
        assert recv_exactly(s, 5) == b"hello"
    assert nodes["b"].got() == b"hello"
    stats = net.stats()[("a", "b")]
    assert (stats.connections, stats.forward_bytes, stats.backward_bytes) == (1, 5, 5)
    assert stats.upstream_failures == 0


def test_blocked_forward_bytes_are_held_not_reset_then_delivered_on_heal(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    with dial(net, "a", "b") as s:
        s.sendall(b"1")
        assert recv_exactly(s, 1) == b"1"
        net.apply_grudge({"b": {"a"}})  # b drops traffic from a
        s.sendall(b"2345")
        assert nothing_arrives(s)  # no echo, and no EOF/RST either
        assert nodes["b"].got() == b"1"
        net.heal()
        assert recv_exactly(s, 4) == b"2345"
    assert nodes["b"].got() == b"12345"


def test_reverse_bytes_follow_the_receivers_grudge(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    # a drops b: a's request reaches b over a's own link, b's reply to a is held.
    with dial(net, "a", "b") as s:
        s.sendall(b"0")
        assert recv_exactly(s, 1) == b"0"
        net.apply_grudge({"a": {"b"}})
        s.sendall(b"req")
        assert wait_for(lambda: nodes["b"].got() == b"0req")
        assert nothing_arrives(s)
        # and on b's own link to a, b's bytes are held at the forward gate
        with dial(net, "b", "a") as t:
            t.sendall(b"zzz")
            assert nothing_arrives(t)
            assert nodes["a"].got() == b""
            net.heal()
            assert recv_exactly(t, 3) == b"zzz"
        assert recv_exactly(s, 3) == b"req"
    assert nodes["a"].got() == b"zzz"


def test_handshake_needs_both_directions(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    # a drops b and dials b: a's SYN would reach b but b's SYN-ACK would be lost,
    # so the handshake never completes and b's accept() never returns.
    net.apply_grudge({"a": {"b"}})
    with dial(net, "a", "b") as s:
        s.sendall(b"syn")
        assert nothing_arrives(s)
        assert nodes["b"].accepted == 0
        net.heal()
        assert recv_exactly(s, 3) == b"syn"


def test_new_connection_on_blocked_link_is_accepted_but_dst_sees_it_only_after_heal(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    net.apply_grudge({"c": {"a"}})
    with dial(net, "a", "c") as s:  # connect succeeds at the proxy
        s.sendall(b"early")
        assert nothing_arrives(s)
        assert nodes["c"].accepted == 0
        # other links are untouched
        with dial(net, "b", "c") as t:
            t.sendall(b"ok")
            assert recv_exactly(t, 2) == b"ok"
        net.heal()
        assert recv_exactly(s, 5) == b"early"
    assert wait_for(lambda: nodes["c"].accepted == 2)


def test_eof_is_held_like_data(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    with dial(net, "a", "b") as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        net.apply_grudge({"b": {"a"}})
        s.shutdown(socket.SHUT_WR)
        assert nothing_arrives(s)  # b has not seen the FIN, so it does not close
        net.heal()
        s.settimeout(WAIT_S)
        assert s.recv(1) == b""  # b saw EOF after heal and closed its side


def test_majorities_ring_grudge_matches_delivery_on_every_link() -> None:
    names = ["n1", "n2", "n3", "n4", "n5"]
    nodes = {n: EchoNode(n) for n in names}
    net = ProxyNet({n: node.address for n, node in nodes.items()}, seed=1)
    socks: dict[tuple[str, str], socket.socket] = {}
    try:
        net.start()
        grudge = majorities_ring(names, random.Random(3))
        net.apply_grudge(grudge)
        for src, dst in net.links:
            s = dial(net, src, dst)
            socks[(src, dst)] = s
            s.sendall(f"<{src}>".encode())
        expected = {(s, d) for s, d in net.links if s not in grudge[d]}
        for src, dst in net.links:
            token = f"<{src}>".encode()
            if (src, dst) in expected:
                assert wait_for(lambda d=dst, t=token: t in nodes[d].got()), (src, dst)
        time.sleep(QUIET_S)
        for src, dst in net.links:
            delivered = f"<{src}>".encode() in nodes[dst].got()
            assert delivered == ((src, dst) in expected), (src, dst, grudge)
        net.heal()
        for src, dst in net.links:
            token = f"<{src}>".encode()
            assert wait_for(lambda d=dst, t=token: t in nodes[d].got()), (src, dst)
            assert recv_exactly(socks[(src, dst)], len(token)) == token
    finally:
        for s in socks.values():
            s.close()
        net.stop()
        for node in nodes.values():
            node.close()


def test_slow_adds_latency_both_ways_and_keeps_order_under_jitter(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    net.slow([("a", "b")], latency_ms=150, jitter_ms=100)
    with dial(net, "a", "b") as s:
        t0 = time.monotonic()
        s.sendall(b"p")
        recv_exactly(s, 1)
        rtt = time.monotonic() - t0
        # each way at least latency - jitter = 50 ms: the delay is injected, not measured perf
        assert rtt >= 0.1
        payload = b"".join(f"{i:05d}".encode() for i in range(300))
        for i in range(300):
            s.sendall(payload[i * 5 : i * 5 + 5])
            time.sleep(0.001)
        assert recv_exactly(s, len(payload), timeout=20) == payload
    net.fast()
    with dial(net, "a", "c") as s:
        s.sendall(b"q")
        assert recv_exactly(s, 1) == b"q"


def test_flaky_with_certain_loss_aborts_the_connection(cluster) -> None:  # type: ignore[no-untyped-def]
    nodes, net = cluster
    net.flaky([("a", "b")], drop_probability=1.0)
    with dial(net, "a", "b") as s:
        s.sendall(b"lost")
        s.settimeout(WAIT_S)
        with pytest.raises((ConnectionResetError, EOFError)):
            data = s.recv(10)
            if not data:
                raise EOFError
    assert nodes["b"].got() == b""
    assert wait_for(lambda: net.stats()[("a", "b")].dropped_connections == 1)
    net.fast()
    with dial(net, "a", "b") as s:
        s.sendall(b"kept")
        assert recv_exactly(s, 4) == b"kept"


def _loss_pattern(seed: int, tries: int = 24) -> list[bool]:
    node = EchoNode("d")
    other = EchoNode("e")
    net = ProxyNet({"d": node.address, "e": other.address}, seed=seed)
    pattern = []
    try:
        net.start()
        net.flaky(drop_probability=0.5)
        for i in range(tries):
            with dial(net, "e", "d") as s:
                msg = f"{i:04d}".encode()
                s.sendall(msg)
                try:
                    pattern.append(recv_exactly(s, 4) == msg)
                except (ConnectionResetError, EOFError):
                    pattern.append(False)
    finally:
        net.stop()
        node.close()
        other.close()
    return pattern


def test_flaky_draws_are_reproducible_from_the_seed() -> None:
    first, again, other = _loss_pattern(7), _loss_pattern(7), _loss_pattern(8)
    assert first == again
    assert True in first and False in first
    assert first != other


def test_errors_name_the_bad_input(cluster) -> None:  # type: ignore[no-untyped-def]
    _, net = cluster
    with pytest.raises(ConfigError, match=r"unknown node 'z'; valid nodes: a, b, c"):
        net.apply_grudge({"z": {"a"}})
    with pytest.raises(ConfigError, match=r"no link 'a' -> 'a'"):
        net.slow([("a", "a")], latency_ms=10)
    with pytest.raises(ConfigError, match="drop_probability"):
        net.flaky(drop_probability=1.5)
    with pytest.raises(ConfigError, match="'nohost' is not host:port"):
        ProxyNet({"a": "nohost", "b": "127.0.0.1:1"})


def test_peers_may_be_given_as_host_port_strings() -> None:
    node = EchoNode("b")
    other = EchoNode("a")
    host, port = node.address
    with ProxyNet({"a": f"{other.address[0]}:{other.address[1]}", "b": f"{host}:{port}"}) as net:
        with dial(net, "a", "b") as s:
            s.sendall(b"str")
            assert recv_exactly(s, 3) == b"str"
    node.close()
    other.close()


def test_unreachable_destination_closes_the_client_connection() -> None:
    free = socket.create_server(("127.0.0.1", 0))
    dead_addr = free.getsockname()
    free.close()  # nothing listens here now
    alive = EchoNode("a")
    net = ProxyNet({"a": alive.address, "dead": dead_addr})
    try:
        net.start()
        # The proxy resets the client as soon as dst refuses; depending on timing
        # the client sees that in connect() itself or in its first recv().
        try:
            with dial(net, "a", "dead") as s:
                s.settimeout(WAIT_S)
                assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        assert net.stats()[("a", "dead")].upstream_failures == 1
    finally:
        net.stop()
        alive.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stop_leaves_no_thread_socket_or_listener_behind() -> None:
    fds_before = _open_fds()
    threads_before = threading.active_count()
    node_a, node_b = EchoNode("a"), EchoNode("b")
    net = ProxyNet({"a": node_a.address, "b": node_b.address})
    net.start()
    addr = net.address("a", "b")
    live = dial(net, "b", "a")  # an established connection...
    live.sendall(b"x")
    recv_exactly(live, 1)
    net.apply_grudge({"b": {"a"}})
    held = dial(net, "a", "b")  # ...and one stuck behind a partition
    held.sendall(b"stuck")
    live.sendall(b"y")  # bytes b -> a still flow; the echo back is held
    assert [t.name for t in threading.enumerate()].count("jepsenlike-proxynet") == 1
    net.stop()
    # our client ends see the proxy go away
    live.settimeout(WAIT_S)
    with pytest.raises((ConnectionResetError, EOFError)):
        if live.recv(1) == b"":
            raise EOFError
    held.close()
    live.close()
    assert not any(t.name == "jepsenlike-proxynet" for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr, timeout=1)
    node_a.close()
    node_b.close()
    assert threading.active_count() == threads_before
    # listeners, proxy-side sockets and the loop's selector/self-pipe are all closed
    assert wait_for(lambda: _open_fds() <= fds_before)
    net.stop()  # idempotent
