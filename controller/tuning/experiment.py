"""The relay experiment (Astrom-Hagglund): a relay as the duty, and what its oscillation measures.

The experiment replaces the PID's duty (``Controller.set_duty_override``) with a
relay: heater fully on below ``centre - hysteresis``, fully off above
``centre + hysteresis``. A bath driven like this settles into a steady oscillation
whose period is the ultimate period ``Pu`` and whose size gives the ultimate
gain ``Ku`` (docs/field-notes.md, "Control"): for a relay of amplitude d
and a temperature swing of amplitude a, ``Ku = 4 d / (pi a)``.

Phases:

``noise``     heater off for NOISE_S: the reading's scatter sets the noise band
              (the relay's hysteresis), so noise cannot flip the relay;
``approach``  heat (or cool) to a first switching point well below the target,
              and measure the heating rate and how far the bath overshoots;
``relay``     oscillate around a centre placed so that every peak stays
              GUARD_MARGIN_C below both the interlock guard (setpoint + 1 degC:
              it switches the heater off, which would spoil the experiment) and
              the highest allowed setpoint; count cycles until CYCLES_NEEDED in a
              row agree;
``done``      the heater off, the gains computed.

Pure bookkeeping: no clock, no I/O. :mod:`controller.tuning.autotune` runs it
through the interlock.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from enum import StrEnum

NOISE_S = 60.0               # heater off this long to see the reading's scatter
HYSTERESIS_MIN_C = 0.125     # two DS18B20 steps of 1/16 degC: the smallest useful noise band
NOISE_SIGMAS = 4.0           # noise band = this many standard deviations of the scatter
GUARD_MARGIN_C = 0.3         # peaks stay this far below the guard and the max setpoint
FIRST_SWITCH_BELOW_C = 2.0   # the first switch-off, before the bath's overshoot is known
OVERSHOOT_SAFETY = 1.3       # room left for peaks larger than the first overshoot
CYCLES_NEEDED = 3            # consistent cycles in a row
PERIOD_TOLERANCE = 0.10      # consistent: periods within +/-10 % of their mean ...
AMPLITUDE_TOLERANCE = 0.15   # ... and amplitudes within +/-15 %



class Phase(StrEnum):
    """Where the experiment is (shown on the dashboard as ``detail.autotune.phase``)."""

    NOISE = "noise"
    APPROACH = "approach"
    RELAY = "relay"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the relay experiment measured. Temperatures in degC, times in s."""

    ku: float                  # ultimate gain, duty per degC (first harmonics of heater / reading)
    ku_classic: float          # 4 d / (pi a), d = relay amplitude, a = half the peak-to-peak
    pu_s: float                # ultimate period
    amplitude_c: float         # a: half the peak-to-peak swing
    relay_amplitude: float     # d: half the heater's on/off step (0.5 for full on/off)
    centre_c: float
    hysteresis_c: float
    noise_c: float             # standard deviation of the reading's scatter
    dead_time_s: float         # switch -> turn-around of the reading (dead time + lags)
    heating_rate_c_per_min: float   # at full power, approaching the centre
    integrating_gain: float    # k': degC/s per unit of duty around the centre (heat balance of the cycles)
    cycles: int
    periods_s: tuple[float, ...]
    amplitudes_c: tuple[float, ...]


@dataclass
class _Cycle:
    start_s: float
    end_s: float
    peak_c: float
    trough_c: float

    @property
    def period_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def amplitude_c(self) -> float:
        return (self.peak_c - self.trough_c) / 2.0


