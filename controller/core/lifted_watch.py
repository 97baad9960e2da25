"""The lifted-probe rule: heat went in that a probe in the water would have shown, and it shows nothing.

A reading that fell away faster than the bath can cool is *suspect* (the observer,
:mod:`controller.core.bath_observer`): cold water poured in, or the probe out of the water.
The heat tells them apart. Heat that warms the water (the heater's, less the losses at the
water the reading says) shows at a probe in the water a probe delay later; stones put back
cold take at most 40 % of it first. So once the reading has really fallen (a dead element in a
bath the model thought warming departs from it too, but its reading does not fall) and stands
still, LIFTED_HEAT_C of net heat given *since it stood still* (enough for the water to rise
CONFIRM_RISE_C, which believes the reading again) and no rise of two 1/16 degC steps
LIFTED_DELAYS probe delays later says the probe is not in the water.

The heat that tells must go in where it can show. Until the suspect reading first stands still, the
guard takes the water LIFTED_TEST_C warmer than the heat says (:attr:`stood_still`,
:attr:`controller.core.bath_tracker.BathTracker.guard_water_c`); then it lets that in at once, once in
each suspect spell: a probe in the water rises with it, one out of it does not, and the water is at most
at the guard. Held at the guard from the fall, all the stones put back cold with a cold top-up soaked up
the little heat the guard let in, and the reading never rose.

What this must not take for a lifted probe: cold water poured in, or stones put back cold, read
through the probe's lag. Their reading is still falling (the count waits for it to stand still),
and while the guard holds the heater back the heat given barely covers the losses at the cold
water the reading says (the count waits for the net heat, and forgets it when the losses take it
back). The watch is kept through a latched fault: acknowledged with the probe still out, the
reading has fallen as far from the same top, and the rule trips again (at once, unless the
losses took the counted heat back meanwhile) instead of taking the fallen reading as its new
top. The numbers are in
:mod:`controller.core.guards`.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

from controller.core.bath_model import DEAD_MAX_S, LAG_MAX_S, BathModel
from controller.core.guards import LIFTED_FALL_C, LIFTED_HEAT_C, LIFTED_STILL_C, STUCK_AVERAGE_S, ReadingHistory


class LiftedWatch:
    """Net heat given since a suspect reading stood still, and since when it was enough to show."""

    def __init__(self) -> None:
        self.heat_c = 0.0                 # net heat since the reading stood still (degC of the bath)
        self.since_s: float | None = None  # when that reached LIFTED_HEAT_C
        self.top_c: float | None = None    # the warmest reading of the probe delay before it became suspect
        self.low_c = 0.0                   # the lowest 10 s mean of the reading since the heat reached LIFTED_HEAT_C
        self.still = False                 # the suspect reading stands still this tick (see _still)
        self.stood_still = False           # ... or did since it fell: the test heat may go in
        self._readings = ReadingHistory(DEAD_MAX_S + LAG_MAX_S + STUCK_AVERAGE_S)

    def update(self, now_s: float, dt_s: float, reading_c: float | None, *, heat_c: float, loss_per_s: float,
               suspect: bool, model: BathModel) -> None:
        """Account one tick: ``heat_c`` the heater gave (degC of the bath), the losses at ``loss_per_s`` (1/s)
        at the water the reading says; ``suspect``: the reading fell away and has not risen with heat since."""
        if reading_c is not None:
            self._readings.add(now_s, reading_c)
        self.still = False
        if not suspect:
            self.heat_c, self.since_s, self.top_c, self.stood_still = 0.0, None, None, False
            return
        if reading_c is None:
            return
        if self.top_c is None:
            self.top_c = max(c for t, c in self._readings.kept if t >= now_s - model.delay_s)
        mean_c = self._mean_c(now_s)
        if not self._still(now_s, mean_c, model):
            self.heat_c, self.since_s = 0.0, None  # still falling (or rising): the probe shows something
            return
        self.still = self.stood_still = True
        self.heat_c += heat_c - loss_per_s * max(0.0, reading_c - model.room_c) * dt_s
        if self.heat_c < LIFTED_HEAT_C:
            self.heat_c, self.since_s = max(0.0, self.heat_c), None  # the losses took it back: nothing to show
        elif self.since_s is None:
            self.since_s, self.low_c = now_s, mean_c
        elif mean_c - self.low_c >= 2 * LIFTED_STILL_C:
            self.heat_c, self.since_s = 0.0, None  # it rose with the heat: in the water; more heat must go unseen
        else:
            self.low_c = min(self.low_c, mean_c)

    def unseen_s(self, now_s: float, model: BathModel) -> float:
        """How long ago enough heat to show went in, the reading standing still since (0: not so)."""
        if self.since_s is None or self.top_c is None or not self._readings.kept:
            return 0.0
        fallen_c = self.top_c - self._mean_c(now_s)
        return now_s - self.since_s if fallen_c >= LIFTED_FALL_C else 0.0

    def _mean_c(self, now_s: float) -> float:
        return self._readings.mean_c(now_s - STUCK_AVERAGE_S, now_s)

    def _still(self, now_s: float, mean_c: float, model: BathModel) -> bool:
        """The reading moved less than one 1/16 degC step over the last probe delay: its 10 s means at the
        start, the middle and the end (``mean_c``) of it. Two alone pass at a turning point (the reading up,
        then down as far), where the heat that tests the probe would go in while the water still falls."""
        delay_s = model.delay_s
        means_c = [self._readings.mean_c(now_s - back_s, now_s - back_s + STUCK_AVERAGE_S)
                   for back_s in (delay_s, (delay_s + STUCK_AVERAGE_S) / 2)]
        return max(*means_c, mean_c) - min(*means_c, mean_c) < LIFTED_STILL_C
