"""The bath tracker: the model, its observer and what the safety rules read from them."""

from __future__ import annotations

import pytest

from controller.core.bath_model import BathModel
from controller.core.bath_tracker import BathTracker
from controller.core.guards import LIFTED_TEST_C

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


def _hold_then_fall(tracker: BathTracker, now_s: float, readings_c: list[float]) -> list[tuple[bool, float]]:
    """Tick through ``readings_c``, the heater off; return (suspect, guard water less the observer's) per tick."""
    seen = []
    for reading_c in readings_c:
        now_s += 1.0
        _tick(tracker, now_s, reading_c)
        obs = tracker.observer
        assert obs is not None and tracker.guard_water_c is not None
        seen.append((obs.suspect, tracker.guard_water_c - obs.guard_water_c))
    return seen


def test_the_guard_holds_a_suspect_reading_s_water_lower_until_it_stands_still_then_lets_the_test_heat_in():
    # A learned bath holding 50 degC; cold stones and cold water put back: the reading falls 4 degC in a minute,
    # faster than the bath can cool by itself (suspect), then keeps sinking 0.3 degC a minute while the stones
    # soak up heat, then stands still. Until it stands still, heat the guard lets in could not show: the guard
    # takes the water LIFTED_TEST_C warmer. Once it stands still, the test heat may go in: a probe in the water
    # rises with it, one out of it does not (the lifted-probe rule), the water at most at the guard.
    model = BathModel(heat_rate_c_per_s=0.03, loss_per_s=LID_ON_LOSS_PER_S, dead_time_s=30.0, lag_s=20.0,
                      room_c=ROOM_C, warmups=1, loss_fits=1)
    tracker = BathTracker(model)
    _hold_then_fall(tracker, 0.0, [50.0] * 120)
    fall = [50.0 - 4.0 * i / 60 for i in range(1, 61)]
    sinking = [46.0 - 0.3 * i / 60 for i in range(1, 301)]
    still = [round(sinking[-1] * 16) / 16] * 120
    seen = _hold_then_fall(tracker, 120.0, fall + sinking + still)
    assert all(suspect for suspect, _ in seen[30:])
    assert all(extra == pytest.approx(LIFTED_TEST_C) for _, extra in seen[30:60 + 300])
    assert all(extra == pytest.approx(0.0) for _, extra in seen[-60:])
