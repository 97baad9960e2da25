"""A fleet of realistic stone baths: the heaters therapists really own, drawn at random.

The distribution (docs/control.md, "The fleet") covers the heaters and baths seen in
practice: 350-1800 W, 3-15 L of water, 1-10 kg of stones, lid on or off, rooms of
15-30 degC, probe lag 5-30 s and dead time 5-60 s; a probe lifted out cools in the air with a
time constant of 30-600 s (docs/control.md says why). Each bath gets a setpoint of
45-54 degC. A bath whose heater cannot hold its setpoint with some margin is kept in
the fleet (it must not false-trip either), marked ``too_weak``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from controller.sim.plant import BASALT_J_PER_KG_K, WATER_J_PER_KG_K, BathParams

POWER_W = (350.0, 1800.0)
WATER_KG = (3.0, 15.0)
STONES_KG = (1.0, 10.0)
ROOM_C = (15.0, 30.0)
LAG_S = (5.0, 30.0)
DEAD_TIME_S = (5.0, 60.0)
SETPOINT_C = (45.0, 54.0)
PROBE_AIR_TAU_S = (30.0, 600.0)  # a lifted probe cools toward the room with this time constant (log-uniform):
                                 # wet and waved about ~30 s, dry in still air ~600 s (docs/control.md)
LID_OFF_SHARE = 0.3            # this share of baths is run with the lid off all session
POT_J_PER_K_PER_KG = 60.0      # the pot grows with the water it holds ...
POT_J_PER_K = 200.0            # ... from this
LOSS_W_PER_K_PER_KG = 0.5      # lid-on losses grow with the surface ...
LOSS_W_PER_K = 2.5             # ... from this
LID_OPEN_FACTOR = (3.0, 6.0)   # lid off multiplies the losses by this
ELEMENT_S = 5.0                # element time constant (s) ...
ELEMENT_OVER_C = 20.0          # ... and how much hotter than the water it runs at full power
WEAK_MARGIN_C = 3.0            # too weak: full power cannot hold the setpoint + this


@dataclass(frozen=True, slots=True)
class FleetBath:
    """One bath of the fleet: its plant parameters, its setpoint and how it starts."""

    index: int
    params: BathParams
    setpoint_c: float
    lid_off: bool

    @property
    def heat_capacity_j_per_k(self) -> float:
        """Water, pot and stones: what one degree of the whole bath takes."""
        p = self.params
        return p.water_kg * WATER_J_PER_KG_K + p.pot_j_per_k + p.stones_kg * BASALT_J_PER_KG_K

    @property
    def heat_rate_c_per_s(self) -> float:
        """The true full-power heating rate (no losses)."""
        return self.params.power_w / self.heat_capacity_j_per_k

    def pulse_rise_c(self, pulse_s: float) -> float:
        """How much one heater pulse of ``pulse_s`` raises the water (and pot) before the stones take
        their share: what a relay's minimum pulse does to the water the hold band is judged on."""
        p = self.params
        return p.power_w * pulse_s / (p.water_kg * WATER_J_PER_KG_K + p.pot_j_per_k)

    @property
    def loss_w_per_k(self) -> float:
        p = self.params
        return p.loss_w_per_k * (p.lid_open_factor if self.lid_off else 1.0)

    @property
    def max_water_c(self) -> float:
        return self.params.room_c + self.params.power_w / self.loss_w_per_k

    @property
    def too_weak(self) -> bool:
        return self.max_water_c < self.setpoint_c + WEAK_MARGIN_C

    def label(self) -> str:
        p = self.params
        return (f"#{self.index}: {p.power_w:.0f} W, {p.water_kg:.1f} L + {p.stones_kg:.1f} kg stones, "
                f"lid {'off' if self.lid_off else 'on'}, room {p.room_c:.0f} degC, lag {p.probe_lag_s:.0f} s, "
                f"dead time {p.dead_time_s:.0f} s, setpoint {self.setpoint_c:.1f} degC")


def draw(count: int, *, seed: int = 1) -> list[FleetBath]:
    """``count`` baths from the documented distribution; the same seed gives the same fleet."""
    rng = random.Random(seed)
    # Drawn apart, so the fleets drawn before the probe's air time constant was (same seed) stay the same baths
    air = random.Random(f"probe-in-air-{seed}")
    baths = []
    for index in range(count):
        power_w = rng.uniform(*POWER_W)
        water_kg = rng.uniform(*WATER_KG)
        room_c = rng.uniform(*ROOM_C)
        params = BathParams(
            f"fleet-{index}", power_w=power_w,
            element_j_per_k=power_w * ELEMENT_S / ELEMENT_OVER_C, element_w_per_k=power_w / ELEMENT_OVER_C,
            water_kg=water_kg, pot_j_per_k=POT_J_PER_K + POT_J_PER_K_PER_KG * water_kg,
            stones_kg=rng.uniform(*STONES_KG),
            loss_w_per_k=LOSS_W_PER_K + LOSS_W_PER_K_PER_KG * water_kg,
            lid_open_factor=rng.uniform(*LID_OPEN_FACTOR),
            probe_lag_s=rng.uniform(*LAG_S), dead_time_s=rng.uniform(*DEAD_TIME_S),
            room_c=room_c, start_c=room_c,
            probe_air_tau_s=math.exp(air.uniform(*(math.log(t) for t in PROBE_AIR_TAU_S))))
        setpoint_c = round(rng.uniform(*SETPOINT_C) * 2) / 2
        baths.append(FleetBath(index, params, setpoint_c, rng.random() < LID_OFF_SHARE))
    return baths
