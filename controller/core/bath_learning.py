"""The bath model's online identification (:class:`Learner`).

:class:`Learner` fits ``r``, the dead time and the lag of :class:`~controller.core.bath_model.BathModel`
on every full-power warm-up (incremental sums: O(1) per tick), ``k`` from the heater's
average duty while holding.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import replace

from controller.core.bath_model import (
    DEAD_MAX_S,
    DEAD_MIN_S,
    LAG_MAX_S,
    LAG_MIN_S,
    ROOM_MAX_C,
    ROOM_MIN_C,
    BathModel,
    clamp,
)

# Learning.
RAMP_BELOW_C = 4.0          # a warm-up is learned when full power starts at least this far below the setpoint
DETECT_RISE_C = 0.25        # the probe "started rising": 4 steps of 1/16 degC, 8 sigma of its noise
DETECT_SAMPLES = 3          # ... on this many readings in a row
FIT_MIN_RISE_C = 1.5        # fit only once the probe has risen this much ...
FIT_MIN_AFTER_DETECT_S = 45.0  # ... and this long after it started rising
FIT_EVERY_S = 15.0          # refit this often during a warm-up (each fit is O(1), the split a few us)
FIT_SPANS = 3.0             # a warm-up is fitted until this many times the first fit's probe delay
FIT_WINDOW_MIN_S = 180.0    # ... and at least this long after the probe started rising: later the losses
                            # and the stones bend it (the first hold sorts those out), and an element
                            # that stops heating must not be learned as a weak one
RAMP_FALL_C = 0.125         # a warm-up whose reading fell this far (two 1/16 degC steps) below its highest
RAMP_MEAN_S = 10.0          # ... in means over this long ends with the fits made before: at full power the
                            # water does not cool, so the probe left it (lifted) or cold water came in, and a
                            # line through that fall is no heating rate (a probe lifted two minutes into a
                            # short warm-up once taught one 94 % low, and the guard counted the heat at it)
RAMP_FALL_SIGMAS = 6.0      # ... and at least this many times the scatter of such a mean, from the probe's own
                            # (a probe with 0.2 degC of it: 0.38 degC; the highest mean is a maximum over noise)
FIRST_PAUSE_MAX_S = 20.0   # the first warm-up ever, before its first fit, goes on through the relay off this long
                           # (the guard's pause until the probe proves itself): it bends the line's rise by less
                           # than a tenth over the 3 min the first fits take
RAMP_MAX_S = 3 * 3600.0     # a longer warm-up keeps its first 3 h of samples
STONES_SETTLE_S = 900.0     # a long warm-up is fitted over 5 min once the stones have caught up (15 min;
LATE_FIT_S = 300.0          # ~5 of their time constants) and again over its last 5 min ...
LATE_MIN_RISE_C = 8.0       # ... once the water is this much warmer: the slope has bent by the losses
                            # alone, which gives the loss rate (a lid left off, a weak heater)
LATER_RAMP_WEIGHT = 0.5     # a later warm-up moves the learned heating rate this far toward its own fit
BENT_SHARE = 0.5            # ... if the probe rose at least this share of the heating rate (near the bath's
                            # limit the losses bend the ramp: its line starts too early)
HOLD_BAND_C = 1.0           # the loss rate is learned while the estimated water stays this close to where it
HOLD_SETPOINT_C = 0.5       # was, within this of the setpoint (a hold) or at this share of full power (the
HOLD_FULL_DUTY = 0.95       # heater at its limit) ...
HOLD_WINDOW_S = 900.0       # ... from the heater's average duty over this long
HOLD_MIN_EXCESS_C = 5.0     # ... when the bath is at least this much warmer than the room
HOLD_WEIGHT = 0.5           # each hold window moves the loss rate this far toward what it measured
HOLD_STEP_FACTOR = 2.0      # ... and by at most this factor (a lid opened for a while is not the bath)
JOINT_MAX_SHARE = 0.8       # the first hold re-solves the heating rate unless losses ate more than this
                            # share of it during the warm-up (then the two cannot be told apart)


# -- learning ------------------------------------------------------------------------------------
class Learner:
    """Fits the model to what the heater does. Call :meth:`observe` once per tick.

    Warm-up: while the relay stays on from at least RAMP_BELOW_C under the setpoint, the
    readings are a ramp response: after the probe starts rising (``detect``) it bends into a
    straight line of slope ``r - k (W - room)`` that runs ``dead_time + lag`` behind the water.
    Prefix sums make every least-squares fit over the second half of the ramp O(1).

    Hold: the average duty over HOLD_WINDOW_S balances the losses, ``r * duty = k (W - room)``.
    """

    def __init__(self, model: BathModel) -> None:
        self.model = model
        self._ramp: _Ramp | None = None
        self._hold: tuple[float, float, float, float] | None = None  # (since_s, water_c, on_s, sum water*s)
        self._ramp_end_s = -math.inf
        self._spoiled = False  # a warm-up's reading fell (RAMP_FALL_C): the next starts from a settled bath
        self._off_since_s: float | None = -math.inf  # the heater off since (None: on); off before the start
        # The last warm-up's fit: (probe slope degC/s, water above the room there, the model before it)
        self._ramp_seen: tuple[float, float, tuple[float, float, float] | None] | None = None

    def observe(self, now_s: float, reading_c: float | None, water_c: float, heater_on: bool,
                setpoint_c: float, dt_s: float, *, suspect: bool = False) -> BathModel | None:
        """Learn from one tick; return the new model when it changed. ``suspect``: the reading fell away
        from the model faster than the bath can cool (a probe lifted, cold water poured in): no hold is
        learned from it (a window that ended so once re-based the estimate onto a lifted probe's reading,
        and the heater ran at full power to the setpoint + 2.5 degC). A warm-up learns on: before its
        first fit the default model runs ahead of a weak heater's reading, and a fall ends it anyway."""
        learned = self._observe_ramp(now_s, reading_c, heater_on, setpoint_c)
        if suspect:
            self._hold = None
            return learned
        held = self._observe_hold(now_s, water_c, heater_on, setpoint_c, dt_s)
        return held or learned

    def _observe_ramp(self, now_s: float, reading_c: float | None, heater_on: bool,
                      setpoint_c: float) -> BathModel | None:
        ramp = self._ramp
        off_since_s = self._off_since_s
        if not heater_on:
            self._off_since_s = now_s if off_since_s is None else off_since_s
        elif reading_c is not None:
            self._off_since_s = None
        if ramp is not None and ramp.off_s is not None:
            return self._observe_tail(now_s, reading_c, heater_on, ramp)
        if not heater_on:
            if ramp is not None and self._pause_carried(now_s, ramp):
                if reading_c is not None:
                    ramp.add(now_s, reading_c)
                return None
            self._ramp = None
            if ramp is None:
                return None
            self._ramp_end_s = now_s
            if not ramp.fits:
                return None
            if not ramp.past_window(now_s):
                ramp.off_s = now_s  # the probe still shows the full-power water for a dead time
                self._ramp = ramp
            self.model = replace(self.model, warmups=self.model.warmups + 1)
            return self.model
        if reading_c is None:
            return None
        if ramp is None:
            # A later warm-up only from a settled bath: after a short stop (a heater check) the reading
            # still falls, or still shows water poured in, and its line would be no heating rate. So too after
            # a warm-up whose reading fell: the heater stayed on, and a line started from the fall would put
            # the probe's delay from there (a dead time of 8 s learned for 56 s, then a false welded relay).
            # The first warm-up only from a bath the heater has not touched yet: one stopped before its first fit
            # (the guard, or a heater check) restarted with the reading already rising, and its line learned a
            # dead time of 1 s, then a false welded relay.
            first = not self.model.learned and not self._spoiled and self._ramp_end_s == -math.inf
            settled = first or (off_since_s is not None and now_s - off_since_s >= STONES_SETTLE_S)
            if reading_c <= setpoint_c - RAMP_BELOW_C and settled:
                self._ramp = _Ramp(now_s, reading_c, later=self.model.learned)
                if not self.model.learned and reading_c <= ROOM_MAX_C:
                    # A cold start: the bath is at room temperature.
                    self.model = replace(self.model, room_c=clamp(reading_c, ROOM_MIN_C, ROOM_MAX_C))
            return None
        if now_s - ramp.start_s > RAMP_MAX_S:
            return None
        ramp.add(now_s, reading_c)
        if ramp.fallen:
            return self._spoil(now_s, ramp)
        if ramp.detect_s is None or now_s - ramp.last_fit_s < FIT_EVERY_S:
            return None
        if ramp.past_window(now_s):
            return self._late_fit(now_s, ramp)
        return self._fit_ramp(now_s, ramp)

    def _pause_carried(self, now_s: float, ramp: _Ramp) -> bool:
        """Whether the first warm-up ever, with no fit yet, goes on through this tick of the relay off: the guard
        holds it off for a moment while the probe proves it is in the water (controller/core/probe_proof.py).
        Restarted there it would learn nothing (a warm-up from a bath already heated); ended, the whole session
        ran on the default model."""
        off_since_s = self._off_since_s if self._off_since_s is not None else now_s
        return not self.model.learned and ramp.fits == 0 and ramp.off_s is None \
            and now_s - off_since_s < FIRST_PAUSE_MAX_S

    def _spoil(self, now_s: float, ramp: _Ramp) -> BathModel | None:
        """The reading fell during a warm-up (RAMP_FALL_C): the warm-up ends with the fits made before. With
        none, the model stays the conservative default until a warm-up from a settled bath."""
        self._ramp, self._ramp_end_s, self._spoiled = None, now_s, True
        if not ramp.fits or ramp.off_s is not None:  # nothing learned, or counted when the relay opened
            return None
        self.model = replace(self.model, warmups=self.model.warmups + 1)
        return self.model

    def _observe_tail(self, now_s: float, reading_c: float | None, heater_on: bool, ramp: _Ramp) -> BathModel | None:
        """The relay opened: the water's slope changed then, and the probe shows it one dead time later
        (it sees nothing of the water newer than that). Until then its readings are still the full-power
        ramp's, the part of it where the stones have taken the most of their share: with a long probe
        delay that is a large part of what the probe showed of a short warm-up. One last fit then, on a
        tick with the heater off (a heater pulse's tick would take the model as a ramp's new start)."""
        assert ramp.off_s is not None
        if ramp.tail_done:
            if heater_on:
                return None
            self._ramp = None
            return self._fit_ramp(now_s, ramp)
        if now_s < ramp.off_s + self.model.dead_time_s:
            if reading_c is not None:
                ramp.add(now_s, reading_c)
                if ramp.fallen:
                    return self._spoil(now_s, ramp)
            return None
        ramp.tail_done = True
        return None if heater_on else self._observe_tail(now_s, reading_c, heater_on, ramp)

    def _fit_ramp(self, now_s: float, ramp: _Ramp) -> BathModel | None:
        """The heating rate, dead time and lag from the ramp's line so far."""
        fit = ramp.fit(now_s)
        if fit is None:
            return None
        assert ramp.detect_s is not None
        slope, delay_s = fit
        m = self.model
        # The longest delay any fit of this warm-up saw: the losses bending the ramp, and the stones taking
        # their share after the water alone, only shorten it. And at least what the first rise says: a ramp
        # of this slope behind a pure dead time rises DETECT_RISE_C latest, behind a lag sooner.
        ramp.delay_s = max(ramp.delay_s, delay_s, ramp.detect_s - ramp.start_s - DETECT_RISE_C / slope)
        dead_s, lag_s = _split_delay(ramp.delay_s, ramp.detect_s - ramp.start_s, slope)
        if ramp.first_delay_s is None:
            ramp.first_delay_s = dead_s + lag_s
        water_c = ramp.mean_c + slope * ramp.delay_s
        rate = slope + m.loss_per_s * (water_c - m.room_c)
        if ramp.later and slope < BENT_SHARE * rate:
            # Near the bath's limit the losses bend the ramp: its line starts too early (no delay), and its
            # heating rate is only as good as the losses assumed. The holds at full power learn the limit.
            return None
        if ramp.later and ramp.fits == 0:
            # A later warm-up (more water, more stones): move toward it, not onto it.
            ramp.prior = (m.heat_rate_c_per_s, m.dead_time_s, m.lag_s)
        if ramp.prior is not None:
            w = LATER_RAMP_WEIGHT
            rate, dead_s, lag_s = (p + w * (new - p) for p, new in zip(ramp.prior, (rate, dead_s, lag_s)))
        self.model = replace(m, heat_rate_c_per_s=rate, dead_time_s=dead_s, lag_s=lag_s).bounded()
        ramp.fits += 1
        ramp.slope_c_per_s = slope
        self._ramp_seen = (slope, water_c - m.room_c, ramp.prior)
        return self.model

    def _late_fit(self, now_s: float, ramp: _Ramp) -> BathModel | None:
        """The loss rate from how much a long full-power warm-up has bent between two fits made after
        the stones caught up with the water (before, the stones bend it too)."""
        if ramp.late_done or now_s - ramp.start_s < STONES_SETTLE_S + LATE_FIT_S:
            return None
        ramp.last_fit_s = now_s
        late = ramp.fit_since(now_s - LATE_FIT_S)
        if late is None:
            return None
        slope, mean_c = late
        m = self.model
        late_excess = mean_c + slope * m.delay_s - m.room_c
        if ramp.mid is None:
            ramp.mid = (slope, late_excess)
            return None
        early_slope, early_excess = ramp.mid
        if late_excess - early_excess < LATE_MIN_RISE_C or slope >= early_slope:
            return None
        ramp.late_done = True
        k = (early_slope - slope) / (late_excess - early_excess)
        rate = early_slope + k * early_excess
        self.model = replace(m, heat_rate_c_per_s=rate, loss_per_s=k, loss_fits=m.loss_fits + 1).bounded()
        self._ramp_seen = None  # the losses are known: the first hold refines k alone
        return self.model

    def stones_settling(self, now_s: float) -> bool:
        """Whether a warm-up ended less than STONES_SETTLE_S ago: the stones still soak up heat."""
        return now_s - self._ramp_end_s < STONES_SETTLE_S

    @property
    def ramp_slope_c_per_s(self) -> float:
        """The probe's slope in the warm-up being learned (0 when none)."""
        return self._ramp.slope_c_per_s if self._ramp is not None else 0.0

    def _observe_hold(self, now_s: float, water_c: float, heater_on: bool, setpoint_c: float,
                      dt_s: float) -> BathModel | None:
        m = self.model
        if (not m.learned or water_c - m.room_c < HOLD_MIN_EXCESS_C
                or self.stones_settling(now_s)  # the stones still soak up heat: not the losses
                or (self._hold is not None and abs(water_c - self._hold[1]) > HOLD_BAND_C)):  # not steady
            self._hold = None
            return None
        if self._hold is None:
            self._hold = (now_s, water_c, 0.0, 0.0)
            return None
        since_s, start_c, on_s, water_s = self._hold
        on_s += dt_s if heater_on else 0.0
        water_s += water_c * dt_s
        span_s = now_s - since_s
        if span_s < HOLD_WINDOW_S:
            self._hold = (since_s, start_c, on_s, water_s)
            return None
        self._hold = None
        duty = on_s / span_s
        drift = (water_c - start_c) / span_s
        excess = water_s / span_s - m.room_c
        if abs(water_s / span_s - setpoint_c) > HOLD_SETPOINT_C and duty < HOLD_FULL_DUTY:
            return None  # neither holding the setpoint nor at full power: the control is still at work
        if self._ramp_seen is not None:
            # The first hold after a warm-up: its slope was r - k * ramp_excess, and holding takes
            # r * duty = k * excess: both unknowns at once, so a lid left off cannot hide in r.
            slope, ramp_excess, prior = self._ramp_seen
            self._ramp_seen = None
            share = (duty * ramp_excess - drift * ramp_excess / max(m.heat_rate_c_per_s, 1e-9)) / excess
            if 0.0 <= share < JOINT_MAX_SHARE:
                rate = slope / (1.0 - share)
                if prior is not None:
                    rate = prior[0] + LATER_RAMP_WEIGHT * (rate - prior[0])
                k = (rate * duty - drift) / excess
                self.model = replace(m, heat_rate_c_per_s=rate, loss_per_s=k, loss_fits=m.loss_fits + 1).bounded()
                return self.model
        measured = (m.heat_rate_c_per_s * duty - drift) / excess
        k = m.loss_per_s + HOLD_WEIGHT * (measured - m.loss_per_s)
        k = clamp(k, m.loss_per_s / HOLD_STEP_FACTOR, m.loss_per_s * HOLD_STEP_FACTOR)
        self.model = replace(m, loss_per_s=k, loss_fits=m.loss_fits + 1).bounded()
        return self.model


