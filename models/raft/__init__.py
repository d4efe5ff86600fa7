"""The reference Raft node: a pure protocol core, durable storage and an asyncio server.

* :mod:`jepsenlike.models.raft.core` -- the protocol as a state machine (no I/O).
* :mod:`jepsenlike.models.raft.sim` -- an in-memory cluster with invariant checks.
* :mod:`jepsenlike.models.raft.storage` -- write-ahead log and snapshots on disk.
* :mod:`jepsenlike.models.raft.server` -- the process: peers over TCP, clients over HTTP.
* :mod:`jepsenlike.models.raft.bugs` -- the seeded bugs and what should catch them.

Run a node with ``python -m jepsenlike.models.raft --help``.
"""
