"""A reading that cools as a probe in the air does (controller/core/air_cooling.py)."""

from __future__ import annotations

import math

import pytest

from controller.core.air_cooling import AIR_SPAN_S, cools_like_air
from controller.core.bath_model import BathModel
from controller.core.faults import FaultKind
from controller.core.guards import STUCK_PERIOD_S, ReadingHistory
from controller.core.heating_watch import HeatingWatch

ROOM_C = 20.0
LOSS_PER_S = 5e-4  # a lid-off bath's learned losses: 0.015 degC/s at 30 degC above the room


def _history(reading_c, *, until_s: float = 300.0) -> ReadingHistory:
    """The readings ``reading_c(t_s)`` once a second, in 1/16 degC steps as the DS18B20 gives them."""
    history = ReadingHistory(STUCK_PERIOD_S)
    for t in range(int(until_s) + 1):
        history.add(float(t), round(reading_c(float(t)) * 16) / 16)
    return history


@pytest.mark.parametrize("tau_s", [300.0, 600.0])
def test_a_probe_cooling_in_still_air_toward_the_room_is_found_and_its_course_foretold(tau_s):
    def in_air(t_s):
        return ROOM_C + 30.0 * math.exp(-t_s / tau_s)

    air = cools_like_air(_history(in_air), 300.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S)
    assert air is not None
    assert air.rate_per_s == pytest.approx(1 / tau_s, rel=0.05)
    for later_s in (360.0, 480.0):  # where the reading goes with no heat: the check's yardstick
        assert air.course_c(later_s) == pytest.approx(in_air(later_s), abs=0.1)


def test_water_cooling_toward_a_limit_well_above_the_room_is_not_air():
    # A heater with the lid off holds the water up: it cools toward 44 degC, not the room, and the share of its
    # excess over the room that goes in a minute shrinks (by a quarter from one minute to the next). (A weak
    # heater's limit close to the room looks like air: the check holds the heater off and finds it in the water.)
    def toward_limit(t_s):
        return 44.0 + 8.0 * math.exp(-t_s / 200.0)

    assert cools_like_air(_history(toward_limit), 300.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S / 10) is None


def test_water_falling_while_cold_stones_soak_up_its_heat_is_not_air():
    # All the stones back cold: the water falls fast at first, then ever slower as the stones warm (about 2.5 min).
    def soaking(t_s):
        return 45.0 + 5.0 * math.exp(-t_s / 150.0)

    assert cools_like_air(_history(soaking), 200.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S / 10) is None


def test_cold_water_poured_in_seen_through_the_probe_s_lag_then_the_stones_soaking_is_not_air():
    # All the stones back at 30 degC and 10 % of cold water into 1000 W, 8 L + 8 kg with the lid off: the reading
    # steps down 3 degC through its lag, then sinks as the stones soak up heat. Judged at three points two minutes
    # apart, the middle one fell inside the step and the two rates agreed by chance (here: 0.0013 /s each):
    # the heater was held off 109 s for nothing. Four points put the step in one segment of three.
    def poured_in(t_s):
        if t_s < 114.0:
            return 52.0
        return 48.8 + 3.2 * math.exp(-(t_s - 114.0) / 8.0) - 0.02 * (t_s - 114.0)

    assert cools_like_air(_history(poured_in, until_s=180.0), 180.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S / 10) is None


def test_a_reading_cooling_no_faster_than_the_learned_losses_is_not_air():
    # Newton's law as well, but at the rate the bath's own losses cool it: a dead element, not a lifted probe.
    loss_per_s = 1e-3  # a small lid-off bath's

    def as_the_losses(t_s):
        return ROOM_C + 30.0 * math.exp(-t_s * loss_per_s * 1.2)

    assert cools_like_air(_history(as_the_losses), 300.0, room_c=ROOM_C, loss_per_s=loss_per_s) is None
    assert cools_like_air(_history(as_the_losses), 300.0, room_c=ROOM_C, loss_per_s=loss_per_s / 2) is not None


def test_a_reading_cooling_slower_than_a_probe_in_still_air_is_not_air():
    # 25 min: what a lid taken off a laggy bath full of stones fitted, never a probe in still air (10 min at most)
    def slow(t_s):
        return ROOM_C + 30.0 * math.exp(-t_s / 1500.0)

    assert cools_like_air(_history(slow), 300.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S / 10) is None


