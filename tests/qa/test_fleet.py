"""The fleet of realistic baths: its distribution, and `bench --fleet` on a handful of them."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from controller.cli.main import main
from controller.qa import fleet
from controller.qa.fleet import run_fault, summarize_fleet
from controller.sim import fleet as sim_fleet
from controller.sim.plant import BathParams, StoneBath


def test_the_fleet_is_drawn_from_the_documented_ranges_and_repeats_with_its_seed():
    baths = sim_fleet.draw(50, seed=3)
    assert baths == sim_fleet.draw(50, seed=3) and baths != sim_fleet.draw(50, seed=4)
    for b in baths:
        p = b.params
        assert 350 <= p.power_w <= 1800 and 3 <= p.water_kg <= 15 and 1 <= p.stones_kg <= 10
        assert 15 <= p.room_c <= 30 and 5 <= p.probe_lag_s <= 30 and 5 <= p.dead_time_s <= 60
        assert 45 <= b.setpoint_c <= 54 and p.start_c == p.room_c
        assert 30 <= p.probe_air_tau_s <= 600
        assert b.too_weak == (b.max_water_c < b.setpoint_c + sim_fleet.WEAK_MARGIN_C)


def test_the_lifted_probe_s_time_in_the_air_is_drawn_apart_and_leaves_the_baths_as_they_were():
    # Drawn from its own generator: the seed's heaters, baths and setpoints stay those the figures in
    # docs/control.md were measured on before it was drawn, and it spans the range (log-uniform).
    baths = sim_fleet.draw(200, seed=1)
    first = baths[0].params
    assert (round(first.power_w, 1), round(first.water_kg, 2)) == (544.8, 13.17)
    taus = sorted(b.params.probe_air_tau_s for b in baths)
    assert taus[0] < 60 and taus[-1] > 400 and 100 < taus[len(taus) // 2] < 200


def test_bench_fleet_runs_every_bath_twice_and_judges_the_true_water(capsys):
    try:
        assert main(["bench", "--fleet", "2", "--seed", "2", "--json"]) == 0
    finally:
        logging.disable(logging.NOTSET)  # the command quiets the injected faults' errors for its process
    report = json.loads(capsys.readouterr().out)
    assert len(report["everyday"]) == len(report["faults"]) == 2
    s = report["summary"]
    assert s["false_trips"] == 0
    assert all(f["caught"] and f["safe"] for f in report["faults"])
    for run in report["everyday"]:
        assert run["warmup_ratio"] is not None and run["overshoot_c"] < 1.0
        assert abs(run["heat_rate_error"]) <= 0.2


def test_a_setpoint_raised_while_the_water_is_above_the_lowered_one_is_no_overshoot():
    # The row of the step that raises the setpoint still carries the lowered one: a big slow bath whose stones keep
    # the water 0.5 degC above the lowered setpoint was counted as 0.5 degC of overshoot of the raised one.
    bath = sim_fleet.draw(1, seed=1)[0]
    sim = SimpleNamespace(plant=StoneBath(bath.params), controller=SimpleNamespace(setpoint_c=46.0))
    sim.plant.water_c = 43.5
    watch = fleet._Watch(bath, fleet._times(bath))
    watch.warm_s, watch.approaches[0].done = 0.0, True  # the warm-up is over
    watch.setpoint_raised(0.0)
    watch(sim, SimpleNamespace(t_s=0.0, setpoint_c=43.0))  # the row: before the raise
    sim.plant.water_c = 46.2
    watch(sim, SimpleNamespace(t_s=60.0, setpoint_c=46.0))
    assert abs(watch.overshoot_c - 0.2) < 1e-9


def test_a_welded_relay_the_interlock_never_wanted_off_counts_as_a_missed_alarm():
    # 792 W into 12.1 L + 5.5 kg of stones with the lid off can hold at most 45.6 degC (set 47.5): the heater
    # runs at full power throughout and nothing tells the weld within the run. It is no harmless fault (the lid
    # put back on, the water passes the cutoff with the heater on): the alarm is timed from the weld, and missed.
    params = BathParams("weak", power_w=792.0, element_j_per_k=198.0, element_w_per_k=39.6, water_kg=12.1,
                        pot_j_per_k=927.0, stones_kg=5.5, loss_w_per_k=8.56, lid_open_factor=3.53,
                        probe_lag_s=13.7, dead_time_s=6.0, room_c=19.3, start_c=19.3)
    bath = sim_fleet.FleetBath(41, params, 47.5, True)
    assert bath.too_weak
    run = run_fault(bath, "relay welded", seed=7)
    assert not run["caught"] and not run["safe"]
    assert summarize_fleet({"everyday": [], "faults": [run]})["faults"]["relay welded"]["unsafe"] == 1


def test_a_welded_relay_already_wanted_off_when_it_welds_is_timed_from_the_weld():
    # 1624 W into 3.5 L + 9.7 kg of stones holds 54 degC at a small duty: the weld comes between two pulses,
    # with the pin already off, and the alarm is timed from the weld itself
    params = sim_fleet.draw(200, seed=1)[20].params
    run = run_fault(sim_fleet.FleetBath(20, params, 54.0, False), "relay welded", seed=1)
    assert run["caught"] and run["safe"] and run["trip_s"] <= 180.0
