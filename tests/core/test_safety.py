"""Every interlock rule, asserted on the relay pin's recorded states and simulated times."""

from __future__ import annotations

import contextlib

import pytest

from controller.core.faults import FaultKind
from controller.core.guards import HeldFor
from controller.core.probe import Reading, ReadingKind
from controller.sim.fake_w1 import ZERO_TEXT, w1_slave_text
from controller.sim.simulation import Injection, Simulation
from tests.helpers import run_ticks


def test_held_for_is_done_only_after_the_condition_held_unbroken_for_its_time():
    timer = HeldFor(30.0)
    assert not timer.update(True, 100.0)           # begins to hold
    assert not timer.update(True, 129.0)           # 29 s: not yet
    assert timer.update(True, 130.0) and timer.held_s(130.0) == 30.0
    assert not timer.update(False, 131.0) and timer.held_s(131.0) == 0.0   # a break restarts it
    assert not timer.update(True, 132.0) and not timer.update(True, 161.0)
    assert timer.update(True, 162.0)
    timer.reset()
    assert not timer.done(500.0)


def test_held_for_can_start_already_holding():
    timer = HeldFor(120.0, since_s=0.0)   # e.g. the relay has been off since start
    assert not timer.done(119.0) and timer.done(120.0)
    assert timer.update(True, 121.0)      # still holding: still done


def on_times(pin):
    return [t for t, level in pin.changes if level]


def off_times(pin):
    return [t for t, level in pin.changes[1:] if not level]


def full_power(_now_s, _temp_c, _setpoint_c):
    return 1.0


def heat_up(controller, clock, tree, seconds=12, temp=40.0):
    """Valid readings while the duty asked for is 100 %: the relay goes on.

    The interlock is judged on its own: whatever the PID would say, it must hold.
    """
    controller.set_duty_override(full_power)
    statuses = run_ticks(controller, clock, tree, [temp] * seconds)
    assert statuses[-1].relay_on
    return statuses


def test_heater_stays_off_until_the_first_valid_reading(make_controller, clock, tree, pins):
    controller = make_controller()
    statuses = run_ticks(controller, clock, tree, [("text", ""), ("text", ""), ("text", "")])
    assert [s.mode for s in statuses] == ["starting"] * 3
    statuses = run_ticks(controller, clock, tree, [40.0] * 10)
    # On at the first tick with a valid reading that is also 10 s (min off-time) after start.
    assert pins.pin(17).changes == [(pytest.approx(1000.0), False), (1010.0, True)]
    assert statuses[0].mode == "warming" and statuses[0].duty == 1.0


def test_cutoff_turns_the_relay_off_in_the_same_tick_and_latches(make_controller, clock, tree, pins):
    controller = make_controller(setpoint_c=54.0)
    heat_up(controller, clock, tree, temp=54.5)             # on: below setpoint + 1
    trip = run_ticks(controller, clock, tree, [58.0])[-1]   # +3.5 degC: plausible, at the cutoff
    pin = pins.pin(17)
    assert off_times(pin) == [clock.monotonic()]
    assert trip.fault == FaultKind.OVERTEMP and trip.mode == "fault" and not trip.relay_on
    later = run_ticks(controller, clock, tree, [45.0] * 120)  # cooled: still latched
    assert later[-1].fault == FaultKind.OVERTEMP and len(pin.changes) == 3


def test_the_hotter_of_two_probes_is_used_for_the_cutoff(make_controller, clock, tree, pins):
    controller = make_controller(second=True, setpoint_c=54.0)
    controller.set_duty_override(full_power)
    run_ticks(controller, clock, tree, [54.5] * 12, second=54.5)
    assert controller.status().relay_on
    status = run_ticks(controller, clock, tree, [54.5], second=58.1)[-1]
    assert status.fault == FaultKind.OVERTEMP
    assert off_times(pins.pin(17)) == [clock.monotonic()]


