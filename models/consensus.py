"""Protocol-independent pieces of the pure consensus cores (Raft, Multi-Paxos).

Both cores speak the same words to their drivers: the same roles (so ``/status``
reads the same), the same :class:`NotLeader` refusal and the same :class:`ReadState`
answer to ``read_index``. Only these live here; each protocol's messages, log and
:class:`Ready` record stay in its own core.

:class:`ConsensusCore` is the driver-facing protocol both cores implement, and the
one a user's own sans-I/O core implements to get ``jepsenlike simulate`` (see
``docs/simulation.md``). The driver loop is etcd-raft's Ready/Advance::

    core.tick(now) | core.step(msg) | core.propose(cmd) | core.read_index(ctx, now)
    while core.has_ready():
        rd = core.ready()        # hands out work; marks nothing done
        persist(rd)              # fsync what the protocol says must survive
        send(rd.messages)
        apply(rd)                # snapshot, committed_entries, read_states
        core.advance(rd)         # now it is done: applied/durable move here
"""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CANDIDATE",
    "FOLLOWER",
    "ConsensusCore",
    "ReadyLike",
    "LEADER",
    "NotLeader",
    "ReadState",
    "membership",
    "quorum_round",
    "release_reads",
    "validate_timing",
]

# Roles.
FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"


class NotLeader(Exception):
    """Raised by a core's ``propose`` / ``read_index`` on a node that is not the leader."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader hint: {leader})")
        self.leader = leader


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read registered with ``read_index`` may be served once ``index`` is applied."""

    ctx: Any
    index: int


class ReadyLike(Protocol):
    """What every core's Ready carries for the driver (protocols add their own
    persistence fields: Raft ``hard_state``/``entries``, Paxos ``promised``/``accepted``)."""

    messages: list[Any]
    snapshot: Any
    committed_entries: list[Any]  # each has ``index`` and ``data`` (None: a no-op)
    read_states: list[ReadState]
    dropped_reads: list[Any]
    role: str
    leader: str | None
    term: int


@runtime_checkable
class ConsensusCore(Protocol):
    """A sans-I/O replicated-log core, driven as the module docstring shows.

    Contract: inputs (``tick``, ``step``, ``propose``, ``read_index``, ``compact``)
    never do I/O and never read a clock or global randomness; ``ready()`` hands out
    work without marking it done; ``advance(rd)`` is called after the driver
    persisted, sent and applied ``rd``, and only then does ``applied`` cover it.
    ``propose`` and ``read_index`` raise :class:`NotLeader` on a node that cannot
    serve them.
    """

    id: str
    role: str
    leader: str | None
    commit: int
    applied: int

    def tick(self, now: float | None = None) -> None: ...

    def step(self, m: Any) -> None: ...

    def propose(self, data: Any) -> int: ...

    def read_index(self, ctx: Any, now: float | None = None) -> None: ...

    def compact(self, index: int, data: Any) -> None: ...

    def campaign(self) -> None: ...

    def has_ready(self) -> bool: ...

    def ready(self) -> Any: ...

    def advance(self, rd: Any) -> None: ...

    def status(self) -> dict[str, Any]: ...


def validate_timing(election_ticks: int, heartbeat_ticks: int) -> None:
    """The timer rules every core's ``Config.validate()`` shares."""
    if heartbeat_ticks < 1:
        raise ValueError(f"heartbeat_ticks={heartbeat_ticks!r} must be at least 1")
    if election_ticks <= heartbeat_ticks:
        raise ValueError(
            f"election_ticks={election_ticks!r} must be greater than "
            f"heartbeat_ticks={heartbeat_ticks!r}"
        )


def membership(node_id: str, peers: Iterable[str]) -> tuple[list[str], int]:
    """The peers (sorted) and the majority quorum size, counting this node."""
    peers = list(peers)
    if node_id in peers:
        raise ValueError(f"peers {peers!r} must not contain this node's id {node_id!r}")
    return sorted(peers), (len(peers) + 1) // 2 + 1


def quorum_round(own_round: int, acked_rounds: Iterable[int], quorum: int) -> int:
    """The highest heartbeat round that a quorum (the leader included) acknowledged."""
    acked = sorted(acked_rounds, reverse=True)
    acked.insert(0, own_round)
    return acked[quorum - 1]


def release_reads(
    pending: list[tuple[Any, int, int]], confirmed: int, out: list[ReadState]
) -> list[tuple[Any, int, int]]:
    """Move the pending reads ``(ctx, index, round)`` whose round is confirmed to
    ``out`` as :class:`ReadState` s; return the ones still waiting."""
    keep = []
    for ctx, index, rnd in pending:
        if rnd <= confirmed:
            out.append(ReadState(ctx, index))
        else:
            keep.append((ctx, index, rnd))
    return keep
