"""The first warm-up ever, before the bath's heating rate is fitted: safe with the probe out, no false alarm with it in.

Until the first fit the warmer does not know its heater (0.004 to 0.16 degC/s): the guard takes the water as
hot as the fastest heater could have made it until the probe proves it is in the water
(controller/core/probe_proof.py). Judged on the true water and the relay pin.
"""

from __future__ import annotations

import math
from functools import partial

import pytest

from controller.core import config as cfgmod
from controller.sim.plant import BathParams, StoneBath
from controller.sim.simulation import Injection, Simulation

NOISY_C = 0.2  # a long unshielded cable (controller/qa/scenarios.py, NOISY_PROBE_C)
STRONG_SMALL = dict(power_w=1800.0, water_kg=3.0, stones_kg=1.0, element_j_per_k=450.0, element_w_per_k=90.0)
LAGGY = dict(element_j_per_k=300.0, element_w_per_k=60.0, pot_j_per_k=800.0, dead_time_s=60.0, probe_lag_s=30.0)


def run(params: dict, *, setpoint_c: float, end_s: float, noise_c: float = 0.1, injections=(),
        setpoint_at: tuple[float, float] | None = None) -> dict:
    """One simulated session: the true water's peak and last value, the faults, the relay's switch-ons."""
    params = {"room_c": 20.0, **params}
    params.setdefault("start_c", params["room_c"])
    plant = BathParams("test", **params)
    peak = [-math.inf]

    def on_step(sim, row):
        peak[0] = max(peak[0], sim.plant.water_c)
        if setpoint_at is not None and row.t_s == setpoint_at[0]:
            sim.controller.set_setpoint(setpoint_at[1], wait=False)

    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=setpoint_c)
    sim = Simulation(cfg, make_plant=partial(StoneBath, plant), injections=list(injections), seed=1,
                     noise_c=noise_c, on_step=on_step, keep_trace=False)
    try:
        sim.run(end_s)
        faults = [(e.monotonic_s - sim.t0, e.fault, e.message) for e in sim.controller.events.since(0)
                  if e.kind == "fault"]
        return {"peak_c": peak[0], "water_c": sim.plant.water_c, "faults": faults,
                "relay_on": sim.relay_pin_on(), "setpoint_c": sim.controller.setpoint_c}
    finally:
        sim.close()


@pytest.mark.parametrize("dead_time_s,lag_s,lifted_at_s", [(5.0, 3.0, 30.0), (20.0, 10.0, 50.0), (60.0, 30.0, 90.0)])
def test_a_probe_lifted_just_after_it_proved_itself_in_a_fast_bath_is_caught_below_the_setpoint(
        dead_time_s, lag_s, lifted_at_s):
    # 1800 W into 3 L (0.13 degC/s), lifted a few seconds after the reading first rose: its slope was still a
    # fraction of the water's. Counted at twice that slope the water reached the setpoint + 7.5 to +43 degC.
    result = run({**STRONG_SMALL, "dead_time_s": dead_time_s, "probe_lag_s": lag_s}, setpoint_c=50.0, end_s=900.0,
                 noise_c=NOISY_C, injections=[Injection("lifted", lifted_at_s, math.inf)])
    assert result["peak_c"] < 50.0 + 1.5
    assert result["faults"] and "probe in the water" in result["faults"][0][2]
    assert not result["relay_on"]


@pytest.mark.parametrize("power_w,water_kg,stones_kg,start_c,end_s,probe", [
    (1800.0, 3.0, 1.0, 54.0, 5400.0, dict(dead_time_s=5.0, probe_lag_s=3.0)),  # hot tap water above the setpoint:
                                                                            # the bound held after 1 s of heat
    (600.0, 10.0, 8.0, 47.0, 3600.0, {}),  # ... just below it: a weak heater cannot show a few seconds of heat
])
def test_a_first_start_with_warm_water_reaches_the_setpoint(power_w, water_kg, stones_kg, start_c, end_s, probe):
    # A probe on the counter reads the room; one reading warmer than any room is in warm water. Taken as unproven,
    # the bound held the relay off for good and the bath cooled to the room with no fault.
    result = run({**LAGGY, **probe, "power_w": power_w, "water_kg": water_kg, "stones_kg": stones_kg,
                  "start_c": start_c},
                 setpoint_c=50.0, end_s=end_s)
    assert result["faults"] == []
    assert result["water_c"] == pytest.approx(50.0, abs=0.5)


@pytest.mark.parametrize("start_c,setpoint_at", [(35.0, None), (25.0, (30.0, 38.0))])
def test_a_laggy_baths_tail_before_its_delay_is_learned_is_no_welded_relay(start_c, setpoint_at):
    # 1000 W into 8 L, dead time 60 s and lag 30 s, set 38 degC: started within 4 degC of it (no warm-up to learn
    # from), or with the setpoint lowered 30 s in (the guard paused the warm-up before its first fit). Judged by the
    # default model's 35 s delay, the reading still rising a minute after the relay opened was a welded relay.
    result = run({**LAGGY, "power_w": 1000.0, "water_kg": 8.0, "stones_kg": 5.0, "room_c": 25.0,
                  "start_c": start_c}, setpoint_c=50.0 if setpoint_at else 38.0, end_s=3000.0,
                 setpoint_at=setpoint_at)
    assert result["faults"] == []
    assert result["water_c"] == pytest.approx(38.0, abs=0.5)


@pytest.mark.parametrize("start_c,dead_time_s,lag_s", [(40.0, 5.0, 3.0), (45.0, 20.0, 10.0)])
def test_a_probe_lifted_from_hot_tap_water_before_it_rose_with_heat_is_caught_below_the_setpoint_plus_1_5(
        start_c, dead_time_s, lag_s):
    # A first reading warmer than any room is proven (a probe in warm water); taken as not proven but not bounded
    # either, a lift before its first rise with heat let 1800 W into 3 L run to 60-81 degC.
    result = run({**STRONG_SMALL, "dead_time_s": dead_time_s, "probe_lag_s": lag_s, "start_c": start_c},
                 setpoint_c=50.0, end_s=900.0, injections=[Injection("lifted", 5.0, math.inf)])
    assert result["peak_c"] < 50.0 + 1.5
    assert result["faults"] and not result["relay_on"]