def test_one_bad_reading_turns_the_relay_off_for_that_tick_without_latching(make_controller, clock, tree, pins):
    controller = make_controller()
    heat_up(controller, clock, tree)
    bad = run_ticks(controller, clock, tree, [("text", w1_slave_text(40.0, crc_ok=False))])[-1]
    assert not bad.relay_on and bad.fault is None
    assert off_times(pins.pin(17)) == [clock.monotonic()]
    statuses = run_ticks(controller, clock, tree, [40.0] * 12)
    assert statuses[-1].relay_on and statuses[-1].fault is None   # back on after the min off-time


@pytest.mark.parametrize("text", [w1_slave_text(40.0, crc_ok=False), "", w1_slave_text(85.0), ZERO_TEXT])
def test_four_bad_readings_in_a_row_latch_a_sensor_fault(make_controller, clock, tree, pins, text):
    controller = make_controller()
    heat_up(controller, clock, tree)
    statuses = run_ticks(controller, clock, tree, [("text", text)] * 4)
    assert [s.fault for s in statuses] == [None, None, None, FaultKind.SENSOR]
    assert "4 bad readings" in statuses[-1].fault_message
    run_ticks(controller, clock, tree, [40.0] * 30)
    assert len(pins.pin(17).changes) == 3        # off at the first bad reading, never on again


def test_no_valid_reading_for_10_s_latches(make_controller, clock, tree, pins):
    controller = make_controller()
    heat_up(controller, clock, tree)
    last_valid_s = clock.monotonic()

    class Silent:  # a reader that has nothing new (a slow bus), not a bad reading
        def poll(self, now_s):
            return None

        def close(self):
            pass

    controller.primary_source = Silent()
    statuses = run_ticks(controller, clock, tree, [None] * 10)
    assert statuses[-2].fault is None and statuses[-1].fault == FaultKind.SENSOR
    assert clock.monotonic() - last_valid_s == pytest.approx(10.0)
    assert not statuses[-1].relay_on


def test_unplugged_probe_at_start_latches_after_10_s(make_controller, clock, tree, pins):
    controller = make_controller()
    statuses = run_ticks(controller, clock, tree, [None] * 10)   # no file was ever written
    assert statuses[-1].fault == FaultKind.SENSOR
    assert pins.pin(17).changes == [(pytest.approx(1000.0), False)]


def test_guard_keeps_the_relay_off_above_setpoint_plus_1_without_latching(make_controller, clock, tree, pins):
    controller = make_controller(setpoint_c=50.0)
    heat_up(controller, clock, tree, temp=48.0)   # full power asked for all along
    statuses = run_ticks(controller, clock, tree, [49.5, 50.9, 51.0, 51.2])[1:]
    assert [s.relay_on for s in statuses] == [True, False, False]
    assert statuses[-1].fault is None
    assert off_times(pins.pin(17)) == [clock.monotonic() - 1.0]
    assert controller.interlock.guarded          # what the PID's anti-windup and the benchmark read


def test_a_person_switching_off_is_not_the_guard(make_controller, clock, tree):
    controller = make_controller(setpoint_c=50.0)
    run_ticks(controller, clock, tree, [40.0] * 3)
    controller.switch_off(source="test")
    run_ticks(controller, clock, tree, [40.0])
    assert controller.interlock.blocked_reason == "switched off" and not controller.interlock.guarded


def test_over_target_for_60_s_latches(make_controller, clock, tree, pins):
    controller = make_controller(setpoint_c=50.0)
    run_ticks(controller, clock, tree, [50.0] * 5)
    # Something else heats the bath slowly: 0.48 degC per 120 s, under a quarter of what the (default)
    # heater does at full power, so not a "stuck relay".
    temps = [50.0 + 0.004 * i for i in range(800)] + [53.2] * 61
    statuses = run_ticks(controller, clock, tree, temps)
    first_over = next(i for i, t in enumerate(temps) if round(t * 16) / 16 > 53.0)  # as the probe quantises
    faults = [i for i, s in enumerate(statuses) if s.fault]
    assert faults[0] == first_over + 60
    assert statuses[faults[0]].fault == FaultKind.OVER_TARGET
    # The guard had the relay off since setpoint + 1; the latch keeps it off from here on.
    assert pins.pin(17).changes[-1][1] is False
    assert pins.pin(17).changes[-1][0] < statuses[first_over].monotonic_s


