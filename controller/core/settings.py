"""The settings a person changes from the phone: the presets, the schedule (with auto-off) and the
probe's offset, as commands of the :class:`~controller.core.loop.Controller`.

One document holds them all (the dashboard's settings screen, export and import)::

    {"version": 1,
     "presets": [{"name": "Body", "setpoint_c": 52.0}, ...],
     "schedule": {"auto_off_h": 10, "days": {"mon": {"ready_by": "08:00", "preset": "Body", "off_at": "18:30"}}},
     "probe_offset_c": 0.0}

It is validated as a whole by the config's own validators (:mod:`controller.core.presets`,
:mod:`controller.core.weekly`, ``[probe] offset_c``) before anything changes: either all of it
applies or none of it. What a command set is kept in the state file and wins over the config
file, which stays the default for a fresh state. No preset can be set above ``max_setpoint_c``.
The web process adds its own ``notify`` part (``web/settings_api.py``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.core import config as cfgmod
from controller.core import events as ev
from controller.core.calibration import MAX_OFFSET_C, Calibration
from controller.core.commands import CommandError
from controller.core.presets import Presets
from controller.core.weekly import AUTO_OFF_MAX_H, WEEKDAYS, Schedule

if TYPE_CHECKING:
    from controller.core.config import Config
    from controller.core.interfaces import Clock
    from controller.core.persistence import StateSaver
    from controller.core.pid import PID
    from controller.core.planner import Planner
    from controller.core.safety import Interlock
    from controller.core.status import Status

VERSION = 1
KEYS = ("version", "presets", "schedule", "probe_offset_c")
#: The field a calibration names when there is no fresh reading to calibrate against (the web answers 409).
NO_READING_FIELD = "reading"


@dataclass(frozen=True, slots=True)
class Settings:
    """The person's settings, each validated: ``probe_offset_c`` in degC."""

    presets: Presets
    schedule: Schedule
    probe_offset_c: float

    def to_doc(self) -> dict[str, Any]:
        """The settings document (see the module's docstring)."""
        return {"version": VERSION, "presets": self.presets.to_list(),
                "schedule": {"auto_off_h": self.schedule.auto_off_h,
                             "days": {day.weekday: day.to_table() for day in self.schedule.days}},
                "probe_offset_c": self.probe_offset_c}


def parse(doc: Any, cfg: Config) -> Settings:
    """Validate a whole settings document against ``cfg`` (its min..max setpoint); raise
    :class:`CommandError` naming the first wrong field and what is allowed."""
    if not isinstance(doc, dict):
        raise CommandError(f"settings {doc!r:.60} are not allowed: must be an object with {', '.join(KEYS)}",
                           field="settings", allowed=list(KEYS))
    for key in doc:
        if key not in KEYS:
            raise CommandError(f"settings key {key!r:.40} is not known: allowed are {', '.join(KEYS)}",
                               field=str(key)[:40], allowed=list(KEYS))
    for key in KEYS:
        if key not in doc:
            raise CommandError(f"settings need {key!r}: the whole document ({', '.join(KEYS)}) is required",
                               field=key, allowed=list(KEYS))
    if type(doc["version"]) is not int or doc["version"] != VERSION:
        raise CommandError(f"settings version {doc['version']!r:.20} is not supported: must be {VERSION}",
                           field="version", allowed=[VERSION])
    presets = checked_presets(doc["presets"], cfg)
    schedule = checked_schedule(doc["schedule"], presets)
    return Settings(presets, schedule, checked_offset(doc["probe_offset_c"], cfg))


def checked_presets(items: Any, cfg: Config) -> Presets:
    """The presets of a settings document, each within ``cfg``'s min..max setpoint."""
    try:
        presets = Presets.from_list(items)
        presets.check_range(cfg.control.min_setpoint_c, cfg.control.max_setpoint_c)
    except ValueError as exc:
        raise CommandError(str(exc), field="presets",
                           allowed={"min": cfg.control.min_setpoint_c, "max": cfg.control.max_setpoint_c,
                                    "unit": "degC"}) from None
    return presets


