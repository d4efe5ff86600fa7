"""The reference Multi-Paxos key-value node.

* :mod:`.core` -- the protocol as a pure state machine (ticks and messages in,
  a :class:`~.core.Ready` out);
* :mod:`.storage` -- the acceptor's durable state (WAL with torn-tail detection,
  checkpoints);
* :mod:`.sim` -- an in-memory deterministic cluster with an invariant oracle, for tests;
* :mod:`.bugs` -- the seeded bugs, what each breaks and which fault reveals it;
* :mod:`.server` -- the process: peers over TCP, clients over HTTP/JSON, the same
  client API and state machine (:mod:`jepsenlike.models.kv`) as the Raft node.

Run a node with ``python -m jepsenlike.models.paxos --help``; see ``docs/paxos-node.md``.
"""

from jepsenlike.models.paxos.bugs import BUGS
from jepsenlike.models.paxos.core import Config, NotLeader, PaxosNode, Ready

__all__ = ["BUGS", "Config", "NotLeader", "PaxosNode", "Ready"]
