"""The stuck-relay rule on baths other than the reference: judged against the learned model.

A welded relay keeps the reading departing from the model at the full heating rate; hot water
poured in departs by a step that fades through the probe's lag. Each bath is the simulator's own,
given by its parameters.
"""

from __future__ import annotations

import math

import pytest

from controller.core import config as cfgmod
from controller.core.faults import FaultKind
from controller.qa import fleet
from controller.qa.fleet import run_everyday
from controller.qa.simulated import stone_bath
from controller.sim.fleet import FleetBath
from controller.sim.plant import BathParams, StoneBath
from controller.sim.simulation import Injection, Simulation


def fleet_like(*, power_w, water_kg, stones_kg, room_c, lag_s, dead_time_s):
    """A bath built the way the bench's fleet builds one (pot, element and losses grow with it)."""
    p = BathParams("test", power_w=power_w, element_j_per_k=power_w * 5.0 / 20.0, element_w_per_k=power_w / 20.0,
                   water_kg=water_kg, pot_j_per_k=200.0 + 60.0 * water_kg, stones_kg=stones_kg,
                   loss_w_per_k=2.5 + 0.5 * water_kg, probe_lag_s=lag_s, dead_time_s=dead_time_s,
                   room_c=room_c, start_c=room_c)
    return lambda: StoneBath(p)


def simulation(make_plant, *, setpoint_c, injections=(), on_step=None):
    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=setpoint_c)
    return Simulation(cfg, make_plant=make_plant, injections=list(injections), on_step=on_step, seed=1)


def faults(sim):
    return [(round(e.monotonic_s - sim.t0), e.fault) for e in sim.controller.events.since(0) if e.kind == "fault"]


def test_hot_water_poured_into_a_bath_with_a_30_s_probe_lag_is_not_a_welded_relay():
    # The bench's everyday session (stones returned cold, the lid open 5 min, a cold top-up, then 7 % of the
    # water at 70 degC) on 1183 W, 9.3 L + 7.6 kg stones, lag 30 s: through the lag the hot pour looked
    # like a steady rise for a minute.
    params = BathParams("test", power_w=1183.0, element_j_per_k=295.7, element_w_per_k=59.1, water_kg=9.3,
                        pot_j_per_k=758.0, stones_kg=7.57, loss_w_per_k=7.15, lid_open_factor=3.86,
                        probe_lag_s=29.5, dead_time_s=11.5, room_c=28.13, start_c=28.13)
    session = run_everyday(FleetBath(0, params, 49.0, False), seed=7)
    assert session["false_trips"] == []


def test_a_welded_relay_on_a_slow_laggy_bath_is_alarmed_within_3_minutes_of_the_heater_wanted_off():
    # 605 W into 10 L + 4.9 kg stones, probe lag 28 s, dead time 45 s: a welded relay warms the water
    # 0.9 degC a minute, and the probe shows it 1.2 min late.
    slow = fleet_like(power_w=605.0, water_kg=10.0, stones_kg=4.85, room_c=22.7, lag_s=28.4, dead_time_s=44.9)
    weld_s = 4800.0
    with simulation(slow, setpoint_c=51.5, injections=[Injection("stuck-relay", weld_s, math.inf)]) as sim:
        sim.run(weld_s + 900)
        wanted_off_s = next(t - sim.t0 for t, level in sim.pin.changes if not level and t - sim.t0 >= weld_s)
        stuck_s = next(t for t, kind in faults(sim) if kind == FaultKind.STUCK_RELAY)
        assert stuck_s - wanted_off_s <= 180.0
        assert not sim.relay_pin_on()
        assert all(t - sim.t0 < stuck_s for t, level in sim.pin.changes if level)


@pytest.mark.parametrize(("power_w", "water_kg", "stones_kg", "lag_s", "dead_time_s", "lid_factor", "off_min"),
                         [(700.0, 8.0, 4.0, 30.0, 60.0, 5.0, 30.0), (800.0, 12.0, 10.0, 28.0, 55.0, 4.0, 45.0)])
