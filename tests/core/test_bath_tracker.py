"""The bath tracker: the model, its observer and what the safety rules read from them."""

from __future__ import annotations

from controller.core.bath_model import BathModel
from controller.core.bath_tracker import BathTracker

ROOM_C = 20.0
LID_ON_LOSS_PER_S = 2e-4
LID_OFF_LOSS_PER_S = 3 * LID_ON_LOSS_PER_S  # what the bath really loses: the lid is off, not yet measured


def _tick(tracker: BathTracker, now_s: float, reading_c: float) -> None:
    tracker.predict(1.0, 0.0)
    tracker.learn(now_s, 1.0, 0.0, reading_c, setpoint_c=50.0, account=True)


def test_a_reading_that_stops_cooling_departs_at_the_losses_the_bath_showed_not_the_models():
    # A learned lid-on model on a lid-off bath with the heater off: the observer learns the extra losses as a
    # missed heat flow. Then something heats the water just enough to hold it (a welded element at the bath's
    # losses): the observer relearns the flow within a minute or two, but the departure the stuck-relay rule
    # judges must keep counting the losses the bath showed, or a welded relay departs too slowly to be told.
    model = BathModel(heat_rate_c_per_s=0.03, loss_per_s=LID_ON_LOSS_PER_S, dead_time_s=10.0, lag_s=10.0,
                      room_c=ROOM_C, warmups=1, loss_fits=1)
    tracker = BathTracker(model)
    water_c, now_s = 50.0, 0.0
    for _ in range(900):  # 15 min cooling with the lid off
        water_c -= LID_OFF_LOSS_PER_S * (water_c - ROOM_C)
        now_s += 1.0
        _tick(tracker, now_s, water_c)
    for _ in range(300):  # 5 min standing still: the observer takes the missed losses back
        now_s += 1.0
        _tick(tracker, now_s, water_c)
    assert tracker.observer is not None
    before_c = tracker.departure_c
    assert before_c is not None
    for _ in range(60):
        now_s += 1.0
        _tick(tracker, now_s, water_c)
    assert tracker.departure_c is not None
    rise_c = tracker.departure_c - before_c
    # A reading that stands still departs at what the bath loses: at least 0.8 x the lid-off losses a minute,
    # well above what the lid-on model alone explains (1/3 of that).
    assert rise_c >= 0.8 * LID_OFF_LOSS_PER_S * (water_c - ROOM_C) * 60