def checked_schedule(doc: Any, presets: Presets) -> Schedule:
    """The schedule of a settings document (``auto_off_h`` and ``days``), naming only ``presets``."""
    try:
        if not isinstance(doc, dict) or set(doc) - {"auto_off_h", "days"} or not isinstance(doc.get("days", {}), dict):
            raise ValueError(f"schedule {doc!r:.60} is not allowed: must be an object with auto_off_h and days "
                             '({"mon": {"ready_by": "08:00", "preset": "Body", "off_at": "18:30"}, ...})')
        days = doc.get("days", {})
        for weekday in days:
            if weekday not in WEEKDAYS:
                raise ValueError(f"[schedule] {weekday!r:.20} is not a weekday: allowed are {', '.join(WEEKDAYS)}")
        schedule = Schedule.from_table({k: v for k, v in doc.items() if k != "days"} | days)
        schedule.check_presets(presets.names)
    except ValueError as exc:
        raise CommandError(str(exc), field="schedule") from None
    return schedule


def checked_offset(value: Any, cfg: Config) -> float:
    """A probe offset (degC), checked as ``[probe] offset_c`` is."""
    try:
        return cfgmod.replace(cfg, "probe", offset_c=value).probe.offset_c
    except cfgmod.ConfigError as exc:
        raise CommandError(str(exc), field="probe_offset_c",
                           allowed={"min": -MAX_OFFSET_C, "max": MAX_OFFSET_C, "unit": "degC"}) from None


def restore(saved: Any, cfg: Config) -> tuple[dict[str, Any], list[str]]:
    """The usable part of the saved settings (``presets``, ``probe_offset_c``) and what could not be
    used (never raises). The schedule is the planner's (``controller/core/planner.py``)."""
    if saved is None:
        return {}, []
    if not isinstance(saved, dict):
        return {}, [f"saved settings {saved!r:.60} are not a table; using the config's"]
    restored: dict[str, Any] = {}
    problems: list[str] = []
    if "presets" in saved:
        try:
            restored["presets"] = checked_presets(saved["presets"], cfg)
        except CommandError as exc:
            problems.append(f"saved presets are not usable ({exc}); using the config's [presets]")
    if "probe_offset_c" in saved:
        try:
            restored["probe_offset_c"] = checked_offset(saved["probe_offset_c"], cfg)
        except CommandError as exc:
            problems.append(f"saved probe offset is not usable ({exc}); using [probe] offset_c")
    return restored, problems


