"""The bath as the warmer knows it: the model's parameters, their bounds, and what it tells the therapist.

The model is one lumped water node heated by the element and losing heat to the room,
seen through the probe's dead time (mixing) and first-order lag (its steel sheath)::

    dW/dt = r * u(t) - k * (W - room)          W: water, degC; u: relay on (0/1)
    dP/dt = (W(t - dead_time) - P) / lag       P: what the probe reads

From the probe alone only the ratios are identifiable: the heating rate at full power
``r = P_heater / C`` (degC/s), the loss rate ``k = UA / C`` (1/s), the dead time and the
lag. The heater's wattage (``[heater] power_w``, from its label) turns ``r`` into a heat
capacity and so into litres; without it the warmer says only what it measured.

* :class:`BathModel`: the parameters, bounded to what real stone heaters do (350-1800 W,
  3-15 L of water, 1-10 kg of stones, lid on or off, 15-30 degC rooms; docs/control.md,
  "The bath model").
* :mod:`controller.core.bath_learning`: fits the model to what the heater does.
* :mod:`controller.core.bath_observer`: runs the model alongside the bath, and the energy budget.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

WATER_J_PER_KG_K = 4186.0

# What real stone heaters do (docs/control.md, "The bath model"): every learned value stays inside.
HEAT_RATE_MIN_C_PER_S = 0.004   # 350 W into 15 L of water + 10 kg of stones + pot
HEAT_RATE_MAX_C_PER_S = 0.16    # 1800 W into 3 L of water + 1 kg of stones
LOSS_MIN_PER_S = 2e-5           # a big bath, lid on
LOSS_MAX_PER_S = 6e-3           # a small bath, lid off
LAG_MIN_S, LAG_MAX_S = 2.0, 60.0
DEAD_MIN_S, DEAD_MAX_S = 1.0, 90.0
ROOM_MIN_C, ROOM_MAX_C = 10.0, 35.0



@dataclass(frozen=True, slots=True)
class BathModel:
    """What the warmer knows about its bath. Rates in degC/s and 1/s, times in s, temperatures in degC."""

    heat_rate_c_per_s: float = 0.03   # r: how fast the water warms at full power, without losses
    loss_per_s: float = 1.6e-4        # k: share of (water - room) lost per second
    dead_time_s: float = 20.0         # from the water to the probe: mixing
    lag_s: float = 15.0               # the probe's own time constant
    room_c: float = 21.0
    warmups: int = 0                  # full-power warm-ups learned (0: the default)
    loss_fits: int = 0                # times the losses were measured (a long warm-up, a hold)

    @property
    def learned(self) -> bool:
        return self.warmups > 0

    @property
    def delay_s(self) -> float:
        """Dead time plus lag: how far the probe runs behind the water in a steady warm-up."""
        return self.dead_time_s + self.lag_s

    @property
    def max_water_c(self) -> float:
        """The warmest this heater can hold the bath: full power balances the losses."""
        return self.room_c + self.heat_rate_c_per_s / self.loss_per_s

    def hold_duty(self, setpoint_c: float, *, loss_per_s: float | None = None) -> float:
        """Share of full power that holds ``setpoint_c`` (0..1, more than 1: too weak); with
        ``loss_per_s`` (1/s) instead of the learned loss rate."""
        loss = self.loss_per_s if loss_per_s is None else loss_per_s
        return loss * max(0.0, setpoint_c - self.room_c) / self.heat_rate_c_per_s

    def full_power_s(self, from_c: float, to_c: float) -> float:
        """Seconds at full power from ``from_c`` to ``to_c`` (water), inf when it cannot get there."""
        top = self.max_water_c
        if to_c <= from_c:
            return 0.0
        if to_c >= top:
            return math.inf
        return math.log((top - from_c) / (top - to_c)) / self.loss_per_s

    def bounded(self) -> BathModel:
        """The same model with every value inside what real stone heaters do."""
        return replace(self,
                       heat_rate_c_per_s=clamp(self.heat_rate_c_per_s, HEAT_RATE_MIN_C_PER_S, HEAT_RATE_MAX_C_PER_S),
                       loss_per_s=clamp(self.loss_per_s, LOSS_MIN_PER_S, LOSS_MAX_PER_S),
                       dead_time_s=clamp(self.dead_time_s, DEAD_MIN_S, DEAD_MAX_S),
                       lag_s=clamp(self.lag_s, LAG_MIN_S, LAG_MAX_S),
                       room_c=clamp(self.room_c, ROOM_MIN_C, ROOM_MAX_C))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> BathModel:
        """A saved model; raise ValueError naming what is wrong (the caller falls back to the default)."""
        if not isinstance(data, dict):
            raise ValueError(f"bath model {data!r} is not a table")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                raise ValueError(f"bath model has no {f.name}")
            value = data[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"bath model {f.name} = {value!r} is not a number")
            values[f.name] = int(value) if f.type in ("int", int) else float(value)
        model = cls(**values)
        if model != model.bounded():
            raise ValueError(f"bath model {data!r} is outside what a stone heater can do")
        return model

    def litres(self, power_w: float) -> float:
        """The heat capacity as litres of water (water, stones and pot together), for a heater of ``power_w``."""
        return power_w / self.heat_rate_c_per_s / WATER_J_PER_KG_K

    def describe(self, *, power_w: float = 0.0, lid_note: str = "") -> str:
        """The model in a therapist's words, e.g. "1.2 kW into about 8 L: 2.1 degC a minute at full power;
        the probe lags about 30 s"."""
        per_min = self.heat_rate_c_per_s * 60.0
        if not self.learned:
            return "still learning this bath (it learns on the first warm-up)"
        if power_w > 0:
            head = f"{power_w / 1000:.1f} kW into about {self.litres(power_w):.0f} L (water and stones)"
        else:
            head = "the heater"
        text = f"{head}: {per_min:.1f} degC a minute at full power; the probe lags about {self.delay_s:.0f} s"
        return text + (f"; {lid_note}" if lid_note else "")

    def too_weak_message(self, setpoint_c: float) -> str | None:
        """A plain sentence when this heater cannot reach ``setpoint_c`` in this bath, else None."""
        if not self.learned or self.max_water_c >= setpoint_c:
            return None
        return (f"this heater can hold at most about {self.max_water_c:.0f} degC in this bath "
                f"(set {setpoint_c:.0f} degC): close the lid, use less water or a stronger heater")


def clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to ``low`` .. ``high`` (same unit)."""
    return min(high, max(low, value))
