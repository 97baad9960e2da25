"""A reading that cools as a probe in the air does: toward the room, at a rate in proportion to its excess.

A body with no heat of its own cools by Newton's law, ``dT/dt = -(T - room) / tau``: its excess over
the room falls by the same *factor* in every minute. A probe lifted out of the bath does exactly that,
with the time constant of its sheath in the air: about 30 s wet and waved about, about 10 min dry in
still air (docs/control.md, "The fleet"). The water under a heater at full power does not: the heat
holds it up, so it cools toward a limit above the room, and its excess falls by a smaller factor from
one minute to the next; stones put back cold soak up heat at a rate that dies away within minutes,
and that rate, not the excess, sets the fall.

Most of a lifted probe's falls are faster than any bath cools by itself, and the observer holds them
*suspect* (:mod:`controller.core.bath_observer`). A slow one, from a bath whose losses were learned
with the lid off, falls no faster than that bath would with its lid taken off at full power: only
holding the heater off tells them apart (docs/safety.md, "Known limits"). :func:`cools_like_air`
says when the reading looks like that, and :class:`AirCourse` is where a probe in the air goes
next, which :class:`controller.core.heating_watch.HeatingWatch` holds the heater off against: a
probe in the water leaves that course (the water cools faster without the heat), one in the air keeps
to it.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from controller.core.guards import ReadingHistory

AIR_SPAN_S = 120.0         # the reading is judged over the last two minutes ...
AIR_SEGMENTS = 3           # ... in three segments of 37 s, between 10 s means at their ends: a step (water poured
                           # in, seen through the probe's delay) falls in one segment, a body cooling in all
AIR_MEAN_S = 10.0          # ... each end a 10 s mean: the DS18B20's 1/16 degC steps must not decide
AIR_FALL_MIN_C = 0.5       # each segment fell at least this (8 steps: the rate's noise is a few per cent)
AIR_AGREE = 0.15           # its excess over the room fell by the same factor in every segment, within this share
                           # of the rate: a probe in the air does (to a few per cent, the room as learned);
                           # stones put back cold soak up less heat each minute (they warm within minutes),
                           # and water cooling toward a limit well above the room slows by more than that.
                           # (A weak heater's limit near the room looks like air: the check tells.)
AIR_LOSS_FACTOR = 1.5      # ... faster than the learned losses alone cool the water (the heater off), by this
                           # factor (the learned losses' own error): at full power only a lid taken off, a
                           # dead element or a probe out of the water does that
AIR_EXCESS_MIN_C = 3.0     # a reading this close to the room is not judged: its fall is the noise's size
AIR_TAU_MAX_S = 900.0      # a probe in still air cools with 10 min at most (docs/control.md, "The fleet"): slower,
                           # by 1.5 x that, is water (a lid off a laggy, stone-heavy bath fitted 21-25 min)
AIR_HELD_BRIEF_S = 5.0     # the relay held off this long or less (bad reads, a tick each) leaves no fall to show;
                           # longer (a check, the guard, a person), the readings of a probe delay later are not judged


class AirCourse(NamedTuple):
    """Where a probe cooling in the air goes: toward ``room_c`` from ``excess_c`` above it at ``at_s``,
    its excess falling by ``exp(-rate_per_s)`` a second."""

    at_s: float
    room_c: float
    excess_c: float
    rate_per_s: float

    def course_c(self, now_s: float) -> float:
        """The reading at ``now_s`` (degC) if it goes on cooling as it did."""
        return self.room_c + self.excess_c * math.exp(-self.rate_per_s * (now_s - self.at_s))


def cools_like_air(history: ReadingHistory, now_s: float, *, room_c: float, loss_per_s: float) -> AirCourse | None:
    """The reading's course if, over the last :data:`AIR_SPAN_S`, it fell toward ``room_c`` (degC) as a body with
    no heat does, faster than water with learned losses ``loss_per_s`` (1/s) cools with no heat and as fast as a
    probe in still air (:data:`AIR_TAU_MAX_S`); else None.

    ``history`` must hold the last :data:`AIR_SPAN_S` seconds of readings."""
    kept = history.kept
    if not kept or kept[0][0] > now_s - AIR_SPAN_S + 1.0:
        return None  # not two minutes of readings yet
    if kept[0][1] - kept[-1][1] < AIR_FALL_MIN_C:
        return None  # not even one segment's worth of fall end to end (single readings: room for a noisy probe's
                     # scatter): the quick answer at full power, every tick of a warm-up, before four means
    # 10 s means at the segments' ends, the last ending now; each mean stands for its window's centre
    segment_s = (AIR_SPAN_S - AIR_MEAN_S) / AIR_SEGMENTS
    starts = [now_s - AIR_SPAN_S + i * segment_s for i in range(AIR_SEGMENTS + 1)]
    means = [history.mean_c(t, t + AIR_MEAN_S) for t in starts]
    if any(a - b < AIR_FALL_MIN_C for a, b in zip(means, means[1:], strict=False)):
        return None
    excess = [c - room_c for c in means]
    if excess[-1] < AIR_EXCESS_MIN_C:
        return None
    rates = [math.log(a / b) / segment_s for a, b in zip(excess, excess[1:], strict=False)]
    if max(rates) - min(rates) > AIR_AGREE * max(rates):
        return None
    if rates[-1] < max(AIR_LOSS_FACTOR * loss_per_s, 1 / AIR_TAU_MAX_S):
        return None
    return AirCourse(starts[-1] + AIR_MEAN_S / 2, room_c, excess[-1], rates[-1])
