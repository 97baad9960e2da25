"""The welded watch's creep: with the relay commanded off for many minutes, a reading that keeps rising
where the bath's losses would cool it gets heat from an element the relay was told to switch off."""

from __future__ import annotations

import math

from controller.core.bath_model import BathModel
from controller.core.guards import STUCK_CREEP_S
from controller.core.welded_watch import WeldedWatch

# A bath that can pass its setpoint only a little: the losses at 53 degC take 95 % of full power.
WEAK = BathModel(heat_rate_c_per_s=0.02, loss_per_s=0.02 * 0.95 / 32.0, dead_time_s=30.0, lag_s=18.0,
                 room_c=21.0, warmups=1, loss_fits=1)
OFF_S = WEAK.dead_time_s + 3 * WEAK.lag_s + STUCK_CREEP_S  # the relay commanded off long enough


def creep(reading_at, *, off_s: float = OFF_S):
    """Feed ``reading_at(t)`` (degC, as a DS18B20 gives it: 1/16 degC steps) for STUCK_CREEP_S; the verdict."""
    watch = WeldedWatch()
    for t in range(int(STUCK_CREEP_S) + 1):
        watch.add_reading(float(t), math.floor(reading_at(t) * 16) / 16)
    return watch.creep(STUCK_CREEP_S, WEAK, reading_at(STUCK_CREEP_S), off_s=off_s)


def test_a_reading_creeping_up_with_the_relay_held_off_is_a_welded_element():
    # 0.02 degC a minute: what a weld adds to a bath at 95 % of its limit
    assert creep(lambda t: 54.0 + 0.02 * t / 60) is not None


def test_not_before_the_relay_was_off_through_the_last_pulse_tail_and_the_whole_span():
    assert creep(lambda t: 54.0 + 0.02 * t / 60, off_s=OFF_S - 1) is None


def test_a_reading_standing_still_or_cooling_slower_than_the_model_says_is_no_weld():
    assert creep(lambda t: 54.03) is None                     # frozen, or heat exactly balancing the losses
    assert creep(lambda t: 54.5 - 0.02 * t / 60) is None       # a lid put back on: cooling slowly, still cooling


def test_hot_water_poured_in_is_no_weld():
    # the pour's rise through the probe's lag, then the bath cools at its losses
    def poured(t):
        return 54.0 + 1.0 * (1 - math.exp(-max(0.0, t - 250) / 18.0)) - WEAK.loss_per_s * 33.0 * max(0.0, t - 250)

    assert creep(poured) is None


def test_on_a_bath_a_weld_would_lift_a_step_a_segment_a_slow_creep_is_something_else():
    # the default model: a weld lifts the water ~1.5 degC a minute; a reading creeping 0.02 degC a minute is
    # judged by the over-target rule, not taken for a weld
    watch = WeldedWatch()
    for t in range(int(STUCK_CREEP_S) + 1):
        watch.add_reading(float(t), math.floor((54.0 + 0.02 * t / 60) * 16) / 16)
    strong = BathModel()
    off_s = strong.dead_time_s + 3 * strong.lag_s + STUCK_CREEP_S
    assert watch.creep(STUCK_CREEP_S, strong, 54.2, off_s=off_s) is None
    assert watch.creep(STUCK_CREEP_S, WEAK, 54.2, off_s=OFF_S) is not None


def test_a_rise_in_steps_is_no_weld():
    # Hot water poured in twice (or three times) within the span: the reading rises in both halves, each time
    # at once through the probe's lag, where an element's heat would have spread its rise over the whole span.
    def step(t, at_s, rise_c=0.4):
        return rise_c * (1 - math.exp(-max(0.0, t - at_s) / 18.0))

    assert creep(lambda t: 54.0 + step(t, 120.0) + step(t, 420.0)) is None
    assert creep(lambda t: 54.0 + step(t, 40.0) + step(t, 240.0) + step(t, 440.0)) is None
