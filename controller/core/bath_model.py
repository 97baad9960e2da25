"""The bath as the warmer learns it: a model, its online identification, an observer, an energy budget.

The model is one lumped water node heated by the element and losing heat to the room,
seen through the probe's dead time (mixing) and first-order lag (its steel sheath)::

    dW/dt = r * u(t) - k * (W - room)          W: water, degC; u: relay on (0/1)
    dP/dt = (W(t - dead_time) - P) / lag       P: what the probe reads

From the probe alone only the ratios are identifiable: the heating rate at full power
``r = P_heater / C`` (degC/s), the loss rate ``k = UA / C`` (1/s), the dead time and the
lag. The heater's wattage (``[heater] power_w``, from its label) turns ``r`` into a heat
capacity and so into litres; without it the warmer says only what it measured.

* :class:`BathModel`: the parameters, bounded to what real stone heaters do (350-1800 W,
  3-15 L of water, 1-10 kg of stones, lid on or off, 15-30 degC rooms; docs/control.md,
  "The bath model").
* :class:`Learner`: fits ``r``, the dead time and the lag on every full-power warm-up
  (incremental sums: O(1) per tick), ``k`` from the heater's average duty while holding.
* :class:`Observer`: predicts the water and the probe from the heater's known input;
  the probe corrects the prediction at a bounded rate, so a probe that jumps away from
  the water (stuck, lifted) cannot drag the estimate with it at once.
* :class:`EnergyBudget`: heat the model says should already show at the probe but that
  the probe does not show. It catches a stuck, lifted or dead probe and a dead element.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

WATER_J_PER_KG_K = 4186.0

# What real stone heaters do (docs/control.md, "The bath model"): every learned value stays inside.
HEAT_RATE_MIN_C_PER_S = 0.004   # 350 W into 15 L of water + 10 kg of stones + pot
HEAT_RATE_MAX_C_PER_S = 0.16    # 1800 W into 3 L of water + 1 kg of stones
LOSS_MIN_PER_S = 2e-5           # a big bath, lid on
LOSS_MAX_PER_S = 6e-3           # a small bath, lid off
LAG_MIN_S, LAG_MAX_S = 2.0, 60.0
DEAD_MIN_S, DEAD_MAX_S = 1.0, 90.0
ROOM_MIN_C, ROOM_MAX_C = 10.0, 35.0

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
RAMP_MAX_S = 3 * 3600.0     # a longer warm-up keeps its first 3 h of samples
STONES_SETTLE_S = 900.0     # a long warm-up is fitted over 5 min once the stones have caught up (15 min;
LATE_FIT_S = 300.0          # ~5 of their time constants) and again over its last 5 min ...
LATE_MIN_RISE_C = 8.0       # ... once the water is this much warmer: the slope has bent by the losses
                            # alone, which gives the loss rate (a lid left off, a weak heater)
LATER_RAMP_WEIGHT = 0.5     # a later warm-up moves the learned heating rate this far toward its own fit
HOLD_BAND_C = 1.0           # the loss rate is learned while the estimated water stays this close to where it
HOLD_SETPOINT_C = 0.5       # was, within this of the setpoint (a hold) or at this share of full power (the
HOLD_FULL_DUTY = 0.95       # heater at its limit) ...
HOLD_WINDOW_S = 900.0       # ... from the heater's average duty over this long
HOLD_MIN_EXCESS_C = 5.0     # ... when the bath is at least this much warmer than the room
HOLD_WEIGHT = 0.5           # each hold window moves the loss rate this far toward what it measured
HOLD_STEP_FACTOR = 2.0      # ... and by at most this factor (a lid opened for a while is not the bath)
JOINT_MAX_SHARE = 0.8       # the first hold re-solves the heating rate unless losses ate more than this
                            # share of it during the warm-up (then the two cannot be told apart)

# Observer.
CORRECTION_S = 20.0         # the probe pulls the estimate toward itself with this time constant ...
BIAS_RATE_OF_HEAT = 0.5     # ... at most at this share of the heater's full-power rate ...
BIAS_SHIFT_C = 0.3          # ... and no faster than this much per probe delay (dead time + lag),
LID_OFF_LOSS_FACTOR = 6.0   # ... plus, downward, the bath's losses with the lid off (up to 6 x lid on)
DRIFT_S = 300.0             # a steady correction becomes a heat flow the model missed (a lid off, a
                            # draught) with this time constant; the next hold window moves it into k
DRIFT_UP_S = 60.0           # ... and a correction upward (the lid back on) five times as fast: the safe side
WATER_FIRST_SHARE = 0.3     # while suspect, the guard adds this share of the heat delivered since: the water
                            # takes it before the stones do (stones are up to 40 % of a bath's capacity)
CONFIRM_RISE_C = 0.3        # a reading that fell away is believed again once it rises this much with heat

# Energy budget.
BUDGET_FORGET_S = 1200.0    # unconfirmed heat is forgotten with this time constant (model error must not add up)
SMOOTH_S = 10.0             # the budget compares 10 s means: the DS18B20's 1/16 degC steps must not decide


@dataclass(frozen=True, slots=True)
class BathModel:
    """What the warmer knows about its bath. Rates in degC/s and 1/s, times in s, temperatures in degC."""

    heat_rate_c_per_s: float = 0.03   # r: how fast the water warms at full power, without losses
    loss_per_s: float = 1.6e-4        # k: share of (water - room) lost per second
    dead_time_s: float = 20.0         # from the water to the probe: mixing
    lag_s: float = 15.0               # the probe's own time constant
    room_c: float = 21.0
    warmups: int = 0                  # full-power warm-ups learned (0: the default)
    loss_fits: int = 0                # times the losses were measured (a long warm-up, a hold)

    @property
    def learned(self) -> bool:
        return self.warmups > 0

    @property
    def delay_s(self) -> float:
        """Dead time plus lag: how far the probe runs behind the water in a steady warm-up."""
        return self.dead_time_s + self.lag_s

    @property
    def max_water_c(self) -> float:
        """The warmest this heater can hold the bath: full power balances the losses."""
        return self.room_c + self.heat_rate_c_per_s / self.loss_per_s

    def hold_duty(self, setpoint_c: float, *, loss_per_s: float | None = None) -> float:
        """Share of full power that holds ``setpoint_c`` (0..1, more than 1: too weak); with
        ``loss_per_s`` (1/s) instead of the learned loss rate."""
        loss = self.loss_per_s if loss_per_s is None else loss_per_s
        return loss * max(0.0, setpoint_c - self.room_c) / self.heat_rate_c_per_s

    def full_power_s(self, from_c: float, to_c: float) -> float:
        """Seconds at full power from ``from_c`` to ``to_c`` (water), inf when it cannot get there."""
        top = self.max_water_c
        if to_c <= from_c:
            return 0.0
        if to_c >= top:
            return math.inf
        return math.log((top - from_c) / (top - to_c)) / self.loss_per_s

    def bounded(self) -> BathModel:
        """The same model with every value inside what real stone heaters do."""
        return replace(self,
                       heat_rate_c_per_s=_clamp(self.heat_rate_c_per_s, HEAT_RATE_MIN_C_PER_S, HEAT_RATE_MAX_C_PER_S),
                       loss_per_s=_clamp(self.loss_per_s, LOSS_MIN_PER_S, LOSS_MAX_PER_S),
                       dead_time_s=_clamp(self.dead_time_s, DEAD_MIN_S, DEAD_MAX_S),
                       lag_s=_clamp(self.lag_s, LAG_MIN_S, LAG_MAX_S),
                       room_c=_clamp(self.room_c, ROOM_MIN_C, ROOM_MAX_C))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> BathModel:
        """A saved model; raise ValueError naming what is wrong (the caller falls back to the default)."""
        if not isinstance(data, dict):
            raise ValueError(f"bath model {data!r} is not a table")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                raise ValueError(f"bath model has no {f.name}")
            value = data[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"bath model {f.name} = {value!r} is not a number")
            values[f.name] = int(value) if f.type in ("int", int) else float(value)
        model = cls(**values)
        if model != model.bounded():
            raise ValueError(f"bath model {data!r} is outside what a stone heater can do")
        return model

    def litres(self, power_w: float) -> float:
        """The heat capacity as litres of water (water, stones and pot together), for a heater of ``power_w``."""
        return power_w / self.heat_rate_c_per_s / WATER_J_PER_KG_K

    def describe(self, *, power_w: float = 0.0, lid_note: str = "") -> str:
        """The model in a therapist's words, e.g. "1.2 kW into about 8 L: 2.1 degC a minute at full power;
        the probe lags about 30 s"."""
        per_min = self.heat_rate_c_per_s * 60.0
        if not self.learned:
            return "still learning this bath (it learns on the first warm-up)"
        if power_w > 0:
            head = f"{power_w / 1000:.1f} kW into about {self.litres(power_w):.0f} L (water and stones)"
        else:
            head = "the heater"
        text = f"{head}: {per_min:.1f} degC a minute at full power; the probe lags about {self.delay_s:.0f} s"
        return text + (f"; {lid_note}" if lid_note else "")

    def too_weak_message(self, setpoint_c: float) -> str | None:
        """A plain sentence when this heater cannot reach ``setpoint_c`` in this bath, else None."""
        if not self.learned or self.max_water_c >= setpoint_c:
            return None
        return (f"this heater can hold at most about {self.max_water_c:.0f} degC in this bath "
                f"(set {setpoint_c:.0f} degC): close the lid, use less water or a stronger heater")


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


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
        # The last warm-up's fit: (probe slope degC/s, water above the room there, the model before it)
        self._ramp_seen: tuple[float, float, tuple[float, float, float] | None] | None = None

    def observe(self, now_s: float, reading_c: float | None, water_c: float, heater_on: bool,
                setpoint_c: float, dt_s: float) -> BathModel | None:
        """Learn from one tick; return the new model when it changed."""
        learned = self._observe_ramp(now_s, reading_c, heater_on, setpoint_c)
        held = self._observe_hold(now_s, water_c, heater_on, setpoint_c, dt_s)
        return held or learned

    def _observe_ramp(self, now_s: float, reading_c: float | None, heater_on: bool,
                      setpoint_c: float) -> BathModel | None:
        ramp = self._ramp
        if not heater_on:
            self._ramp = None
            if ramp is not None:
                self._ramp_end_s = now_s
            if ramp is not None and ramp.fits:
                self.model = replace(self.model, warmups=self.model.warmups + 1)
                return self.model
            return None
        if reading_c is None:
            return None
        if ramp is None:
            if reading_c <= setpoint_c - RAMP_BELOW_C:
                self._ramp = _Ramp(now_s, reading_c)
                if not self.model.learned and reading_c <= ROOM_MAX_C:
                    # A cold start: the bath is at room temperature.
                    self.model = replace(self.model, room_c=_clamp(reading_c, ROOM_MIN_C, ROOM_MAX_C))
            return None
        if now_s - ramp.start_s > RAMP_MAX_S:
            return None
        ramp.add(now_s, reading_c)
        if ramp.detect_s is None or now_s - ramp.last_fit_s < FIT_EVERY_S:
            return None
        if ramp.first_delay_s is not None and now_s - ramp.detect_s > max(FIT_WINDOW_MIN_S,
                                                                          FIT_SPANS * ramp.first_delay_s):
            return self._late_fit(now_s, ramp)
        fit = ramp.fit(now_s)
        if fit is None:
            return None
        slope, delay_s = fit
        m = self.model
        # The longest delay any fit of this warm-up saw: the losses bending the ramp only shorten it.
        ramp.delay_s = max(ramp.delay_s, delay_s)
        dead_s, lag_s = _split_delay(ramp.delay_s, ramp.detect_s - ramp.start_s, slope)
        if ramp.first_delay_s is None:
            ramp.first_delay_s = dead_s + lag_s
        water_c = ramp.mean_c + slope * ramp.delay_s
        rate = slope + m.loss_per_s * (water_c - m.room_c)
        if m.learned and ramp.fits == 1:
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
        k = _clamp(k, m.loss_per_s / HOLD_STEP_FACTOR, m.loss_per_s * HOLD_STEP_FACTOR)
        self.model = replace(m, loss_per_s=k, loss_fits=m.loss_fits + 1).bounded()
        return self.model