def test_a_reading_needs_two_halves_of_falling_readings():
    def in_air_from_60_s(t_s):
        return ROOM_C + 30.0 * math.exp(-max(0.0, t_s - 60.0) / 300.0)

    # only a minute of the fall: the first half stood still
    assert cools_like_air(_history(in_air_from_60_s, until_s=120.0), 120.0, room_c=ROOM_C,
                          loss_per_s=LOSS_PER_S) is None
    # readings for less than two halves
    assert cools_like_air(_history(in_air_from_60_s, until_s=AIR_SPAN_S - 10), AIR_SPAN_S - 10,
                          room_c=ROOM_C, loss_per_s=LOSS_PER_S) is None
    assert cools_like_air(_history(in_air_from_60_s, until_s=200.0), 200.0, room_c=ROOM_C,
                          loss_per_s=LOSS_PER_S) is not None


def test_a_reading_near_the_room_is_not_judged():
    def nearly_there(t_s):
        return ROOM_C + 4.0 * math.exp(-t_s / 100.0)

    assert cools_like_air(_history(nearly_there), 150.0, room_c=ROOM_C, loss_per_s=LOSS_PER_S) is None


# -- the air check (controller/core/heating_watch.py) ----------------------------------------------
LEARNED = BathModel(heat_rate_c_per_s=0.02, loss_per_s=5e-4, dead_time_s=20.0, lag_s=15.0, room_c=ROOM_C,
                    warmups=1, loss_fits=1)


def _air_check(reading_c, *, until_s: float, latch_at_s: float = math.inf):
    """A heating watch fed ``reading_c(t_s, held_off_since_s)`` once a second at full power (a fault latched at
    ``latch_at_s`` or by its own trip); the watch, the check's hold-off start (None: none) and the trips and
    notices it gave."""
    trips: list[tuple[FaultKind, str]] = []
    notices: list[str] = []
    watch = HeatingWatch(history=ReadingHistory(STUCK_PERIOD_S), trip=lambda kind, msg, _t: trips.append((kind, msg)),
                         notice=lambda _t, _c, msg: notices.append(msg))
    held_off_since_s = None
    for t in range(int(until_s) + 1):
        t_s = float(t)
        temp_c = round(reading_c(t_s, held_off_since_s) * 16) / 16
        watch.history.add(t_s, temp_c)
        latched = t_s >= latch_at_s or bool(trips)  # a trip latches, as the interlock's does
        watch.update(t_s, temp_c, since_last_s=1.0, duty=1.0, setpoint_c=52.0, model=LEARNED, rate_known=True,
                     relay_on=not (watch.checking or latched), latched=latched, blocked=watch.checking or latched)
        if watch.checking and held_off_since_s is None:
            held_off_since_s = t_s
    return watch, held_off_since_s, trips, notices


def _lifted(t_s, _held_off_since_s):
    return ROOM_C + 32.0 * math.exp(-t_s / 400.0)  # in still air: the heater's state changes nothing


def test_a_probe_cooling_in_the_air_at_full_power_is_held_off_at_once_and_latched_when_it_keeps_to_its_course():
    watch, since_s, trips, notices = _air_check(_lifted, until_s=600.0)
    # two minutes judged, and a minute at full power with the probe's delay before: the relay held off then
    assert since_s is not None and since_s <= AIR_SPAN_S / 2 + LEARNED.delay_s + AIR_SPAN_S
    assert [kind for kind, _ in trips] == [FaultKind.SENSOR]
    assert "is the probe in the water?" in trips[0][1]
    assert notices == []


def test_a_reading_in_the_water_that_falls_below_its_course_when_held_off_is_a_bath_at_its_limit_not_a_fault():
    def in_water(t_s, held_off_since_s):
        # a weak heater's bath with the lid off cooling toward the room; held off, the heat stops showing after
        # the probe's delay: the reading falls faster than its course by the heating rate
        lost_s = 0.0 if held_off_since_s is None else max(0.0, t_s - held_off_since_s - LEARNED.delay_s)
        return _lifted(t_s, None) - LEARNED.heat_rate_c_per_s * lost_s

    watch, since_s, trips, notices = _air_check(in_water, until_s=600.0)
    assert since_s is not None
    assert trips == []
    assert len(notices) == 1 and "cannot warm the water" in notices[0]


def test_an_air_check_ends_without_a_verdict_when_another_rule_latches():
    watch, since_s, trips, notices = _air_check(_lifted, until_s=600.0, latch_at_s=260.0)
    assert since_s is not None and since_s < 260.0  # under way when the other rule latched ...
    assert not watch.checking
    assert trips == [] and notices == []  # ... and nothing more said or latched