class _Ramp:
    """One full-power warm-up's readings, kept as prefix sums for O(1) line fits."""

    def __init__(self, start_s: float, start_c: float, *, later: bool) -> None:
        self.start_s = start_s
        self.later = later  # a later warm-up: the model was learned before it
        self.start_c = start_c
        self.detect_s: float | None = None
        self._above = 0
        self.times: list[float] = []
        self._sums: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 0.0)]  # t, y, tt, ty
        self.last_fit_s = start_s
        self.fits = 0
        self.mean_c = start_c
        self.slope_c_per_s = 0.0
        self.prior: tuple[float, float, float] | None = None
        self.mid: tuple[float, float] | None = None  # (probe slope, water above the room) once the stones caught up
        self.first_delay_s: float | None = None
        self.delay_s = 0.0
        self.late_done = False
        self.off_s: float | None = None  # when the relay opened (the tail: the probe still shows the ramp)
        self.tail_done = False
        self.top_c = -math.inf  # the highest RAMP_MEAN_S mean of the reading since it started rising
        self.fallen = False     # ... and the latest fell RAMP_FALL_C below it
        self._steps = (0, 0.0, 0.0)  # successive readings' differences: count, sum, sum of squares (the scatter)
        self._last_c = start_c     # the latest reading added

    def past_window(self, now_s: float) -> bool:
        """Whether the fits of this warm-up are over (the losses and the stones bend it from here)."""
        return (self.detect_s is not None and self.first_delay_s is not None
                and now_s - self.detect_s > max(FIT_WINDOW_MIN_S, FIT_SPANS * self.first_delay_s))

    def add(self, t_s: float, reading_c: float) -> None:
        rel = t_s - self.start_s
        if self.detect_s is None:
            self._above = self._above + 1 if reading_c - self.start_c >= DETECT_RISE_C else 0
            if self._above < DETECT_SAMPLES:
                return
            self.detect_s = t_s - (DETECT_SAMPLES - 1)
        st, sy, stt, sty = self._sums[-1]
        self.times.append(rel)
        if len(self.times) > 1:
            step = reading_c - self._last_c
            n, total, squares = self._steps
            self._steps = (n + 1, total + step, squares + step * step)
        self._sums.append((st + rel, sy + reading_c, stt + rel * rel, sty + rel * reading_c))
        self._last_c = reading_c
        if rel - self.times[0] >= RAMP_MEAN_S:
            i = bisect.bisect_left(self.times, rel - RAMP_MEAN_S)
            count = len(self.times) - i
            mean_c = (self._sums[-1][1] - self._sums[i][1]) / count
            self.top_c = max(self.top_c, mean_c)
            noise_c = RAMP_FALL_SIGMAS * self._scatter_c() / math.sqrt(count)
            self.fallen = self.top_c - mean_c >= max(RAMP_FALL_C, noise_c)

    def _scatter_c(self) -> float:
        """The probe's scatter (1 sigma, degC) from its successive differences: their variance is twice it."""
        n, total, squares = self._steps
        return math.sqrt(max(0.0, squares / n - (total / n) ** 2) / 2.0) if n > 1 else 0.0

    def _line_from(self, i: int) -> tuple[float, float, float] | None:
        """Least squares over the samples from index ``i`` on, from the running sums:
        (slope degC/s, mean time s, mean reading degC); None with too few or no spread."""
        n = len(self.times) - i
        if n < 10:
            return None
        a, b = self._sums[i], self._sums[-1]
        st, sy, stt, sty = (b[j] - a[j] for j in range(4))
        var = stt - st * st / n
        if var <= 0:
            return None
        return (sty - st * sy / n) / var, st / n, sy / n

    def fit_since(self, from_s: float) -> tuple[float, float] | None:
        """(probe slope degC/s, mean reading) over the samples since ``from_s``."""
        line = self._line_from(bisect.bisect_left(self.times, from_s - self.start_s))
        return None if line is None else (line[0], line[2])

    def fit(self, now_s: float) -> tuple[float, float] | None:
        """(probe slope degC/s, delay s) from the second half of the ramp since the probe started rising."""
        self.last_fit_s = now_s
        if (self.detect_s is None or now_s - self.detect_s < FIT_MIN_AFTER_DETECT_S or not self.times
                or self._last_c - self.start_c < FIT_MIN_RISE_C):
            return None
        half = (self.times[0] + self.times[-1]) / 2.0
        line = self._line_from(bisect.bisect_left(self.times, half))
        if line is None or line[0] <= 0:
            return None
        slope, mean_t, mean_c = line
        self.mean_c = mean_c
        return slope, mean_t - (mean_c - self.start_c) / slope


