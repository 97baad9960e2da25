"""``python -m controller`` is the ``stonewarmer`` command."""

import sys

from controller.cli import main

sys.exit(main())
