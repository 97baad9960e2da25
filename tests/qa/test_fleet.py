"""The fleet of realistic baths: its distribution, and `bench --fleet` on a handful of them."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from controller.cli.main import main
from controller.qa import fleet
from controller.sim import fleet as sim_fleet
from controller.sim.plant import StoneBath


def test_the_fleet_is_drawn_from_the_documented_ranges_and_repeats_with_its_seed():
    baths = sim_fleet.draw(50, seed=3)
    assert baths == sim_fleet.draw(50, seed=3) and baths != sim_fleet.draw(50, seed=4)
    for b in baths:
        p = b.params
        assert 350 <= p.power_w <= 1800 and 3 <= p.water_kg <= 15 and 1 <= p.stones_kg <= 10
        assert 15 <= p.room_c <= 30 and 5 <= p.probe_lag_s <= 30 and 5 <= p.dead_time_s <= 60
        assert 45 <= b.setpoint_c <= 54 and p.start_c == p.room_c
        assert b.too_weak == (b.max_water_c < b.setpoint_c + sim_fleet.WEAK_MARGIN_C)


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
