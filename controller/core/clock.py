"""Clocks. Control and safety timing only ever read a monotonic clock.

The Pi has no real-time clock: wall time jumps when NTP syncs, so wall time is
used for display and logs only. Tests and the simulator inject a
:class:`SimClock` so hours of operation run in seconds.
"""

from __future__ import annotations

import threading
import time


class MonotonicClock:
    """The real clock: ``monotonic()`` for timing, ``wall()`` for display."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep_until(self, deadline_s: float, stop: threading.Event) -> bool:
        """Wait until ``monotonic() >= deadline_s``; return True if ``stop`` was set."""
        return stop.wait(max(0.0, deadline_s - self.monotonic()))


class ScaledClock(MonotonicClock):
    """Real time sped up ``speed`` times: a demo of the simulated warmer."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._t0 = time.monotonic()

    def monotonic(self) -> float:
        return self._t0 + (time.monotonic() - self._t0) * self.speed

    def wall(self) -> float:
        return time.time() + (self.monotonic() - time.monotonic())

    def sleep_until(self, deadline_s: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, (deadline_s - self.monotonic()) / self.speed))


class SimClock:
    """Simulated time, advanced only by :meth:`advance`. Starts at ``start_s``.

    ``wall_offset_s`` can be stepped to mimic an NTP correction; it must never
    change the control or safety behaviour.
    """

    def __init__(self, start_s: float = 1000.0, wall_start_s: float = 1_790_000_000.0) -> None:
        self._now = start_s
        self.wall_offset_s = wall_start_s - start_s

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self.wall_offset_s

    def advance(self, dt_s: float) -> None:
        if dt_s < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._now += dt_s

    def sleep_until(self, deadline_s: float, stop: threading.Event) -> bool:
        if deadline_s > self._now:
            self._now = deadline_s
        return stop.is_set()