def _split_delay(delay_s: float, detect_after_s: float, slope: float) -> tuple[float, float]:
    """(dead time, lag) from the ramp's total delay and when the probe first rose DETECT_RISE_C.

    A ramp through dead time d and lag L rises ``slope * (s - L (1 - exp(-s / L)))`` after d;
    find the split whose first DETECT_RISE_C comes when it came. Both bisections are monotonic.
    """
    delay_s = clamp(delay_s, DEAD_MIN_S + LAG_MIN_S, DEAD_MAX_S + LAG_MAX_S)

    def detect_time(dead_s: float) -> float:
        lag = max(LAG_MIN_S, delay_s - dead_s)
        low, high = 0.0, 10.0 * (lag + DETECT_RISE_C / slope)
        for _ in range(30):
            s = (low + high) / 2
            if slope * (s - lag * (1.0 - math.exp(-s / lag))) < DETECT_RISE_C:
                low = s
            else:
                high = s
        return dead_s + (low + high) / 2

    low, high = DEAD_MIN_S, max(DEAD_MIN_S, delay_s - LAG_MIN_S)
    for _ in range(30):
        mid = (low + high) / 2
        if detect_time(mid) < detect_after_s:
            low = mid
        else:
            high = mid
    dead = clamp((low + high) / 2, DEAD_MIN_S, DEAD_MAX_S)
    return dead, clamp(delay_s - dead, LAG_MIN_S, LAG_MAX_S)
