"""The bath model: learning it from a warm-up and a hold, the observer, the energy budget."""

from __future__ import annotations

import random

import pytest

from controller.core.bath_learning import Learner
from controller.core.bath_model import BathModel
from controller.core.bath_observer import EnergyBudget, Observer
from controller.sim.plant import PLANTS, StoneBath


def _probe(plant: StoneBath, rng: random.Random) -> float:
    return round((plant.probe_c() + rng.gauss(0.0, 0.03)) * 16) / 16  # noise, 1/16 degC steps


def _warm_up(name: str, *, seconds: int) -> tuple[Learner, StoneBath]:
    plant = StoneBath(PLANTS[name])
    learner = Learner(BathModel())
    rng = random.Random(1)
    for t in range(seconds):
        plant.advance(1.0, True)
        reading = _probe(plant, rng)
        learner.observe(float(t), reading, plant.water_c, True, 52.0, 1.0)
    return learner, plant


def _true_rate(name: str) -> float:
    p = PLANTS[name]
    return p.power_w / (p.water_kg * 4186.0 + p.pot_j_per_k + p.stones_kg * 840.0)


@pytest.mark.parametrize("name", ["reference", "small", "laggy", "large-open"])
def test_one_warm_up_learns_the_full_power_heating_rate_within_20_percent(name):
    learner, _ = _warm_up(name, seconds=900)
    assert learner.model.heat_rate_c_per_s == pytest.approx(_true_rate(name), rel=0.2)


def test_a_warm_up_learns_how_far_the_probe_runs_behind_the_water():
    learner, _ = _warm_up("laggy", seconds=900)
    p = PLANTS["laggy"]
    # the element's own 5 s adds to the probe's dead time and lag
    assert learner.model.delay_s == pytest.approx(p.dead_time_s + p.probe_lag_s + 5.0, rel=0.35)


def test_the_warm_up_counts_once_the_heater_leaves_full_power():
    learner, _ = _warm_up("reference", seconds=600)
    assert learner.model.warmups == 0
    learner.observe(600.0, 40.0, 42.0, False, 52.0, 1.0)
    assert learner.model.warmups == 1 and learner.model.learned


def test_holding_learns_the_loss_rate_from_the_average_duty():
    model = BathModel(heat_rate_c_per_s=0.03, loss_per_s=1e-4, warmups=1, room_c=20.0)
    learner = Learner(model)
    # 30 degC above the room at 30 % duty: k = 0.03 * 0.3 / 30 = 3e-4
    for t in range(int(3 * 900) + 3):
        learner.observe(float(t), 50.0, 50.0, t % 10 < 3, 50.0, 1.0)
    assert learner.model.loss_fits >= 2
    assert 1.5e-4 < learner.model.loss_per_s <= 3e-4


def test_a_reading_that_falls_away_faster_than_the_bath_can_cool_is_suspect():
    model = BathModel(warmups=1)
    obs = Observer(model, 52.0)
    for _ in range(10):
        obs.step(1.0, 0.0, 45.0)
    assert obs.suspect
    assert obs.water_c > 52.0 - 10 * obs.max_fall_rate_c_per_s - 0.1   # followed at a bounded rate
    assert obs.guard_water_c == pytest.approx(52.0, abs=0.1)           # the guard keeps the water as it was


def test_a_suspect_reading_is_believed_again_once_it_rises_with_heat():
    model = BathModel(warmups=1)
    obs = Observer(model, 52.0)
    for _ in range(10):
        obs.step(1.0, 0.0, 45.0)
    reading = 45.0
    for _ in range(600):
        reading += 0.01
        obs.step(1.0, 1.0, reading)
    assert not obs.suspect
    assert obs.guard_water_c == pytest.approx(obs.water_c)


def test_the_observer_predicts_the_water_ahead_of_a_lagging_probe():
    model = BathModel(heat_rate_c_per_s=0.05, loss_per_s=1e-4, dead_time_s=30.0, lag_s=20.0, warmups=1)
    obs = Observer(model, 30.0)
    for _ in range(200):
        obs.step(1.0, 1.0, None)
    assert obs.water_c - obs.probe_c == pytest.approx(0.05 * 50.0, rel=0.15)


def test_the_energy_budget_adds_up_heat_a_stuck_probe_does_not_show():
    budget = EnergyBudget()
    for _ in range(100):
        budget.step(1.0, reading_c=45.0, predicted_change_c=0.03, expected_rise_c=0.02)
    assert budget.unconfirmed_c > 1.0


def test_the_energy_budget_stays_empty_while_the_probe_follows_the_heat():
    budget = EnergyBudget()
    reading = 30.0
    for _ in range(600):
        reading += 0.03
        budget.step(1.0, reading_c=round(reading * 16) / 16, predicted_change_c=0.03, expected_rise_c=0.02)
    assert budget.unconfirmed_c < 0.2


def test_a_cold_top_up_with_no_heat_due_costs_the_budget_nothing():
    budget = EnergyBudget()
    for i in range(120):
        budget.step(1.0, reading_c=50.0 - min(6.0, 0.2 * i), predicted_change_c=0.0, expected_rise_c=0.0)
    assert budget.unconfirmed_c == 0.0


def test_a_saved_model_out_of_range_is_refused():
    good = BathModel(warmups=2).to_dict()
    assert BathModel.from_dict(good) == BathModel(warmups=2)
    with pytest.raises(ValueError, match="outside"):
        BathModel.from_dict({**good, "heat_rate_c_per_s": 5.0})
    with pytest.raises(ValueError, match="not a number"):
        BathModel.from_dict({**good, "lag_s": "long"})


def test_the_model_is_said_in_a_therapists_words():
    model = BathModel(heat_rate_c_per_s=0.035, dead_time_s=20.0, lag_s=10.0, warmups=1)
    assert model.describe(power_w=1200.0) == ("1.2 kW into about 8 L (water and stones): 2.1 degC a minute "
                                              "at full power; the probe lags about 30 s")
    assert "at full power" in model.describe()


def test_a_heater_too_weak_for_its_bath_is_said_plainly():
    model = BathModel(heat_rate_c_per_s=0.01, loss_per_s=0.01 / 28.0, room_c=21.0, warmups=1)
    assert model.max_water_c == pytest.approx(49.0)
    assert "can hold at most about 49 degC" in model.too_weak_message(52.0)
    assert model.too_weak_message(45.0) is None


def test_a_noisy_probe_teaches_the_observer_no_heat_flow():
    # A steady bath read through a noisy probe (sigma 0.2 degC, a DS18B20 on a long cable): the readings
    # scatter both ways, so nothing the bath does is missing from the model. Learned faster one way than
    # the other, the scatter became a heat flow as large as the losses: the estimate sat above the water.
    model = BathModel(heat_rate_c_per_s=0.03, loss_per_s=1.6e-4, room_c=21.0, warmups=1)
    hold_duty = model.hold_duty(52.0)
    obs = Observer(model, 52.0)
    rng = random.Random(1)
    estimates = []
    for t in range(3600):
        on_s = 1.0 if t % 100 < 100 * hold_duty else 0.0  # the pulses that hold 52 degC
        obs.step(1.0, on_s, 52.0 + rng.gauss(0.0, 0.2))
        estimates.append(obs.water_c)
    losses_c_per_s = model.loss_per_s * (52.0 - model.room_c)
    assert abs(obs.drift_c_per_s) < 0.2 * losses_c_per_s
    assert sum(estimates[-600:]) / 600 == pytest.approx(52.0, abs=0.1)