class SettingsCommands:
    """The settings commands, mixed into the controller (which owns these attributes)."""

    cfg: Config
    clock: Clock
    events: ev.EventLog
    interlock: Interlock
    calibration: Calibration
    planner: Planner
    pid: PID
    _lock: threading.RLock
    _saver: StateSaver
    _status: Status
    _settings_set: bool

    if TYPE_CHECKING:  # the controller's own methods
        def _persist(self) -> None: ...
        def _offset_changing(self) -> None: ...
        def raw_c(self, now_s: float) -> float | None: ...
        def _snapshot(self, now: float) -> Status: ...

    def settings(self) -> dict[str, Any]:
        """The settings document as in force now."""
        with self._lock:
            return self._settings().to_doc()

    def apply_settings(self, doc: Any, *, source: str = "api") -> dict[str, Any]:
        """Replace all the settings with ``doc``, validated as a whole first; return them as now in force."""
        settings = parse(doc, self.cfg)
        return self._apply(lambda _current: settings, source=source, message="settings replaced")

    def set_presets(self, items: Any, *, source: str = "api") -> dict[str, Any]:
        """Replace the presets (``[{"name", "setpoint_c"}, ...]``); the schedule may name only these."""
        presets = checked_presets(items, self.cfg)

        def change(current: Settings) -> Settings:
            try:
                current.schedule.check_presets(presets.names)
            except ValueError as exc:
                raise CommandError(f"{exc}: change the schedule first", field="presets") from None
            return dataclasses.replace(current, presets=presets)
        return self._apply(change, source=source,
                           message=f"presets set: {', '.join(f'{n} {c:g}' for n, c in presets.items) or '(none)'}")

    def set_auto_off_h(self, hours: Any, *, source: str = "api") -> float:
        """Set the hours without a person's action before auto-off (0: never); return them."""
        def change(current: Settings) -> Settings:
            try:
                schedule = Schedule.from_table({**current.schedule.to_table(), "auto_off_h": hours})
            except ValueError as exc:
                raise CommandError(str(exc), field="auto_off_h",
                                   allowed={"min": 0, "max": AUTO_OFF_MAX_H, "unit": "h"}) from None
            return dataclasses.replace(current, schedule=schedule)
        doc = self._apply(change, source=source, message=lambda new: f"auto-off set to {new.schedule.auto_off_h:g} h")
        return float(doc["schedule"]["auto_off_h"])

    def set_probe_offset(self, offset_c: Any, *, source: str = "api") -> float:
        """Set the probe's correction (degC, -3..+3); return it."""
        checked = checked_offset(offset_c, self.cfg)
        self._apply(lambda current: dataclasses.replace(current, probe_offset_c=checked), source=source,
                    message=f"probe offset set to {checked:+.2f} degC")
        return checked

    def calibrate(self, thermometer_c: Any, *, source: str = "api") -> float:
        """Set the probe's offset so that the latest fresh raw reading reads ``thermometer_c`` (degC,
        what a calibrated thermometer in the bath shows); return the offset."""
        if isinstance(thermometer_c, bool) or not isinstance(thermometer_c, (int, float)) \
                or not -10.0 <= thermometer_c <= 100.0:
            raise CommandError(f"thermometer_c {thermometer_c!r:.40} is not allowed: must be what the thermometer "
                               "reads, a number of degC from -10 to 100", field="thermometer_c",
                               allowed={"min": -10.0, "max": 100.0, "unit": "degC"})
        with self._lock:
            raw_c = self.raw_c(self.clock.monotonic())
        if raw_c is None:
            raise CommandError("there is no fresh reading of the probe to calibrate against: wait for one",
                               field=NO_READING_FIELD)
        offset_c = round(float(thermometer_c) - raw_c, 2)
        if abs(offset_c) > MAX_OFFSET_C:
            raise CommandError(f"the thermometer reads {thermometer_c:g} degC and the probe {raw_c:.2f} degC: an "
                               f"offset of {offset_c:+.2f} degC is not allowed, must be between {-MAX_OFFSET_C:g} "
                               f"and {MAX_OFFSET_C:g} degC (check the probe is in the water)",
                               field="thermometer_c", allowed={"min": round(raw_c - MAX_OFFSET_C, 2),
                                                               "max": round(raw_c + MAX_OFFSET_C, 2), "unit": "degC"})
        return self.set_probe_offset(offset_c, source=source)

    # -- inside ----------------------------------------------------------------------------
    def _settings(self) -> Settings:
        return Settings(self.cfg.presets, self.planner.schedule, self.calibration.offset_c)

    def _start_settings(self, saved: dict[str, Any]) -> None:
        """Apply the settings saved by a command over the config's (called once, at start)."""
        self._settings_set = bool(saved)
        self._use(presets=saved.get("presets", self.cfg.presets),
                  offset_c=saved.get("probe_offset_c", self.cfg.probe.offset_c))

    def _use(self, *, presets: Presets, offset_c: float) -> None:
        self.cfg = dataclasses.replace(self.cfg, presets=presets,
                                       probe=dataclasses.replace(self.cfg.probe, offset_c=offset_c))
        self.calibration = Calibration(offset_c)

    def _apply(self, change: Callable[[Settings], Settings], *, source: str,
               message: str | Callable[[Settings], str]) -> dict[str, Any]:
        """Apply ``change(settings in force)`` (which may raise :class:`CommandError`), read and replaced
        under one hold of the lock, so two commands at once never undo each other."""
        with self._lock:
            settings = change(self._settings())
            now = self.clock.monotonic()
            if settings.probe_offset_c != self.calibration.offset_c:
                self.pid.reset()  # the reading moves by the change: nothing carried over
                self._offset_changing()
            self._use(presets=settings.presets, offset_c=settings.probe_offset_c)
            if settings.schedule != self.planner.schedule:
                self.planner.plan_from(self.clock.wall() if self.clock.wall_synced() else None)
            self.planner.schedule, self.planner.schedule_set = settings.schedule, True
            self._settings_set = True
            self.planner.person_acted(now)
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=ev.EventKind.NOTICE,
                               source=source, message=message if isinstance(message, str) else message(settings))
            self._persist()
            self._status = self._snapshot(now)
            doc = self._settings().to_doc()
        self._saver.save_pending()
        return doc

    def settings_state(self) -> dict[str, Any] | None:
        """What the state file keeps of the settings (None: none set by a command; the config's apply)."""
        if not self._settings_set:
            return None
        return {"presets": self.cfg.presets.to_list(), "probe_offset_c": self.calibration.offset_c}
