"""Network faults for the local backend: per-link userspace TCP proxies.

See :mod:`jepsenlike.net.proxy` for how partitions (grudges), latency and loss
are applied without root.
"""

from jepsenlike.net.proxy import Address, Link, LinkStats, PerLinkProxy, ProxyNet, parse_address

__all__ = ["Address", "Link", "LinkStats", "PerLinkProxy", "ProxyNet", "parse_address"]
