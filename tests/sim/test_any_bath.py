"""The issue's reproductions on simulator baths other than the reference: each judged on the true water.

Every one of these failed before the warmer learned its bath (a false trip, water
past setpoint + 1.5 degC, or an overshoot of 1-4 degC).
"""

from __future__ import annotations

import math
import random

import pytest

from controller.core import config as cfgmod
from controller.sim.plant import PLANTS, BathParams, StoneBath
from controller.sim.simulation import Action, Injection, Simulation

SAFE_ABOVE_C = 1.5   # under a single fault, and any acknowledges, the water stays below setpoint + this


def bath(**params):
    p = BathParams("test", **params)
    return lambda: StoneBath(p)


def session(make_plant, *, setpoint_c=52.0, seconds, injections=(), actions=(), on_step=None, seed=1):
    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=setpoint_c)
    sim = Simulation(cfg, make_plant=make_plant, injections=list(injections), actions=list(actions),
                     on_step=on_step, seed=seed)
    sim.run(seconds)
    return sim


def faults(sim):
    return [(round(e.monotonic_s - sim.t0), e.fault, e.message) for e in sim.controller.events.since(0)
            if e.kind == "fault"]


def peak_water(sim, after_s=0.0):
    return max(r.water_c for r in sim.trace if r.t_s >= after_s)


def first_in_band_s(sim, setpoint_c):
    return next(r.t_s for r in sim.trace if r.water_c >= setpoint_c - 0.5)


def test_a_600_w_heater_in_8_l_in_a_cold_room_warms_up_without_a_heating_fault():
    slow = bath(power_w=600.0, water_kg=8.0, stones_kg=8.0, room_c=12.0, start_c=12.0,
                element_j_per_k=150.0, element_w_per_k=30.0)
    with session(slow, seconds=4 * 3600) as sim:
        assert faults(sim) == []
        assert first_in_band_s(sim, 52.0) < 4 * 3600


@pytest.mark.parametrize("setpoint_c", [52.0, 54.0])
def test_a_strong_heater_with_a_laggy_probe_does_not_overshoot(setpoint_c):
    # 1200 W into 4 kg, probe lag 40 s, dead time 60 s: the probe runs ~6 degC behind the water.
    laggy = bath(water_kg=4.0, stones_kg=2.0, probe_lag_s=40.0, dead_time_s=60.0)
    with session(laggy, setpoint_c=setpoint_c, seconds=2 * 3600) as sim:
        assert faults(sim) == []
        assert peak_water(sim) <= setpoint_c + 0.5


def test_a_strong_heater_in_little_water_holds_without_a_limit_cycle_above_the_setpoint():
    small = bath(power_w=1800.0, water_kg=2.0, stones_kg=2.0, pot_j_per_k=300.0, element_j_per_k=450.0,
                 element_w_per_k=90.0, loss_w_per_k=3.0)
    # one 10 s pulse of 1800 W raises 2 L of water (and the pot) ~2.1 degC before the stones take their share
    pulse_c = 1800.0 * 10.0 / (2.0 * 4186.0 + 300.0)
    with session(small, seconds=2 * 3600) as sim:
        assert faults(sim) == []
        held = [r.water_c for r in sim.trace if r.t_s >= 3600]
        assert max(held) <= 52.0 + 0.6 * pulse_c


@pytest.mark.parametrize("stuck_c", [45.0, 0.0])
def test_a_probe_stuck_at_a_value_from_the_hold_on_cannot_overheat_the_water(stuck_c):
    with session(StoneBath, seconds=2400 + 1800, injections=[Injection("stuck", 2400.0, math.inf, stuck_c)]) as sim:
        assert any(t >= 2400 for t, _, _ in faults(sim))
        assert peak_water(sim, 2400) <= 52.0 + SAFE_ABOVE_C
        assert not sim.relay_pin_on()


def test_acknowledging_every_200_s_with_the_probe_in_the_air_cannot_overheat_the_water():
    acks = [Action(2400.0 + 200.0 * i, "ack") for i in range(1, 15)]
    with session(StoneBath, seconds=2400 + 3200, injections=[Injection("lifted", 2400.0, math.inf)],
                 actions=acks) as sim:
        assert faults(sim)
        assert peak_water(sim, 2400) <= 52.0 + SAFE_ABOVE_C