def test_the_lid_put_back_on_after_the_lid_off_losses_were_learned_is_not_a_welded_relay(
        power_w, water_kg, stones_kg, lag_s, dead_time_s, lid_factor, off_min):
    # With the lid off for half an hour the warmer learns the lid-off losses (more than the heater can make up
    # for); put back on, the bath loses a fifth of them and the reading departs upward from the model while the
    # relay pulses at a mid duty, as much as a weld at that duty would make it. Only the heat not following the
    # relay tells a weld: a rule that judged the departure over the commanded-off gaps alone took this for one.
    p = BathParams("test", power_w=power_w, element_j_per_k=power_w * 5.0 / 20.0, element_w_per_k=power_w / 20.0,
                   water_kg=water_kg, pot_j_per_k=200.0 + 60.0 * water_kg, stones_kg=stones_kg,
                   loss_w_per_k=2.5 + 0.5 * water_kg, lid_open_factor=lid_factor, probe_lag_s=lag_s,
                   dead_time_s=dead_time_s, room_c=20.0, start_c=20.0)
    lid_off_s, lid_on_s = 4800.0, 4800.0 + off_min * 60.0

    def lid(sim, row):
        if row.t_s in (lid_off_s, lid_on_s):
            sim.plant.set_lid(row.t_s == lid_off_s)

    with simulation(lambda: StoneBath(p), setpoint_c=50.0, on_step=lid) as sim:
        sim.run(lid_on_s + 1800)
        assert sim.controller.tracker.model.loss_fits >= 3  # the lid-off losses were measured
        assert faults(sim) == []
        assert any(level for t, level in sim.pin.changes if t - sim.t0 > lid_on_s + 900)  # still heating
        assert max(r.probe_c for r in sim.trace if r.t_s > lid_on_s) < 50.0 + 1.0


_LID_OFF = BathParams("test", power_w=1007.3, element_j_per_k=251.8, element_w_per_k=50.4, water_kg=7.75,
                      pot_j_per_k=664.9, stones_kg=3.32, loss_w_per_k=6.37, lid_open_factor=3.07,
                      probe_lag_s=21.2, dead_time_s=27.9, room_c=20.08, start_c=20.08)
_LID_OFF_WELD_S = 3238.0


def _welded_lid_off_bath() -> tuple[float, float, float]:
    """1007 W into 7.7 L + 3.3 kg stones with the lid off, lag 21 s, dead time 28 s, welded 53 min in: the
    losses (three times the lid-on ones) are not measured yet, and the model held them as a heat flow it
    misses. (first wanted off, stuck-relay alarm, first other fault) in s of the simulation."""
    with simulation(lambda: StoneBath(_LID_OFF), setpoint_c=50.0,
                    injections=[Injection("stuck-relay", _LID_OFF_WELD_S, math.inf)]) as sim:
        sim.plant.set_lid(True)
        sim.run(_LID_OFF_WELD_S + 600)
        assert sim.controller.tracker.model.loss_fits == 1  # measured only after the weld
        wanted_off_s = next(t - sim.t0 for t, level in sim.pin.changes
                            if not level and t - sim.t0 >= _LID_OFF_WELD_S)
        stuck_s = next(t for t, kind in faults(sim) if kind == FaultKind.STUCK_RELAY)
        other_s = min((t for t, kind in faults(sim) if kind != FaultKind.STUCK_RELAY), default=math.inf)
        assert not sim.relay_pin_on()
        assert all(t - sim.t0 < stuck_s for t, level in sim.pin.changes if level)
    return wanted_off_s, stuck_s, other_s


def test_a_welded_relay_on_a_lid_off_bath_whose_losses_are_not_measured_yet_is_told_as_a_stuck_relay():
    # Judged against the lid-on default losses, the welded water departed from the model too slowly: the
    # over-target rule latched first, without the advice to unplug the heater.
    _, stuck_s, other_s = _welded_lid_off_bath()
    assert stuck_s < other_s


