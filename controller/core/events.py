"""Events: every trip, acknowledge and setpoint change, kept in order.

The log is bounded in memory; an optional sink (the history database, the
systemd journal) receives each event as it happens so nothing is lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # safety.py records events: its fault kinds are imported for annotations only
    from controller.core.faults import FaultKind

EVENTS_KEPT = 500  # in memory; the history database keeps them all


class EventKind(StrEnum):
    """What an event records (a str: JSON and the history database show the word)."""

    FAULT = "fault"        # the interlock latched a fault
    ACK = "ack"            # a fault was acknowledged
    SETPOINT = "setpoint"  # the setpoint changed
    START = "start"        # the controller started
    READY = "ready"        # the stones are at temperature
    OFF = "off"            # a person switched the warmer off: heater held off
    ON = "on"              # ... and on again
    NOTICE = "notice"      # anything else worth keeping (a state problem, new gains)
    AUTO_ON = "auto-on"    # the schedule switched the warmer on (to be ready by a time)
    AUTO_OFF = "auto-off"  # the schedule ("off at") or auto-off switched it off
    AUTO_OFF_WARNING = "auto-off-warning"  # auto-off comes in 15 min: "extend" keeps it on
    CLOCK_UNSYNCED = "clock-unsynced"      # the wall clock is not synchronised: the schedule waits


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    monotonic_s: float
    wall_time_s: float
    kind: EventKind
    message: str
    fault: FaultKind | None = None
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

    def record(self, *, monotonic_s: float, wall_time_s: float, kind: EventKind, message: str,
               fault: FaultKind | None = None, temperature_c: float | None = None,
               setpoint_c: float | None = None, duty: float | None = None, source: str = "controller") -> Event:
        """Append an event (the next id) and hand it to the sinks. Temperatures in degC."""
        with self._lock:
            event = Event(self._next_id, monotonic_s, wall_time_s, kind, message, fault=fault,
                          temperature_c=temperature_c, setpoint_c=setpoint_c, duty=duty, source=source)
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
