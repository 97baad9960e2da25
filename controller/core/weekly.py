"""The weekly schedule of ``[schedule]``: per weekday "ready by HH:MM" (with an optional
preset) and "off at HH:MM", and the auto-off after hours without a person's action.

In the config file::

    [schedule]
    auto_off_h = 10                                   # 0 = never
    mon = { ready_by = "08:30", preset = "Body", off_at = "18:00" }
    sat = { ready_by = "10:00" }

What the warmer does with it is in :mod:`controller.core.planner`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.core.numbers import finite_float

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
AUTO_OFF_MAX_H = 48.0
AUTO_OFF_DEFAULT_H = 10.0  # a warmer forgotten in the evening is off by the next morning
_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_DAY_KEYS = ("ready_by", "preset", "off_at")


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One weekday's entry; times are minutes after local midnight (None: none that day)."""

    weekday: str
    ready_by_min: int | None = None
    preset: str = ""
    off_at_min: int | None = None

    @property
    def day_index(self) -> int:
        return WEEKDAYS.index(self.weekday)

    def to_table(self) -> dict[str, str]:
        table = {}
        if self.ready_by_min is not None:
            table["ready_by"] = hhmm(self.ready_by_min)
        if self.preset:
            table["preset"] = self.preset
        if self.off_at_min is not None:
            table["off_at"] = hhmm(self.off_at_min)
        return table


@dataclass(frozen=True, slots=True)
class Schedule:
    """``days``: the weekdays that have an entry; ``auto_off_h``: hours without a person's action
    before the warmer switches itself off (0: never)."""

    auto_off_h: float = AUTO_OFF_DEFAULT_H
    days: tuple[DayPlan, ...] = ()

    def day(self, index: int) -> DayPlan | None:
        """The entry of weekday ``index`` (0 = Monday), None if it has none."""
        return next((d for d in self.days if d.day_index == index), None)

    def check_presets(self, names: tuple[str, ...]) -> None:
        """Raise ValueError if a day names a preset that is not one of ``names``."""
        for day in self.days:
            if day.preset and day.preset not in names:
                raise ValueError(f"[schedule] {day.weekday} preset = {day.preset!r} is not allowed: must be one of "
                                 f"[presets] {', '.join(names) or '(none)'}")

    def to_table(self) -> dict[str, Any]:
        """As the ``[schedule]`` table of the config file."""
        return {"auto_off_h": self.auto_off_h, **{d.weekday: d.to_table() for d in self.days}}

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> Schedule:
        """Validate a ``[schedule]`` table; raise ValueError naming the key and what is allowed."""
        auto_off_h = AUTO_OFF_DEFAULT_H
        days = []
        for key, value in table.items():
            if key == "auto_off_h":
                hours = finite_float(value)
                if hours is None or not 0 <= hours <= AUTO_OFF_MAX_H:
                    raise ValueError(f"[schedule] auto_off_h = {value!r:.40} is not allowed: must be a number of hours "
                                     f"between 0 and {AUTO_OFF_MAX_H:g} (0 = never)")
                auto_off_h = hours
            elif key in WEEKDAYS:
                days.append(_day(key, value))
            else:
                raise ValueError(f"[schedule] {key} is not a known key: allowed are auto_off_h, {', '.join(WEEKDAYS)}")
        return cls(auto_off_h, tuple(sorted(days, key=lambda d: d.day_index)))


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day(weekday: str, table: Any) -> DayPlan:
    where = f"[schedule] {weekday}"
    example = '{ ready_by = "08:30", preset = "Body", off_at = "18:00" }'
    if not isinstance(table, dict):
        raise ValueError(f"{where} = {table!r} is not allowed: must be a table such as {example}")
    for key in table:
        if key not in _DAY_KEYS:
            raise ValueError(f"{where} {key} is not a known key: allowed are {', '.join(_DAY_KEYS)}")
    times = {}
    for key in ("ready_by", "off_at"):
        value = table.get(key)
        match = _HHMM.fullmatch(value) if isinstance(value, str) else None
        if value is not None and match is None:
            raise ValueError(f'{where} {key} = {value!r} is not allowed: must be a time "HH:MM" from 00:00 to 23:59')
        times[key] = int(match[1]) * 60 + int(match[2]) if match else None
    preset = table.get("preset", "")
    if not isinstance(preset, str):
        raise ValueError(f"{where} preset = {preset!r} is not allowed: must be the name of a preset in quotes")
    if preset and times["ready_by"] is None:
        raise ValueError(f"{where} preset = {preset!r} is not allowed without a ready_by time: set ready_by too")
    if times["ready_by"] is not None and times["off_at"] is not None and times["off_at"] <= times["ready_by"]:
        raise ValueError(f"{where} off_at = {table['off_at']!r} is not allowed: must be after "
                         f"ready_by = {table['ready_by']!r}")
    return DayPlan(weekday, times["ready_by"], preset, times["off_at"])