class _Ramp:
    """One full-power warm-up's readings, kept as prefix sums for O(1) line fits."""

    def __init__(self, start_s: float, start_c: float) -> None:
        self.start_s = start_s
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

    def add(self, t_s: float, reading_c: float) -> None:
        rel = t_s - self.start_s
        if self.detect_s is None:
            self._above = self._above + 1 if reading_c - self.start_c >= DETECT_RISE_C else 0
            if self._above < DETECT_SAMPLES:
                return
            self.detect_s = t_s - (DETECT_SAMPLES - 1)
        st, sy, stt, sty = self._sums[-1]
        self.times.append(rel)
        self._sums.append((st + rel, sy + reading_c, stt + rel * rel, sty + rel * reading_c))
        self._last_c = reading_c

    def fit_since(self, from_s: float) -> tuple[float, float] | None:
        """(probe slope degC/s, mean reading) over the samples since ``from_s``."""
        i = bisect.bisect_left(self.times, from_s - self.start_s)
        n = len(self.times) - i
        if n < 10:
            return None
        a, b = self._sums[i], self._sums[-1]
        st, sy, stt, sty = (b[j] - a[j] for j in range(4))
        var = stt - st * st / n
        if var <= 0:
            return None
        return (sty - st * sy / n) / var, sy / n

    def fit(self, now_s: float) -> tuple[float, float] | None:
        """(probe slope degC/s, delay s) from the second half of the ramp since the probe started rising."""
        self.last_fit_s = now_s
        if (self.detect_s is None or now_s - self.detect_s < FIT_MIN_AFTER_DETECT_S or not self.times
                or self._last_c - self.start_c < FIT_MIN_RISE_C):
            return None
        half = (self.times[0] + self.times[-1]) / 2.0
        i = bisect.bisect_left(self.times, half)
        n = len(self.times) - i
        if n < 10:
            return None
        a, b = self._sums[i], self._sums[-1]
        st, sy, stt, sty = (b[j] - a[j] for j in range(4))
        var = stt - st * st / n
        if var <= 0:
            return None
        slope = (sty - st * sy / n) / var
        if slope <= 0:
            return None
        mean_t, mean_c = st / n, sy / n
        self.mean_c = mean_c
        return slope, mean_t - (mean_c - self.start_c) / slope


