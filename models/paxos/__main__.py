"""``python -m jepsenlike.models.paxos``: run one Multi-Paxos node (see docs/paxos-node.md)."""

import sys

from jepsenlike.models.paxos.server import main

if __name__ == "__main__":
    sys.exit(main())
