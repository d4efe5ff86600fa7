"""The Raft node's seeded bugs: what each breaks, and which fault reveals it.

Each bug changes one rule and is enabled with ``--bug NAME`` (several: comma
separated). Without a bug the node must pass every nemesis; with one, a checker
should flag the anomaly listed here when the listed fault is injected. The table is
data so that the CLI's error message and ``docs/raft-node.md`` list the same names.
"""

from __future__ import annotations

from jepsenlike.models.bugs import Bug, bug_table
from jepsenlike.models.bugs import parse_bugs as _parse

__all__ = ["BUGS", "Bug", "parse_bugs"]


BUGS: dict[str, Bug] = bug_table(
    Bug(
        "stale-read",
        "server",
        "a leader answers reads from its own state machine without confirming that "
        "it still leads (no ReadIndex round, no lease); followers forward reads to it",
        "stale reads: a read misses a write acknowledged before it began "
        "(linearizability violation on a register)",
        "a leader that goes on believing it leads while another was elected: pause it "
        "past an election timeout and let it wake up cut off (leader-pause); also a new "
        "leader that has not yet applied its predecessor's writes (leader kills)",
        catch=("--nemesis", "leader-pause", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
    Bug(
        "volatile-vote",
        "storage",
        "term and vote are never written to disk; after a restart the node has "
        "forgotten both",
        "two leaders in one term (here: a term reused after every node forgot it); "
        "replicas diverge, acknowledged writes lost (lost or stale adds of a set)",
        "kill every node and restart it (kill-cluster): all forget their terms, so term "
        "1 is reused; the old leader, back last, meets a leader of its own term that "
        "wrote other entries at its indices and keeps its own (equal index and term "
        "mean equal entries), so its replica diverges; the set workload keeps each "
        "lost add visible",
        catch=("--workload", "set", "--nemesis", "kill-cluster", "--time-limit", "60"),
        control=("--workload", "set", "--nemesis", "kill", "--time-limit", "60"),
    ),
    Bug(
        "commit-old-term",
        "core",
        "the leader commits an entry of an earlier term as soon as a majority "
        "stores it (the paper's figure 8), instead of only entries of its own term",
        "an acknowledged write disappears (lost write) after a later leader "
        "overwrites it",
        "repeated leader changes while entries are only partly replicated, one "
        "entry per append (the paper's figure 8 needs four leader changes in a "
        "precise order); the best run tried here, majorities that flip faster than "
        "an election plus leader kills, has not caught it on real processes yet "
        "(the simulator does: tests/unit/test_raft_sim.py)",
        catch=("--workload", "set", "--system-options", "max-batch=1", "--nemesis",
               "flip-partition,kill-elected", "--time-limit", "60"),
        control=("--workload", "set", "--system-options", "max-batch=1", "--nemesis", "none",
                 "--time-limit", "60"),
    ),
    Bug(
        "lease-without-bound",
        "core+server",
        "lease reads (--read-mode lease) date the lease from the wall clock "
        "(time.time(), not the monotonic clock), count it from when the "
        "acknowledgements arrived instead of when the heartbeat was sent, "
        "stretch it past the followers' minimum election timeout, and a leader "
        "whose lease looks valid ignores check-quorum (does not step down)",
        "stale reads from a deposed leader that still believes in its lease",
        "clock skew: step the leader's wall clock back while it is cut off from the "
        "majority (leader-clock); a forward step shortens the lease and shows nothing",
        catch=("--system-options", "read-mode=lease", "--nemesis", "leader-clock",
               "--option", "leader-clock.direction=back", "--time-limit", "60"),
        control=("--system-options", "read-mode=lease", "--nemesis", "leader-clock",
                 "--option", "leader-clock.direction=forward", "--time-limit", "60"),
    ),
    Bug(
        "early-ack",
        "server",
        "the leader answers a write ok as soon as it is appended to its own log, "
        "before it is committed",
        "lost writes: acknowledged writes vanish when the leader is partitioned "
        "or killed before replicating them",
        "a leader cut off from the majority that still takes writes: pause it past an "
        "election timeout and let it wake up cut off, with clients' writes queued "
        "(leader-pause); or partition it into a minority",
        catch=("--nemesis", "leader-pause", "--time-limit", "60"),
        control=("--nemesis", "none", "--time-limit", "60"),
    ),
)


def parse_bugs(spec: str | None) -> frozenset[str]:
    """Parse ``--bug`` (comma separated). Raises ``ValueError`` naming the valid ones."""
    return _parse(spec, BUGS)
