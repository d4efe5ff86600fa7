"""shardkv: keys sharded over Raft groups, multi-group transactions by two-phase commit.

* :mod:`jepsenlike.models.shardkv.state` -- one group's replicated state machine
  (shards, strict 2PL locks, prepare/commit/abort, recorded decisions, shard moves).
* :mod:`jepsenlike.models.shardkv.server` -- the node process: a Raft group member and
  a transaction coordinator.
* :mod:`jepsenlike.models.shardkv.bugs` -- the seeded bugs and what catches them.

See docs/shardkv.md.
"""
