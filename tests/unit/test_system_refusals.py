"""A system's own refusals: capabilities it cannot take, and the local backend's network mode.

* ``refused_capabilities`` removes the capability from what the backend offers,
  with the system's reason, so faults needing it are refused up front;
* ``own_address`` picks the netns mode on ``auto``; ``proxy`` is refused for such a
  system, naming the fix; other systems keep the rootless proxies.
"""

from __future__ import annotations

import pytest

from jepsenlike.backends import backend_refusals, netns
from jepsenlike.backends.local import network_mode
from jepsenlike.errors import ConfigError
from jepsenlike.systems.raft import RaftSystem


class NoClockRaft(RaftSystem):
    name = "no-clock-raft"
    refused_capabilities = {"clock": "it reads the clock without libc"}


class OwnAddressRaft(RaftSystem):
    name = "own-address-raft"
    own_address = True


def test_refused_capability_is_removed_with_the_systems_reason():
    caps, why = backend_refusals("local", NoClockRaft(), 3)
    assert "clock" not in caps and {"kill", "pause", "net"} <= caps
    assert why["clock"] == "system 'no-clock-raft' cannot take it: it reads the clock without libc"
    caps, _ = backend_refusals("local", RaftSystem(), 3)
    assert "net" in caps


def test_network_mode_follows_own_address(monkeypatch):
    monkeypatch.setattr(netns, "unavailable_reason", lambda: None)
    monkeypatch.setattr("jepsenlike.backends.local.netns_unavailable", lambda: None)
    assert network_mode(OwnAddressRaft()) == "netns"
    assert network_mode(RaftSystem()) == "proxy"
    assert network_mode(RaftSystem(), "netns") == "netns"
    with pytest.raises(ConfigError, match=r"local.network=proxy: system 'own-address-raft'.*use --option local.network=netns"):
        network_mode(OwnAddressRaft(), "proxy")


def test_rootless_own_address_system_is_refused_before_anything_starts(monkeypatch):
    monkeypatch.setattr("jepsenlike.backends.local.netns_unavailable",
                        lambda: "one network namespace per node needs root (CAP_NET_ADMIN)")
    with pytest.raises(ConfigError, match=r"system 'own-address-raft' needs one address per member: .*root"):
        backend_refusals("local", OwnAddressRaft(), 3)
