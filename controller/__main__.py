"""``python3 -m controller``: the ``stonewarmer`` command before it is installed (the installer)."""

import sys

from .cli import main

sys.exit(main())
