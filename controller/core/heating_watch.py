"""The heating watch and the heater check: does the element heat, does the relay open, does the probe live?

With the heater at full power the reading must rise (:meth:`HeatingWatch.period_s`). When it
does not, the interlock holds the relay off for a moment, the *heater check*, and looks at what
the reading does then:

* it falls faster than before: the element heated and the relay opened; the bath is at its
  limit (a lid off). Said plainly, not checked again for HEATER_QUIET_S;
* it cools as fast as before: the element is not heating (a ``heating`` fault);
* a bath at its limit that does not cool with the heater off: the relay is stuck on, or the
  probe is frozen (a ``stuck_relay`` fault: unplug the heater).

A bath at its limit, or held at full power just below its setpoint, shows nothing of its heater,
relay or probe while the reading stands still; the check is what tells. docs/safety.md holds the
rule table. The thresholds are in :mod:`controller.core.guards`.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from controller.core.bath_model import HEAT_RATE_MIN_C_PER_S, BathModel
from controller.core.faults import FaultKind
from controller.core.guards import (
    HEATER_CHECK_DELAYS,
    HEATER_CHECK_DIP_C,
    HEATER_CHECK_SHARE,
    HEATER_CHECK_SLOPE_S,
    HEATER_LIMIT_S,
    HEATER_QUIET_S,
    HEATER_STEADY_SHARE,
    HEATER_STILL_S,
    HEATER_STUCK_SHARE,
    HEATING_BELOW_C,
    HEATING_DELAY_MARGIN,
    HEATING_FALL_C,
    HEATING_MAX_S,
    HEATING_MIN_DUTY,
    HEATING_RATE_SHARE,
    HEATING_RISE_C,
    OVER_TARGET_C,
    STUCK_AVERAGE_S,
    ReadingHistory,
)


class _Check(NamedTuple):
    since_s: float
    before_c_per_s: float  # the reading's slope before the relay was held off
    start_c: float         # its 10 s mean then


class HeatingWatch:
    """Full power must warm the bath; when it does not, the heater check tells why.

    ``trip(kind, message, now_s)`` latches a fault; ``notice(now_s, temp_c, message)`` records
    an event. :meth:`update` once per tick with a fresh reading.
    """

    def __init__(self, *, history: ReadingHistory, trip: Callable[[FaultKind, str, float], None],
                 notice: Callable[[float, float, str], None]) -> None:
        self.history = history
        self._trip = trip
        self._notice = notice
        self._watch: tuple[float, float] | None = None  # (relay-on seconds, lowest reading) since armed
        self._check: _Check | None = None
        self._quiet_until_s = -math.inf
        self._said = False  # the limit was said since the reading last rose
        self._still: tuple[float, float] | None = None  # (the reading, since when it has not moved a step)

    @property
    def checking(self) -> bool:
        """The relay is held off for a heater check."""
        return self._check is not None

    def at_limit(self, now_s: float) -> bool:
        """Whether the last heater check, within HEATER_QUIET_S, found a working element at its limit."""
        return now_s < self._quiet_until_s

    @staticmethod
    def period_s(model: BathModel, water_c: float, *, rate_known: bool) -> float:
        """Relay-on seconds in which a probe in water at ``water_c`` must rise HEATING_RISE_C (inf: not
        watched): the probe's delay plus the time half the learned heating rate, net of the losses, takes
        (the weakest heater's rate before this bath's was learned)."""
        known = model.learned or rate_known
        rate = HEATING_RATE_SHARE * model.heat_rate_c_per_s if known else HEAT_RATE_MIN_C_PER_S
        rate -= model.loss_per_s * max(0.0, water_c - model.room_c)
        period_s = HEATING_DELAY_MARGIN * model.delay_s + HEATING_RISE_C / rate if rate > 0 else math.inf
        return period_s if period_s <= HEATING_MAX_S else math.inf

    def update(self, now_s: float, temp_c: float, *, since_last_s: float, duty: float, setpoint_c: float,
               model: BathModel, rate_known: bool, relay_on: bool, latched: bool) -> None:
        """Account one tick of full power (``since_last_s`` of it with the relay ``relay_on``); start or
        finish a heater check. Re-armed by a rise, by a sudden fall (cold water poured in), whenever
        the duty drops, and while the heater holds the reading at the setpoint (:meth:`_holds`); a slow
        fall (what the water does with no heat) keeps counting from its lowest point."""
        if self._still is None or temp_c != self._still[0]:
            self._still = (temp_c, now_s)
        if self._check is not None:
            self._finish(now_s, temp_c, self._check, model)
            return
        # The rest after a check that found the bath at its limit ends early when the reading stands still:
        # a probe stuck or frozen since shows the water at its limit as well as a live one would.
        resting = now_s < self._quiet_until_s and now_s - self._still[1] < HEATER_STILL_S
        if duty < HEATING_MIN_DUTY or latched or resting \
                or self._holds(temp_c, setpoint_c, model, rate_known=rate_known):
            self._watch = None
            return
        on_s, low_c = self._watch or (0.0, temp_c)
        if low_c - temp_c >= HEATING_FALL_C or temp_c - low_c >= HEATING_RISE_C:
            self._watch = (0.0, temp_c)  # (re)arm: poured-in water, or it rose as it should
            self._said = self._said and temp_c - low_c < HEATING_RISE_C
            return
        low_c = min(low_c, temp_c)
        if relay_on:
            on_s += since_last_s
        self._watch = (on_s, low_c)
        # Far below the setpoint: the heating rate says how long (the reading: a model not yet learned may
        # run away). Near it, or at the bath's limit: checked every HEATER_LIMIT_S all the same.
        period_s = self.period_s(model, temp_c, rate_known=rate_known) \
            if temp_c <= setpoint_c - HEATING_BELOW_C else math.inf
        before = self._slope_c_per_s(now_s)
        earlier = self._slope_c_per_s(now_s - HEATER_CHECK_SLOPE_S)
        steady = abs(before - earlier) <= HEATER_STEADY_SHARE * model.heat_rate_c_per_s
        if on_s >= min(period_s, HEATER_LIMIT_S) and steady:
            # A dead element, a working one at its limit (the lid off), a stuck relay? Hold it off and see,
            # once the reading runs steadily (not while water poured in still shows): the slope before is
            # what the slope after is judged against.
            now_c = self.history.mean_c(now_s - STUCK_AVERAGE_S, now_s)
            self._check = _Check(now_s, before, now_c)
            self._watch = None

    @staticmethod
    def _holds(temp_c: float, setpoint_c: float, model: BathModel, *, rate_known: bool) -> bool:
        """Whether the heater holds the reading at the setpoint on a bath that is not at its limit: full
        power would lift the water past the over-target limit (the learned bath's top, a lid-off bath at
        a high hold duty). A welded relay there shows as the rise the stuck-relay and over-target rules
        latch on; a heater check would find nothing more and cost the hold the water's fall while the
        probe's delay hides it (1.5 degC on a small lid-off bath)."""
        known = model.learned or rate_known
        return known and temp_c >= setpoint_c and model.max_water_c >= setpoint_c + OVER_TARGET_C

    def _slope_c_per_s(self, now_s: float) -> float:
        return self.history.slope_c_per_s(now_s, HEATER_CHECK_SLOPE_S, STUCK_AVERAGE_S)

    def _finish(self, now_s: float, temp_c: float, check: _Check, model: BathModel) -> None:
        """During a heater check: pass it once the reading fell clearly below its course; at its end,
        latch a dead element or a stuck relay, or say the heater is at its limit."""
        elapsed_s = now_s - check.since_s
        course_c = check.start_c + check.before_c_per_s * elapsed_s
        fell_c = course_c - self.history.mean_c(now_s - STUCK_AVERAGE_S, now_s)
        if elapsed_s >= STUCK_AVERAGE_S and fell_c >= HEATER_CHECK_DIP_C:
            self._passed(now_s, temp_c)
            return
        if elapsed_s < HEATER_CHECK_DELAYS * model.delay_s + HEATER_CHECK_SLOPE_S:
            return
        self._check = None
        before, after = check.before_c_per_s, self._slope_c_per_s(now_s)
        rate = model.heat_rate_c_per_s
        if before - after >= HEATER_CHECK_SHARE * rate:
            self._passed(now_s, temp_c)
            return
        cooling = model.loss_per_s * max(0.0, temp_c - model.room_c)  # what the losses alone take, degC/s
        if cooling >= HEATER_STUCK_SHARE * rate and after > -HEATER_CHECK_SHARE * cooling:
            self._trip(FaultKind.STUCK_RELAY, f"with the heater switched off for {elapsed_s:.0f} s the water did "
                       f"not cool ({after * 60:+.2f} degC/min; its losses alone cool it {cooling * 60:.2f} "
                       "degC/min): the relay is stuck on, or the probe is frozen", now_s)
            return
        self._trip(FaultKind.HEATING, f"the water did not warm at full power, and cooled as fast with the heater "
                   f"off ({before * 60:+.2f} and {after * 60:+.2f} degC/min): the element is not heating", now_s)

    def _passed(self, now_s: float, temp_c: float) -> None:
        """The element heats and the relay opens: the bath is at its limit."""
        self._check = None
        self._quiet_until_s = now_s + HEATER_QUIET_S
        if not self._said:
            self._said = True
            self._notice(now_s, temp_c, f"the heater works but cannot warm the water at {temp_c:.1f} degC: "
                         "is the lid off? Close it, or use less water or a stronger heater")

    def reset(self) -> None:
        """Start afresh (an acknowledge)."""
        self._watch = None
        self._check = None
