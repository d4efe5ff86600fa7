"""The shardkv node's seeded bugs: what each breaks, and which anomaly shows it.

Each bug changes one rule of the transaction layer (the Raft groups underneath stay
correct) and is enabled with ``--bug NAME``. ``catch`` holds the ``jepsenlike run``
arguments (besides ``--system shardkv --bug NAME``) that catch it; ``control`` the
same load without what the bug needs, which must stay valid. See docs/shardkv.md.
"""

from __future__ import annotations

from jepsenlike.models.bugs import Bug, bug_table
from jepsenlike.models.bugs import parse_bugs as _parse

__all__ = ["BUGS", "parse_bugs"]

_LOAD = ("--workload", "append", "--groups", "3", "--concurrency", "30", "--rate", "0",
         "--keys", "3", "--time-limit", "30")

BUGS: dict[str, Bug] = bug_table(
    Bug(
        "no-read-locks",
        "state machine",
        "a prepare takes write locks only: keys a transaction read stay unlocked until it "
        "commits, so another transaction may write them in between",
        "write skew: G2 (a cycle of anti-dependencies), often G-single too",
        "none needed: concurrent transactions over the same keys in two groups",
        catch=(*_LOAD, "--nemesis", "none"),
    ),
    Bug(
        "read-committed",
        "state machine",
        "reads take no lock and ignore write locks: each group answers the last committed "
        "value of the key when the transaction's prepare reaches it",
        "read skew: G-single (a transaction sees another's write in one group and misses "
        "its write in another)",
        "none needed: concurrent multi-group transactions",
        catch=(*_LOAD, "--nemesis", "none"),
    ),
    Bug(
        "early-lock-release",
        "state machine",
        "a participant applies the transaction's writes and releases its locks as soon as "
        "it prepares, before the coordinator's decision (an abort undoes the writes later)",
        "G1c (a cycle of write and read dependencies between committed transactions), "
        "G1a when an undone write was read",
        "none needed: concurrent multi-group transactions",
        catch=(*_LOAD, "--nemesis", "none"),
    ),
    Bug(
        "no-2pc-recovery",
        "coordinator",
        "the coordinator keeps its decision in memory, answers the client as soon as every "
        "participant prepared and sends the commits one by one afterwards; a participant "
        "that waited too long for the outcome aborts on its own (there is no recorded "
        "decision to ask)",
        "an acknowledged transaction applied in some groups only: lost-append (its "
        "appends in the other groups never appear)",
        "kill coordinators (any node) during the commit phase, or partition them from "
        "a participant",
        catch=(*_LOAD, "--nemesis", "kill,partition", "--nemesis-interval", "1.5"),
        control=(*_LOAD, "--nemesis", "none"),
    ),
    Bug(
        "stale-shard-map",
        "state machine",
        "a group that moved a shard out goes on serving it from its old copy instead of "
        "answering wrong-group, so a router whose map predates the move keeps using the "
        "old owner while routers that learnt the move use the new one",
        "two copies of a shard diverge: incompatible-order (reads of one key that are "
        "not prefixes of each other), lost-append",
        "the shard-move nemesis",
        catch=(*_LOAD, "--nemesis", "shard-move"),
        control=(*_LOAD, "--nemesis", "none"),
    ),
)


def parse_bugs(spec: str | None) -> frozenset[str]:
    """Parse ``--bug`` (comma separated). Raises ``ValueError`` naming the valid ones."""
    return _parse(spec, BUGS)
