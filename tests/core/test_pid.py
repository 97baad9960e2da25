"""The PID proposes a duty: derivative on measurement, filtered, with anti-windup."""

from __future__ import annotations

import pytest

from controller.core.pid import PID, Gains


def test_output_is_a_duty_between_0_and_1():
    pid = PID(Gains(kp=5.0, ki=0.0, kd=0.0))
    assert pid.update(20.0, 52.0, 0.0) == 1.0
    assert pid.update(60.0, 52.0, 1.0) == 0.0


def test_a_setpoint_change_gives_no_derivative_kick():
    pid = PID(Gains(kp=0.0, ki=0.0, kd=50.0))
    pid.update(50.0, 52.0, 0.0)
    pid.update(50.0, 52.0, 1.0)
    assert pid.update(50.0, 40.0, 2.0) == 0.0 and pid.d == 0.0
    assert pid.update(50.0, 54.0, 3.0) == 0.0 and pid.d == 0.0


def test_derivative_acts_on_a_rising_measurement_and_is_filtered():
    pid = PID(Gains(kp=0.0, ki=0.0, kd=10.0), derivative_tau_s=20.0)
    pid.update(50.0, 52.0, 0.0)
    pid.update(50.0625, 52.0, 1.0)     # one quantisation step
    assert -0.05 < pid.d < 0           # brakes, but a single step is smoothed (unfiltered: -0.625)


def test_integral_does_not_wind_up_while_saturated():
    pid = PID(Gains(kp=0.5, ki=0.01, kd=0.0), integral_band_c=100.0)
    for t in range(3600):                   # an hour at full power, 10 degC below target
        pid.update(42.0, 52.0, float(t))
    assert pid.integral == 0.0


def test_integral_only_builds_near_the_setpoint_and_is_bounded():
    pid = PID(Gains(kp=0.01, ki=0.01, kd=0.0), integral_band_c=3.0)
    for t in range(100):
        pid.update(45.0, 52.0, float(t))    # 7 degC away: outside the band
    assert pid.integral == 0.0
    for t in range(100, 100_000):
        pid.update(51.5, 52.0, float(t))
    assert 0.0 < pid.integral <= 1.0


def test_holds_a_steady_duty_at_the_setpoint():
    pid = PID(Gains(kp=0.5, ki=0.001, kd=1.0))
    pid.integral = 0.155
    assert pid.update(52.0, 52.0, 0.0) == pytest.approx(0.155)


def test_with_a_feed_forward_the_integral_corrects_down_while_the_pulses_swing_the_output_through_zero():
    # A pulse-limited bath: each relay pulse lifts the water above the setpoint, the proportional term drives
    # the output to 0 between pulses, yet the water sits above the setpoint on average. The integral must
    # still take the feed-forward down (before, it froze whenever the output was at 0).
    pid = PID(Gains(kp=1.0, ki=0.001, kd=0.0), integral_band_c=1.0, integral_max=0.15)
    for t in range(600):
        pid.update(52.3, 52.0, float(t), feedforward=0.1)   # output: 0.1 - 0.3 -> 0
    assert -0.1 <= pid.integral < -0.05                       # down, and never below -feedforward


def test_with_a_feed_forward_the_integral_still_cannot_push_below_zero_duty():
    pid = PID(Gains(kp=1.0, ki=0.01, kd=0.0), integral_band_c=10.0)
    for t in range(3600):
        pid.update(55.0, 52.0, float(t), feedforward=0.1)
    assert pid.integral == pytest.approx(-0.1)


def test_with_a_feed_forward_the_integral_may_go_below_it_only_by_the_ripple_allowance():
    # A minimum relay pulse lifts the water past the setpoint: the integral may take the output below the
    # feed-forward by integral_below_feedforward, so the next pulse waits for the water to fall below the
    # setpoint; never further.
    pid = PID(Gains(kp=1.0, ki=0.01, kd=0.0), integral_band_c=10.0, integral_below_feedforward=0.08)
    for t in range(3600):
        pid.update(52.3, 52.0, float(t), feedforward=0.1)
    assert pid.integral == pytest.approx(-0.18)
    assert pid.update(52.0 - 0.05, 52.0, 3600.0, feedforward=0.1) == 0.0   # 0.05 degC below: still off
    assert pid.update(52.0 - 0.1, 52.0, 3601.0, feedforward=0.1) > 0.0     # past 0.08 degC below: on


def test_while_the_stones_soak_up_heat_the_integral_only_moves_down():
    # Stones still soaking up heat hold the reading below the setpoint: not an error to learn upward.
    # A reading above the setpoint is never theirs (a minimum pulse's ripple on top): it is learned.
    pid = PID(Gains(kp=1.0, ki=0.01, kd=0.0), integral_band_c=10.0, integral_below_feedforward=0.08)
    for t in range(100):
        pid.update(51.7, 52.0, float(t), feedforward=0.1, integrate_up=False)
    assert pid.integral == 0.0
    for t in range(100, 200):
        pid.update(52.3, 52.0, float(t), feedforward=0.1, integrate_up=False)
    assert pid.integral < -0.1
