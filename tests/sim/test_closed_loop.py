"""Closed loop on the reference bath: the real probe path, mock pins, simulated hours."""

from __future__ import annotations

import pytest

from controller.core import config as cfgmod
from controller.sim.simulation import Simulation, parse_action, summarize


@pytest.fixture(scope="module")
def four_hours():
    sim = Simulation()
    sim.run(4 * 3600)
    yield sim, summarize(sim)
    sim.close()


def test_reference_bath_warms_up_close_to_the_full_power_limit(four_hours):
    _, s = four_hours
    assert s.warmup_ratio <= 1.25


def test_reference_bath_does_not_overshoot(four_hours):
    _, s = four_hours
    assert s.overshoot_c <= 0.5


def test_reference_bath_holds_52_c_within_0_3_c(four_hours):
    _, s = four_hours
    assert s.hold_max_c <= 0.3


def test_mechanical_relay_switches_on_at_most_60_times_an_hour(four_hours):
    sim, s = four_hours
    assert s.switch_ons_per_hour <= 60
    held = [t for t, level in sim.pin.changes if t - sim.t0 > 3600]
    gaps = [b - a for a, b in zip(held, held[1:])]
    assert min(gaps) >= 10.0          # never faster than the relay's minimum on/off time


def test_no_fault_and_stones_ready_in_a_normal_session(four_hours):
    sim, s = four_hours
    assert s.faults == []
    assert sim.controller.status().mode == "ready"
    assert any(e.kind == "ready" for e in sim.controller.events.since(0))


def test_water_never_gets_near_the_cutoff(four_hours):
    _, s = four_hours
    assert s.peak_water_c < 53.0


@pytest.mark.parametrize("setpoint_c", [45.0, 54.0])
def test_other_setpoints_are_held_too(setpoint_c):
    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=setpoint_c)
    with Simulation(cfg) as sim:
        sim.run(2 * 3600)
        s = summarize(sim)
        assert s.overshoot_c <= 0.5 and s.hold_max_c <= 0.3 and not s.faults


def test_status_reports_an_estimated_time_to_ready_while_warming():
    with Simulation() as sim:
        sim.run(600)
        status = sim.controller.status()
        assert status.mode == "warming"
        # ~9 more minutes to the band at ~2 degC/min, plus 5 minutes in the band.
        assert 700 < status.ready_in_s < 1100


def test_switched_off_by_a_person_the_relay_pin_stays_open_until_switched_on():
    actions = [parse_action("3600:off"), parse_action("5400:on")]
    with Simulation(actions=actions) as sim:
        sim.run(6000)
        assert [outcome for _t, _kind, outcome in sim.actions_done] == ["switched off", "switched on"]
        t0 = sim.t0
        levels = [(t - t0, level) for t, level in sim.pin.changes]
        level_at_3600 = [level for t, level in levels if t <= 3600][-1]
        assert not any(level for t, level in levels if 3600 < t < 5400)
        # the pin opened at once at 3600 s (or was open), and heats again after 5400 s
        assert not level_at_3600 or any(not level for t, level in levels if 3600 <= t <= 3601)
        assert any(level for t, level in levels if t >= 5400)
        assert {r.mode for r in sim.trace if 3600 <= r.t_s < 5400} == {"off"}
