"""``python -m jepsenlike.models.raft``: run one Raft node (see docs/raft-node.md)."""

import sys

from jepsenlike.models.raft.server import main

if __name__ == "__main__":
    sys.exit(main())
