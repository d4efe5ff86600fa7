"""``python -m jepsenlike.models.shardkv``: run one shardkv node (see docs/shardkv.md)."""

import sys

from jepsenlike.models.shardkv.server import main

if __name__ == "__main__":
    sys.exit(main())