@pytest.mark.xfail(strict=True, reason="not met at a ~60 % hold duty: until the controller lowers the duty below "
                   "1 - the hold duty, a weld's heat is no more than the losses a lid put back on takes away, and "
                   "only the relay held off tells them apart (docs/control.md, 'The fleet')")
def test_a_welded_relay_on_a_lid_off_bath_whose_losses_are_not_measured_yet_is_alarmed_within_3_minutes():
    wanted_off_s, stuck_s, _ = _welded_lid_off_bath()
    assert stuck_s - wanted_off_s <= 180.0


def test_a_welded_relay_on_a_bath_that_can_pass_its_setpoint_only_a_little_is_told_as_a_stuck_relay():
    # 1081 W into 9.9 L + 3.6 kg stones with the lid off holds at most 54.6 degC (set 53): a weld at the ~95 %
    # hold duty warms the water a few hundredths of a degC a minute. Once the guard holds the relay off, the
    # reading keeps creeping up where the bath's losses (nearly full power) would cool it fast.
    params = BathParams("test", power_w=1081.0, element_j_per_k=270.3, element_w_per_k=54.1, water_kg=9.89,
                        pot_j_per_k=793.3, stones_kg=3.64, loss_w_per_k=7.44, lid_open_factor=4.26,
                        probe_lag_s=18.2, dead_time_s=30.4, room_c=20.5, start_c=20.5)
    weld_s = 6464.0
    with simulation(lambda: StoneBath(params), setpoint_c=53.0,
                    injections=[Injection("stuck-relay", weld_s, math.inf)]) as sim:
        sim.plant.set_lid(True)
        sim.run(weld_s + 2400)
        tripped = faults(sim)
        assert tripped and tripped[0][1] == FaultKind.STUCK_RELAY and tripped[0][0] > weld_s
        assert not sim.relay_pin_on()
        assert all(t - sim.t0 < tripped[0][0] for t, level in sim.pin.changes if level)
        assert max(r.water_c for r in sim.trace) < 53.0 + 1.5  # the weld cannot take it far: not the point


def test_hot_water_poured_in_twice_after_the_setpoint_was_lowered_is_no_welded_relay():
    # 421 W into 8.7 L + 9.3 kg of stones, lid on, a 54 s dead time, set 45.5 degC: lowered 3 degC at the hold,
    # then two kettles (7 % of the water at 70 degC) five minutes apart. With the relay held off the reading
    # rises in both halves of ten minutes, each time at once: the stuck-relay rule's creep once took it for a
    # weld ("UNPLUG THE HEATER NOW") and latched.
    params = BathParams("test", power_w=421.0, element_j_per_k=105.3, element_w_per_k=21.1, water_kg=8.7,
                        pot_j_per_k=700.0, stones_kg=9.3, loss_w_per_k=6.0, lid_open_factor=4.0,
                        probe_lag_s=14.0, dead_time_s=54.0, room_c=21.0, start_c=21.0)
    bath = FleetBath(0, params, 45.5, False)
    hold_s = fleet._times(bath).hold_from_s
    events = [(hold_s + 300.0, "down"), (hold_s + 540.0, "pour"), (hold_s + 840.0, "pour")]

    def on_step(sim, row):
        while events and row.t_s >= events[0][0]:
            _, what = events.pop(0)
            if what == "down":
                sim.controller.set_setpoint(sim.controller.setpoint_c - 3.0, source="test")
            else:
                plant = stone_bath(sim)
                plant.add_water(0.07 * plant.params.water_kg, 70.0)

    sim = fleet._simulation(bath, on_step=on_step, seed=1)
    try:
        sim.run(hold_s + 840.0 + 1500.0)
        assert [e.fault for e in sim.controller.events.since(0) if e.kind == "fault"] == []
        assert not events
    finally:
        sim.close()
