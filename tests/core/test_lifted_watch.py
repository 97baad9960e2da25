"""The lifted-probe watch: when a suspect reading stands still (the heat that tests the probe may go in)."""

from __future__ import annotations

from controller.core.bath_model import BathModel
from controller.core.lifted_watch import LiftedWatch

MODEL = BathModel(heat_rate_c_per_s=0.03, loss_per_s=2e-4, dead_time_s=30.0, lag_s=20.0, room_c=20.0,
                  warmups=1, loss_fits=1)


def _watch(readings_c: list[float], *, suspect_from: int) -> list[bool]:
    """Feed one reading a second, suspect from index ``suspect_from``; return ``stood_still`` per tick."""
    watch = LiftedWatch()
    seen = []
    for i, reading_c in enumerate(readings_c):
        watch.update(float(i), 1.0, reading_c, heat_c=0.0, loss_per_s=2e-4, suspect=i >= suspect_from,
                     model=MODEL)
        seen.append(watch.stood_still)
    return seen


def test_a_reading_at_a_turning_point_has_not_stood_still():
    # Cold stones put back: the reading first rises a degree (the heater was on), then falls as far within one
    # probe delay (50 s) and on. Its 10 s means one delay apart are equal halfway down, but it never stood
    # still: the heat that tests the probe must wait, or cold stones soak it up while the water still falls.
    half = int(MODEL.delay_s / 2)
    flat = [50.0] * 100
    up = [50.0 + i / half for i in range(1, half + 1)]
    down = [51.0 - 0.04 * i for i in range(1, 120)]
    seen = _watch(flat + up + down, suspect_from=len(flat) + half)
    assert not any(seen)


def test_a_suspect_reading_that_stays_put_for_a_probe_delay_has_stood_still():
    # The other side: a reading that fell and then stays within a 1/16 degC step for a probe delay stood still
    # (its 10 s mean of a probe delay before within a step of now: a few seconds short of the whole delay).
    fall = [50.0 - 0.1 * i for i in range(40)]
    still = [46.0] * int(MODEL.delay_s + 20)
    seen = _watch(fall + still, suspect_from=10)
    assert not any(seen[: len(fall) + int(MODEL.delay_s) - 5])
    assert seen[len(fall) + int(MODEL.delay_s)]
