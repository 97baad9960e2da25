"""The relay output and time-proportioning, on mock pins in simulated time."""

from __future__ import annotations

import math

import pytest

from controller.core.relay import RIPPLE_SHARE, Relay, TimeProportioner


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


def simulate(tp: TimeProportioner, duty, seconds: int, min_switch_s: float):
    """Run a proportioner against a relay obeying the timing rules; return on-seconds, switch-ons and the
    (second, level) edges. ``duty``: a constant, or a function of the second."""
    on, last_switch, on_s, ons, edges = False, -1e9, 0, 0, []
    for t in range(seconds):
        want = tp.want_on(float(t), duty(t) if callable(duty) else duty, on)
        if want != on and t - last_switch >= min_switch_s:
            on, last_switch = want, t
            edges.append((t, on))
            ons += on
        on_s += on
    return on_s, ons, edges


@pytest.mark.parametrize("duty", [0.05, 0.155, 0.3, 0.5, 0.85, 0.95])
@pytest.mark.parametrize(("window_s", "min_s"), [(60.0, 10.0), (10.0, 1.0)])
def test_average_power_equals_the_duty_with_at_most_one_switch_on_per_cycle(duty, window_s, min_s):
    tp = TimeProportioner(window_s=window_s, min_switch_s=min_s)
    seconds = 36_000
    on_s, ons, edges = simulate(tp, duty, seconds, min_s)
    assert on_s / seconds == pytest.approx(duty, abs=0.01)
    assert ons <= seconds / math.floor(tp.cycle_s(duty)) + 1   # whole-second ticks round a cycle up
    lengths = [b[0] - a[0] for a, b in zip(edges, edges[1:])]
    assert min(lengths) >= min_s


@pytest.mark.parametrize("duty", [0.3, 0.5, 0.7])
def test_mid_duty_shortens_the_cycle_so_one_cycle_swings_the_water_less_than_a_minimum_pulse(duty):
    # Over one cycle the water rises (P/C) d(1-d) cycle (net of the losses the duty makes up): at 50 % and
    # a 60 s window, 1.5x what one 10 s pulse gives. The cycle shortens until it is RIPPLE_SHARE of that.
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    _, _, edges = simulate(tp, duty, 3600, 10.0)
    ons = [t for t, level in edges if level]
    cycle_s = (ons[-1] - ons[1]) / (len(ons) - 2)
    assert cycle_s < 60.0
    assert duty * (1 - duty) * cycle_s <= RIPPLE_SHARE * 10.0 + (1 - duty) * 1.0  # a pulse ends on a whole tick
    assert min(b[0] - a[0] for a, b in zip(edges, edges[1:])) >= 10       # the relay's minimum on/off


@pytest.mark.parametrize("duty", [0.155, 0.9])
def test_low_and_high_duties_keep_the_full_window_and_its_switch_ons(duty):
    # A lid-on bath holding at ~15 % swings less than one minimum pulse in 60 s: a mechanical relay there
    # keeps its ~55 switch-ons an hour.
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    assert tp.cycle_s(duty) >= 60.0
    assert simulate(tp, duty, 3600, 10.0)[1] <= 60


def test_a_pulse_the_relay_held_to_its_minimum_on_time_counts_in_full():
    # The duty asks for a moment of heat and falls to 0; the relay stays on its 10 s minimum. Those 10 s
    # were delivered: at a duty of 0.05 the next pulse is due 10 / 0.05 = 200 s after the first.
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    _, _, edges = simulate(tp, lambda t: 0.05 if t == 0 or t >= 20 else 0.0, 400, 10.0)
    assert [t for t, level in edges if level][:2] == [0, 200]


def test_a_duty_rising_after_a_minimum_pulse_starts_the_next_at_the_cycle_it_asks_for():
    # A 10 s pulse at 10 % (a 100 s cycle), then the water dips and the duty rises to 50 %: the next pulse
    # comes after 50 %'s 32 s cycle, not after the window (60 s) or the small duty's 100 s.
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    _, _, edges = simulate(tp, lambda t: 0.1 if t <= 10 else 0.5, 80, 10.0)
    assert [t for t, level in edges if level][:2] == [0, 32]


def test_a_duty_rising_after_a_mid_duty_pulse_starts_the_next_within_that_pulse_s_cycle():
    # A 50 % pulse (16 s of a 32 s cycle) while the duty then rises toward 90 %: the gap is that cycle's,
    # not a 60 s one's (a short pulse with a long gap would deliver half the heat asked for).
    tp = TimeProportioner(window_s=60.0, min_switch_s=10.0)
    _, _, edges = simulate(tp, lambda t: 0.5 if t <= 16 else 0.9, 60, 10.0)
    assert edges[:3] == [(0, True), (16, False), (32, True)]


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
