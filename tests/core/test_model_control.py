"""The PID's gains and feed-forward from the learned bath model (controller/core/model_control.py)."""

from __future__ import annotations

from controller.core.bath_model import BathModel
from controller.core.bath_observer import Observer
from controller.core.model_control import feedforward_duty

MODEL = BathModel(heat_rate_c_per_s=0.05, loss_per_s=2e-4, dead_time_s=20.0, lag_s=10.0, room_c=20.0, warmups=1)


def observer_reading_low(fall_c_per_s: float, seconds: int) -> Observer:
    """An observer at 45 degC, the heater off, whose probe reads ``fall_c_per_s`` faster cooling than the model."""
    obs = Observer(MODEL, 45.0)
    reading = 45.0
    for _ in range(seconds):
        obs.predict(1.0, 0.0)
        reading += obs.predicted_change_c - fall_c_per_s
        obs.correct(1.0, reading)
    return obs


def test_before_the_losses_are_measured_the_feed_forward_adds_the_heat_the_correction_still_misses():
    obs = observer_reading_low(0.002, 120)  # the bath takes ~2.4 % of full power more than the model says
    assert obs.correction_c_per_s < -0.001
    missed = -obs.correction_c_per_s / MODEL.heat_rate_c_per_s
    assert abs(feedforward_duty(MODEL, obs, 50.0) - (obs.hold_duty(50.0) + missed)) < 1e-9


def test_once_the_losses_are_measured_the_feed_forward_is_the_learned_hold_duty_alone():
    measured = BathModel(**{**MODEL.to_dict(), "loss_fits": 1})
    obs = observer_reading_low(0.002, 120)
    obs.take_model(measured)
    assert feedforward_duty(measured, obs, 50.0) == measured.hold_duty(50.0)