def test_lowering_the_setpoint_is_a_cool_down_not_an_over_target(make_controller, clock, tree, pins):
    controller = make_controller(setpoint_c=54.0)
    run_ticks(controller, clock, tree, [54.0] * 5)
    controller.set_setpoint(48.0)
    statuses = run_ticks(controller, clock, tree, [54.0 - 0.005 * i for i in range(1200)])
    assert all(s.fault is None for s in statuses)
    assert statuses[0].mode == "cooling"
    cooling = [s for s in statuses[10:] if s.temperature_c > 49.0]   # after the 10 s minimum on-time
    assert cooling and not any(s.relay_on for s in cooling)


def test_rising_again_during_a_cool_down_is_an_over_target(make_controller, clock, tree, pins):
    controller = make_controller(setpoint_c=54.0)
    run_ticks(controller, clock, tree, [54.0] * 5)
    controller.set_setpoint(45.0)
    # Rises slowly (0.48 degC per 120 s: not fast enough for the stuck-relay rule).
    temps = [54.0 - 0.01 * i for i in range(200)] + [52.0 + 0.004 * i for i in range(1200)]
    statuses = run_ticks(controller, clock, tree, temps)
    assert any(s.fault == FaultKind.OVER_TARGET for s in statuses)


def test_second_probe_disagreeing_for_30_s_latches(make_controller, clock, tree, pins):
    controller = make_controller(second=True)
    controller.set_duty_override(full_power)
    run_ticks(controller, clock, tree, [45.0] * 12, second=45.0)
    statuses = run_ticks(controller, clock, tree, [45.0] * 31, second=48.5)
    assert statuses[29].fault is None and statuses[30].fault == FaultKind.PROBE_DISAGREE
    assert statuses[29].relay_on
    assert off_times(pins.pin(17)) == [clock.monotonic()]


@contextlib.contextmanager
def closed_loop(injections, seconds, **kwargs):
    """A simulation on the reference bath, run for ``seconds``, closed on leaving."""
    with Simulation(injections=injections, **kwargs) as sim:
        sim.run(seconds)
        yield sim


def first_fault(sim):
    return next(r for r in sim.trace if r.fault)


def test_dead_element_trips_the_heating_watch_within_8_min_on_a_bath_not_learned_yet():
    # Nothing learned: the watch expects only the weakest heater's rise (0.24 degC/min), then holds
    # the heater off to see whether the water cools any faster without it: it does not.
    with closed_loop([Injection("dead-element", 0.0, float("inf"))], 600) as sim:
        fault = first_fault(sim)
        assert fault.fault == FaultKind.HEATING
        assert fault.t_s <= 480
        off_s = sim.pin.changes[-1][0] - sim.t0    # off for the heater check, and off since
        assert not sim.pin.changes[-1][1] and off_s < fault.t_s


def test_probe_lifted_out_of_the_water_trips_the_heating_watch():
    with closed_loop([Injection("lifted", 300.0, float("inf"))], 700) as sim:
        fault = first_fault(sim)
        assert fault.fault == FaultKind.HEATING and fault.t_s <= 300 + 185
        assert max(r.water_c for r in sim.trace) < 58.0


def test_welded_relay_raises_the_stuck_relay_alarm_within_3_minutes():
    with closed_loop([Injection("stuck-relay", 2400.0, float("inf"))], 2400 + 400) as sim:
        # the relay pin: commanded off (the weld keeps the element on) and never on again after the alarm
        fault = first_fault(sim)
        assert fault.fault in (FaultKind.STUCK_RELAY, FaultKind.OVERTEMP, FaultKind.OVER_TARGET)
        kinds = {f.fault for f in sim.controller.events.since(0) if f.kind == "fault"}
        assert FaultKind.STUCK_RELAY in kinds
        stuck = next(e for e in sim.controller.events.since(0) if e.fault == FaultKind.STUCK_RELAY)
        assert stuck.monotonic_s - sim.t0 - 2400 <= 180
        assert sim.controller.status().fault == FaultKind.STUCK_RELAY   # the most severe one is shown
        assert "UNPLUG" in sim.controller.status().fault_message
        assert not sim.relay_pin_on()
        assert all(t < stuck.monotonic_s for t, level in sim.pin.changes if level)