def _split_delay(delay_s: float, detect_after_s: float, slope: float) -> tuple[float, float]:
    """(dead time, lag) from the ramp's total delay and when the probe first rose DETECT_RISE_C.

    A ramp through dead time d and lag L rises ``slope * (s - L (1 - exp(-s / L)))`` after d;
    find the split whose first DETECT_RISE_C comes when it came. Both bisections are monotonic.
    """
    delay_s = _clamp(delay_s, DEAD_MIN_S + LAG_MIN_S, DEAD_MAX_S + LAG_MAX_S)

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
    dead = _clamp((low + high) / 2, DEAD_MIN_S, DEAD_MAX_S)
    return dead, _clamp(delay_s - dead, LAG_MIN_S, LAG_MAX_S)


# -- the observer ----------------------------------------------------------------------------------
class Observer:
    """The model run alongside the bath: the water and probe predicted from the relay, corrected by the probe.

    The correction is an offset (``bias_c``) added to the model's water and probe, moved
    toward the reading with time constant CORRECTION_S but never faster than the bath can
    change by itself (:attr:`max_bias_rate_c_per_s` up, :attr:`max_fall_rate_c_per_s` down).

    A reading that falls away faster than that is *suspect* (cold water poured in, or a
    probe stuck, lifted or dead: the heat cannot tell them apart yet). The estimate follows
    it, so control heats a bath that really went cold; but :attr:`guard_water_c` keeps the
    water as the heat delivered since says it is, until the reading rises CONFIRM_RISE_C
    with heat: a probe in the water has confirmed it. One tick is O(1) (the dead time is a
    delay line of one entry per tick).
    """

    def __init__(self, model: BathModel, reading_c: float) -> None:
        self.model = model
        self._water_c = self._probe_c = reading_c
        self._delay: deque[float] = deque()
        self.bias_c = 0.0
        self.predicted_change_c = 0.0  # the model's probe change in the last step (no correction)
        self.predicted_water_change_c = 0.0  # ... and the water's
        self.departing = False         # the last reading fell away from the model faster than allowed
        self.suspect = False           # a reading fell away and has not risen with heat since
        self.suspect_s = 0.0           # ... for this long
        self._anchor_c = 0.0           # the bias before the reading fell away
        self._low_c = 0.0              # the lowest reading since
        self._suspect_heat_c = 0.0     # the heat delivered since (degC of the whole bath)
        self.drift_c_per_s = 0.0       # heat flow the model misses (negative: more losses), degC/s
        self.rebase(model, reading_c)

    @property
    def water_c(self) -> float:
        """The estimated water temperature now."""
        return self._water_c + self.bias_c

    @property
    def loss_per_s(self) -> float:
        """The loss rate as the bath behaves now: the model's, with the missed heat flow in it."""
        m = self.model
        return max(0.0, m.loss_per_s - self.drift_c_per_s / max(1.0, self.water_c - m.room_c))

    def take_model(self, model: BathModel) -> None:
        """Use ``model`` from now on, keeping the losses as the bath behaves now: what the missed
        heat flow held that the new loss rate now explains leaves the flow."""
        excess = max(1.0, self.water_c - model.room_c)
        self.drift_c_per_s += (model.loss_per_s - self.model.loss_per_s) * excess
        self.model = model

    def hold_duty(self, setpoint_c: float) -> float:
        """Share of full power that holds ``setpoint_c`` as the bath behaves now."""
        return self.model.hold_duty(setpoint_c, loss_per_s=self.loss_per_s)

    @property
    def guard_water_c(self) -> float:
        """The water as the heat delivered says it is: the estimate without a suspect reading's fall."""
        return self._water_c + max(self.bias_c, self._anchor_c) + WATER_FIRST_SHARE * self._suspect_heat_c

    @property
    def probe_c(self) -> float:
        """What the probe should read now."""
        return self._probe_c + self.bias_c

    @property
    def max_bias_rate_c_per_s(self) -> float:
        """How fast model error may move the estimate (degC/s), either way."""
        m = self.model
        return min(BIAS_RATE_OF_HEAT * m.heat_rate_c_per_s, BIAS_SHIFT_C / m.delay_s)

    @property
    def max_rise_rate_c_per_s(self) -> float:
        """How fast the reading may pull the estimate up (degC/s): model error plus full power
        (a lid put back on, hot water poured in). Up is the safe side: the heater holds back."""
        return self.max_bias_rate_c_per_s + self.model.heat_rate_c_per_s

    @property
    def max_fall_rate_c_per_s(self) -> float:
        """How fast the reading may pull the estimate down (degC/s): model error, and the lid
        taken off (the fastest a bath cools by itself). Faster is a probe leaving the water."""
        m = self.model
        loss = max(m.loss_per_s, self.loss_per_s)  # as learned, or as the bath behaves now if lossier
        return self.max_bias_rate_c_per_s + LID_OFF_LOSS_FACTOR * loss * max(0.0, self.water_c - m.room_c)

    def rebase(self, model: BathModel, reading_c: float, *, slope_c_per_s: float = 0.0,
               water_c: float | None = None) -> None:
        """Start from ``reading_c`` with ``model``: the probe reads it, the water leads it by the
        ramp ``slope_c_per_s`` over the delay (0: settled), unless ``water_c`` says where it is."""
        self.model = model
        self.suspect, self.suspect_s, self._anchor_c, self._suspect_heat_c = False, 0.0, self.bias_c, 0.0
        self.drift_c_per_s = 0.0
        ahead_c = slope_c_per_s * model.delay_s
        self._water_c = (reading_c + ahead_c if water_c is None else water_c) - self.bias_c
        self._probe_c = reading_c - self.bias_c
        n = max(1, round(model.dead_time_s))
        # oldest first: the water as it was dead_time ago .. now
        self._delay = deque(self._water_c - slope_c_per_s * (n - i) for i in range(n))

    def step(self, dt_s: float, heater_on_s: float, reading_c: float | None) -> None:
        """Advance by ``dt_s`` with the heater on for ``heater_on_s`` of it; correct from a valid reading."""
        self.predict(dt_s, heater_on_s)
        self.correct(dt_s, reading_c)

    def predict(self, dt_s: float, heater_on_s: float) -> None:
        """Advance the model by ``dt_s`` with the heater on for ``heater_on_s`` of it."""
        m = self.model
        u = heater_on_s / dt_s if dt_s > 0 else 0.0
        water_before = self._water_c
        self._water_c += (m.heat_rate_c_per_s * u - m.loss_per_s * (self.water_c - m.room_c)
                          + self.drift_c_per_s) * dt_s
        if self.suspect:
            self._suspect_heat_c += m.heat_rate_c_per_s * u * dt_s
        self._delay.append(self._water_c)
        delayed = self._delay.popleft()
        before = self._probe_c
        self._probe_c += (delayed - self._probe_c) * dt_s / (m.lag_s + dt_s)
        self.predicted_change_c = self._probe_c - before
        self.predicted_water_change_c = self._water_c - water_before

    def correct(self, dt_s: float, reading_c: float | None) -> None:
        """Move the estimate toward a valid reading, at a bounded rate."""
        m = self.model
        self.departing = False
        if reading_c is not None and dt_s > 0:
            up = self.max_rise_rate_c_per_s * dt_s
            down = self.max_fall_rate_c_per_s * dt_s
            pull = (reading_c - self.probe_c) * dt_s / (CORRECTION_S + dt_s)
            # Below the model faster than the bath can cool by itself: not the water (yet).
            self.departing = pull < -down
            step = _clamp(pull, -down, up)
            self.bias_c += step
            if -down < pull < up and not self.suspect:
                # A correction that keeps going one way is heat the model misses: learn it as a flow, no
                # larger than the lid taking off once the losses were measured (the lossiest bath's before):
                # a dead element must not be learned away.
                # Never a heat source of its own: at most it cancels the losses (a step, hot water poured
                # in, saturates the correction and teaches nothing).
                excess = max(1.0, self.water_c - m.room_c)
                loss = (LID_OFF_LOSS_FACTOR - 1.0) * m.loss_per_s if m.loss_fits else LOSS_MAX_PER_S
                drift_s = DRIFT_UP_S if step > 0 else DRIFT_S  # warmer than thought: heat less, soon
                self.drift_c_per_s = _clamp(self.drift_c_per_s + step / drift_s, -loss * excess,
                                            m.loss_per_s * excess)
            if self.departing and not self.suspect:
                self.suspect, self.suspect_s, self._low_c, self._suspect_heat_c = True, 0.0, reading_c, 0.0
            if self.suspect:
                self.suspect_s += dt_s
                self._low_c = min(self._low_c, reading_c)
                if not self.departing and reading_c - self._low_c >= CONFIRM_RISE_C:
                    self.suspect, self._suspect_heat_c = False, 0.0  # it rose with the heat: a probe in the water
        if not self.suspect:
            self._anchor_c = self.bias_c

    def add_heat(self, rise_c: float) -> None:
        """Count ``rise_c`` of heat the probe never confirmed as real (it went into the water)."""
        self.bias_c += rise_c
        self._anchor_c += rise_c


