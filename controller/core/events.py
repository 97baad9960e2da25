"""Events: every trip, acknowledge and setpoint change, kept in order.

The log is bounded in memory; an optional sink (the history database, the
systemd journal) receives each event as it happens so nothing is lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

EVENTS_KEPT = 500  # in memory; the history database keeps them all

KIND_FAULT = "fault"
KIND_ACK = "ack"
KIND_SETPOINT = "setpoint"
KIND_START = "start"
KIND_READY = "ready"
KIND_NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    monotonic_s: float
    wall_time_s: float
    kind: str
    message: str
    fault: str | None = None
    temperature_c: float | None = None
    setpoint_c: float | None = None
    duty: float | None = None
    source: str = "controller"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventLog:
    """Thread-safe, bounded, append-only list of events with increasing ids."""

    def __init__(self, *, keep: int = EVENTS_KEPT, first_id: int = 1) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._next_id = first_id
        self._lock = threading.Lock()
        self._sinks: list[Callable[[Event], None]] = []

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """Call ``sink(event)`` for every event recorded from now on."""
        self._sinks.append(sink)

    def record(self, **fields: Any) -> Event:
        with self._lock:
            event = Event(id=self._next_id, **fields)
            self._next_id += 1
            self._events.append(event)
        for sink in self._sinks:
            sink(event)
        return event

    def since(self, after_id: int = 0) -> list[Event]:
        """Events with an id greater than ``after_id``, oldest first."""
        with self._lock:
            return [e for e in self._events if e.id > after_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
