"""The interfaces the control loop is written against, as Protocols.

Anything with these methods can be plugged in: the real clock or a simulated
one, the Pi's threaded probe reader or the simulator's inline one. They are
``runtime_checkable`` so a test can assert that each implementation conforms.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # probe.py uses Clock: import its types for annotations only
    from controller.core.events import Event
    from controller.core.faults import Fault
    from controller.core.probe import RawRead
    from controller.core.status import Status


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


#: The ``field`` of the ``CommandError`` a command raises when no controller answers (nothing changed).
UNAVAILABLE_FIELD = "controller"


@runtime_checkable
class EventFeed(Protocol):
    """The events a warmer has recorded, as its users read them (an ``EventLog``, or its copy in the web process)."""

    def since(self, after_id: int = 0) -> list[Event]:
        """Events with an id greater than ``after_id``, oldest first."""
        ...

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        """Call ``sink(event)`` for every event recorded from now on."""
        ...


@runtime_checkable
class ControllerView(Protocol):
    """What the web, MQTT and the phone notifications need of the controller, and all they may do.

    The :class:`~controller.core.loop.Controller` itself (in one process, the tests), or the web
    process's ``RemoteController`` (``controller/service/remote.py``), which reaches the control
    process over its socket. Commands raise ``CommandError`` when refused (its ``field``
    :data:`UNAVAILABLE_FIELD` when no controller answered); nothing else here can change the warmer.
    """

    @property
    def clock(self) -> Clock:
        """The controller's clock (tick ages: ``clock.monotonic() - status.monotonic_s``)."""
        ...

    @property
    def events(self) -> EventFeed:
        ...

    def status(self) -> Status:
        """The latest tick's immutable snapshot."""
        ...

    def add_listener(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener(status)`` after every tick (quick: it runs on the thread that delivers it)."""
        ...

    def set_setpoint(self, value: Any, *, source: str = "api") -> float:
        """Set the setpoint (degC) after validating it; return it."""
        ...

    def acknowledge_fault(self, *, source: str = "api") -> Fault:
        """Clear the latched fault if the interlock allows it; return it."""
        ...

    def switch_off(self, *, source: str = "api") -> bool:
        """Hold the heater off; return whether anything changed."""
        ...

    def switch_on(self, *, source: str = "api") -> bool:
        """Heat again after :meth:`switch_off`; return whether anything changed."""
        ...

    def apply_preset(self, name: Any, *, source: str = "api") -> float:
        """Set the setpoint of the preset called ``name``; return it (degC)."""
        ...

    def extend(self, *, source: str = "api") -> float:
        """Push auto-off back ``auto_off_h`` hours from now; return when it will switch off (wall s)."""
        ...

    def set_probe_offset(self, offset_c: Any, *, source: str = "api") -> float:
        """Set the probe's correction (degC, -3..+3); return it."""
        ...

    def calibrate(self, thermometer_c: Any, *, source: str = "api") -> float:
        """Set the probe's correction so the latest fresh raw reading reads ``thermometer_c``; return it (degC)."""
        ...

    def set_auto_off_h(self, hours: Any, *, source: str = "api") -> float:
        """Set the hours without a person's action before auto-off (0: never); return them."""
        ...

    def set_presets(self, items: Any, *, source: str = "api") -> dict[str, Any]:
        """Replace the presets; return the settings document now in force."""
        ...

    def settings(self) -> dict[str, Any]:
        """The settings document (``controller/core/settings.py``) now in force."""
        ...

    def apply_settings(self, doc: Any, *, source: str = "api") -> dict[str, Any]:
        """Replace all the settings with ``doc`` (validated whole first); return them as now in force."""
        ...
