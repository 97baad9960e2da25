"""The bounded queue between the threads that record events and a sending worker, and the rate limit.

:meth:`Outbox.put` is what the control thread calls: O(1), a lock held for a
few list operations, never a wait on the network. Faults and the rest queue
apart, so a full queue drops the oldest *non-fault* message (counted) and a
fault is never dropped: past the bound it is merged into the last fault entry.
"""

from __future__ import annotations

import threading
from collections import deque

from controller.core.events import Event
from controller.integrations.notify.messages import is_urgent


class Outbox:
    """At most ``size`` waiting entries; :attr:`arrived` and :attr:`urgent_arrived` wake the worker."""

    def __init__(self, *, size: int) -> None:
        self.size = size
        self._urgent: deque[list[Event]] = deque()  # each entry one or more faults (merged past the bound)
        self._other: deque[Event] = deque()
        self._lock = threading.Lock()
        self.arrived = threading.Event()         # anything was put
        self.urgent_arrived = threading.Event()  # a fault was put
        self.dropped = 0                         # non-fault events dropped because the queue was full

    def put(self, event: Event) -> None:
        """Queue ``event`` (worded later, by the worker); never blocks (any thread)."""
        urgent = is_urgent(event)
        with self._lock:
            full = len(self._urgent) + len(self._other) >= self.size
            if urgent:
                if not full:
                    self._urgent.append([event])
                elif self._other:
                    self._other.popleft()
                    self.dropped += 1
                    self._urgent.append([event])
                else:  # nothing but faults waiting: this one goes out with the last of them
                    self._urgent[-1].append(event)
            elif full:
                if self._other:
                    self._other.popleft()
                    self._other.append(event)
                self.dropped += 1  # the oldest non-fault one, or (all faults) this one
            else:
                self._other.append(event)
        self.arrived.set()
        if urgent:
            self.urgent_arrived.set()

    def take_urgent(self) -> list[Event]:
        """Every waiting fault, oldest first."""
        with self._lock:
            taken = [m for entry in self._urgent for m in entry]
            self._urgent.clear()
        return taken

    def take_all(self) -> list[Event]:
        """Everything waiting, faults first."""
        with self._lock:
            taken = [m for entry in self._urgent for m in entry] + list(self._other)
            self._urgent.clear()
            self._other.clear()
        return taken

    def waiting(self) -> tuple[int, int]:
        """(faults, others) waiting."""
        with self._lock:
            return sum(len(entry) for entry in self._urgent), len(self._other)


class RateLimit:
    """A token bucket: ``burst`` notifications at once, then one every ``interval_s`` (s).

    Faults do not wait for a token (they spend one if there is one), so a burst
    of faults still reaches the phone at once.
    """

    def __init__(self, *, burst: int, interval_s: float, now_s: float) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._tokens = float(burst)
        self._at_s = now_s

    def _refill(self, now_s: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + max(0.0, now_s - self._at_s) / self.interval_s)
        self._at_s = max(self._at_s, now_s)

    def available(self, now_s: float) -> bool:
        self._refill(now_s)
        return self._tokens >= 1.0

    def spend(self, now_s: float) -> None:
        self._refill(now_s)
        self._tokens = max(0.0, self._tokens - 1.0)

    def wait_s(self, now_s: float) -> float:
        """Seconds until a token is available (0: now)."""
        self._refill(now_s)
        return max(0.0, (1.0 - self._tokens) * self.interval_s)
