"""The time-to-ready estimate the dashboard shows: close to the truth, and never hours off
right after the heater comes back on (a rate measured while it was off would promise hours)."""

from __future__ import annotations

import pytest

from controller.core.status import Mode
from controller.sim.plant import load_plant
from controller.sim.simulation import Simulation, parse_injection
from tests.helpers import run_ticks


def _estimates_until_ready(sim: Simulation, *, limit_s: float) -> tuple[list[tuple[float, float | None]], float]:
    """(simulated time, ready_in_s) for every warming tick, and the time the stones were ready."""
    shown = []
    while sim.t_s < limit_s:
        sim.step()
        status = sim.controller.status()
        if status.mode == Mode.READY:
            return shown, sim.t_s
        if status.mode == Mode.WARMING:
            shown.append((sim.t_s, status.ready_in_s))
    raise AssertionError(f"not ready within {limit_s:.0f} s")


def _assert_close_to_the_truth(shown, ready_at_s: float, *, from_s: float, within: float) -> None:
    estimates = [(t, eta) for t, eta in shown if eta is not None]
    assert estimates, "no estimate at all while warming"
    first_s = estimates[0][0] - from_s
    assert first_s <= 180, f"the first estimate came {first_s:.0f} s after heating began"
    for t, eta in estimates:
        truth = ready_at_s - t
        assert abs(eta - truth) <= within * truth, f"at {t:.0f} s: estimated {eta:.0f} s, ready in {truth:.0f} s"


def test_time_to_ready_right_after_an_acknowledge_is_close_to_the_truth():
    # The probe is out for 5 minutes: the heater is off, the water is flat. Then the fault is acknowledged.
    with Simulation(injections=[parse_injection("unplug@240:300")]) as sim:
        sim.run(600)
        sim.controller.acknowledge_fault(source="test")
        ack_s = sim.t_s
        shown, ready_at_s = _estimates_until_ready(sim, limit_s=4000)
    _assert_close_to_the_truth(shown, ready_at_s, from_s=ack_s, within=0.2)


@pytest.mark.parametrize("plant", ["reference", "small", "large-open", "laggy"])
def test_time_to_ready_from_cold_is_close_to_the_truth(plant):
    with Simulation(make_plant=load_plant(plant)) as sim:
        shown, ready_at_s = _estimates_until_ready(sim, limit_s=4 * 3600)
    _assert_close_to_the_truth(shown, ready_at_s, from_s=0.0, within=0.3)


@pytest.mark.parametrize("after_the_boundary_c, end_c", [(20.9375, 21.0), (20.875, 20.9375)], ids=["same", "lower"])
def test_no_time_to_ready_while_the_window_does_not_warm_end_to_end(make_controller, clock, tree,
                                                                     after_the_boundary_c, end_c):
    # Ticks off the whole second, as on a real clock (1.1 s apart): the two 45 s halves of the rate's window
    # share no reading at their boundary. One DS18B20 step up just before it and a drop just after make both
    # halves rise by a step, yet the window's last reading is no warmer than its first: that is no rate (it
    # was a division by zero, ending the tick, or a time to ready hours below zero).
    controller = make_controller()
    controller.set_duty_override(lambda _now_s, _temp_c, _setpoint_c: 0.0)  # the water is flat: heater off
    temps = [21.0] * 40 + [21.0625, after_the_boundary_c] + [end_c] * 40
    statuses = run_ticks(controller, clock, tree, temps, dt_s=1.1)
    assert statuses[-1].mode == Mode.WARMING and statuses[-1].ready_in_s is None
