"""Applying and keeping an autotune result: the gains into state.json, the measurement into autotune.json."""

from __future__ import annotations

import json
from pathlib import Path

from controller.core.atomic import atomic_write
from controller.core.loop import Controller
from controller.tuning.hardware import give_to_dir_owner
from controller.tuning.rules import Result

AUTOTUNE_FILE = "autotune.json"  # in the state dir, next to state.json


def apply(controller: Controller, result: Result) -> Path:
    """Use the tuned gains from now on (state.json) and keep the measurement (autotune.json)."""
    controller.set_gains(result.gains, source="autotune")
    path = Path(controller.store.dir) / AUTOTUNE_FILE
    atomic_write(path, json.dumps(result.to_dict(), indent=2), mode=0o600)
    give_to_dir_owner(path)  # the service reads it, not root
    return path
