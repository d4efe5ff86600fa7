"""Protocol-independent server plumbing shared by the Raft and Paxos nodes.

* :mod:`.wal` -- checksummed, length-prefixed record files (a torn last record is cut,
  any other damage refused), the data dir's identity record, fsync, and atomic file
  replacement (snapshots).
* :mod:`.http` -- a small keep-alive HTTP/1.1 JSON server on asyncio streams.
* :mod:`.transport` -- peer messaging: one outbound TCP connection per peer, framed
  JSON, bounded queues, reconnect with backoff.
* :mod:`.nodeargs` -- the node command line shared by every protocol.
* :mod:`.node` -- the driver every protocol's server subclasses: client ops
  (routing, forwarding, pending-op tables, timeouts), ``/status``, the Ready loop
  with inline fsync (group commit), and the process entry point.
"""