def test_the_lid_open_30_min_winds_nothing_up_that_overshoots_when_it_closes():
    def lid(sim, row):
        if row.t_s in (3600, 5400):
            sim.plant.set_lid(row.t_s == 3600)

    with session(StoneBath, setpoint_c=54.0, seconds=9000, on_step=lid) as sim:
        assert faults(sim) == []
        assert peak_water(sim, 5400) <= 54.0 + 1.0  # before: +1.3; the probe sees the lid close ~35 s late


def pour(at_s, mass_kg, temp_c):
    def hook(sim, row):
        if row.t_s == at_s:
            sim.plant.add_water(mass_kg, temp_c)
    return hook


def test_1_l_of_tap_water_into_the_small_bath_is_not_a_lifted_probe():
    small = lambda: StoneBath(PLANTS["small"])  # noqa: E731
    for at_s in range(3600, 3660, 15):  # whether a pulse is on or not
        with session(small, seconds=at_s + 1800, on_step=pour(at_s, 1.0, 20.0)) as sim:
            assert faults(sim) == []


def test_1_l_at_10_c_into_a_small_450_w_bath_is_not_a_lifted_probe():
    tiny = bath(power_w=450.0, water_kg=3.0, stones_kg=2.0, pot_j_per_k=300.0, element_j_per_k=110.0,
                element_w_per_k=22.0, loss_w_per_k=3.0)
    with session(tiny, seconds=4 * 3600 + 1800, on_step=pour(4 * 3600, 1.0, 10.0)) as sim:
        assert faults(sim) == []


@pytest.mark.parametrize("lower_at_s", [None, 2400])
def test_1_l_at_70_c_in_a_warm_room_is_not_a_welded_relay(lower_at_s):
    warm_room = bath(room_c=32.0, start_c=32.0)

    def hook(sim, row):
        if lower_at_s is not None and row.t_s == lower_at_s:
            sim.controller.set_setpoint(48.0, source="test")  # also during a cool-down
        if row.t_s == 2460:
            sim.plant.add_water(1.0, 70.0)

    with session(warm_room, seconds=2460 + 1800, on_step=hook) as sim:
        assert faults(sim) == []


def test_5_percent_random_crc_errors_are_not_a_heating_fault():
    rng = random.Random(5)
    crc = [Injection("crc", float(t), 1.0) for t in range(1, 3 * 3600) if rng.random() < 0.05]
    with session(StoneBath, seconds=3 * 3600, injections=crc) as sim:
        assert faults(sim) == []
        assert first_in_band_s(sim, 52.0) < 3600


def test_raising_45_to_54_mid_hold_on_a_big_slow_bath_is_not_a_heating_fault():
    big = bath(power_w=750.0, water_kg=10.0, stones_kg=10.0, element_j_per_k=190.0, element_w_per_k=38.0)

    def raise_it(sim, row):
        if row.t_s == 3 * 3600:
            sim.controller.set_setpoint(54.0, source="test")

    with session(big, setpoint_c=45.0, seconds=5 * 3600, on_step=raise_it) as sim:
        assert faults(sim) == []
        assert peak_water(sim, 3 * 3600) <= 54.0 + 0.5


def test_lowering_the_setpoint_during_a_laggy_warm_up_is_not_an_over_target():
    laggy = bath(water_kg=4.0, stones_kg=2.0, probe_lag_s=40.0, dead_time_s=60.0)
    with session(laggy, seconds=3600, actions=[Action(640.0, "setpoint", 47.0)]) as sim:
        assert faults(sim) == []


def test_a_cold_top_up_that_keeps_the_reading_falling_for_a_minute_is_not_a_fault():
    laggy = lambda: StoneBath(PLANTS["laggy"])  # noqa: E731
    with session(laggy, seconds=3600 + 1800, on_step=pour(3600, 2.0, 15.0)) as sim:
        assert faults(sim) == []


def test_the_lid_open_on_a_lossy_bath_is_not_a_fault():
    lossy = lambda: StoneBath(PLANTS["large-open"])  # noqa: E731

    def lid(sim, row):
        if row.t_s in (3600, 4500):
            sim.plant.set_lid(row.t_s == 3600)

    with session(lossy, seconds=5400, on_step=lid) as sim:
        assert faults(sim) == []


