"""Thermal models of stone baths, for the simulator, tests and benchmarks.

A plant is any object with the methods of :class:`Plant`. Users load their own
with ``--plant module:Class``.

:class:`StoneBath` is a lumped model with four nodes: the heating element, the
water, the basalt stones, and the probe tip, which sees the water through a
transport delay (mixing) and a first-order lag (the probe's steel sheath). The
reference bath is the 18-quart, 1200 W heater of docs/field-notes.md
("Reference bath"): full power brings it from 21 to 52 degC in about 18 minutes.
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

WATER_J_PER_KG_K = 4186.0
BASALT_J_PER_KG_K = 840.0
SUBSTEP_S = 0.25  # integration step: well under the element's 5 s time constant


@runtime_checkable
class Plant(Protocol):
    """A thermal model of a bath: what the simulator needs of it.

    Optional attributes the simulator reads when present: ``water_c`` (true water
    temperature, degC), ``room_c`` (degC), ``energy_j`` (heat delivered, J).
    """

    def advance(self, dt_s: float, heater_on: bool) -> None:
        """Move the model on by ``dt_s`` seconds with the heater on or off."""
        ...

    def probe_c(self) -> float:
        """The true temperature at the probe tip, degC."""
        ...


PlantFactory = Callable[[], Plant]  # makes a fresh plant (a class, or a function)

PROBE_AIR_TAU_S = 30.0  # s: a wet probe waved in the air; dry, or laid on a towel, minutes (docs/control.md)


@dataclass(frozen=True, slots=True)
class BathParams:
    name: str
    power_w: float = 1200.0
    element_j_per_k: float = 300.0
    element_w_per_k: float = 60.0        # element -> water
    water_kg: float = 8.0
    pot_j_per_k: float = 500.0
    stones_kg: float = 5.0
    stones_w_per_k_per_kg: float = 5.0   # 25 W/K for 5 kg
    loss_w_per_k: float = 6.0            # water -> room, lid on
    lid_open_factor: float = 5.0         # loss multiplier with the lid off
    probe_lag_s: float = 10.0
    dead_time_s: float = 20.0
    probe_air_tau_s: float = PROBE_AIR_TAU_S  # a probe lifted out cools toward the room with this time constant
    room_c: float = 21.0
    start_c: float = 21.0


#: The plants the benchmark runs on. ``reference`` is docs/field-notes.md's bath.
PLANTS = {
    "reference": BathParams("reference"),
    # 6-quart, 600 W, small load: fast and nervous.
    "small": BathParams("small", power_w=600.0, element_w_per_k=40.0, water_kg=4.0,
                        pot_j_per_k=300.0, stones_kg=2.5, loss_w_per_k=4.0,
                        probe_lag_s=6.0, dead_time_s=10.0),
    # 18-quart, 1500 W, no lid, more stones: lossy and slow.
    "large-open": BathParams("large-open", power_w=1500.0, element_j_per_k=400.0,
                             element_w_per_k=80.0, water_kg=12.0, pot_j_per_k=800.0,
                             stones_kg=8.0, loss_w_per_k=14.0, probe_lag_s=15.0,
                             dead_time_s=30.0),
    # 12-quart, 1000 W, probe in a thick sheath far from the element: long lag.
    "laggy": BathParams("laggy", power_w=1000.0, water_kg=7.0, stones_kg=4.0,
                        loss_w_per_k=7.0, probe_lag_s=25.0, dead_time_s=45.0),
}


class _SubsteppedPlant:
    """Advances in fixed SUBSTEP_S steps whatever ``dt_s`` the caller asks for.

    Subclasses set ``_probe_c`` and ``_carry_s = 0.0`` and implement ``_step(dt, heater_on)``.
    """

    _probe_c: float
    _carry_s: float

    def probe_c(self) -> float:
        return self._probe_c

    def advance(self, dt_s: float, heater_on: bool) -> None:
        self._carry_s += dt_s
        while self._carry_s >= SUBSTEP_S - 1e-9:
            self._carry_s -= SUBSTEP_S
            self._step(SUBSTEP_S, heater_on)

    def _step(self, dt: float, heater_on: bool) -> None:
        raise NotImplementedError


class StoneBath(_SubsteppedPlant):
    """A stone bath. Temperatures in degC, times in seconds, powers in W."""

    def __init__(self, params: BathParams | None = None, **overrides: Any) -> None:
        p = params or PLANTS["reference"]
        if overrides:
            p = replace(p, **overrides)
        self.params = p
        self.element_c = self.water_c = self.stones_c = self._probe_c = p.start_c
        self.stones_kg = p.stones_kg
        self.lid_open = False
        self.room_c = p.room_c
        self.energy_j = 0.0
        delay_steps = max(1, round(p.dead_time_s / SUBSTEP_S))
        self._delay: deque[float] = deque([p.start_c] * delay_steps, maxlen=delay_steps)
        self._carry_s = 0.0

    @property
    def power_w(self) -> float:
        return self.params.power_w

    def _step(self, dt: float, heater_on: bool) -> None:
        p = self.params
        power = p.power_w if heater_on else 0.0
        self.energy_j += power * dt
        to_water = p.element_w_per_k * (self.element_c - self.water_c)
        to_stones = p.stones_w_per_k_per_kg * self.stones_kg * (self.water_c - self.stones_c)
        loss_factor = p.lid_open_factor if self.lid_open else 1.0
        to_room = p.loss_w_per_k * loss_factor * (self.water_c - self.room_c)
        water_j_per_k = p.water_kg * WATER_J_PER_KG_K + p.pot_j_per_k
        self.element_c += (power - to_water) * dt / p.element_j_per_k
        self.water_c += (to_water - to_stones - to_room) * dt / water_j_per_k
        self.stones_c += to_stones * dt / (self.stones_kg * BASALT_J_PER_KG_K)
        delayed = self._delay[0]
        self._delay.append(self.water_c)
        self._probe_c += (delayed - self._probe_c) * dt / (p.probe_lag_s + dt)

    # -- disturbances ---------------------------------------------------------------
    def return_stones(self, mass_kg: float, temp_c: float) -> None:
        """Stones that were taken out come back at ``temp_c``: that share of the load cools."""
        share = min(1.0, mass_kg / self.stones_kg)
        self.stones_c += share * (temp_c - self.stones_c)

    def set_lid(self, open_: bool) -> None:
        self.lid_open = open_

    def add_water(self, mass_kg: float, temp_c: float) -> None:
        """A top-up: ``mass_kg`` of water at ``temp_c`` mixes into the bath (and stays)."""
        p = self.params
        old_j_per_k = p.water_kg * WATER_J_PER_KG_K + p.pot_j_per_k
        added_j_per_k = mass_kg * WATER_J_PER_KG_K
        self.water_c = (old_j_per_k * self.water_c + added_j_per_k * temp_c) / (old_j_per_k + added_j_per_k)
        self.params = replace(p, water_kg=p.water_kg + mass_kg)


def full_power_time_s(make_plant: PlantFactory, target_c: float, *, limit_s: float = 6 * 3600.0) -> float:
    """How long a fresh plant needs at 100 % power until its probe reads ``target_c``."""
    plant = make_plant()
    t = 0.0
    while plant.probe_c() < target_c:
        plant.advance(1.0, True)
        t += 1.0
        if t > limit_s:
            return float("inf")
    return t


def load_plant(spec: str) -> PlantFactory:
    """A plant factory from ``module:Class`` (a user's own model) or a built-in name."""
    if spec in PLANTS:
        params = PLANTS[spec]
        return lambda: StoneBath(params)
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--plant {spec!r}: expected module:Class or one of {', '.join(PLANTS)}")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--plant {spec!r}: cannot load it ({exc})") from None
    probe_plant = cls()
    for method in ("advance", "probe_c"):
        if not callable(getattr(probe_plant, method, None)):
            raise ValueError(f"--plant {spec!r}: a plant needs advance(dt_s, heater_on) and probe_c()")
    return cls


