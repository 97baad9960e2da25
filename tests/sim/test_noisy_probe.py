"""A noisy probe (a DS18B20 on a long cable) on the simulator's baths: judged on the true water."""

from __future__ import annotations

from functools import partial

import pytest

from controller.core import config as cfgmod
from controller.sim.plant import PLANTS, StoneBath
from controller.sim.simulation import Simulation

NOISY_C = 0.2      # 1 sigma: seven times a healthy DS18B20's
BAND_C = 0.5       # warmed up: the true water within this of the setpoint


def full_power_s(name: str, setpoint_c: float) -> float:
    """Seconds full power takes the true water from cold to within BAND_C of ``setpoint_c``."""
    plant = StoneBath(PLANTS[name])
    t = 0
    while plant.water_c < setpoint_c - BAND_C:
        plant.advance(1.0, True)
        t += 1
    return float(t)


@pytest.mark.parametrize("name", ["reference", "small", "laggy", "large-open"])
def test_a_noisy_probe_warms_up_as_fast_as_full_power_allows(name):
    # Before the fix the noise became a learned heat flow that cancelled the losses: the estimate sat above
    # the water and the feed-forward near 0, so the water crept toward the setpoint (1.8 x the full-power
    # time on the reference bath, 7.5 x on the small one; the large open bath never got there).
    setpoint_c = 52.0
    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=setpoint_c)
    limit_s = full_power_s(name, setpoint_c)
    with Simulation(cfg, make_plant=partial(StoneBath, PLANTS[name]), noise_c=NOISY_C, keep_trace=False) as sim:
        while sim.plant.water_c < setpoint_c - BAND_C and sim.t_s < 3 * limit_s:
            sim.step()
        assert sim.t_s <= 1.10 * limit_s
        sim.run(sim.t_s + 1800)
        assert sim.controller.interlock.latched is None
        assert abs(sim.plant.water_c - setpoint_c) < BAND_C
