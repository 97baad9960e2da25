"""Gain rules: PID gains from what the relay experiment measured.

The rule, and why: a stone bath is lag-dominant (an almost pure
integrator behind 20-90 s of dead time and probe lag) and overshoot burns.
Ziegler-Nichols (Kp = 0.6 Ku) aims at a quarter-decay response: 25 %
overshoot. We use SIMC (Skogestad 2003) for an integrating process with
delay, from two things the experiment measures directly: the slope the heater
gives per unit of duty (k', degC/s, from the heat balance of whole relay cycles:
the relay's on-fraction against the bath's cooling rate) and the
effective dead time theta (switch -> turn-around of the reading, which lumps
the probe lag in). With the tight choice tau_c = theta: Kp = 1 / (2 k' theta),
Ti = 8 theta, no derivative. Measured with ``stonewarmer bench`` on the four
baths (docs/bench.md), it overshot least of the rules in :data:`RULES`: the Ku/Pu
"no overshoot" rule (Kp = 0.2 Ku, Ti = Pu / 2, Td = Pu / 3) overshoots
1.2-1.4 degC here, because its short integral time winds an integrating plant
up on the way to the setpoint; Tyreus-Luyben is slower and overshoots more.
Ku and Pu are still measured and reported (and give the textbook
Ziegler-Nichols PID the benchmark compares with).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.tuning.experiment import Measurement


def _rule_no_overshoot(r: Measurement) -> tuple[float, float, float]:
    return 0.2 * r.ku, r.pu_s / 2.0, r.pu_s / 3.0


def _rule_tyreus_luyben(r: Measurement) -> tuple[float, float, float]:
    return r.ku / 2.2, 2.2 * r.pu_s, r.pu_s / 6.3


def _rule_ziegler_nichols(r: Measurement) -> tuple[float, float, float]:
    return 0.6 * r.ku, r.pu_s / 2.0, r.pu_s / 8.0


def _rule_simc(r: Measurement) -> tuple[float, float, float]:
    # SIMC for an integrating process k'/s with delay theta, tau_c = theta (Skogestad 2003);
    # PI only: the measured theta already lumps the probe lag in.
    theta = r.dead_time_s
    return 1.0 / (r.integrating_gain * 2.0 * theta), 8.0 * theta, 0.0


#: name -> (Kp in duty/degC, Ti in s, Td in s) from a measurement.
RULES: dict[str, Callable[[Measurement], tuple[float, float, float]]] = {
    "no-overshoot": _rule_no_overshoot,
    "tyreus-luyben": _rule_tyreus_luyben,
    "simc": _rule_simc,
    "ziegler-nichols": _rule_ziegler_nichols,
}
DEFAULT_RULE = "simc"


def gains_from(measurement: Measurement, rule: str = DEFAULT_RULE) -> Gains:
    """PID gains (duty/degC, duty/(degC s), duty/(degC/s)) from a measurement and a rule."""
    kp, ti_s, td_s = RULES[rule](measurement)
    return Gains(kp=kp, ki=kp / ti_s if ti_s > 0 else 0.0, kd=kp * td_s)


#: What the rules are computed from (every rule's gains are kept with the result), each of which
#: must be a finite number above 0: name in :class:`Measurement` -> (what it is, unit).
RULE_INPUTS = {
    "integrating_gain": ("warming rate per unit of duty k'", "degC/s"),
    "dead_time_s": ("dead time", "s"),
    "ku": ("ultimate gain Ku", "duty per degC"),
    "pu_s": ("ultimate period Pu", "s"),
}


class UnusableMeasurement(ValueError):
    """The measurement cannot give gains the warmer may use; the message names the value and what is allowed."""


def usable_gains(cfg: cfgmod.Config, measurement: Measurement, rule: str = DEFAULT_RULE) -> Gains:
    """The gains of ``rule`` from ``measurement``, once both are checked. Raises :class:`UnusableMeasurement`.

    A measured k' of 0 or below (the heater did not warm the bath faster than it cooled), or any
    other rule input that is not a finite number above 0, would give gains of the wrong sign, 0 or
    infinity; and gains are checked as the config's own (:func:`controller.core.config.checked_gains`,
    the check the saved gains meet at start): saved gains the next start refuses would latch a fault.
    """
    for name, (what, unit) in RULE_INPUTS.items():
        value = getattr(measurement, name)
        if not (math.isfinite(value) and value > 0):
            raise UnusableMeasurement(f"the measured {what} is {value:.4g} {unit}: must be a finite number above 0")
    gains = gains_from(measurement, rule)
    try:
        cfgmod.checked_gains(cfg, kp=gains.kp, ki=gains.ki, kd=gains.kd)
    except cfgmod.ConfigError as exc:
        raise UnusableMeasurement(f"the {rule} rule's gains are refused: {exc}") from None
    return gains


@dataclass
class Result:
    measurement: Measurement
    rule: str
    gains: Gains
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"measurement": asdict(self.measurement), "rule": self.rule,
                "gains": asdict(self.gains), "duration_s": self.duration_s,
                "other_rules": {name: asdict(gains_from(self.measurement, name)) for name in RULES}}

    def config_lines(self) -> str:
        g = self.gains
        return (f"[control]\n# measured by `stonewarmer autotune` ({self.rule} rule): "
                f"Ku={self.measurement.ku:.3g} per degC, Pu={self.measurement.pu_s:.0f} s\n"
                f"kp = {g.kp:.4g}\nki = {g.ki:.4g}\nkd = {g.kd:.4g}")
