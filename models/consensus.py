"""Protocol-independent pieces of the pure consensus cores (Raft, Multi-Paxos).

Both cores speak the same words to their drivers: the same roles (so ``/status``
reads the same), the same :class:`NotLeader` refusal and the same :class:`ReadState`
answer to ``read_index``. Only these live here; each protocol's messages, log and
:class:`Ready` record stay in its own core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CANDIDATE",
    "FOLLOWER",
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
