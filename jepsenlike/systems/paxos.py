"""``paxos``: the reference multi-Paxos nodes in :mod:`jepsenlike.models.paxos`.

The nodes are started, probed and asked for their leader exactly as the Raft
ones (:class:`~jepsenlike.systems.raft.KVNodeSystem`); only the module and the
node options differ.
"""

from __future__ import annotations

from jepsenlike.systems.raft import KVNodeSystem


class PaxosSystem(KVNodeSystem):
    name = "paxos"
    description = "the reference multi-Paxos nodes (jepsenlike.models.paxos)"
    module = "jepsenlike.models.paxos"
    option_names = ("tick-ms", "election-ticks", "heartbeat-ticks", "op-timeout", "snapshot-every",
                    "max-batch", "log-level")
