"""The relay output and time-proportioning, on mock pins in simulated time."""

from __future__ import annotations

import pytest

from controller.core.relay import Relay, TimeProportioner


def test_relay_is_claimed_off_and_records_switches_with_simulated_times(pins, clock):
    relay = Relay(pin=17, min_switch_s=10.0, pin_factory=pins)
    pin = pins.pin(17)
    assert pin.function == "output" and pin.state is False
    relay.drive(True, 100.0)
    clock.advance(20.0)
    relay.drive(False, 120.0)
    assert [level for _, level in pin.changes] == [False, True, False]
    assert relay.switch_ons == 1


def test_minimum_on_and_off_times_are_respected(pins):
    relay = Relay(pin=17, min_switch_s=10.0, pin_factory=pins)
    assert relay.drive(True, 0.0) is True
    assert relay.drive(False, 5.0) is True       # min on-time not served yet
    assert relay.drive(False, 10.0) is False
    assert relay.drive(True, 15.0) is False      # min off-time not served yet
    assert relay.drive(True, 20.0) is True


def test_a_forced_off_ignores_the_minimum_on_time(pins):
    relay = Relay(pin=17, min_switch_s=10.0, pin_factory=pins)
    relay.drive(True, 0.0)
    relay.off(1.0)
    assert relay.is_on is False and pins.pin(17).state is False


def test_active_low_relay_drives_the_pin_high_for_off(pins):
    relay = Relay(pin=22, active_high=False, min_switch_s=1.0, pin_factory=pins)
    pin = pins.pin(22)
    assert pin.state is True            # off = high for an active-low module, from the start
    relay.drive(True, 0.0)
    assert pin.state is False


def simulate(tp: TimeProportioner, duty: float, seconds: int, min_switch_s: float):
    """Run a proportioner against a relay obeying the timing rules; return on-seconds and switch-ons."""
    on, last_switch, on_s, ons, edges = False, -1e9, 0, 0, []
    for t in range(seconds):
        want = tp.want_on(float(t), duty, on)
        if want != on and t - last_switch >= min_switch_s:
            on, last_switch = want, t
            edges.append((t, on))
            ons += on
        on_s += on
    return on_s, ons, edges


@pytest.mark.parametrize("duty", [0.05, 0.155, 0.3, 0.5, 0.85, 0.95])
@pytest.mark.parametrize(("window_s", "min_s"), [(60.0, 10.0), (10.0, 1.0)])
def test_average_power_equals_the_duty_with_at_most_one_switch_on_per_window(duty, window_s, min_s):
    tp = TimeProportioner(window_s=window_s, min_switch_s=min_s)
    seconds = 36_000
    on_s, ons, edges = simulate(tp, duty, seconds, min_s)
    assert on_s / seconds == pytest.approx(duty, abs=0.01)
    assert ons <= seconds / window_s + 1
    lengths = [b[0] - a[0] for a, b in zip(edges, edges[1:])]
    assert min(lengths) >= min_s


def test_low_duty_gives_minimum_length_pulses_in_a_longer_cycle():
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    _, _, edges = simulate(tp, 0.1, 600, 10.0)
    ons = [t for t, level in edges if level]
    offs = [t for t, level in edges if not level]
    assert offs[0] - ons[0] == 10                 # pulse held at the 10 s minimum
    assert ons[1] - ons[0] == 100                 # cycle stretched: 10 s / 0.1


def test_zero_and_full_duty():
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    assert simulate(tp, 0.0, 600, 10.0)[0] == 0
    tp.reset()
    assert simulate(tp, 1.0, 600, 10.0)[:2] == (600, 1)


def test_release_for_exit_leaves_the_pin_driven_off_not_floating(pins):
    relay = Relay(pin=17, min_switch_s=1.0, pin_factory=pins)
    relay.drive(True, 0.0)
    relay.release(close=False)
    pin = pins.pin(17)
    assert pin.function == "output" and pin.state is False    # closing would make it a floating input
    relay.release()                                            # and a later full release still works
    assert relay.device.closed