def test_stones_returned_cold_do_not_trip():
    def stones(sim, row):
        if row.t_s == 5400:
            sim.plant.return_stones(2.0, 35.0)
        if row.t_s == 6600:
            sim.plant.return_stones(2.5, 33.0)

    with Simulation(on_step=stones) as sim:
        sim.run(3 * 3600)
        assert not any(r.fault for r in sim.trace)


def cooling(from_c, to_c, seconds):
    """Readings of water cooling by itself from ``from_c`` to ``to_c`` over ``seconds`` (a bath
    cannot cool faster: a reading that falls faster is not believed at once)."""
    return [from_c + (to_c - from_c) * (i + 1) / seconds for i in range(seconds)]


def test_every_trip_and_acknowledge_is_an_event(make_controller, clock, tree):
    controller = make_controller(setpoint_c=54.0)
    heat_up(controller, clock, tree, temp=54.5)
    run_ticks(controller, clock, tree, [58.0])
    run_ticks(controller, clock, tree, cooling(58.0, 50.0, 600))
    controller.acknowledge_fault(source="test")
    kinds = [(e.kind, e.fault) for e in controller.events.since(0)]
    assert ("fault", FaultKind.OVERTEMP) in kinds and ("ack", FaultKind.OVERTEMP) in kinds
    trip = next(e for e in controller.events.since(0) if e.kind == "fault")
    assert trip.monotonic_s == clock.monotonic() - 600 and trip.wall_time_s > 1e9


def test_a_latched_fault_survives_a_restart_and_refuses_to_clear_while_too_hot(
        make_controller, clock, tree, pins, tmp_path):
    state = tmp_path / "persist"
    first = make_controller(state_dir=state, setpoint_c=54.0)
    heat_up(first, clock, tree, temp=54.5)
    run_ticks(first, clock, tree, [58.0])
    first.close()
    pins.reset()

    second = make_controller(state_dir=state, setpoint_c=54.0)
    assert second.status().fault == FaultKind.OVERTEMP
    statuses = run_ticks(second, clock, tree, [54.5] * 20)
    assert all(not s.relay_on for s in statuses)
    with pytest.raises(Exception, match="must cool below"):
        second.acknowledge_fault()
    assert second.status().fault == FaultKind.OVERTEMP
    run_ticks(second, clock, tree, cooling(54.5, 50.0, 600))
    second.acknowledge_fault()
    statuses = run_ticks(second, clock, tree, [50.0] * 3)
    assert statuses[-1].fault is None and statuses[-1].relay_on
    second.close()
    pins.reset()
    third = make_controller(state_dir=state, setpoint_c=54.0)       # the ack was persisted too
    assert third.status().fault is None


def test_acknowledge_is_refused_without_a_valid_reading(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [None] * 10)
    assert controller.status().fault == FaultKind.SENSOR
    with pytest.raises(Exception, match="no valid reading"):
        controller.acknowledge_fault()


def test_acknowledge_is_refused_while_the_probe_still_fails(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0] * 3)
    run_ticks(controller, clock, tree, [("text", "")] * 4)       # latched after 4 bad reads, 4 s ago
    assert controller.status().fault == FaultKind.SENSOR
    with pytest.raises(Exception, match="no valid reading"):
        controller.acknowledge_fault()
    run_ticks(controller, clock, tree, [40.0])
    controller.acknowledge_fault()
    assert controller.status().fault is None


def test_acknowledge_without_a_fault_is_refused(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0])
    with pytest.raises(Exception, match="no fault"):
        controller.acknowledge_fault()


def test_wall_clock_steps_do_not_change_control_or_safety(make_controller, clock, tree, pins):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0] * 12)
    before = list(pins.pin(17).changes)
    assert before[-1] == (1010.0, True)
    clock.wall_offset_s += 3600.0                    # NTP sync jumps an hour
    run_ticks(controller, clock, tree, [40.0] * 20)
    clock.wall_offset_s -= 7200.0
    statuses = run_ticks(controller, clock, tree, [40.0] * 20)
    assert pins.pin(17).changes == before
    assert all(s.fault is None for s in statuses)


