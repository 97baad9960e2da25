"""The warmer's mode, and how long until the stones are ready.

"Ready" means the water has stayed within READY_BAND_C of the setpoint for
READY_HOLD_S: the stones lag the water. The time-to-ready is estimated from the
interlock's warming rate (probe readings), counted from when warming (re)started.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.core import events as ev
from controller.core.status import Mode

READY_BAND_C = 1.0      # "ready" = within +/- this of the setpoint ...
READY_HOLD_S = 300.0    # ... for this long: the stones lag the water


class Readiness:
    """Tracks the time in the setpoint band and the warm-up; :meth:`mode` records the READY event once."""

    def __init__(self, *, events: ev.EventLog, wall: Callable[[], float]) -> None:
        self._events = events
        self._wall = wall
        self.in_band_since_s: float | None = None
        self.warming_since_s: float | None = None  # for the time-to-ready estimate
        self._ready_announced = False

    def restart(self) -> None:
        """Count the time in the band afresh (after an acknowledge, a switch off or on)."""
        self.in_band_since_s = None

    def mode(self, now: float, temp_c: float | None, *, setpoint_c: float, latched: bool,
             switched_off: bool) -> Mode:
        """The mode at ``now`` (s, monotonic) for the fresh reading ``temp_c`` (degC, None: none)."""
        if latched:
            self.in_band_since_s = None
            return Mode.FAULT
        if switched_off:
            return Mode.OFF
        if temp_c is None:
            self.in_band_since_s = None
            return Mode.STARTING
        error = temp_c - setpoint_c
        if abs(error) <= READY_BAND_C:
            if self.in_band_since_s is None:
                self.in_band_since_s = now
            if now - self.in_band_since_s >= READY_HOLD_S:
                if not self._ready_announced:
                    self._ready_announced = True
                    self._events.record(monotonic_s=now, wall_time_s=self._wall(),
                                        kind=ev.EventKind.READY, message="stones ready",
                                        temperature_c=temp_c, setpoint_c=setpoint_c)
                return Mode.READY
            return Mode.HOLDING
        self.in_band_since_s = None
        self._ready_announced = False
        return Mode.WARMING if error < 0 else Mode.COOLING

    def ready_in_s(self, now: float, mode: Mode, temp_c: float | None, *, setpoint_c: float,
                   warming_rate_c_per_s: Callable[..., float | None]) -> float | None:
        """Seconds until READY (None: not warming, or no rate yet). ``warming_rate_c_per_s(now, since_s=...)``
        is the interlock's measured rate (degC/s), which can come out 0 or below on a flat reading."""
        if mode == Mode.READY:
            return 0.0
        if mode == Mode.HOLDING and self.in_band_since_s is not None:
            return max(0.0, READY_HOLD_S - (now - self.in_band_since_s))
        if mode != Mode.WARMING or temp_c is None:
            self.warming_since_s = None  # the rate counts from when warming (re)starts, not a fault's flat line
            return None
        self.warming_since_s = now if self.warming_since_s is None else self.warming_since_s
        rate = warming_rate_c_per_s(now, since_s=self.warming_since_s)
        if rate is None or rate <= 0:  # a bath that does not warm promises no time (and 0 must not end the tick)
            return None
        return (setpoint_c - READY_BAND_C - temp_c) / rate + READY_HOLD_S
