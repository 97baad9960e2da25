"""``simulate --ready-at``: after one earlier run on the same bath and state dir, the water is
ready at most 10 min before the "ready by" time and never after it, on every built-in bath."""

from __future__ import annotations

import pytest

from controller.core import config as cfgmod
from controller.core.events import EventKind
from controller.sim.plant import PLANTS, load_plant
from controller.sim.simulation import Simulation

READY_AT_S = 9000.0
EARLIEST_S = READY_AT_S - 600.0
BAND_C = 0.5


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_ready_at_has_the_water_ready_within_ten_minutes_before_and_never_late(tmp_path, plant):
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    with Simulation(cfg, make_plant=load_plant(plant), keep_trace=False) as earlier:
        earlier.run(3600)  # a day's warm-up: the bath and how long its warm-ups take are learned
        assert earlier.controller.planner.warmups == 1
    with Simulation(cfg, make_plant=load_plant(plant), ready_at_s=READY_AT_S) as sim:
        assert sim.controller.bath.learned  # restored from the state dir, not learned afresh
        sim.run(READY_AT_S + 600)
        sp = sim.cfg.control.setpoint_c
        started = [e.monotonic_s - sim.t0 for e in sim.controller.events.since(0) if e.kind == EventKind.AUTO_ON]
        assert len(started) == 1
        assert not any(level for t, level in sim.pin.changes if t - sim.t0 < started[0])  # off until the start
        in_band = [abs(r.water_c - sp) <= BAND_C for r in sim.trace]
        first_s = sim.trace[in_band.index(True)].t_s
        settled_s = max(r.t_s for r, ok in zip(sim.trace, in_band) if not ok) + 1.0  # in the band for good
        assert first_s >= EARLIEST_S and settled_s <= READY_AT_S, (first_s, settled_s)


def test_a_second_ready_at_run_on_the_same_state_dir_switches_on_again(tmp_path):
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    for run in range(2):
        with Simulation(cfg, ready_at_s=1200.0, keep_trace=False) as sim:
            sim.run(1300)
            started = [e for e in sim.controller.events.since(0) if e.kind == EventKind.AUTO_ON]
            assert len(started) == 1 and not sim.controller.switched_off, f"run {run + 1}"
