"""The Paxos node's seeded bugs: the rule each breaks, and the fault that shows it.

Each bug is enabled with ``--bug NAME`` (several: comma separated). Without a bug the
node must pass every nemesis; with one, the anomaly listed here should appear when
the listed fault is injected. The simulator tests (``tests/unit/test_paxos_sim.py``)
show each of them breaking an invariant within a bounded search. The table is data,
so the CLI's error message and ``docs/paxos-node.md`` list the same names.
"""

from __future__ import annotations

from collections.abc import Iterable

from jepsenlike.errors import ConfigError
from jepsenlike.models.bugs import Bug, bug_table
from jepsenlike.models.bugs import validate_bugs as _validate

__all__ = ["BUGS", "Bug", "parse_bugs", "validate_bugs"]


BUGS: dict[str, Bug] = bug_table(
    Bug(
        "volatile-acceptor",
        "storage",
        "promises and accepted values are never written to disk; a restarted "
        "acceptor has forgotten every vote it cast",
        "two values chosen for one slot: acknowledged writes lost or replaced, "
        "replicas that disagree (non-linearizable history)",
        "kill -9 and restart a majority (here: every node) so that the acceptors of "
        "chosen values forget them before a new leader asks",
        catch=("--nemesis", "kill", "--targets", "all", "--nemesis-interval", "2", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
    Bug(
        "no-adopt",
        "core",
        "a new leader ignores the values that promises report as accepted in "
        "earlier ballots and fills every open slot with a no-op",
        "acknowledged writes lost: a slot chosen under one leader is overwritten "
        "by a no-op under the next",
        "kill or partition the leader under write load, so that a new leader "
        "takes over slots the old one had already got chosen (kill-elected)",
        catch=("--nemesis", "kill-elected", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
    Bug(
        "stale-read",
        "core",
        "a leader answers reads from its own state machine with no quorum round to "
        "confirm that it still leads; followers forward reads to it",
        "stale reads: a read misses a write acknowledged before it began",
        "a deposed leader that still believes it leads: pause it past an election "
        "timeout and let it wake up cut off (leader-pause), or isolate it",
        catch=("--nemesis", "leader-pause", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
    Bug(
        "non-unique-ballots",
        "core",
        "a ballot is the round alone, without the node id as tie-breaker, so two "
        "proposers that pick the same round share one ballot",
        "two values chosen for one slot: replicas disagree, acknowledged writes "
        "lost",
        "leader kills on a slow network (latency near the election timeout "
        "jitter), so that two candidates' prepares cross; or majorities partitions "
        "that flip faster than an election (flip-partition), so that nodes that see "
        "different majorities campaign at once",
        catch=("--nemesis", "flip-partition", "--nemesis-interval", "1",
               "--option", "flip-partition.flips=20", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
)


def validate_bugs(names: Iterable[str]) -> frozenset[str]:
    """Return ``names`` as a set; raise :class:`ConfigError` naming the valid ones."""
    return _validate(names, BUGS, label="paxos bug", error=ConfigError)


def parse_bugs(spec: str | None) -> frozenset[str]:
    """Parse ``--bug`` (comma separated, may be empty)."""
    return validate_bugs((spec or "").split(","))
