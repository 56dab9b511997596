"""``python -m iiqsync.simulator``: the same as ``iiqsync fake-iiq``."""

import sys

from .server import main

sys.exit(main(sys.argv[1:]))
