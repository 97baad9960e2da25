"""The interfaces the control loop is written against, as Protocols.

Anything with these methods can be plugged in: the real clock or a simulated
one, the Pi's threaded probe reader or the simulator's inline one. They are
``runtime_checkable`` so a test can assert that each implementation conforms.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # probe.py uses Clock: import its types for annotations only
    from controller.core.probe import RawRead


@runtime_checkable
class Clock(Protocol):
    """Time for the loop and the interlock. Control and safety read only ``monotonic``."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (control and safety timing)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (display and logs; the schedule once synced: it jumps when NTP syncs)."""
        ...

    def wall_synced(self) -> bool:
        """Whether NTP has set the wall clock (the schedule waits until it has)."""
        ...

    def sleep_until(self, deadline_s: float, stop: threading.Event) -> bool:
        """Wait until ``monotonic() >= deadline_s``; return True if ``stop`` was set."""
        ...


@runtime_checkable
class ProbeSource(Protocol):
    """Where the loop gets raw probe reads from, once per tick, without blocking."""

    def poll(self, now_s: float) -> RawRead | None:
        """The read completed since the last poll, or None when none has (yet)."""
        ...

    def close(self) -> None:
        """Stop reading (idempotent)."""
        ...
