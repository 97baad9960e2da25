"""``python3 -m controller`` is the ``stonewarmer`` command (also before it is installed: the installer)."""

import sys

from controller.cli import main

sys.exit(main())