@dataclass
class RelayExperiment:
    """The relay, as a duty override, and the bookkeeping of its cycles.

    ``target_c``: the setpoint being tuned for; ``limit_c``: no peak may reach it.
    Call it as the override (it proposes 0 or 1) and :meth:`observe` with each
    published status (what the relay actually did, what the probe read).
    """

    target_c: float
    limit_c: float
    phase: Phase = Phase.NOISE
    centre_c: float = 0.0
    hysteresis_c: float = HYSTERESIS_MIN_C
    noise_c: float = 0.0
    started_s: float | None = None
    heating_rate_c_per_s: float | None = None
    recentres: int = 0
    high: bool = True
    samples: list[tuple[float, float, bool]] = field(default_factory=list)  # (t, reading, relay on)
    cycles: list[_Cycle] = field(default_factory=list)
    _settled_from: int = 0        # cycles before this index belong to an earlier centre
    _last_high_s: float | None = None
    _peak_c: float = -math.inf
    _trough_c: float = math.inf
    _switched_low_at_c: float | None = None
    _first_peak_done: bool = False
    rise_delay_s: float | None = None    # heater on -> the reading starts to rise (approach)
    _on_since_s: float | None = None
    _on_low_c: float = math.inf

    # -- the override ---------------------------------------------------------------
    def __call__(self, now_s: float, temp_c: float, setpoint_c: float) -> float:
        if self.started_s is None:
            self.started_s = now_s
        if self.phase == Phase.NOISE:
            if now_s - self.started_s < NOISE_S:
                return 0.0
            self._start_approach(now_s, temp_c, quiet_since_s=self.started_s)
        if self.phase not in (Phase.APPROACH, Phase.RELAY):
            return 0.0
        self._peak_c = max(self._peak_c, temp_c)
        self._trough_c = min(self._trough_c, temp_c)
        if self.phase == Phase.APPROACH and self.high:
            self._plan_first_switch(now_s, temp_c)
        if self.high and temp_c >= self.centre_c + self.hysteresis_c:
            self.high = False
            self._switched_low_at_c = temp_c
            self._peak_c = temp_c
        elif not self.high and temp_c <= self.centre_c - self.hysteresis_c:
            self._switch_high(now_s, temp_c)
        elif (not self.high and not self._first_peak_done and self._switched_low_at_c is not None
              and temp_c <= self._peak_c - self.hysteresis_c):
            # the first peak after heating at full power: now the overshoot is known
            self._place_centre(self._peak_c - self._switched_low_at_c)
        return 1.0 if self.high else 0.0

    def observe(self, t_s: float, temp_c: float | None, relay_on: bool) -> None:
        if temp_c is not None and self.phase != Phase.DONE:
            self.samples.append((t_s, temp_c, relay_on))

    # -- phases -----------------------------------------------------------------------
    def _start_approach(self, now_s: float, temp_c: float, *, quiet_since_s: float) -> None:
        quiet = [(t, c) for t, c, _ in self.samples if t >= quiet_since_s]
        self.noise_c = _residual_sigma(quiet)
        self.hysteresis_c = max(HYSTERESIS_MIN_C, NOISE_SIGMAS * self.noise_c)
        self.centre_c = min(self.target_c, self.limit_c) - FIRST_SWITCH_BELOW_C - self.hysteresis_c
        self.high = temp_c < self.centre_c
        self._switched_low_at_c = None  # a bath that starts hot cools first, then shows its overshoot
        self._peak_c = self._trough_c = temp_c
        self._approach_from_s = now_s
        self.phase = Phase.APPROACH

    def _plan_first_switch(self, now_s: float, temp_c: float) -> None:
        """Place the first switch-off so that even a generous overshoot stays below the limit.

        The overshoot after switching off is about the heating rate times the
        delay before the reading responds; both are measured here, on the way up.
        """
        if self._on_since_s is None:
            self._on_since_s, self._on_low_c = now_s, temp_c
        self._on_low_c = min(self._on_low_c, temp_c)
        if self.rise_delay_s is None:
            if temp_c < self._on_low_c + 2 * self.hysteresis_c:
                return
            self.rise_delay_s = now_s - self._on_since_s
        recent = [(t, c) for t, c, _ in self.samples if t >= now_s - 60.0]
        rate = _slope(recent)
        if math.isfinite(rate) and rate > 0:
            expected_c = OVERSHOOT_SAFETY * rate * self.rise_delay_s
            self.centre_c = min(self.target_c, self.limit_c) - self.hysteresis_c - max(
                expected_c, self.hysteresis_c) - self.hysteresis_c

    def _place_centre(self, overshoot_c: float) -> None:
        """Put the centre as high as the measured overshoot allows (never above the target)."""
        if self.heating_rate_c_per_s is None:
            self.heating_rate_c_per_s = self._full_power_slope()
        room = OVERSHOOT_SAFETY * max(overshoot_c, self.hysteresis_c)
        self.centre_c = min(self.target_c, self.limit_c - self.hysteresis_c - room)
        self._first_peak_done = True
        self.phase = Phase.RELAY
        self._settled_from = len(self.cycles) + 1  # the next cycle still carries the move

    def _switch_high(self, now_s: float, temp_c: float) -> None:
        self.high = True
        if self._last_high_s is not None and self.phase == Phase.RELAY:
            self.cycles.append(_Cycle(self._last_high_s, now_s, self._peak_c, self._trough_c))
            if self._peak_c >= self.limit_c:
                # a peak got too close to the guard: move down and start counting again
                self.recentres += 1
                self.centre_c -= (self._peak_c - self.limit_c) + self.hysteresis_c
                self._settled_from = len(self.cycles) + 1
        self._last_high_s = now_s
        self._peak_c = self._trough_c = temp_c

    def _full_power_slope(self) -> float:
        """degC/s over the last 120 s of heating at full power before the first switch-off."""
        on = [(t, c) for t, c, relay in self.samples if relay and t >= self._approach_from_s]
        if len(on) < 10:
            return math.nan
        end = on[-1][0]
        return _slope([p for p in on if p[0] >= end - 120.0])

    # -- progress -----------------------------------------------------------------------
    def good_cycles(self) -> list[_Cycle]:
        """The cycles since the centre last moved (the first of them excluded)."""
        return self.cycles[self._settled_from:]

    def consistent(self) -> list[_Cycle] | None:
        """The last CYCLES_NEEDED cycles, if they agree with each other."""
        cycles = self.good_cycles()[-CYCLES_NEEDED:]
        if len(cycles) < CYCLES_NEEDED:
            return None
        for values, tolerance in (([c.period_s for c in cycles], PERIOD_TOLERANCE),
                                  ([c.amplitude_c for c in cycles], AMPLITUDE_TOLERANCE)):
            mean = statistics.fmean(values)
            if mean <= 0 or max(abs(v - mean) for v in values) > tolerance * mean:
                return None
        return cycles

    def progress(self, now_s: float, temp_c: float | None) -> dict:
        """Phase, cycle count and an estimate of the time left (s, None while unknown)."""
        good = len(self.good_cycles())
        eta = None
        period = self.cycles[-1].period_s if self.cycles else None
        if self.phase == Phase.NOISE and self.started_s is not None:
            eta = NOISE_S - (now_s - self.started_s)
        elif self.phase == Phase.APPROACH and temp_c is not None and self.high:
            rate = self._full_power_slope()
            if rate > 0:
                eta = max(0.0, (self.centre_c - temp_c) / rate)
        elif self.phase == Phase.RELAY and period:
            since = now_s - self._last_high_s if self._last_high_s is not None else 0.0
            remaining = max(1, CYCLES_NEEDED - good)
            eta = max(0.0, remaining * period - since)
        return {"phase": self.phase, "cycle": good, "cycles_needed": CYCLES_NEEDED,
                "centre_c": round(self.centre_c, 2) if self.centre_c else None,
                "hysteresis_c": round(self.hysteresis_c, 3),
                "eta_s": None if eta is None else round(eta),
                "elapsed_s": 0 if self.started_s is None else round(now_s - self.started_s)}

    # -- the answer -----------------------------------------------------------------------
    def measure(self, cycles: list[_Cycle]) -> Measurement:
        start, end = cycles[0].start_s, cycles[-1].end_s
        window = [(t, c, on) for t, c, on in self.samples if start <= t < end]
        pu = (end - start) / len(cycles)
        w = 2 * math.pi / pu
        mean_c = statistics.fmean(c for _, c, _ in window)
        mean_u = statistics.fmean(1.0 if on else 0.0 for _, _, on in window)
        u1 = sum(((1.0 if on else 0.0) - mean_u) * complex(math.cos(w * t), -math.sin(w * t))
                 for t, _, on in window)
        y1 = sum((c - mean_c) * complex(math.cos(w * t), -math.sin(w * t)) for t, c, _ in window)
        amplitude = statistics.fmean(c.amplitude_c for c in cycles)
        d = 0.5  # the heater steps between off (0) and full power (1)
        dead = _dead_time_s(window)
        k_int = _integrating_gain(window, dead, start_s=start, end_s=end)
        rate = self.heating_rate_c_per_s if self.heating_rate_c_per_s is not None else math.nan
        return Measurement(
            ku=abs(u1) / abs(y1), ku_classic=4 * d / (math.pi * amplitude), pu_s=pu,
            amplitude_c=amplitude, relay_amplitude=d, centre_c=self.centre_c,
            hysteresis_c=self.hysteresis_c, noise_c=self.noise_c, dead_time_s=dead,
            heating_rate_c_per_min=rate * 60.0, integrating_gain=k_int, cycles=len(cycles),
            periods_s=tuple(round(c.period_s, 1) for c in cycles),
            amplitudes_c=tuple(round(c.amplitude_c, 3) for c in cycles))


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value) points (value per s)."""
    if len(points) < 2:
        return math.nan
    t_mean = statistics.fmean(t for t, _ in points)
    c_mean = statistics.fmean(c for _, c in points)
    var = sum((t - t_mean) ** 2 for t, _ in points)
    return sum((t - t_mean) * (c - c_mean) for t, c in points) / var if var else math.nan


def _residual_sigma(points: list[tuple[float, float]]) -> float:
    """Standard deviation of the points around their straight line (degC)."""
    if len(points) < 3:
        return 0.0
    slope = _slope(points)
    t_mean = statistics.fmean(t for t, _ in points)
    c_mean = statistics.fmean(c for _, c in points)
    residuals = [c - (c_mean + slope * (t - t_mean)) for t, c in points]
    return statistics.pstdev(residuals)


def _switches(window: list[tuple[float, float, bool]]) -> list[tuple[int, bool]]:
    """Indexes where the relay actually changed, with its new state."""
    return [(i, on) for i, ((_, _, was), (_, _, on)) in enumerate(zip(window, window[1:]), start=1)
            if on != was]


def _dead_time_s(window: list[tuple[float, float, bool]]) -> float:
    """Median time from a relay switch to the reading's turn-around (its extreme before the next switch)."""
    smooth = [statistics.fmean(c for _, c, _ in window[max(0, i - 2):i + 3]) for i in range(len(window))]
    switches = _switches(window)
    delays = []
    for (i, on), (j, _) in zip(switches, switches[1:] + [(len(window), None)]):
        segment = range(i, j)
        if not segment:
            continue
        extreme = min(smooth[k] for k in segment) if on else max(smooth[k] for k in segment)
        at = [window[k][0] for k in segment if smooth[k] == extreme]
        delays.append(statistics.fmean(at) - window[i][0])
    return statistics.median(delays) if delays else math.nan