# -- the energy budget -----------------------------------------------------------------------------
class EnergyBudget:
    """Heat the model says should show at the probe by now and does not, in degC of water.

    Each tick the model predicts how much the probe should rise from the heat it got
    (``expected_rise_c``, from a conservative, low heating rate); the probe's own change is
    compared with the model's whole prediction (losses included). While the reading is
    departing from the model faster than the bath can change (the observer's correction
    is at its limit), the shortfall, never more than the expected rise, adds up; a probe
    that follows, or does better, pays it back; anything left is forgotten over
    BUDGET_FORGET_S. Slow model error (stones still soaking up heat) never departs that
    fast, so it costs nothing; a cold top-up departs only while the reading falls, when
    little heat is due. A stuck, lifted or dead probe, or a dead element, shows nothing
    for the heat: the whole expected rise adds up.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Empty (at start and after every acknowledge)."""
        self.unconfirmed_c = 0.0
        self._reading_c: float | None = None
        self._predicted_c = 0.0

    def step(self, dt_s: float, *, reading_c: float | None, predicted_change_c: float,
             expected_rise_c: float, departing: bool = True) -> float:
        """Account one tick; return the unconfirmed heat (degC)."""
        if dt_s <= 0:
            return self.unconfirmed_c
        alpha = dt_s / (SMOOTH_S + dt_s)
        self._predicted_c += predicted_change_c
        if reading_c is None:
            return self.unconfirmed_c
        if self._reading_c is None:
            self._reading_c, self._predicted_c = reading_c, 0.0
            return self.unconfirmed_c
        # Both sides through the same 10 s mean: predicted and observed change comparably.
        observed = alpha * (reading_c - self._reading_c)
        self._reading_c += observed
        predicted = alpha * self._predicted_c
        self._predicted_c -= predicted
        rise = max(0.0, expected_rise_c)
        shortfall = _clamp(predicted - observed, -rise, rise if departing else 0.0)
        forget = self.unconfirmed_c * dt_s / BUDGET_FORGET_S
        self.unconfirmed_c = max(0.0, self.unconfirmed_c + shortfall - forget)
        return self.unconfirmed_c
