"""``python3 -m controller`` is the ``stonewarmer`` command (also before it is installed: the installer)."""

from controller.cli.main import console

console()
