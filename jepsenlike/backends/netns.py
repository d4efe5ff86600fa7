"""One network namespace per node, joined by a bridge: addressable nodes on the local backend.

Theory of operation
-------------------
Real systems (etcd, ZooKeeper, most databases) name every member by one
address that *all* peers dial; the per-link proxies of :mod:`jepsenlike.net.proxy`
give each peer a different address for the same member, which such systems
refuse (etcd derives its cluster id from the peer URLs) or hang on. In
``netns`` mode each node instead runs in its own network namespace with its own
address, like a container, and partitions are iptables rules *inside* the
receiving namespace, exactly as the docker backend does them (the rule text
comes from :mod:`jepsenlike.backends.docker.iptables`).

Layout, for a run tag ``T`` (6 random hex digits) and a subnet
``10.213.X.0/24`` whose ``X`` is chosen so no existing route overlaps it:

* a bridge ``jlbT`` on the host with address ``10.213.X.1`` -- the harness
  reaches every node's client port from there;
* per node ``nI``: a namespace ``jepsenlike-T-nI``, a veth pair whose host end
  ``jlvT-I`` is enslaved to the bridge and whose other end is ``eth0`` in the
  namespace with address ``10.213.X.(I+1)``; ``lo`` is up too;
* in each namespace our own chain ``JEPSENLIKE`` that ``INPUT`` jumps to first;
  a grudge ``{Y: {X}}`` is ``-A JEPSENLIKE -s <ip of X>/32 -j DROP`` in Y's
  namespace, loaded atomically with ``iptables-restore --noflush`` (the chain is
  flushed and refilled in one commit). The bridge address is never dropped, so
  the harness keeps talking to every node;
* slow and flaky links are ``tc`` netem qdiscs on the namespace's ``eth0``, from
  the docker backend's :func:`~jepsenlike.backends.docker.iptables.tc_script`;
* on the host, when the kernel passes bridged traffic through iptables
  (``br_netfilter``) and a ``FORWARD`` policy drops it (Docker sets one), one
  rule ``-I FORWARD -i jlbT -o jlbT -j ACCEPT`` with the comment
  ``jepsenlike-netns-T`` lets node-to-node traffic across the bridge. Nothing
  else on the host is touched and no traffic is routed beyond the bridge.

A node process is started as ``ip netns exec <namespace> <argv>``: ``ip``
``exec``-s the node, so the pid the backend holds is the node's own and
signals (kill, pause) reach it as in the plain local mode.

Nothing is left behind. :meth:`NetnsNet.teardown` deletes the namespaces
(which deletes the veths), the bridge and the FORWARD rule; it runs from the
backend's teardown (exception, Ctrl-C, SIGTERM, ``atexit``). A harness killed
with SIGKILL cannot run it, so every net writes a state file
``/run/jepsenlike-netns/T.json`` (the harness pid and start time, and what it
created) before it creates anything; :func:`clean_leftovers`
(``jepsenlike clean``) removes whatever belongs to a tag whose harness is gone,
and any ``jepsenlike-*`` namespace, ``jlb*``/``jlv*`` link or
``jepsenlike-netns-*`` rule of no live run.

Needs root (``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN``) and ``ip`` and
``iptables`` (Debian: ``iproute2``, ``iptables``); :func:`unavailable_reason`
says which is missing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jepsenlike.backends.docker.iptables import (
    TC_CLEAR,
    VARIANTS,
    chain_rules,
    netem_args,
    tc_script,
)

STATE_DIR = Path(os.environ.get("JEPSENLIKE_NETNS_STATE", "/run/jepsenlike-netns"))
NS_PREFIX = "jepsenlike-"
BRIDGE_PREFIX = "jlb"
VETH_PREFIX = "jlv"
RULE_COMMENT = "jepsenlike-netns-"
SUBNET_BASE = "10.213"


class NetnsError(RuntimeError):
    """A namespace, link or rule could not be created or changed; the message has the command."""


def unavailable_reason() -> str | None:
    """Why netns mode cannot run here, or None."""
    if os.geteuid() != 0:
        return ("one network namespace per node needs root (CAP_NET_ADMIN); run the harness as root "
                "(sudo), or use --backend docker")
    for tool, pkg in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed; apt-get install -y {pkg}"
    return None


def _run(argv: list[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[:300]}")
    return proc


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _used_networks() -> list[ipaddress.IPv4Network]:
    out = _run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    nets = []
    for line in out.splitlines():
        word = line.split(" ", 1)[0]
        if word in ("default", "broadcast", "local", "unreachable"):
            word = line.split()[1] if len(line.split()) > 1 else ""
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.IPv4Network(word, strict=False))
    return nets


def _forward_needs_rule() -> bool:
    """True when bridged packets go through iptables and FORWARD might drop them."""
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


@dataclass
class NetnsNet:
    """The namespaces, veths, bridge and rules of one run.

    Args:
        node_ids: the cluster's node ids, in order (``n1`` gets ``.2``, ...).
        tag: the run-specific part of every name (random when not given).
    """

    node_ids: list[str]
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    subnet: ipaddress.IPv4Network | None = None
    variant: str = "nft"
    _up: bool = False
    _forward_rule: list[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _grudge: dict[str, set[str]] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"{BRIDGE_PREFIX}{self.tag}"

    def namespace(self, node_id: str) -> str:
        return f"{NS_PREFIX}{self.tag}-{node_id}"

    def veth(self, node_id: str) -> str:
        return f"{VETH_PREFIX}{self.tag}-{self.node_ids.index(node_id) + 1}"

    def ip(self, node_id: str) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 2 + self.node_ids.index(node_id))

    @property
    def host_ip(self) -> str:
        """The bridge's address: where the harness's connections to nodes come from."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def exec_prefix(self, node_id: str) -> list[str]:
        """argv prefix that runs a command inside the node's namespace."""
        return ["ip", "netns", "exec", self.namespace(node_id)]

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        used = _used_networks()
        start = int(self.tag, 16) % 250
        for k in range(250):
            cand = ipaddress.IPv4Network(f"{SUBNET_BASE}.{(start + k) % 250 + 1}.0/24")
            if not any(cand.overlaps(u) for u in used):
                return cand
        raise NetnsError(f"no free /24 in {SUBNET_BASE}.0.0/16 for the node bridge; "
                         "remove leftovers with jepsenlike clean")

    # -- lifecycle ------------------------------------------------------------

    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.tag}.json"

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        doc = {"pid": os.getpid(), "start": _start_time(os.getpid()), "tag": self.tag,
               "bridge": self.bridge, "namespaces": [self.namespace(n) for n in self.node_ids],
               "forward_rule": self._forward_rule}
        self._state_file().write_text(json.dumps(doc))

    def setup(self) -> None:
        """Create the bridge, the namespaces and their links and chains. On failure, undoes it all."""
        if len(self.node_ids) > 250:
            raise NetnsError("netns mode lays out at most 250 nodes")
        self.subnet = self.subnet or self._pick_subnet()
        if any(self.subnet.overlaps(u) for u in _used_networks()):
            # Picked when the nodes were laid out; another run took it since.
            raise NetnsError(f"subnet {self.subnet} was taken by another run (or route) since it was "
                             "chosen; run again")
        if _forward_needs_rule():
            self._forward_rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-m", "comment",
                                  "--comment", f"{RULE_COMMENT}{self.tag}", "-j", "ACCEPT"]
        self._write_state()  # before anything exists: a crash from here on is cleanable
        self._up = True
        try:
            plen = self.subnet.prefixlen
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.host_ip}/{plen}", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            if self._forward_rule is not None:
                _run(["iptables", "-w", "5", "-I", *self._forward_rule])
            for nid in self.node_ids:
                ns = self.namespace(nid)
                _run(["ip", "netns", "add", ns])
                _run(["ip", "link", "add", self.veth(nid), "type", "veth", "peer", "name", "eth0",
                      "netns", ns])
                _run(["ip", "link", "set", self.veth(nid), "master", self.bridge, "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{self.ip(nid)}/{plen}", "dev", "eth0"])
                _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                self._restore(nid, chain_rules((), with_jump=True))
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        """Remove everything :meth:`setup` created. Idempotent; never raises."""
        with self._lock:
            if not self._up:
                return
            self._up = False
        _remove(self.tag, [self.namespace(n) for n in self.node_ids], self.bridge, self._forward_rule,
                [self.veth(n) for n in self.node_ids])
        with contextlib.suppress(OSError):
            self._state_file().unlink()

    # -- faults ---------------------------------------------------------------

    def _restore(self, node_id: str, rules: str) -> None:
        argv = [*self.exec_prefix(node_id), VARIANTS[self.variant], "-w", "5", "--noflush"]
        proc = _run(argv, input=rules, check=False)
        if proc.returncode != 0 and self.variant == "nft":
            # A kernel without nf_tables: the legacy variant works in namespaces too.
            self.variant = "legacy"
            argv[-3] = VARIANTS["legacy"]
            proc = _run(argv, input=rules, check=False)
        if proc.returncode != 0:
            raise NetnsError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[:300]}")

    def apply_grudge(self, grudge: Mapping[str, Iterable[str]]) -> None:
        """Each node Y drops packets from every X in ``grudge[Y]``; other nodes drop nothing."""
        new = {n: set(grudge.get(n, ())) for n in self.node_ids}
        with self._lock:
            for nid in self.node_ids:
                if new[nid] != self._grudge.get(nid, set()):
                    self._restore(nid, chain_rules([self.ip(x) for x in new[nid]], with_jump=False))
            self._grudge = new

    def heal(self) -> None:
        self.apply_grudge({})

    def _tc(self, links: Iterable[tuple[str, str]] | None, args: list[str]) -> None:
        chosen = (list(links) if links is not None
                  else [(a, b) for a in self.node_ids for b in self.node_ids if a != b])
        by_src: dict[str, dict[str, list[str]]] = {n: {} for n in self.node_ids}
        for src, dst in chosen:
            if args:
                by_src[src][self.ip(dst)] = args
        for src, netem in by_src.items():
            script = TC_CLEAR + "\n" + tc_script(netem)
            _run([*self.exec_prefix(src), "sh", "-e", "-c", script])

    def slow(self, links: Iterable[tuple[str, str]] | None, latency_ms: float, jitter_ms: float) -> None:
        self._tc(links, netem_args(latency_ms, jitter_ms))

    def flaky(self, links: Iterable[tuple[str, str]] | None, drop_probability: float) -> None:
        self._tc(links, netem_args(0.0, 0.0, drop_probability))


