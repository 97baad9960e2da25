"""The control schedule: one :meth:`Controller.tick` per period, on the control thread.

Kept apart from the controller itself: the tick decides, this only says when.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.core.loop import TICK_S, Controller
from controller.core.status import Status


def run_forever(controller: Controller, stop: threading.Event, *, period_s: float = TICK_S,
                before_tick: Callable[[float], None] | None = None,
                after_tick: Callable[[Status], None] | None = None) -> None:
    """Tick on a fixed schedule until ``stop`` is set.

    ``before_tick(dt_s)`` runs first each time (the simulated bath advances by
    the time since the last tick); ``after_tick(status)`` runs once the tick
    completed (reading checked, interlock evaluated, relay written): the place
    for a watchdog ping. A late tick is not made up twice.
    """
    clock = controller.clock
    last_s = next_s = clock.monotonic()
    while not stop.is_set():
        now = clock.monotonic()
        if before_tick is not None:
            before_tick(now - last_s)
        last_s = now
        status = controller.tick()
        if after_tick is not None:
            after_tick(status)
        next_s += period_s
        if next_s < now:  # fell behind (suspend, debugger): resynchronise
            next_s = now + period_s
        if clock.sleep_until(next_s, stop):
            break