def test_a_laggy_bath_overshooting_after_full_power_is_not_called_a_stuck_relay():
    # Full power on a slow bath, then the setpoint lowered below it: the probe keeps rising for minutes
    # after the switch-off, past setpoint + 1 with the relay off, but slower and slower.
    from controller.sim.plant import PLANTS, StoneBath

    def lower(sim, row):
        if row.reading_c is not None and row.reading_c >= 49.0 and sim.controller.setpoint_c == 52.0:
            sim.controller.set_setpoint(47.0, source="test")

    with Simulation(make_plant=lambda: StoneBath(PLANTS["laggy"]), on_step=lower) as sim:
        sim.run(3600)
        assert sim.controller.setpoint_c == 47.0
        assert max(r.probe_c for r in sim.trace) > 48.0 + 0.5          # it coasted past the guard
        assert not any(e.kind == "fault" for e in sim.controller.events.since(0))


def pour_at(when_s, mass_kg, temp_c):
    def hook(sim, row):
        if row.t_s == when_s:
            sim.plant.add_water(mass_kg, temp_c)
    return hook


def test_hot_water_poured_in_is_not_a_stuck_relay():
    # Half a litre from the kettle raises the bath ~2 degC at once; then it only cools.
    # Poured at several moments of the relay's cycle: never an "UNPLUG THE HEATER" alarm.
    for offset_s in range(0, 70, 10):
        with Simulation(on_step=pour_at(3600 + offset_s, 0.5, 90.0)) as sim:
            sim.run(3600 + offset_s + 600)
            faults = [e.fault for e in sim.controller.events.since(0) if e.kind == "fault"]
            assert faults == [], f"poured at +{offset_s} s: {faults}"


@pytest.mark.parametrize("litres", [1.2, 2.0])
def test_cold_water_topped_up_is_not_a_lifted_probe(litres):
    with Simulation(on_step=pour_at(3600, litres, 15.0)) as sim:
        sim.run(3600 + 900)
        faults = [e.fault for e in sim.controller.events.since(0) if e.kind == "fault"]
        assert faults == []
        assert min(r.probe_c for r in sim.trace if r.t_s > 3600) < 49.5      # it really cooled the bath


def test_acknowledge_is_refused_while_the_probes_still_disagree(make_controller, clock, tree):
    controller = make_controller(second=True)
    run_ticks(controller, clock, tree, [45.0] * 40, second=48.5)
    assert controller.status().fault == FaultKind.PROBE_DISAGREE
    with pytest.raises(Exception, match="still disagree"):
        controller.acknowledge_fault()
    run_ticks(controller, clock, tree, [45.0], second=45.5)
    controller.acknowledge_fault()
    assert controller.status().fault is None


def test_the_unproven_waters_bound_holds_the_relay_off_but_latches_nothing(make_controller, clock, tree, pins):
    # Before the first fit, the hottest the fastest heater could have made the water while the probe is not proven
    # in it (controller/core/probe_proof.py) is a bound for the guard, not an estimate: fed to the cutoff and the
    # over-target rule it latched "water at 70.4 degC reached the cutoff" with the water at 49.6 degC.
    controller = make_controller(setpoint_c=50.0)
    heat_up(controller, clock, tree, temp=40.0)
    interlock = controller.interlock
    for _ in range(90):  # beyond the over-target rule's 60 s
        clock.advance(1.0)
        now = clock.monotonic()
        on = interlock.tick(now, Reading(ReadingKind.VALID, 40.0, now), None, 1.0, 50.0, water_c=40.0,
                            guard_water_c=70.0)
        assert not on
    assert interlock.latched is None and interlock.guarded
    assert not pins.pin(17).state
    # The same value as the estimated water is the cutoff's to judge.
    clock.advance(1.0)
    now = clock.monotonic()
    interlock.tick(now, Reading(ReadingKind.VALID, 40.0, now), None, 1.0, 50.0, water_c=70.0)
    assert interlock.latched is not None and interlock.latched.kind == FaultKind.OVERTEMP
