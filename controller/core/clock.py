"""Clocks. Control and safety timing only ever read a monotonic clock.

The Pi has no real-time clock: wall time jumps when NTP syncs, so wall time is
used for display and logs only, and for the schedule's times of day once it is
synchronised (:func:`wall_clock_synced`). Tests and the simulator inject a
:class:`SimClock` so hours of operation run in seconds.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from pathlib import Path

TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised (STA_UNSYNC)
#: systemd-timesyncd creates this file once it has synchronised the clock.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
SYNC_CHECK_S = 30.0  # how often the real clock asks the system again (a stat and a system call)


def kernel_clock_state() -> int | None:
    """adjtimex(2) in read-only mode: TIME_ERROR (5) when unsynchronised; None if unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 reads only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else int(state)


def wall_clock_synced() -> bool:
    """Whether the wall clock has been set by NTP: timesyncd's flag file, else the kernel's
    STA_UNSYNC (docs/field-notes.md, "Knowing the wall clock is right"). Unknown counts as not."""
    if TIMESYNC_FLAG.exists():
        return True
    state = kernel_clock_state()
    return state is not None and state != TIME_ERROR


class MonotonicClock:
    """The real clock: ``monotonic()`` for timing, ``wall()`` for display."""

    _synced = False
    _synced_next_s = -math.inf  # when to ask the system again (monotonic s)

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def wall_synced(self) -> bool:
        now = time.monotonic()
        if now >= self._synced_next_s:
            self._synced, self._synced_next_s = wall_clock_synced(), now + SYNC_CHECK_S
        return self._synced

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
    change the control or safety behaviour. ``synced``: what :meth:`wall_synced` says.
    """

    def __init__(self, start_s: float = 1000.0, wall_start_s: float = 1_790_000_000.0) -> None:
        self._now = start_s
        self.wall_offset_s = wall_start_s - start_s
        self.synced = True

    def wall_synced(self) -> bool:
        return self.synced

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
