"""What a person does at the practice, as commands of the :class:`~controller.core.loop.Controller`:
switch off and on, apply a preset, extend auto-off, set the schedule; the planner's decisions
(:mod:`controller.core.planner`) carried out through the same switch; and what the status says of them.

Each command is thread-safe, validates its input and raises :class:`CommandError` naming what
was wrong and what is allowed. None of them touches the relay: switched off, the PID proposes
nothing and the interlock holds the relay open from the next tick (``held_off``); a preset is a
setpoint, judged by :meth:`Controller.set_setpoint` against ``min_setpoint_c..max_setpoint_c``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from controller.core import events as ev
from controller.core.planner import Decision, Planner
from controller.core.weekly import Schedule

log = logging.getLogger(__name__)

#: Sources of what the warmer does by itself (a preset applied by the schedule is "schedule (preset X)").
AUTOMATIC_SOURCES = ("schedule", "auto-off")
#: The events that are a person's action when a person is their source: auto-off counts afresh.
PERSON_KINDS = frozenset({ev.EventKind.SETPOINT, ev.EventKind.ACK, ev.EventKind.ON, ev.EventKind.OFF})

if TYPE_CHECKING:
    from controller.core.bath_model import BathModel
    from controller.core.calibration import Calibration
    from controller.core.config import Config
    from controller.core.interfaces import Clock
    from controller.core.persistence import StateSaver
    from controller.core.pid import PID
    from controller.core.probe import Reading
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
    planner: Planner
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
    _judged_by: tuple[Reading | None, Calibration] | None = None  # (the reading, its calibration) at an offset change

    if TYPE_CHECKING:  # the controller's own methods, which these commands call
        @property
        def bath(self) -> BathModel: ...
        def _persist(self) -> None: ...
        def _snapshot(self, now: float) -> Status: ...
        def set_setpoint(self, value: Any, *, source: str = "api", wait: bool = True) -> float: ...

    def fresh_c(self, now_s: float) -> float | None:
        """The fresh corrected reading of the main probe (degC; None: none fresh). The interlock keeps
        the judged one (the hotter of raw and corrected): the correction is taken back where it was not added."""
        return self._judging().from_judged_c(self.interlock.primary.fresh_c(now_s))

    def raw_c(self, now_s: float) -> float | None:
        """The fresh uncorrected reading of the main probe (degC; None: none fresh)."""
        return self._judging().raw_from_judged_c(self.interlock.primary.fresh_c(now_s))

    def _judging(self) -> Calibration:
        """The calibration the interlock's latest main reading was judged with: the one in force, but
        after an offset change the one before, until the next reading (a second calibration before
        then must not take the new offset for the old one's and add it twice)."""
        held = self._judged_by
        if held is not None and held[0] is self.interlock.primary.last:
            return held[1]
        return self.calibration

    def _offset_changing(self) -> None:
        """Call before the offset changes: the reading in hand keeps the calibration it was judged with."""
        self._judged_by = (self.interlock.primary.last, self._judging())

    def switch_off(self, *, source: str = "api") -> bool:
        """Hold the heater off (readings, rules, history and alarms go on). Returns whether
        anything changed: switching off a warmer that is off records nothing."""
        return self._switch(off=True, source=source)

    def switch_on(self, *, source: str = "api") -> bool:
        """Heat to the setpoint again after :meth:`switch_off`. Returns whether anything changed."""
        return self._switch(off=False, source=source)

    def _switch(self, *, off: bool, source: str, reason: str = "", wait: bool = True) -> bool:
        """Switch; ``reason`` says why in the event; ``wait=False`` (the control thread): leave the
        save queued for the tick rather than wait for another thread's."""
        with self._lock:
            if self.switched_off == off:
                return False
            now = self.clock.monotonic()
            self.switched_off = off
            self.pid.reset()  # nothing carried over from before the switch
            self._readiness.restart()
            automatic = source in AUTOMATIC_SOURCES
            kind = (ev.EventKind.AUTO_OFF if automatic else ev.EventKind.OFF) if off else \
                (ev.EventKind.AUTO_ON if automatic else ev.EventKind.ON)
            if off:
                message = f"{reason or 'switched off'}: heater held off"
            else:
                message = f"{reason or 'switched on'}, setpoint {self.setpoint_c:.1f} degC"
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=kind, source=source,
                               message=message,
                               setpoint_c=self.setpoint_c, temperature_c=self.fresh_c(now))
            self._persist()
            self._status = self._snapshot(now)
        self._saver.save_pending(wait=wait)
        return True

    def apply_preset(self, name: Any, *, source: str = "api", wait: bool = True) -> float:
        """Set the setpoint of the preset called ``name``; return it (degC). The setpoint is
        validated as any other (never above ``max_setpoint_c``). ``wait=False``: as for :meth:`_switch`."""
        presets = self.cfg.presets
        celsius = presets.get(name) if isinstance(name, str) else None
        if celsius is None:
            raise CommandError(f"preset {name!r} is not known: allowed are {', '.join(presets.names) or '(none)'}",
                               field="preset", allowed=list(presets.names))
        return self.set_setpoint(celsius, source=f"{source} (preset {name})", wait=wait)

    def _touched(self, now_s: float, source: str, setpoint_c: float) -> float:
        """A setpoint or preset that changes nothing (call under the lock): still a person's action,
        so auto-off counts afresh (as for any person's command); returns ``setpoint_c``."""
        if not source.startswith(AUTOMATIC_SOURCES):
            self.planner.person_acted(now_s)
            self._status = self._snapshot(now_s)  # the auto-off time shown moves
        return setpoint_c

    def extend(self, *, source: str = "api") -> float:
        """Push auto-off back: ``auto_off_h`` hours from now. Returns when it will switch off now
        (wall s). Refused (field ``auto_off``) when there is nothing to push back: switched off,
        or auto-off is 0 = never."""
        with self._lock:
            if self.planner.auto_off_at_s(self.switched_off) is None:
                raise CommandError("there is no auto-off to push back: " + ("the warmer is switched off"
                                   if self.switched_off else "[schedule] auto_off_h is 0 (never)"), field="auto_off")
            now = self.clock.monotonic()
            self.planner.person_acted(now)
            off_at = self.clock.wall() + self.planner.schedule.auto_off_h * 3600.0  # counted afresh from now
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=ev.EventKind.NOTICE,
                               source=source, message=f"auto-off pushed back by {self.planner.schedule.auto_off_h:g} h")
            self._status = self._snapshot(now)
        return off_at

    def set_schedule(self, table: Any, *, source: str = "api") -> Schedule:
        """Replace the schedule with ``table`` (as ``[schedule]`` in the config: ``auto_off_h`` and
        ``mon`` ... ``sun``), validated like the config; kept in the state across restarts."""
        try:
            if not isinstance(table, dict):
                raise ValueError(f"schedule {table!r} is not allowed: must be an object like [schedule] "
                                 '(auto_off_h, mon ... sun = { ready_by = "08:30", preset, off_at })')
            schedule = Schedule.from_table(table)
        except ValueError as exc:
            raise CommandError(str(exc), field="schedule") from None
        with self._lock:  # the presets checked under the same hold that sets the schedule: no lost update
            try:
                schedule.check_presets(self.cfg.presets.names)
            except ValueError as exc:
                raise CommandError(str(exc), field="schedule") from None
            now = self.clock.monotonic()
            self.planner.schedule, self.planner.schedule_set = schedule, True
            self.planner.plan_from(self.clock.wall() if self.clock.wall_synced() else None)
            self.planner.person_acted(now)
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=ev.EventKind.NOTICE,
                               source=source, message=f"schedule set: {schedule.to_table()}")
            self._persist()
            self._status = self._snapshot(now)
        self._saver.save_pending()
        return schedule

    # -- the planner -------------------------------------------------------------------------
    def _start_day(self, saved: dict[str, Any]) -> None:
        """Build the planner from the config's schedule and what was saved (called once, at start)."""
        self.planner = Planner(self.cfg.schedule, now_s=self.clock.monotonic(), saved=saved)
        self.events.add_sink(self._note_event)

    def _note_event(self, event: ev.Event) -> None:
        """Every event passes here: a person's action (or a switch-on) makes auto-off count afresh."""
        if event.kind in (ev.EventKind.ON, ev.EventKind.AUTO_ON):
            self.planner.switched_on(event.monotonic_s, event.wall_time_s)
        elif event.kind in PERSON_KINDS and not event.source.startswith(AUTOMATIC_SOURCES):
            self.planner.person_acted(event.monotonic_s)

    def follow_plan(self) -> None:
        """Learn from the warm-up and carry out what the planner decides this tick. Called by the
        tick before it takes the lock: a switch saves the state, which is not done under the lock."""
        with self._lock:
            now = self.clock.monotonic()
            reading_c = self.fresh_c(now)
            if self.planner.observe(now_s=now, reading_c=reading_c, setpoint_c=self.setpoint_c, model=self.bath,
                                    heating=not self.switched_off and self.interlock.latched is None):
                self._persist()
            from_c = reading_c if reading_c is not None else self.bath.room_c  # no reading yet: a cold bath
            decision = self.planner.decide(
                now_s=now, wall_s=self.clock.wall(), synced=self.clock.wall_synced(), switched_off=self.switched_off,
                lead_s=lambda preset: self.planner.lead_s(self.bath, from_c, self._setpoint_of(preset)))
            if decision is not None:
                self._persist()  # what the planner has done is remembered across a power cut
        if decision is not None:
            self._carry_out(decision, now)

    def _setpoint_of(self, preset: str) -> float:
        celsius = self.cfg.presets.get(preset) if preset else None
        return self.setpoint_c if celsius is None else celsius

    def _carry_out(self, decision: Decision, now: float) -> None:
        if decision.action == "on":
            if decision.preset:
                try:
                    self.apply_preset(decision.preset, source=decision.source, wait=False)  # never wait for the disk
                except CommandError as exc:  # a preset removed since: warm to the setpoint as it is
                    log.warning("schedule: %s", exc)
            self._switch(off=False, source=decision.source, reason=decision.message, wait=False)
        elif decision.action == "off":
            self._switch(off=True, source=decision.source, reason=decision.message, wait=False)
        else:
            kind = ev.EventKind.AUTO_OFF_WARNING if decision.action == "warn" else ev.EventKind.CLOCK_UNSYNCED
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=kind, source=decision.source,
                               message=decision.message, setpoint_c=self.setpoint_c)

    def _auto_off_wall_s(self, now: float) -> float | None:
        at_s = self.planner.auto_off_at_s(self.switched_off)
        return None if at_s is None else self.clock.wall() + (at_s - now)

    def day_status(self) -> dict[str, Any]:
        """The status fields of a person's day (keyword arguments of :class:`Status`)."""
        now = self.clock.monotonic()
        return {"switched_off": self.switched_off,
                "probe_offset_c": self.calibration.offset_c,
                "raw_temperature_c": self.raw_c(now),
                "presets": [{"name": name, "setpoint_c": celsius} for name, celsius in self.cfg.presets.items],
                "auto_off_at": self._auto_off_wall_s(now),
                "next_start": self.planner.next_start_wall_s,
                "clock_synced": self.planner.synced,
                "time_zone": self.planner.zone_name,
                "utc_offset_s": self.planner.utc_offset_s(self.clock.wall())}
