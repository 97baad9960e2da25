"""Faults on a bath too weak for its setpoint: the heater runs at full power and the water stands still.

There a probe stuck or frozen shows what a live one would; only the heater check at the bath's limit
(the relay held off: a live probe shows the bath cooling) finds it. Judged the way the bench's fleet
judges a fault run (:func:`controller.qa.fleet.run_fault`): on the true water, within its 40 minutes.
"""

from __future__ import annotations

from controller.core.faults import FaultKind
from controller.qa.fleet import FAULT_OBSERVE_S, run_fault
from controller.sim.fleet import FleetBath
from controller.sim.plant import BathParams


def test_a_probe_stuck_at_a_bath_s_limit_is_found_although_the_last_heater_check_passed():
    # 600 W into 12.5 L + 4 kg stones with the lid off in a 28 degC room: it holds at most 46.7 degC
    # (set 52.5). The probe sticks at 45.0 degC after hours at full power, within the heater check's rest.
    params = BathParams("test", power_w=600.0, element_j_per_k=150.0, element_w_per_k=30.0, water_kg=12.48,
                        pot_j_per_k=948.6, stones_kg=3.97, loss_w_per_k=8.74, lid_open_factor=3.67,
                        probe_lag_s=29.1, dead_time_s=43.9, room_c=28.0, start_c=28.0)
    run = run_fault(FleetBath(0, params, 52.5, True), "probe stuck at 45.0")
    assert run["reported"] == FaultKind.SENSOR
    assert run["trip_s"] < FAULT_OBSERVE_S
    assert run["peak_water_c"] < 52.5
