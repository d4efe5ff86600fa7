"""Network and clock faults on real Raft nodes through the local backend.

* a grudge holds exactly the links it claims: a probe written into every
  link's proxy is delivered on the open links and held (0 bytes) on the cut
  ones, and delivered after the heal;
* an isolated leader loses leadership while the majority elects a new one;
* a clock bump is seen by the node (``GET /status`` ``time``), survives a
  restart of the node, and is undone by a reset;
* teardown stops the proxies and the clock threads and leaves no process.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from jepsenlike.backends.local import LocalBackend
from jepsenlike.faketime import search_libfaketime
from jepsenlike.nemesis.grudge import complete_grudge
from jepsenlike.systems.raft import RaftSystem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(RaftSystem().unavailable_reason() is not None, reason="jepsenlike.models.raft not available"),
]

PROBE = b"jepsenlike-probe-" * 8  # 136 bytes of garbage the node will reject


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def leader_of(system: RaftSystem, backend: LocalBackend, among: list[str] | None = None) -> tuple[int, str] | None:
    best = None
    for n in backend.nodes:
        if among is not None and n.id not in among:
            continue
        st = system.status(n, 0.5)
        if st and st.get("role") == "leader" and (best is None or st["term"] > best[0]):
            best = (int(st["term"]), n.id)
    return best


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


@pytest.fixture
def cluster(tmp_path):
    made: list[LocalBackend] = []

    def make(n: int = 3, clocks: bool = False) -> tuple[RaftSystem, LocalBackend]:
        system = RaftSystem()
        backend = LocalBackend(system, n, tmp_path / f"run{len(made)}", seed=7, clocks=clocks)
        made.append(backend)
        backend.start()
        return system, backend

    yield make
    for b in made:
        pids = b.pids()
        b.teardown()
        assert b.net is None and not alive(pids)
    names = [t.name for t in threading.enumerate()]
    assert not any(n.startswith(("jepsenlike-proxynet", "faketime-")) for n in names), names


def connect_all_links(backend: LocalBackend) -> dict[tuple[str, str], socket.socket]:
    """One connection into every link's proxy, established (the proxy has dialled dst)."""
    net = backend.net
    assert net is not None
    before = net.stats()
    socks = {link: socket.create_connection(net.address(*link), timeout=2) for link in net.links}
    wait_for(lambda: all(net.stats()[link].connections > before[link].connections for link in net.links),
             5, "the proxies to accept the probes")
    time.sleep(0.2)  # and to dial their destinations
    return socks


def send_probes(backend: LocalBackend, socks: dict[tuple[str, str], socket.socket]) -> dict[tuple[str, str], int]:
    """Write PROBE on every connection; return the forward bytes each link delivered meanwhile."""
    net = backend.net
    assert net is not None
    before = net.stats()
    for s in socks.values():
        s.sendall(PROBE)
    time.sleep(0.6)
    after = net.stats()
    return {link: after[link].forward_bytes - before[link].forward_bytes for link in net.links}


def test_a_grudge_holds_exactly_the_links_it_claims_and_heal_delivers(cluster):
    system, backend = cluster(3)
    # The nodes dial each other through the proxies, never directly.
    for node in backend.nodes:
        argv = backend.command(node)
        peers = dict(p.split("=") for p in argv[argv.index("--peers") + 1].split(","))
        assert peers == backend.net.peers_for(node.id)
        assert not set(peers.values()) & {n.peer_addr for n in backend.nodes}
    wait_for(lambda: leader_of(system, backend), 10, "a leader")

    established = connect_all_links(backend)
    grudge = {"n1": {"n2", "n3"}, "n2": {"n1"}, "n3": set()}  # asymmetric: n3 still hears n1
    try:
        backend.apply_grudge(grudge)
        # Established connections: a byte from X to Y is held iff X in grudge[Y].
        held = send_probes(backend, established)
        for (src, dst), delta in held.items():
            if src in grudge[dst]:
                assert delta == 0, f"{src}->{dst} is cut but delivered {delta} bytes"
            else:
                assert delta >= len(PROBE), f"{src}->{dst} is open but delivered {delta} bytes"
        # New connections reach dst only on links open both ways (documented proxy rule).
        fresh = connect_all_links(backend)
        try:
            delivered = send_probes(backend, fresh)
            for (src, dst), delta in delivered.items():
                both_open = src not in grudge[dst] and dst not in grudge[src]
                assert (delta >= len(PROBE)) == both_open, (src, dst, delta)
            before_heal = backend.net.stats()
            backend.heal_network()
            time.sleep(0.5)
            after_heal = backend.net.stats()
            for src, dst in backend.net.links:
                if src in grudge[dst]:  # the held probes are delivered after the heal
                    got = after_heal[(src, dst)].forward_bytes - before_heal[(src, dst)].forward_bytes
                    assert got >= 2 * len(PROBE), (src, dst, got)
        finally:
            for s in fresh.values():
                s.close()
    finally:
        for s in established.values():
            s.close()


