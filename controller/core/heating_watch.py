"""The heating watch and the heater check: does the element heat, does the relay open, does the probe live?

With the heater at full power the reading must rise (:meth:`HeatingWatch.period_s`). When it
does not, the interlock holds the relay off for a moment, the *heater check*, and looks at what
the reading does then:

* it falls faster than before: the element heated and the relay opened; the bath is at its
  limit (a lid off). Said plainly, not checked again for HEATER_QUIET_S;
* it cools as fast as before: the element is not heating (a ``heating`` fault);
* a bath at its limit that does not cool with the heater off: the relay is stuck on, or the
  probe is frozen (a ``stuck_relay`` fault: unplug the heater).

A reading that falls at full power as a probe in the air cools (:mod:`controller.core.air_cooling`)
is checked at once, against the course it was on: one in the water leaves it (the heat is gone), one
in the air keeps to it (a ``sensor`` fault: is the probe in the water?).

A bath at its limit, or held at full power just below its setpoint, shows nothing of its heater,
relay or probe while the reading stands still; the check is what tells. docs/safety.md holds the
rule table. The thresholds are in :mod:`controller.core.guards`.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from controller.core.air_cooling import AIR_HELD_BRIEF_S, AIR_SPAN_S, AirCourse, cools_like_air
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
    HeldFor,
    ReadingHistory,
)


class _Check(NamedTuple):
    since_s: float
    before_c_per_s: float  # the reading's slope before the relay was held off
    start_c: float = math.nan     # its 10 s mean then (a heater check's course starts there) ...
    air: AirCourse | None = None  # ... or the course of a reading that cooled as a probe in the air does


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
        self._full = HeldFor(math.inf)  # the duty at least HEATING_MIN_DUTY, no fault latched
        self._blocked = HeldFor(AIR_HELD_BRIEF_S)  # the interlock holding the relay off, whatever the duty
        self._free = HeldFor(math.inf)  # neither held off longer than that, nor checking, nor latched
        self._air_floor = (-math.inf, 0.0)  # (until when, the rate per s) a check found a reading in the water cool at

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
               model: BathModel, rate_known: bool, relay_on: bool, latched: bool, blocked: bool = False) -> None:
        """Account one tick of full power (``since_last_s`` of it with the relay ``relay_on``; ``blocked``: the
        interlock held the relay off the tick before, whatever the duty); start or finish a heater check or an
        air check. Re-armed by a rise, by a sudden fall (cold water poured in), whenever the duty drops, and
        while the heater holds the reading at the setpoint (:meth:`_holds`); a slow fall (what the water does
        with no heat) keeps counting from its lowest point."""
        if self._still is None or temp_c != self._still[0]:
            self._still = (temp_c, now_s)
        self._full.update(duty >= HEATING_MIN_DUTY and not latched, now_s)
        # A bad read holds the relay off for its tick (5 % of CRC errors: one tick in twenty); longer, the water
        # cooled for a while and the reading will show it.
        held_long = self._blocked.update(blocked, now_s)
        self._free.update(not held_long and not latched and self._check is None, now_s)
        if self._check is not None and latched:
            self._check = None  # another rule latched: the relay is off, and there is nothing left to tell
        if self._check is not None:
            self._finish(now_s, temp_c, self._check, model)
            return
        if self._full.since_s is not None and self._air_check_due(now_s, model, rate_known):
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

    def _air_check_due(self, now_s: float, model: BathModel, rate_known: bool) -> bool:
        """At full power for the last minute, and a probe delay before it (the reading shows that water), and
        cooling toward the room as a body with no heat does: hold the heater off at once (a check) to see
        whether the reading keeps to that course. (Judged on water at the PID's ramp to full power, the course
        holds most of the fall with no heat, and holding it off shows little.) Not while the reading may still
        show the relay held off (a check, the guard, a bad read: the water cooled then), a probe delay before
        the two minutes judged. After such a check found the probe in the water (a lid off), for
        HEATER_QUIET_S only a reading cooling faster than it did then."""
        if self._full.held_s(now_s) < AIR_SPAN_S / 2 + model.delay_s \
                or self._free.held_s(now_s) < AIR_SPAN_S + model.delay_s or not (model.learned or rate_known):
            return False
        floor_until_s, floor_per_s = self._air_floor
        loss_per_s = max(model.loss_per_s, floor_per_s if now_s < floor_until_s else 0.0)
        air = cools_like_air(self.history, now_s, room_c=model.room_c, loss_per_s=loss_per_s)
        if air is None:
            return False
        self._check = _Check(now_s, self._slope_c_per_s(now_s), air=air)
        self._watch = None
        return True

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

    @staticmethod
    def air_check_s(model: BathModel) -> float:
        """How long the heater is held off to see whether a reading cooling as in the air is in the water (s):
        the heater check's time, or until the heat gone shows HEATER_CHECK_DIP_C twice over at the learned
        rate after the probe's delay (a weak heater's: 350 W into 15 L shows it in about two minutes)."""
        return max(HEATER_CHECK_DELAYS * model.delay_s + HEATER_CHECK_SLOPE_S,
                   model.delay_s + 2 * HEATER_CHECK_DIP_C / model.heat_rate_c_per_s)

    def _finish(self, now_s: float, temp_c: float, check: _Check, model: BathModel) -> None:
        """During a heater check: pass it once the reading fell clearly below its course; at its end,
        latch a dead element or a stuck relay, or say the heater is at its limit."""
        if check.air is not None:
            self._finish_air(now_s, temp_c, check, check.air, model)
            return
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

    def _finish_air(self, now_s: float, temp_c: float, check: _Check, air: AirCourse, model: BathModel) -> None:
        """At the end of a check of a reading that cooled as in the air (:meth:`air_check_s`). One in the water
        falls below its course by the heat that stopped, at the level by HEATER_CHECK_DIP_C or at the slope by
        HEATER_CHECK_SHARE of the heating rate (the water's own fall slows before the heat's end shows: stones
        give back heat, the probe's delay shows the past): the bath is at its limit. A probe in the air keeps to
        it, its level within HEATER_CHECK_DIP_C and its slope (which dies away as its excess does) within half
        that share: latch. Anything else did not cool as in the air, nor show the heat clearly (its probe
        catching up with cold water poured in, say): nothing is said, the heater runs, the heater check stays."""
        elapsed_s = now_s - check.since_s
        if elapsed_s < self.air_check_s(model):
            return
        self._check = None
        below_c = air.course_c(now_s - STUCK_AVERAGE_S / 2) - self.history.mean_c(now_s - STUCK_AVERAGE_S, now_s)
        slope_below_c_per_s = check.before_c_per_s * math.exp(-air.rate_per_s * elapsed_s) \
            - self._slope_c_per_s(now_s)
        share = slope_below_c_per_s / model.heat_rate_c_per_s
        if below_c >= HEATER_CHECK_DIP_C or share >= HEATER_CHECK_SHARE:
            self._say_at_limit(now_s, temp_c)
            self._air_floor = (now_s + HEATER_QUIET_S, air.rate_per_s)
            return
        if abs(below_c) >= HEATER_CHECK_DIP_C or abs(share) > HEATER_CHECK_SHARE / 2:
            return
        self._trip(FaultKind.SENSOR, f"at full power the reading fell toward the room as a probe in the air cools "
                   f"(toward {air.room_c:.0f} degC, with a time constant of {1 / air.rate_per_s / 60:.1f} min), and it "
                   f"went on so with the heater held off for {elapsed_s:.0f} s: is the probe in the water? "
                   "(If it is, the element does not heat.)", now_s)

    def _passed(self, now_s: float, temp_c: float) -> None:
        """The element heats and the relay opens: the bath is at its limit."""
        self._check = None
        self._quiet_until_s = now_s + HEATER_QUIET_S
        self._say_at_limit(now_s, temp_c)

    def _say_at_limit(self, now_s: float, temp_c: float) -> None:
        """Say, once until the reading rises again, that the heater works but the bath is at its limit. (An air
        check says it without resting the heating watch: it judged against the room as learned.)"""
        if not self._said:
            self._said = True
            self._notice(now_s, temp_c, f"the heater works but cannot warm the water at {temp_c:.1f} degC: "
                         "is the lid off? Close it, or use less water or a stronger heater")

    def reset(self) -> None:
        """Start afresh (an acknowledge)."""
        self._watch = None
        self._check = None
        for held in (self._full, self._blocked, self._free):
            held.reset()
        self._air_floor = (-math.inf, 0.0)
