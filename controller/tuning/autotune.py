"""Relay autotune (Astrom-Hagglund): measure the bath, then compute gains that do not overshoot.

The experiment replaces the PID's duty (``Controller.set_duty_override``) with a
relay: heater fully on below ``centre - hysteresis``, fully off above
``centre + hysteresis``. The safety interlock still judges every tick, exactly as
in normal operation. A bath driven like this settles into a steady oscillation
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

The gain rule, and why: a stone bath is lag-dominant (an almost pure
integrator behind 20-90 s of dead time and probe lag) and overshoot burns.
Ziegler-Nichols (Kp = 0.6 Ku) aims at a quarter-decay response: 25 %
overshoot. We use SIMC (Skogestad 2003) for an integrating process with
delay, from two things the experiment measures directly: the slope the heater
gives per unit of duty (k', degC/s, from the on and off half-cycles) and the
effective dead time theta (switch -> turn-around of the reading, which lumps
the probe lag in). With the tight choice tau_c = theta: Kp = 1 / (2 k' theta),
Ti = 8 theta, no derivative. Measured with ``stonewarmer bench`` on the four
baths (docs/bench.md), it overshot least of the rules in :data:`RULES`: the Ku/Pu
"no overshoot" rule (Kp = 0.2 Ku, Ti = Pu / 2, Td = Pu / 3) overshoots
1.2-1.4 degC here, because its short integral time winds an integrating plant
up on the way to the setpoint; Tyreus-Luyben is slower and overshoots more.
Ku and Pu are still measured and reported (and give the textbook
Ziegler-Nichols PID the benchmark compares with).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from controller.cli.main import UserError, add_config_arg, load_config
from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.core.safety import GUARD_ABOVE_C

NOISE_S = 60.0               # heater off this long to see the reading's scatter
HYSTERESIS_MIN_C = 0.125     # two DS18B20 steps of 1/16 degC: the smallest useful noise band
NOISE_SIGMAS = 4.0           # noise band = this many standard deviations of the scatter
GUARD_MARGIN_C = 0.3         # peaks stay this far below the guard and the max setpoint
FIRST_SWITCH_BELOW_C = 2.0   # the first switch-off, before the bath's overshoot is known
OVERSHOOT_SAFETY = 1.3       # room left for peaks larger than the first overshoot
CYCLES_NEEDED = 3            # consistent cycles in a row
CYCLES_MAX = 15              # give up after this many cycles without 3 consistent ones
RECENTRES_MAX = 3
PERIOD_TOLERANCE = 0.10      # consistent: periods within +/-10 % of their mean ...
AMPLITUDE_TOLERANCE = 0.15   # ... and amplitudes within +/-15 %
MAX_EXPERIMENT_S = 8 * 3600.0
AUTOTUNE_FILE = "autotune.json"  # in the state dir, next to state.json

PHASE_NOISE = "noise"
PHASE_APPROACH = "approach"
PHASE_RELAY = "relay"
PHASE_DONE = "done"
PHASE_CANCELLED = "cancelled"
PHASE_FAILED = "failed"


def _rule_no_overshoot(r: Measurement) -> tuple[float, float, float]:
    return 0.2 * r.ku, r.pu_s / 2.0, r.pu_s / 3.0


def _rule_tyreus_luyben(r: Measurement) -> tuple[float, float, float]:
    return r.ku / 2.2, 2.2 * r.pu_s, r.pu_s / 6.3


def _rule_ziegler_nichols(r: Measurement) -> tuple[float, float, float]:
    return 0.6 * r.ku, r.pu_s / 2.0, r.pu_s / 8.0


def _rule_simc(r: Measurement) -> tuple[float, float, float]:
    # SIMC for an integrating process k'/s with delay theta, tau_c = theta (Skogestad 2003);
    # PI only: the measured theta already lumps the probe lag in.
    theta = r.dead_time_s
    return 1.0 / (r.integrating_gain * 2.0 * theta), 8.0 * theta, 0.0


#: name -> (Kp in duty/degC, Ti in s, Td in s) from a measurement.
RULES: dict[str, Callable[[Measurement], tuple[float, float, float]]] = {
    "no-overshoot": _rule_no_overshoot,
    "tyreus-luyben": _rule_tyreus_luyben,
    "simc": _rule_simc,
    "ziegler-nichols": _rule_ziegler_nichols,
}
DEFAULT_RULE = "simc"


class AutotuneError(Exception):
    """The experiment could not finish (cancelled, interlock trip, no oscillation)."""

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


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
    integrating_gain: float    # degC/s per unit of duty around the centre
    cycles: int
    periods_s: tuple[float, ...]
    amplitudes_c: tuple[float, ...]


def gains_from(measurement: Measurement, rule: str = DEFAULT_RULE) -> Gains:
    """PID gains (duty/degC, duty/(degC s), duty/(degC/s)) from a measurement and a rule."""
    kp, ti_s, td_s = RULES[rule](measurement)
    return Gains(kp=kp, ki=kp / ti_s if ti_s > 0 else 0.0, kd=kp * td_s)


@dataclass
class Result:
    measurement: Measurement
    rule: str
    gains: Gains
    duration_s: float

    def to_dict(self) -> dict:
        return {"measurement": asdict(self.measurement), "rule": self.rule,
                "gains": asdict(self.gains), "duration_s": self.duration_s,
                "other_rules": {name: asdict(gains_from(self.measurement, name)) for name in RULES}}

    def config_lines(self) -> str:
        g = self.gains
        return (f"[control]\n# measured by `stonewarmer autotune` ({self.rule} rule): "
                f"Ku={self.measurement.ku:.3g} per degC, Pu={self.measurement.pu_s:.0f} s\n"
                f"kp = {g.kp:.4g}\nki = {g.ki:.4g}\nkd = {g.kd:.4g}")


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
    phase: str = PHASE_NOISE
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
        if self.phase == PHASE_NOISE:
            if now_s - self.started_s < NOISE_S:
                return 0.0
            self._start_approach(now_s, temp_c)
        if self.phase not in (PHASE_APPROACH, PHASE_RELAY):
            return 0.0
        self._peak_c = max(self._peak_c, temp_c)
        self._trough_c = min(self._trough_c, temp_c)
        if self.phase == PHASE_APPROACH and self.high:
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
        if temp_c is not None and self.phase != PHASE_DONE:
            self.samples.append((t_s, temp_c, relay_on))

    # -- phases -----------------------------------------------------------------------
    def _start_approach(self, now_s: float, temp_c: float) -> None:
        quiet = [(t, c) for t, c, _ in self.samples if t >= self.started_s]
        self.noise_c = _residual_sigma(quiet)
        self.hysteresis_c = max(HYSTERESIS_MIN_C, NOISE_SIGMAS * self.noise_c)
        self.centre_c = min(self.target_c, self.limit_c) - FIRST_SWITCH_BELOW_C - self.hysteresis_c
        self.high = temp_c < self.centre_c
        self._switched_low_at_c = None  # a bath that starts hot cools first, then shows its overshoot
        self._peak_c = self._trough_c = temp_c
        self._approach_from_s = now_s
        self.phase = PHASE_APPROACH

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
        self.phase = PHASE_RELAY
        self._settled_from = len(self.cycles) + 1  # the next cycle still carries the move

    def _switch_high(self, now_s: float, temp_c: float) -> None:
        self.high = True
        if self._last_high_s is not None and self.phase == PHASE_RELAY:
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
        if self.phase == PHASE_NOISE and self.started_s is not None:
            eta = NOISE_S - (now_s - self.started_s)
        elif self.phase == PHASE_APPROACH and temp_c is not None and self.high:
            rate = self._full_power_slope()
            if rate > 0:
                eta = max(0.0, (self.centre_c - temp_c) / rate)
        elif self.phase == PHASE_RELAY and period:
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
        slopes_on, slopes_off = _half_cycle_slopes(window, dead)
        k_int = ((statistics.median(slopes_on) if slopes_on else 0.0)
                 - (statistics.median(slopes_off) if slopes_off else 0.0))
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


def _half_cycle_slopes(window, dead_time_s: float) -> tuple[list[float], list[float]]:
    """Slopes (degC/s) of the reading in each on and off half, once the switch has come through."""
    on_slopes, off_slopes = [], []
    switches = _switches(window)
    for (i, on), (j, _) in zip(switches, switches[1:]):
        t_from = window[i][0] + dead_time_s
        points = [(t, c) for t, c, _ in window[i:j] if t >= t_from]
        if len(points) >= 5:
            (on_slopes if on else off_slopes).append(_slope(points))
    return on_slopes, off_slopes


# -- running the experiment ------------------------------------------------------------------
def run(controller, *, step: Callable[[], None], cancel: threading.Event | None = None,
        report: Callable[[dict], None] | None = None, rule: str = DEFAULT_RULE,
        max_s: float = MAX_EXPERIMENT_S) -> Result:
    """Run the relay experiment on ``controller`` and return the measurement and gains.

    ``step()`` lets one control tick happen (simulation: advance the bath one
    second; hardware: wait for the next second and tick). ``report(progress)``
    is called when the phase or cycle count changes. The gains are NOT applied
    here: see :func:`apply`. Raises :class:`AutotuneError` on cancel, on an
    interlock trip and when no consistent oscillation appears within ``max_s``;
    the heater is then being switched off (duty 0 through the interlock).
    """
    c = controller.cfg.control
    target_c = controller.setpoint_c
    limit_c = min(target_c + GUARD_ABOVE_C, c.max_setpoint_c) - GUARD_MARGIN_C
    experiment = RelayExperiment(target_c=target_c, limit_c=limit_c)
    start_s = controller.clock.monotonic()
    last_key = None
    controller.set_duty_override(experiment)
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise AutotuneError("cancelled", phase=PHASE_CANCELLED)
            step()
            status = controller.status()
            experiment.observe(status.monotonic_s, status.temperature_c, status.relay_on)
            if status.fault:
                raise AutotuneError(f"the safety interlock tripped ({status.fault}: "
                                    f"{status.fault_message}); the heater is off", phase=PHASE_FAILED)
            progress = experiment.progress(status.monotonic_s, status.temperature_c)
            controller.set_detail(autotune=progress)
            key = (progress["phase"], progress["cycle"], len(experiment.cycles))
            if report is not None and key != last_key:
                report({**progress, "temperature_c": status.temperature_c})
            last_key = key
            cycles = experiment.consistent()
            if cycles is not None:
                break
            elapsed = status.monotonic_s - start_s
            if (len(experiment.cycles) > CYCLES_MAX or experiment.recentres > RECENTRES_MAX
                    or elapsed > max_s):
                raise AutotuneError(
                    f"no steady oscillation after {elapsed / 60:.0f} min and {len(experiment.cycles)} "
                    f"cycles (periods {[round(x.period_s) for x in experiment.cycles[-4:]]} s): "
                    "is the lid on and the probe in the water?", phase=PHASE_FAILED)
        measurement = experiment.measure(cycles)
        result = Result(measurement, rule, gains_from(measurement, rule),
                        controller.clock.monotonic() - start_s)
        controller.set_detail(autotune={**experiment.progress(status.monotonic_s, None),
                                        "phase": PHASE_DONE, "eta_s": 0})
        return result
    except AutotuneError as exc:
        controller.set_detail(autotune={"phase": exc.phase, "message": str(exc)})
        raise
    except KeyboardInterrupt:
        controller.set_detail(autotune={"phase": PHASE_CANCELLED, "message": "cancelled (Ctrl-C)"})
        raise
    finally:
        # Heater off, still through the interlock; the caller hands back to the PID or closes.
        controller.set_duty_override(_off)


def _off(_now_s: float, _temp_c: float, _setpoint_c: float) -> float:
    return 0.0


def apply(controller, result: Result) -> Path:
    """Use the tuned gains from now on (state.json) and keep the measurement (autotune.json)."""
    controller.set_gains(result.gains, source="autotune")
    path = Path(controller.store.dir) / AUTOTUNE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".autotune-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f, indent=2)
    os.replace(tmp, path)
    return path


def tune_in_simulation(cfg: cfgmod.Config, make_plant, *, rule: str = DEFAULT_RULE, seed: int = 1,
                       noise_c: float | None = None, report=None, cancel=None):
    """Autotune a simulated plant as fast as the simulator runs. Returns (Result, Simulation).

    The simulation is returned open (heater off) so the caller can inspect or
    close it; on an error it is closed.
    """
    from controller.sim.simulation import NOISE_C, Simulation

    sim = Simulation(cfg, make_plant=make_plant, seed=seed, noise_c=NOISE_C if noise_c is None else noise_c)
    try:
        result = run(sim.controller, step=sim.step, cancel=cancel, report=report, rule=rule)
    except BaseException:
        sim.close()
        raise
    return result, sim


# -- the command ----------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("autotune", help="measure the bath with a relay experiment and tune the PID gains")
    add_config_arg(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--simulate", action="store_true",
                       help="tune the built-in simulated bath (as fast as possible)")
    where.add_argument("--plant", metavar="SPEC",
                       help="tune a simulated plant: a built-in bath (reference, small, large-open, laggy) "
                            "or module:Class")
    p.add_argument("--setpoint", type=float, metavar="C",
                   help="tune around this setpoint, degC (default: the configured one)")
    p.add_argument("--rule", choices=tuple(RULES), default=DEFAULT_RULE,
                   help=f"gain rule (default: {DEFAULT_RULE})")
    p.add_argument("--state-dir", metavar="DIR", help="override [state] dir (where the gains are saved)")
    p.set_defaults(handler=cmd_autotune)


def cmd_autotune(args: argparse.Namespace) -> int:
    simulate = bool(args.simulate or args.plant)
    cfg = load_config(args, simulate=simulate)
    if args.state_dir:
        cfg = cfgmod.replace(cfg, "state", dir=str(Path(args.state_dir).resolve()))
    if simulate:
        from controller.sim.plant import load_plant
        from controller.sim.simulation import Simulation

        try:
            make_plant = load_plant(args.plant or "reference")
        except ValueError as exc:
            raise UserError(str(exc)) from None
        sim = Simulation(cfg, make_plant=make_plant)
        controller, step, close = sim.controller, sim.step, sim.close
        print(f"autotune: simulated plant {args.plant or 'reference'}, simulated time", flush=True)
    else:
        controller, step, close = _hardware(cfg)
    try:
        return _tune(controller, step, args)
    finally:
        close()  # heater off, pin released


def _hardware(cfg: cfgmod.Config):
    from controller.service.supervisor import build

    print("autotune: on the real probe and relay. The stonewarmer service must be stopped first "
          "(sudo systemctl stop stonewarmer): only one process may drive the relay.", flush=True)
    try:
        controller = build(cfg, simulate=False).controller
    except Exception as exc:  # noqa: BLE001 - e.g. GPIO busy: the service is still running
        raise UserError(f"cannot claim the probe and relay ({exc}); is the service still running?") from None
    stop = threading.Event()
    next_s = [controller.clock.monotonic()]

    def step() -> None:
        next_s[0] += 1.0
        controller.clock.sleep_until(next_s[0], stop)
        controller.tick()

    return controller, step, controller.close


def _tune(controller, step, args: argparse.Namespace) -> int:
    from controller.core.loop import CommandError

    if args.setpoint is not None:
        try:
            controller.set_setpoint(args.setpoint, source="autotune")
        except CommandError as exc:
            raise UserError(f"--setpoint: {exc}") from None
    if controller.interlock.latched:
        raise UserError(f"a fault is latched ({controller.interlock.latched.kind}): acknowledge it first")
    wall_start = time.monotonic()
    print(f"autotune: target {controller.setpoint_c:.1f} degC; the experiment stays below "
          f"{min(controller.setpoint_c + GUARD_ABOVE_C, controller.cfg.control.max_setpoint_c) - GUARD_MARGIN_C:.1f}"
          " degC. Ctrl-C cancels (heater off).", flush=True)

    def report(p: dict) -> None:
        eta = "estimating" if p["eta_s"] is None else f"~{p['eta_s'] / 60:.0f} min left"
        temp = "n/a" if p["temperature_c"] is None else f"{p['temperature_c']:.2f} degC"
        centre = ("measuring the noise band" if p["phase"] == PHASE_NOISE
                  else f"centre {p['centre_c']:.2f} +/- {p['hysteresis_c']:.2f} degC")
        print(f"  [{p['elapsed_s'] / 60:6.1f} min] {p['phase']:<8} cycle {p['cycle']}/{p['cycles_needed']}"
              f"  {centre}  now {temp}  {eta}",
              flush=True)

    try:
        result = run(controller, step=step, report=report, rule=args.rule)
    except AutotuneError as exc:
        print(f"autotune: {exc.phase}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autotune: cancelled; heater off, gains unchanged", file=sys.stderr)
        return 130
    path = apply(controller, result)
    m = result.measurement
    print(f"autotune: done in {result.duration_s / 60:.0f} min ({time.monotonic() - wall_start:.1f} s wall)\n"
          f"  Ku = {m.ku:.3g} duty/degC (4d/(pi a) = {m.ku_classic:.3g}), Pu = {m.pu_s:.0f} s, "
          f"swing +/-{m.amplitude_c:.2f} degC around {m.centre_c:.2f} degC\n"
          f"  dead time + lag {m.dead_time_s:.0f} s, heating {m.heating_rate_c_per_min:.2f} degC/min at full power\n"
          f"  gains ({result.rule}) saved to {controller.store.path} and used from now on; "
          f"measurement in {path}\n"
          f"Paste into the config file to keep them:\n{result.config_lines()}")
    return 0
