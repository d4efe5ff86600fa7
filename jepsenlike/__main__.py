import sys

from jepsenlike.cli import main

sys.exit(main())