def _remove(tag: str, namespaces: Iterable[str], bridge: str | None, forward_rule: list[str] | None,
            veths: Iterable[str] = ()) -> None:
    # The veths first: a namespace outlives ``ip netns del`` while anything still
    # references it (sockets closing), and its veth with it.
    for veth in veths:
        _run(["ip", "link", "del", veth], check=False)
    for ns in namespaces:
        _run(["ip", "netns", "del", ns], check=False)
    if bridge:
        _run(["ip", "link", "del", bridge], check=False)
    if forward_rule:
        while _run(["iptables", "-w", "5", "-D", *forward_rule], check=False).returncode == 0:
            pass


@dataclass
class CleanReport:
    """What :func:`clean_leftovers` removed (or would remove)."""

    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    live_tags: list[str] = field(default_factory=list)


def _live_tags() -> set[str]:
    live = set()
    for f in STATE_DIR.glob("*.json") if STATE_DIR.is_dir() else []:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if doc.get("start") is not None and _start_time(int(doc.get("pid", 0))) == doc.get("start"):
            live.add(str(doc.get("tag")))
    return live


def clean_leftovers(dry_run: bool = False) -> CleanReport:
    """Remove the namespaces, links and FORWARD rules of netns runs whose harness is gone."""
    report = CleanReport()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return report
    live = _live_tags()
    report.live_tags = sorted(live)
    ns_re = re.compile(rf"^{re.escape(NS_PREFIX)}([0-9a-f]{{6}})-\S+")
    for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
        m = ns_re.match(line.split(" ", 1)[0])
        if m and m.group(1) not in live:
            report.namespaces.append(m.group(0))
    link_re = re.compile(rf"^\d+: ((?:{BRIDGE_PREFIX}|{VETH_PREFIX})([0-9a-f]{{6}})(?:-\d+)?)[@:]")
    for line in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        m = link_re.match(line)
        if m and m.group(2) not in live:
            report.links.append(m.group(1))
    rule_re = re.compile(rf"--comment \"?{re.escape(RULE_COMMENT)}([0-9a-f]{{6}})\"?")
    if shutil.which("iptables"):
        for line in _run(["iptables", "-w", "5", "-S", "FORWARD"], check=False).stdout.splitlines():
            m = rule_re.search(line)
            if m and m.group(1) not in live and line.startswith("-A "):
                report.rules.append(line)
    if not dry_run:
        for ns in report.namespaces:
            _run(["ip", "netns", "del", ns], check=False)
        for link in report.links:
            _run(["ip", "link", "del", link], check=False)
        for rule in report.rules:
            _run(["iptables", "-w", "5", "-D", *_split_rule(rule[3:])], check=False)
        for f in STATE_DIR.glob("*.json") if STATE_DIR.is_dir() else []:
            if f.stem not in live:
                with contextlib.suppress(OSError):
                    f.unlink()
    return report


def _split_rule(text: str) -> list[str]:
    import shlex

    return shlex.split(text)
