"""What a person does at the practice, as commands of the :class:`~controller.core.loop.Controller`:
switch off and on, apply a preset; and what the status says of them.

Each command is thread-safe, validates its input and raises :class:`CommandError` naming what
was wrong and what is allowed. None of them touches the relay: switched off, the PID proposes
nothing and the interlock holds the relay open from the next tick (``held_off``); a preset is a
setpoint, judged by :meth:`Controller.set_setpoint` against ``min_setpoint_c..max_setpoint_c``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from controller.core import events as ev

if TYPE_CHECKING:
    from controller.core.calibration import Calibration
    from controller.core.config import Config
    from controller.core.interfaces import Clock
    from controller.core.persistence import StateSaver
    from controller.core.pid import PID
    from controller.core.readiness import Readiness
    from controller.core.safety import Interlock
    from controller.core.status import Status


class CommandError(ValueError):
    """A refused command. ``field`` and ``allowed`` say what was wrong and what is allowed."""

    def __init__(self, message: str, *, field: str | None = None, allowed: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class PersonCommands:
    """The commands of a person's day, mixed into the controller (which owns these attributes)."""

    cfg: Config
    clock: Clock
    events: ev.EventLog
    interlock: Interlock
    calibration: Calibration
    pid: PID
    setpoint_c: float
    switched_off: bool
    _lock: threading.RLock
    _readiness: Readiness
    _saver: StateSaver
    _status: Status

    if TYPE_CHECKING:  # the controller's own methods, which these commands call
        def _persist(self) -> None: ...
        def _snapshot(self, now: float) -> Status: ...
        def set_setpoint(self, value: Any, *, source: str = "api") -> float: ...

    def fresh_c(self, now_s: float) -> float | None:
        """The fresh corrected reading of the main probe (degC; None: none fresh). The interlock keeps
        the judged one (the hotter of raw and corrected): the correction is taken back where it was not added."""
        return self.calibration.from_judged_c(self.interlock.primary.fresh_c(now_s))

    def switch_off(self, *, source: str = "api") -> bool:
        """Hold the heater off (readings, rules, history and alarms go on). Returns whether
        anything changed: switching off a warmer that is off records nothing."""
        return self._switch(off=True, source=source)

    def switch_on(self, *, source: str = "api") -> bool:
        """Heat to the setpoint again after :meth:`switch_off`. Returns whether anything changed."""
        return self._switch(off=False, source=source)

    def _switch(self, *, off: bool, source: str) -> bool:
        with self._lock:
            if self.switched_off == off:
                return False
            now = self.clock.monotonic()
            self.switched_off = off
            self.pid.reset()  # nothing carried over from before the switch
            self._readiness.restart()
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(),
                               kind=ev.EventKind.OFF if off else ev.EventKind.ON, source=source,
                               message="switched off: heater held off" if off else
                               f"switched on, setpoint {self.setpoint_c:.1f} degC",
                               setpoint_c=self.setpoint_c, temperature_c=self.fresh_c(now))
            self._persist()
            self._status = self._snapshot(now)
        self._saver.save_pending()
        return True

    def apply_preset(self, name: Any, *, source: str = "api") -> float:
        """Set the setpoint of the preset called ``name``; return it (degC). The setpoint is
        validated as any other (never above ``max_setpoint_c``)."""
        presets = self.cfg.presets
        celsius = presets.get(name) if isinstance(name, str) else None
        if celsius is None:
            raise CommandError(f"preset {name!r} is not known: allowed are {', '.join(presets.names) or '(none)'}",
                               field="preset", allowed=list(presets.names))
        return self.set_setpoint(celsius, source=f"{source} (preset {name})")

    def day_status(self) -> dict[str, Any]:
        """The status fields of a person's day (keyword arguments of :class:`Status`)."""
        return {"switched_off": self.switched_off,
                "probe_offset_c": self.calibration.offset_c,
                "presets": [{"name": name, "setpoint_c": celsius} for name, celsius in self.cfg.presets.items]}
