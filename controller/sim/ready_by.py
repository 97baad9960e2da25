"""A "ready by" at a simulated second: ``simulate --ready-at SECONDS``.

The schedule's times are weekdays and HH:MM of the wall clock; the simulator starts its
wall clock so that the ready time falls on a whole minute and adds a ``[schedule]`` entry
for that weekday (the warmer starts switched off; the planner switches it on).
"""

from __future__ import annotations

from datetime import datetime

from controller.core import config as cfgmod
from controller.core.weekly import WEEKDAYS, hhmm


def ready_wall_start_s(ready_at_s: float, *, wall_start_s: float) -> float:
    """The wall clock's start near ``wall_start_s`` (s since the epoch) that puts ``ready_at_s``
    simulated seconds later on a whole minute."""
    return wall_start_s - (wall_start_s + ready_at_s) % 60.0


def ready_by_config(cfg: cfgmod.Config, ready_wall_s: float) -> cfgmod.Config:
    """``cfg`` with a "ready by" at ``ready_wall_s`` (a whole minute, local time) on its weekday."""
    when = datetime.fromtimestamp(ready_wall_s)
    entry = {"ready_by": hhmm(when.hour * 60 + when.minute)}
    return cfgmod.replace(cfg, "schedule", **{WEEKDAYS[when.weekday()]: entry})
