"""The ``stonewarmer`` command: the entry point and one module per command family."""