def test_an_isolated_leader_loses_leadership_and_the_majority_elects_another(cluster):
    system, backend = cluster(3)
    term, old = wait_for(lambda: leader_of(system, backend), 10, "a leader")
    rest = [n for n in backend.node_ids if n != old]
    backend.apply_grudge(complete_grudge([{old}, set(rest)]))
    new_term, new = wait_for(lambda: leader_of(system, backend, rest), 10, "a leader in the majority")
    assert new != old and new_term > term
    # check-quorum: the old leader steps down once it has not heard from a quorum.
    wait_for(lambda: (system.status(backend.node(old), 0.5) or {}).get("role") != "leader", 5,
             "the isolated leader to step down")
    backend.heal_network()
    wait_for(lambda: all((system.status(n, 0.5) or {}).get("term", -1) >= new_term for n in backend.nodes),
             10, "every node to learn the new term")


@pytest.mark.skipif(search_libfaketime().path is None, reason=search_libfaketime().reason)
def test_clock_bump_is_seen_by_the_node_survives_restart_and_resets(cluster):
    system, backend = cluster(3, clocks=True)

    def skew(node_id: str) -> float:
        t0 = time.time()
        st = system.status(backend.node(node_id), 1.0)
        assert st is not None, f"{node_id} does not answer"
        return st["time"] - (t0 + time.time()) / 2

    assert abs(skew("n1")) < 1.0
    env = open(f"/proc/{backend.procs['n1'].pid}/environ", "rb").read().split(b"\0")
    assert any(e.startswith(b"FAKETIME_TIMESTAMP_FILE=") and e.endswith(b"n1.faketime") for e in env)
    backend.clock("n1").bump(-120.0)
    backend.clock("n2").bump(45.0)
    assert abs(skew("n1") + 120.0) < 1.0 and abs(skew("n2") - 45.0) < 1.0 and abs(skew("n3")) < 1.0
    backend.kill("n1")
    backend.restart("n1")
    backend.wait_ready(["n1"], 10)
    assert abs(skew("n1") + 120.0) < 1.0  # same clock after the restart
    backend.clock("n1").reset()
    assert abs(skew("n1")) < 1.0
    backend.clock("n3").set_rate(2.0)
    a = skew("n3")
    time.sleep(1.0)
    assert 0.6 < skew("n3") - a < 1.4  # one extra second per real second
    files = sorted(p.name for p in (backend.run_dir / "nodes").iterdir() if p.suffix == ".faketime")
    assert files == ["n1.faketime", "n2.faketime", "n3.faketime"]


def test_without_clock_faults_nodes_are_not_preloaded(cluster):
    _, backend = cluster(2)
    env = open(f"/proc/{backend.procs['n1'].pid}/environ", "rb").read()
    assert b"FAKETIME_TIMESTAMP_FILE" not in env and os.path.exists(f"/proc/{backend.procs['n1'].pid}")
    with pytest.raises(RuntimeError, match="no clock control for n1"):
        backend.clock("n1")
