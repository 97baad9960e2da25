"""A "ready by" at a simulated second: ``simulate --ready-at SECONDS``.

The schedule's times are weekdays and HH:MM of the wall clock; the simulator starts its
wall clock so that the ready time falls on a whole minute and adds a ``[schedule]`` entry
for that weekday (the warmer starts switched off; the planner switches it on). With a state
dir kept from earlier runs (``--state-dir``) the wall clock starts after every wall time the
planner saved there: a "ready by" at or before what it has planned through starts nothing
(controller/core/planner.py), so each run's must be a new one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.numbers import finite_float
from controller.core.state import StateError, StateStore
from controller.core.weekly import WEEKDAYS, hhmm

#: The planner's saved wall times (s since the epoch) a new run's wall clock must start after.
PLANNER_WALL_KEYS = ("planned_through_wall_s", "started_for_wall_s", "stopped_for_wall_s", "on_since_wall_s")


def ready_wall_start_s(ready_at_s: float, *, wall_start_s: float, state_dir: Path | None = None) -> float:
    """The wall clock's start near ``wall_start_s`` (s since the epoch), after the planner's wall
    times saved in ``state_dir``, that puts ``ready_at_s`` simulated seconds later on a whole minute."""
    wall_start_s = max(wall_start_s, saved_wall_s(state_dir) + 60.0) if state_dir else wall_start_s
    return wall_start_s - (wall_start_s + ready_at_s) % 60.0  # still after the saved times: they are 60 s back


def saved_wall_s(state_dir: Path) -> float:
    """The latest wall time the planner saved in ``state_dir`` (0: none, or no usable state)."""
    try:
        planner = StateStore(state_dir).load().get("planner")
    except (StateError, OSError):
        return 0.0
    if not isinstance(planner, dict):
        return 0.0
    return max((finite_float(planner.get(key)) or 0.0 for key in PLANNER_WALL_KEYS), default=0.0)


def ready_by_config(cfg: cfgmod.Config, ready_wall_s: float) -> cfgmod.Config:
    """``cfg`` with a "ready by" at ``ready_wall_s`` (a whole minute, local time) on its weekday."""
    when = datetime.fromtimestamp(ready_wall_s)
    entry = {"ready_by": hhmm(when.hour * 60 + when.minute)}
    return cfgmod.replace(cfg, "schedule", **{WEEKDAYS[when.weekday()]: entry})