class FirstOrderDeadTime(_SubsteppedPlant):
    """A first-order-plus-dead-time plant, ``K e^(-theta s) / (tau s + 1)``: the textbook case.

    The heater is the input (off = 0, on = 1): the probe settles ``gain_c`` degC
    above ``room_c`` at full power, with time constant ``tau_s`` after a pure
    delay ``dead_time_s``. Its ultimate gain and period are known in closed form
    (:meth:`ultimate`), which makes it the check of the relay autotune. Load it
    with ``--plant controller.sim.plant:FirstOrderDeadTime``.
    """

    def __init__(self, *, gain_c: float = 60.0, tau_s: float = 600.0, dead_time_s: float = 90.0,
                 room_c: float = 21.0, start_c: float | None = None, power_w: float = 1000.0) -> None:
        self.gain_c = gain_c
        self.tau_s = tau_s
        self.dead_time_s = dead_time_s
        self.room_c = room_c
        self.power_w = power_w
        self.energy_j = 0.0
        self._probe_c = room_c if start_c is None else start_c
        delay_steps = max(1, round(dead_time_s / SUBSTEP_S))
        # the inputs of the last dead_time_s, oldest first
        self._inputs: deque[float] = deque([0.0] * delay_steps, maxlen=delay_steps)
        self._carry_s = 0.0

    def _step(self, dt: float, heater_on: bool) -> None:
        u = 1.0 if heater_on else 0.0
        self.energy_j += u * self.power_w * dt
        delayed = self._inputs[0]
        self._inputs.append(u)
        target_c = self.room_c + self.gain_c * delayed
        # exact step response over one substep: no integration error to blur the check
        self._probe_c = target_c + (self._probe_c - target_c) * math.exp(-dt / self.tau_s)

    def ultimate(self) -> tuple[float, float]:
        """(Ku in duty per degC, Pu in s) from the phase crossover.

        The frequency where the phase lag is 180 degrees solves
        ``atan(w tau) + w theta = pi``; there ``|G| = K / sqrt(1 + (w tau)^2)`` and
        ``Ku = 1 / |G|``. Solved by bisection (the left side rises with w).
        """
        low, high = 1e-9, math.pi / self.dead_time_s
        for _ in range(200):
            w = (low + high) / 2
            if math.atan(w * self.tau_s) + w * self.dead_time_s < math.pi:
                low = w
            else:
                high = w
        w = (low + high) / 2
        ku = math.sqrt(1.0 + (w * self.tau_s) ** 2) / self.gain_c
        return ku, 2 * math.pi / w