def fleet_like(*, power_w, water_kg, stones_kg, lid_open_factor=1.0, **params):
    """A bath built as the fleet builds one (controller/sim/fleet.py): element, pot and losses from its size."""
    return dict(power_w=power_w, element_j_per_k=power_w * 5.0 / 20.0, element_w_per_k=power_w / 20.0,
                water_kg=water_kg, pot_j_per_k=200.0 + 60.0 * water_kg, stones_kg=stones_kg,
                loss_w_per_k=(2.5 + 0.5 * water_kg) * lid_open_factor, **params)


def test_a_probe_frozen_above_the_setpoint_while_the_bath_cools_is_found():
    # 1.8 kW into 3.8 L, lid on: the setpoint lowered 5 degC, the heater off, the probe freezes as the water
    # cools. The observer would learn from the frozen probe that the bath does not cool; the heater's heat
    # and the learned losses say it does.
    strong = bath(**fleet_like(power_w=1769.0, water_kg=3.8, stones_kg=1.6, room_c=15.0, start_c=15.0,
                               probe_lag_s=26.0, dead_time_s=9.0))
    with session(strong, setpoint_c=50.0, seconds=3600 + 1200, actions=[Action(3600.0, "setpoint=45")],
                 injections=[Injection("freeze", 3630.0, math.inf)]) as sim:
        tripped = [(t, kind) for t, kind, _ in faults(sim)]
        assert tripped and tripped[0][0] <= 3630 + 900 and tripped[0][1] == "sensor"
        assert not sim.relay_pin_on()
        assert all(not r.relay for r in sim.trace if r.t_s >= tripped[0][0])



def test_a_pulse_limited_bath_holds_its_ripple_centred_on_the_setpoint():
    # 1.5 kW into 4.1 L with 1.8 kg of stones: one 10 s minimum pulse lifts the water ~0.85 degC, far more
    # than the hold needs. Fired as the water comes down to the setpoint, the ripple sat on top of it
    # (-0.1 .. +0.53 degC, mean +0.24); the integral learns from the probe's mean to fire it below.
    strong = bath(**fleet_like(power_w=1500.0, water_kg=4.1, stones_kg=1.8, room_c=20.0, start_c=20.0,
                               probe_lag_s=22.0, dead_time_s=7.0))
    pulse_c = 1500.0 * 10.0 / (4.1 * 4186.0 + 200.0 + 60.0 * 4.1)
    with session(strong, setpoint_c=54.0, seconds=3600) as sim:
        assert faults(sim) == []
        held = [r.water_c - 54.0 for r in sim.trace if r.t_s >= 2400]
        assert abs(sum(held) / len(held)) <= 0.1
        assert max(held) <= 0.45 * pulse_c and min(held) >= -0.45 * pulse_c


def test_the_lid_put_back_on_a_weak_heaters_bath_does_not_leave_it_at_full_power_against_the_guard():
    # 522 W into 13.7 L + 9.8 kg, lid on, open 5 min at the hold: the observer learned the open lid's losses as a
    # heat flow, and once the lid was back on the water rose faster than the correction may follow; a saturated
    # correction taught nothing, so the estimate stayed degrees below the water and the heater ran at full power
    # until the guard held it at setpoint + 1 degC (+1.08 degC, 20 min at full power).
    weak = bath(lid_open_factor=5.8, **fleet_like(power_w=522.0, water_kg=13.7, stones_kg=9.8, room_c=18.0,
                                                  start_c=44.0, probe_lag_s=5.0, dead_time_s=30.0))

    def lid(sim, row):
        if row.t_s in (3600, 3900):
            sim.plant.set_lid(row.t_s == 3600)

    with session(weak, setpoint_c=52.5, seconds=3900 + 3600, on_step=lid) as sim:
        assert faults(sim) == []
        assert peak_water(sim, 3900) <= 52.5 + 0.2
        last = [r.relay for r in sim.trace if r.t_s >= 3900 + 2400]
        assert sum(last) / len(last) < 0.8  # it holds at ~62 % duty, not at full power
