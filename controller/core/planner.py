"""The planner: the ready-by schedule and auto-off, as decisions the controller carries out.

* **Ready by.** For a weekday's "ready by HH:MM" the warmer switches itself on early enough
  that the probe is within :data:`READY_WITHIN_C` of the setpoint :data:`AIM_EARLY_S` before
  that time: the bath's own time to get there (the model's full-power time plus the probe's
  delay, :mod:`controller.core.bath_model`) times a warm-up factor learned from each warm-up
  (the PID eases off near the setpoint, so a real warm-up takes longer than full power).
  The water leads the probe, so it is ready a little earlier still: at most ~10 min early.
* **Off at.** At a weekday's "off at HH:MM" the warmer switches itself off; after a power cut
  an "off at" missed while the warmer was on takes effect, and a "ready by" whose window
  (until its "off at", else the end of that day) is still open starts.
* **Planned through.** The planner remembers the wall time up to which it has planned
  (``planned_through_wall_s``, kept across restarts): only a "ready by" after that time can
  start the warmer. A "ready by" that had already passed when the schedule was set, or at the
  first start after install, never switches on a warmer that someone switched off; one that
  passed while the warmer had no power still starts (its window permitting).
* **Auto-off.** After ``auto_off_h`` hours without a person's action (and without a switch-on)
  the warmer switches itself off, with a warning :data:`WARNING_S` before; "extend" (or any
  person's command) counts the hours afresh. Timed on the monotonic clock.
* **The time zone.** "HH:MM" is the Pi's local time (``/etc/localtime``, ``timedatectl
  set-timezone``), daylight saving included: a time the clocks skip (02:30 the night they go
  forward) is an hour later, a time they repeat is the first. The status says the zone
  (``time_zone``, ``utc_offset_s``) so the phone shows times in the warmer's zone, not its own.
* **The wall clock.** The Pi has no battery clock: until NTP has synchronised it the wall
  time can be days off, so nothing that needs the time of day happens before then
  (docs/field-notes.md, "Knowing the wall clock is right").

The planner never touches the relay: the controller carries out its decisions through
``switch_on`` / ``switch_off`` (sources ``"schedule"`` and ``"auto-off"``), and the
interlock holds the relay as for a person's command.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from controller.core.bath_model import BathModel
from controller.core.numbers import finite_float
from controller.core.weekly import DayPlan, Schedule, hhmm

AIM_EARLY_S = 300.0        # aim to be ready this long before "ready by": never late, at most ~10 min early
READY_WITHIN_C = 0.5       # a warm-up is done when the probe is within this of the setpoint (degC)
WARNING_S = 900.0          # the auto-off warning comes this long before the auto-off
MAX_LEAD_S = 4 * 3600.0    # never start earlier than this before "ready by" (a heater too weak for the setpoint)
CLOCK_GRACE_S = 120.0      # NTP usually syncs within seconds of boot: say nothing before this
DEFAULT_FACTOR = 1.25      # a warm-up takes this many times the full-power time until one was measured
FACTOR_MIN, FACTOR_MAX = 0.8, 3.0
FACTOR_WEIGHT = 0.5        # each day's warm-up moves the factor this share of the way
MIN_WARMUP_C = 5.0         # only a warm-up from at least this far below the setpoint teaches the factor
DAYS_BACK = 8              # how far back a missed "off at" or an open "ready by" window is looked for


@dataclass(frozen=True, slots=True)
class Decision:
    """What the planner wants done: ``on`` (with ``preset``), ``off``, ``warn`` or ``unsynced``."""

    action: str
    source: str
    message: str
    preset: str = ""


@dataclass(slots=True)
class _Warmup:
    """A warm-up in progress: since ``start_s`` (monotonic) from ``start_c`` to ``setpoint_c`` (degC)."""

    start_s: float
    start_c: float
    setpoint_c: float


def warmup_s(model: BathModel, from_c: float, to_c: float) -> float:
    """The bath's own time (s) until the probe is within READY_WITHIN_C of ``to_c``, from ``from_c``
    (degC): the model's full-power time plus the probe's delay (inf: it cannot get there)."""
    return model.full_power_s(from_c, to_c - READY_WITHIN_C) + model.delay_s


class Planner:
    """The schedule's and auto-off's state; :meth:`decide` once per tick. Times: ``*_s`` monotonic,
    ``*_wall_s`` seconds since the epoch. ``tz``: the time zone of the schedule (None: the local one)."""

    def __init__(self, schedule: Schedule, *, now_s: float, tz: tzinfo | None = None,
                 saved: dict[str, Any] | None = None) -> None:
        saved = saved or {}
        self.schedule: Schedule = saved.get("schedule", schedule)
        self.schedule_set = "schedule" in saved      # set by a command: persisted, wins over the config's
        self.tz = tz
        self.factor: float = saved.get("factor", DEFAULT_FACTOR)
        self.warmups: int = saved.get("warmups", 0)
        self.started_for_wall_s: float | None = saved.get("started_for_wall_s")  # the "ready by" last started
        self.stopped_for_wall_s: float | None = saved.get("stopped_for_wall_s")  # the "off at" last carried out
        self.on_since_wall_s: float | None = saved.get("on_since_wall_s")        # the last switch-on
        # Only a "ready by" after this wall time may start the warmer (None: now, at the first synced tick).
        self.planned_through_wall_s: float | None = saved.get("planned_through_wall_s")
        self.active_s = now_s          # the last person's action or switch-on (auto-off counts from here)
        self.warned = False
        self.synced = False
        self._unsynced_said = False
        self._started_s = now_s
        self._warmup: _Warmup | None = None
        self.next_start_wall_s: float | None = None
        self.zone_name = zone_name(tz)

    # -- what is kept across restarts -------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"factor": self.factor, "warmups": self.warmups,
                                 "started_for_wall_s": self.started_for_wall_s,
                                 "stopped_for_wall_s": self.stopped_for_wall_s,
                                 "on_since_wall_s": self.on_since_wall_s,
                                 "planned_through_wall_s": self.planned_through_wall_s}
        if self.schedule_set:
            state["schedule"] = self.schedule.to_table()
        return state

    @staticmethod
    def restore(saved: Any) -> tuple[dict[str, Any], list[str]]:
        """The usable keys of a saved planner state and what could not be used (never raises)."""
        if saved is None:
            return {}, []
        if not isinstance(saved, dict):
            return {}, [f"saved planner {saved!r} is not a table; starting afresh"]
        restored: dict[str, Any] = {}
        problems: list[str] = []
        factor = finite_float(saved.get("factor"))
        if factor is not None and FACTOR_MIN <= factor <= FACTOR_MAX:
            restored["factor"] = factor
        elif saved.get("factor") is not None:
            problems.append(f"saved warm-up factor {saved['factor']!r:.40} is not within "
                            f"{FACTOR_MIN:g}..{FACTOR_MAX:g}")
        warmups = saved.get("warmups")
        if isinstance(warmups, int) and not isinstance(warmups, bool) and warmups >= 0:
            restored["warmups"] = warmups
        for key in ("started_for_wall_s", "stopped_for_wall_s", "on_since_wall_s", "planned_through_wall_s"):
            wall_s = finite_float(saved.get(key))
            if wall_s is not None:
                restored[key] = wall_s
        if "schedule" in saved:
            try:
                restored["schedule"] = Schedule.from_table(saved["schedule"])
            except (ValueError, TypeError, AttributeError) as exc:
                problems.append(f"saved schedule is not usable ({exc}); using the config's [schedule]")
        return restored, problems

    # -- what people do -----------------------------------------------------------------------
    def person_acted(self, now_s: float) -> None:
        """A person's command (setpoint, preset, ack, on, off, extend): auto-off counts afresh."""
        self.active_s = now_s
        self.warned = False

    def switched_on(self, now_s: float, wall_s: float) -> None:
        """The warmer was switched on (by anyone): auto-off counts from now; a missed "off at"
        before now does not switch it off again. With the wall clock not synchronised the time
        is unknown: the first synced tick takes its wall time as the switch-on's."""
        self.person_acted(now_s)
        self.on_since_wall_s = wall_s if self.synced else None

    def plan_from(self, wall_s: float | None) -> None:
        """The schedule was set: a "ready by" at or before ``wall_s`` (None: the wall clock is not
        synchronised, so the first synced tick's time) has passed and starts nothing."""
        self.planned_through_wall_s = wall_s

    # -- each tick ------------------------------------------------------------------------------
    def decide(self, *, now_s: float, wall_s: float, synced: bool, switched_off: bool,
               lead_s: Callable[[str], float]) -> Decision | None:
        """What to do this tick. ``lead_s(preset)`` is how long before "ready by" to start (s) for
        the setpoint of ``preset`` ("" = the current setpoint)."""
        self.synced = synced
        if synced:
            self._unsynced_said = False
            if self.on_since_wall_s is None and not switched_off:
                self.on_since_wall_s = wall_s  # on since an unknown time: from the first right wall time
            if self.planned_through_wall_s is None:
                self.planned_through_wall_s = wall_s
        decision = self._auto_off(now_s, switched_off)
        if decision is not None:
            return decision
        if not synced:
            self.next_start_wall_s = None
            if self.schedule.days and not self._unsynced_said and now_s - self._started_s >= CLOCK_GRACE_S:
                self._unsynced_said = True
                return Decision("unsynced", "clock", "the wall clock is not synchronised: the schedule waits "
                                "(no automatic start or stop until NTP has set the time)")
            return None
        decision = self._off_at(wall_s, switched_off) or self._ready_by(wall_s, lead_s)
        self.planned_through_wall_s = wall_s
        return decision

    def auto_off_at_s(self, switched_off: bool) -> float | None:
        """When auto-off will switch the warmer off (s, monotonic); None: off already, or never."""
        hours = self.schedule.auto_off_h
        if switched_off or hours <= 0:
            return None
        return self.active_s + hours * 3600.0

    def _auto_off(self, now_s: float, switched_off: bool) -> Decision | None:
        deadline_s = self.auto_off_at_s(switched_off)
        if deadline_s is None:
            return None
        hours = self.schedule.auto_off_h
        if now_s >= deadline_s:
            return Decision("off", "auto-off", f"no one has touched the warmer for {hours:g} h")
        if now_s >= deadline_s - WARNING_S and not self.warned:
            self.warned = True
            return Decision("warn", "auto-off", f"the warmer switches itself off in {WARNING_S / 60:.0f} min "
                            f"({hours:g} h without a touch)")
        return None

    def _off_at(self, wall_s: float, switched_off: bool) -> Decision | None:
        latest = max((at for at, _ in self._times(wall_s, "off_at") if at <= wall_s), default=None)
        if latest is None or latest == self.stopped_for_wall_s:
            return None
        self.stopped_for_wall_s = latest
        if switched_off or self.on_since_wall_s is None or self.on_since_wall_s >= latest:
            return None  # off already, or switched on after it (a person who wants it on)
        return Decision("off", "schedule", f"scheduled off at {self._clock_text(latest)}")

    def _ready_by(self, wall_s: float, lead_s: Callable[[str], float]) -> Decision | None:
        self.next_start_wall_s = None
        for ready_wall_s, day in sorted(self._times(wall_s, "ready_by"), key=lambda t: t[0]):
            if ready_wall_s == self.started_for_wall_s or ready_wall_s <= (self.planned_through_wall_s or wall_s):
                continue  # started already, or passed before the planner got to it
            start_wall_s = ready_wall_s - min(MAX_LEAD_S, lead_s(day.preset))
            if start_wall_s > wall_s:
                self.next_start_wall_s = start_wall_s
                return None
            if wall_s < self._window_end(ready_wall_s, day):
                self.started_for_wall_s = ready_wall_s
                return Decision("on", "schedule", f"warming to be ready by {self._clock_text(ready_wall_s)}",
                                preset=day.preset)
        return None

    def _window_end(self, ready_wall_s: float, day: DayPlan) -> float:
        """Until when a "ready by" still starts the warmer (its "off at", else the end of its day)."""
        midnight = datetime.fromtimestamp(ready_wall_s, self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        minutes = day.off_at_min if day.off_at_min is not None else 24 * 60
        return (midnight + timedelta(minutes=minutes)).timestamp()

    def _times(self, wall_s: float, key: str) -> list[tuple[float, DayPlan]]:
        """The wall times of ``key`` ("ready_by" or "off_at") from DAYS_BACK days ago to a week ahead."""
        today = datetime.fromtimestamp(wall_s, self.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        times = []
        for offset in range(-DAYS_BACK, 8):
            date = today + timedelta(days=offset)
            day = self.schedule.day(date.weekday())
            minutes = getattr(day, f"{key}_min") if day is not None else None
            if day is not None and minutes is not None:
                local = datetime(date.year, date.month, date.day, minutes // 60, minutes % 60, tzinfo=date.tzinfo)
                times.append((local.timestamp(), day))
        return times

    def utc_offset_s(self, wall_s: float) -> float:
        """The schedule's zone's offset from UTC at ``wall_s`` (s; +3600 for CET, +7200 for CEST)."""
        offset = datetime.fromtimestamp(wall_s, UTC).astimezone(self.tz).utcoffset()
        return offset.total_seconds() if offset is not None else 0.0

    def _clock_text(self, wall_s: float) -> str:
        when = datetime.fromtimestamp(wall_s, self.tz)
        return hhmm(when.hour * 60 + when.minute)

    # -- the warm-up factor ------------------------------------------------------------------
    def lead_s(self, model: BathModel, from_c: float, to_c: float) -> float:
        """How long before "ready by" to start (s) to be ready AIM_EARLY_S early, from ``from_c`` to ``to_c``."""
        return self.factor * warmup_s(model, from_c, to_c) + AIM_EARLY_S

    def observe(self, *, now_s: float, reading_c: float | None, setpoint_c: float, heating: bool,
                model: BathModel) -> bool:
        """Follow a warm-up from cold and learn from it how long warm-ups take (``heating``: switched
        on, no fault). Returns True when the factor changed (worth saving)."""
        w = self._warmup
        if not heating or (w is not None and w.setpoint_c != setpoint_c):
            self._warmup = None  # interrupted: it would teach the wrong time
            return False
        if reading_c is None:
            return False
        if w is None:
            if reading_c <= setpoint_c - MIN_WARMUP_C:
                self._warmup = _Warmup(now_s, reading_c, setpoint_c)
            return False
        if reading_c < setpoint_c - READY_WITHIN_C:
            return False
        self._warmup = None
        predicted_s = warmup_s(model, w.start_c, setpoint_c)
        if not math.isfinite(predicted_s) or predicted_s <= 0:
            return False
        ratio = min(FACTOR_MAX, max(FACTOR_MIN, (now_s - w.start_s) / predicted_s))
        self.factor = ratio if self.warmups == 0 else self.factor + FACTOR_WEIGHT * (ratio - self.factor)
        self.warmups += 1
        return True


def zone_name(tz: tzinfo | None) -> str:
    """The IANA name of ``tz`` (None: the Pi's local zone, from ``TZ`` or ``/etc/localtime``), as a
    browser's ``Intl`` takes it ("Europe/Berlin"); the zone's abbreviation when it has no known name."""
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if tz is None:
        name = os.environ.get("TZ", "").lstrip(":")  # when set, the process's local time follows it
        if not name:
            try:
                name = os.readlink("/etc/localtime").partition("zoneinfo/")[2]
            except OSError:
                name = ""
        if name and _known_zone(name):
            return name
    return datetime.now(UTC).astimezone(tz).tzname() or "UTC"


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError; a bad name a ValueError
        return False
    return True
