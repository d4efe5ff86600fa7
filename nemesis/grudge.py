"""Grudges and partition shapes.

Theory of operation
-------------------
A *grudge* says who refuses to hear whom: ``{node: set of nodes whose traffic it
drops}``. It is directional on purpose: ``{"a": {"b"}}`` means bytes from ``b`` to
``a`` are held while ``a``'s bytes still reach ``b``. A node never drops itself.
The network layer (the per-link proxies of :mod:`jepsenlike.net.proxy`, or iptables
in a container) turns a grudge into held traffic; this module only decides the
shape, so it is pure and cheap to test.

The view from the other side is a node's *visible set*: the nodes whose traffic it
receives, itself included (``nodes - grudge[node]``). :func:`invert` swaps the two
descriptions, so a shape may be written as "who sees whom" and inverted.

Every shape is a pure function ``shape(nodes, rng) -> Grudge``. Nodes are sorted
before any random choice, so the result depends only on the *set* of nodes and the
state of ``rng``: the same seed gives the same partition whatever order the caller
listed the nodes in. Every returned grudge has every node as a key (an empty set
means "hears everyone"), so callers can index it without ``.get``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Mapping

from jepsenlike.errors import ConfigError

Grudge = dict[str, set[str]]
"""``{node: nodes whose traffic it drops}``; directional."""

PartitionShape = Callable[[Collection[str], random.Random], Grudge]

# Above this cluster size majorities_ring draws random majorities instead of
# using the ring of windows; the random draw gives more varied overlaps.
RING_EXACT_MAX = 5
_RING_MAX_TRIES = 1000


def majority_size(n: int) -> int:
    """Smallest number of nodes that is a strict majority of ``n``."""
    return n // 2 + 1


def _sorted_nodes(nodes: Iterable[str], shape: str, at_least: int) -> list[str]:
    ordered = sorted(set(nodes))
    if len(ordered) < at_least:
        raise ConfigError(
            f"partition shape {shape!r} needs at least {at_least} nodes; "
            f"got {len(ordered)}: {ordered}"
        )
    return ordered


def complete_grudge(components: Iterable[Iterable[str]]) -> Grudge:
    """Grudge in which every node hears exactly the nodes of its own component.

    Components must be disjoint; every node of every component is a key.
    """
    parts = [set(c) for c in components]
    everyone: set[str] = set()
    for part in parts:
        overlap = everyone & part
        if overlap:
            raise ConfigError(
                f"partition components overlap on {sorted(overlap)}; "
                "each node must be in exactly one component"
            )
        everyone |= part
    return {node: everyone - part for part in parts for node in part}


def invert(mapping: Mapping[str, Iterable[str]], nodes: Iterable[str]) -> Grudge:
    """Swap "drops traffic from" and "hears traffic from" over ``nodes``.

    ``invert(visible_sets, nodes)`` gives the grudge; ``invert(grudge, nodes)`` gives
    the visible sets minus the node itself (a node always hears itself, so self is
    left out of both descriptions). Applying it twice gives the original back
    (up to self-entries and missing keys).
    """
    universe = set(nodes)
    return {n: universe - set(mapping.get(n, ())) - {n} for n in universe}


def visible_sets(grudge: Mapping[str, Iterable[str]], nodes: Iterable[str]) -> dict[str, set[str]]:
    """Each node's visible set: the nodes it hears, itself included."""
    universe = set(nodes)
    return {n: universe - set(grudge.get(n, ())) for n in universe}


def validate_grudge(grudge: Mapping[str, Iterable[str]], nodes: Iterable[str]) -> Grudge:
    """Check a grudge given by a user (config file, nemesis op) and normalize it.

    Returns a grudge with every node as a key. Errors name the bad node and list
    the valid ones, e.g. ``grudge names unknown node 'n9' (as a sender dropped by
    'n1'); valid nodes: n1, n2, n3``.
    """
    universe = sorted(set(nodes))
    valid = ", ".join(universe) or "(none)"
    if not isinstance(grudge, Mapping):
        raise ConfigError(
            f"a grudge must map node -> list of nodes it drops traffic from; got "
            f"{type(grudge).__name__}: {grudge!r}"
        )
    out: Grudge = {n: set() for n in universe}
    for receiver, senders in grudge.items():
        if receiver not in out:
            raise ConfigError(f"grudge names unknown node {receiver!r}; valid nodes: {valid}")
        if isinstance(senders, str):
            # A bare string would silently iterate as characters: "n2" -> {"n", "2"}.
            raise ConfigError(
                f"grudge entry for {receiver!r} must be a list of nodes, got the string "
                f"{senders!r}; write [{senders!r}]"
            )
        for sender in senders:
            if sender not in out:
                raise ConfigError(
                    f"grudge names unknown node {sender!r} (as a sender dropped by "
                    f"{receiver!r}); valid nodes: {valid}"
                )
            if sender == receiver:
                raise ConfigError(
                    f"grudge makes node {receiver!r} drop its own traffic; "
                    "a node always hears itself, remove it from its own entry"
                )
            out[receiver].add(sender)
    return out


