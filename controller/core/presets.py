"""Presets: named setpoints, one tap each ("Body 52", "Face 48", "Feet 54").

In the config as ``[presets]`` with one ``Name = degC`` per line. A preset is only a
setpoint: applying one goes through :meth:`Controller.set_setpoint`, which refuses
anything outside ``min_setpoint_c..max_setpoint_c``; the config refuses such a preset
at load too, so no preset can ever reach above the ceiling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.core.numbers import finite_float

#: A preset's name: what a button shows. Letters, digits, spaces, "-" and "_", at most 24.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9 _-]{0,23}"
MOST_PRESETS = 12


@dataclass(frozen=True, slots=True)
class Presets:
    """Named setpoints in the order the config gives them: ``items`` = ((name, degC), ...)."""

    items: tuple[tuple[str, float], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.items)

    def get(self, name: str) -> float | None:
        """The setpoint (degC) of the preset called ``name``, None if there is none."""
        return next((celsius for preset, celsius in self.items if preset == name), None)

    def clamped(self, low_c: float, high_c: float) -> Presets:
        """The same presets brought within ``low_c..high_c`` (degC)."""
        return Presets(tuple((name, min(high_c, max(low_c, celsius))) for name, celsius in self.items))

    def check_range(self, low_c: float, high_c: float) -> None:
        """Raise ValueError naming the first preset outside ``low_c..high_c`` (degC: min..max setpoint)."""
        for name, celsius in self.items:
            if not low_c <= celsius <= high_c:
                raise ValueError(f"[presets] {name} = {celsius:g} is not allowed: must be between "
                                 f"min_setpoint_c = {low_c:g} and max_setpoint_c = {high_c:g} degC")

    def to_list(self) -> list[dict[str, Any]]:
        """As the settings document has them: ``[{"name": ..., "setpoint_c": ...}, ...]``."""
        return [{"name": name, "setpoint_c": celsius} for name, celsius in self.items]

    @classmethod
    def from_list(cls, items: Any) -> Presets:
        """Validate the settings document's list of ``{"name", "setpoint_c"}``; raise ValueError."""
        example = '[{"name": "Body", "setpoint_c": 52}]'
        if not isinstance(items, list):
            raise ValueError(f"presets = {items!r:.60} is not allowed: must be a list such as {example}")
        table: dict[str, Any] = {}
        for item in items:
            if not isinstance(item, dict) or set(item) != {"name", "setpoint_c"} or not isinstance(item["name"], str):
                raise ValueError(f"preset {item!r:.60} is not allowed: each must be an object with exactly a "
                                 f'"name" and a "setpoint_c", e.g. {example}')
            if item["name"] in table:
                raise ValueError(f"preset {item['name']!r} is given twice: each name is allowed once")
            table[item["name"]] = item["setpoint_c"]
        return cls.from_table(table)

    def to_table(self) -> dict[str, float]:
        """As the ``[presets]`` table of the config file."""
        return dict(self.items)

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> Presets:
        """Validate a ``[presets]`` table; raise ValueError naming the preset and what is allowed."""
        if len(table) > MOST_PRESETS:
            raise ValueError(f"[presets] has {len(table)} presets: at most {MOST_PRESETS} are allowed")
        items = []
        for name, value in table.items():
            if not re.fullmatch(NAME_PATTERN, name):
                raise ValueError(f"[presets] {name!r} is not allowed as a name: must be letters, digits, spaces, "
                                 '"-" and "_" (at most 24, starting with a letter or digit)')
            celsius = finite_float(value)
            if celsius is None:
                raise ValueError(f"[presets] {name} = {value!r:.40} is not allowed: must be a number of degC")
            items.append((name, celsius))
        return cls(tuple(items))


#: The presets of a warmer whose config has no ``[presets]`` (clamped to its min..max at load).
DEFAULT_PRESETS = Presets((("Body", 52.0), ("Face", 48.0), ("Feet", 54.0)))
