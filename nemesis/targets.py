"""Targets: which nodes a fault hits, as specs resolved by pure functions.

A *target spec* names a set of nodes relative to the cluster, not the nodes
themselves, so one spec works for any cluster size:

==============  ===========================================================
``one``         one node, chosen by the rng
``minority``    ``(n - 1) // 2`` nodes (the largest set whose loss a
                majority quorum survives)
``majority``    ``n // 2 + 1`` nodes
``all``         every node
``leader``      the current leader; when the system cannot tell or no leader
                is known, one node chosen by the rng (and the caller is told)
``n1+n3``       exactly these nodes
==============  ===========================================================

:func:`resolve_targets` is pure: the same spec, nodes, leader and rng state
give the same answer, and the answer is in cluster order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from jepsenlike.errors import ConfigError

TARGET_SPECS = ("one", "minority", "majority", "all", "leader")


def parse_target_spec(text: str, nodes: Sequence[str] | None = None) -> str:
    """Validate one target spec; explicit node lists are ``n1+n2``.

    Args:
        text: the spec as the user wrote it.
        nodes: the cluster's node ids, to check explicit lists against.

    Raises:
        ConfigError: naming the bad spec and the valid ones.
    """
    spec = text.strip()
    if spec in TARGET_SPECS:
        return spec
    names = [p.strip() for p in spec.split("+") if p.strip()]
    if names and all(_looks_like_node(n) for n in names):
        if nodes is not None:
            unknown = [n for n in names if n not in nodes]
            if unknown:
                raise ConfigError(
                    f"--targets: node(s) {', '.join(unknown)} not in the cluster "
                    f"({', '.join(nodes)})"
                )
        return "+".join(names)
    raise ConfigError(
        f"--targets: unknown target {text!r}; available: {', '.join(TARGET_SPECS)}, "
        "or explicit nodes like n1+n3"
    )


def _looks_like_node(name: str) -> bool:
    return len(name) > 1 and name[0] == "n" and name[1:].isdigit()


def minority_size(n: int) -> int:
    return (n - 1) // 2


def majority_size(n: int) -> int:
    return n // 2 + 1


def resolve_targets(
    spec: str,
    nodes: Sequence[str],
    rng: random.Random,
    leader: str | None = None,
) -> list[str]:
    """The concrete nodes ``spec`` means now, in cluster order.

    Args:
        spec: a target spec (see the module docstring).
        nodes: the cluster's node ids in order.
        rng: the nemesis rng; consumed only by specs that choose.
        leader: the current leader, for ``leader``.
    """
    nodes = list(nodes)
    if not nodes:
        return []
    if spec == "all":
        chosen = set(nodes)
    elif spec == "one":
        chosen = {rng.choice(nodes)}
    elif spec == "minority":
        chosen = set(rng.sample(nodes, minority_size(len(nodes))))
    elif spec == "majority":
        chosen = set(rng.sample(nodes, majority_size(len(nodes))))
    elif spec == "leader":
        chosen = {leader} if leader in nodes else {rng.choice(nodes)}
    else:
        chosen = set(spec.split("+"))
        unknown = chosen - set(nodes)
        if unknown:
            raise ValueError(f"target {spec!r} names nodes not in the cluster: {sorted(unknown)}")
    return [n for n in nodes if n in chosen]