def one(nodes: Collection[str], rng: random.Random) -> Grudge:
    """Isolate one random node from all the others (both directions)."""
    ordered = _sorted_nodes(nodes, "one", 2)
    loner = rng.choice(ordered)
    return complete_grudge([[loner], [n for n in ordered if n != loner]])


def halves(nodes: Collection[str], rng: random.Random) -> Grudge:
    """Cut the cluster into two random halves (the smaller half first when n is odd)."""
    ordered = _sorted_nodes(nodes, "halves", 2)
    rng.shuffle(ordered)
    cut = len(ordered) // 2
    return complete_grudge([ordered[:cut], ordered[cut:]])


def majority(nodes: Collection[str], rng: random.Random) -> Grudge:
    """A random strict majority on one side, the rest on the other."""
    ordered = _sorted_nodes(nodes, "majority", 3)
    rng.shuffle(ordered)
    cut = majority_size(len(ordered))
    return complete_grudge([ordered[:cut], ordered[cut:]])


def _ring_windows(ring: list[str]) -> dict[str, set[str]]:
    """Visible sets of a ring: each node sees the majority-sized window around it.

    When the window size is odd it is centred, so the grudge is symmetric (if a
    sees b, b sees a); when it is even (n = 3, 7, 11, ...) it runs one step
    further clockwise, which makes some links one-way. Windows of a size below n
    that start at different positions differ, hence all visible sets are distinct.
    """
    n = len(ring)
    size = majority_size(n)
    back = (size - 1) // 2
    return {
        ring[i]: {ring[(i - back + k) % n] for k in range(size)} for i in range(n)
    }


def majorities_ring(nodes: Collection[str], rng: random.Random) -> Grudge:
    """Every node sees a strict majority (itself included), and no two the same one.

    Exact construction for n <= 5: a random ring order in which each node sees the
    window of its neighbours (for n = 5: itself and one neighbour on each side,
    the classic ring). For larger n, each node sees itself plus a random choice
    of the others, redrawn until all sets differ; the ring is the fallback should
    the draws keep colliding (they practically never do: there are at least
    C(5, 3) = 10 choices per node).
    """
    ordered = _sorted_nodes(nodes, "majorities-ring", 3)
    n = len(ordered)
    if n <= RING_EXACT_MAX:
        rng.shuffle(ordered)
        return invert(_ring_windows(ordered), ordered)
    size = majority_size(n)
    for _ in range(_RING_MAX_TRIES):
        seen: dict[str, set[str]] = {}
        for node in ordered:
            others = [m for m in ordered if m != node]
            seen[node] = {node, *rng.sample(others, size - 1)}
        if len({frozenset(v) for v in seen.values()}) == n:
            return invert(seen, ordered)
    rng.shuffle(ordered)
    return invert(_ring_windows(ordered), ordered)


def bridge(nodes: Collection[str], rng: random.Random) -> Grudge:
    """Two halves that cannot hear each other, joined by one bridge node.

    The bridge node hears everyone and everyone hears it; with 5 nodes this is
    2 + bridge + 2, so each side plus the bridge is a majority.
    """
    ordered = _sorted_nodes(nodes, "bridge", 3)
    rng.shuffle(ordered)
    middle, rest = ordered[0], ordered[1:]
    cut = len(rest) // 2
    left, right = set(rest[:cut]), set(rest[cut:])
    grudge: Grudge = {middle: set()}
    grudge.update({n: set(right) for n in left})
    grudge.update({n: set(left) for n in right})
    return grudge


def asymmetric(nodes: Collection[str], rng: random.Random) -> Grudge:
    """One-way partition between two random halves.

    Nodes of half A drop traffic from half B, while B still hears A: B's messages
    to A are held, A's reach B (and replies from B to A are held again).
    """
    ordered = _sorted_nodes(nodes, "asymmetric", 2)
    rng.shuffle(ordered)
    cut = len(ordered) // 2
    deaf, heard = set(ordered[:cut]), set(ordered[cut:])
    grudge: Grudge = {n: set(heard) for n in deaf}
    grudge.update({n: set() for n in heard})
    return grudge


PARTITION_SHAPES: dict[str, PartitionShape] = {
    "one": one,
    "halves": halves,
    "majority": majority,
    "majorities-ring": majorities_ring,
    "bridge": bridge,
    "asymmetric": asymmetric,
}
"""Partition shapes by the name a config or CLI uses."""


def partition_shape(name: str) -> PartitionShape:
    """Look a shape up by name; the error lists the available names."""
    try:
        return PARTITION_SHAPES[name]
    except KeyError:
        raise ConfigError(
            f"unknown partition shape {name!r}; available: {', '.join(PARTITION_SHAPES)}"
        ) from None


def describe(grudge: Mapping[str, Iterable[str]]) -> str:
    """Short stable text for logs and histories: ``n1<-{n2,n3} n2<-{n1}``."""
    parts = [
        f"{node}<-{{{','.join(sorted(drops))}}}"
        for node, drops in sorted(grudge.items())
        if drops
    ]
    return " ".join(parts) or "(no partition)"