def _integrating_gain(window: list[tuple[float, float, bool]], dead_time_s: float, *, start_s: float,
                      end_s: float) -> float:
    """k', degC/s per unit of duty, from the heat balance of whole relay cycles (NaN when it cannot be told).

    Each cycle runs from one switch-on to the next, both at ``centre - hysteresis``: over whole cycles
    the reading ends where it started, so the heat the relay gave matches what the bath lost. With
    the relay on a fraction f of the time and the bath cooling at L (the slope of the off halves),
    k' f = L; the on halves rise at k' - L, so also k' (1 - f) = their slope. The slope is taken from
    the longer halves: near the setpoint the heater is on for little more than the dead time, which
    leaves a handful of samples (a few 1/16 degC steps) to fit a rise to, still bending with the lags.
    """
    times = [t for t, _, _ in window[1:]] + [end_s]  # each tick's relay state holds until the next tick
    on_s = sum(t_next - t for (t, _, on), t_next in zip(window, times) if on)
    on_fraction = on_s / (end_s - start_s)
    slopes_on, slopes_off = _half_cycle_slopes(window, dead_time_s)
    if on_fraction <= 0.5:
        return -statistics.median(slopes_off) / on_fraction if slopes_off and on_fraction > 0 else math.nan
    return statistics.median(slopes_on) / (1.0 - on_fraction) if slopes_on and on_fraction < 1 else math.nan


def _half_cycle_slopes(window, dead_time_s: float) -> tuple[list[float], list[float]]:
    """Slopes (degC/s) of the reading in each on and off half, once the switch has come through."""
    on_slopes: list[float] = []
    off_slopes: list[float] = []
    switches = _switches(window)
    for (i, on), (j, _) in zip(switches, switches[1:]):
        t_from = window[i][0] + dead_time_s
        points = [(t, c) for t, c, _ in window[i:j] if t >= t_from]
        if len(points) >= 5:
            (on_slopes if on else off_slopes).append(_slope(points))
    return on_slopes, off_slopes
