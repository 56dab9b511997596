"""``python -m iiqsync`` is the ``iiqsync`` command."""

import sys

from .cli import main

sys.exit(main())
