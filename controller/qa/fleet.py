"""``stonewarmer bench --fleet N``: the warmer on N random realistic baths, judged on the true water.

Each bath of :func:`controller.sim.fleet.draw` runs twice through the real code path
(:class:`~controller.sim.simulation.Simulation`):

* **everyday**: a cold start, a hold, then what happens in a session: stones returned
  cold, the lid open 5 min, a cold top-up, a hot top-up, the setpoint lowered 3 degC and
  raised back. Nothing may trip.
* **fault**: the same start, then one real fault (cycling through :data:`FAULTS` by
  bath index). It must be caught, and the true water must stay below setpoint + 1.5 degC
  (the welded relay, which nothing can switch off, must be alarmed within 3 min of the heater
  first wanted off, or of the weld when the heater was off then or never wanted off after it).

Figures (docs/control.md, "The fleet"): false trips, the approach overshoot (the true
water's first lobe above the setpoint, on the warm-up and after the setpoint is raised),
the hold band next to what one minimum relay pulse allows (and the hold's highest
excursion next to one pulse's rise), warm-up time over the full-power time, the
learned heating rate against the truth, and per fault kind: caught, time to trip, peak
true water.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

from controller.core import config as cfgmod
from controller.qa.simulated import stone_bath
from controller.sim.fleet import FleetBath, draw
from controller.sim.plant import StoneBath
from controller.sim.simulation import Injection, Simulation

WARM_BAND_C = 0.5        # warmed up: true water within this of the setpoint
SETTLE_S = 900.0         # the hold band is measured from this long after warming up ...
HOLD_S = 1800.0          # ... for this long
MIN = 60.0
#: The everyday session after warm-up + settling + hold: (minutes after the hold, what).
EVERYDAY = ((0, "stones"), (15, "lid-open"), (20, "lid-closed"), (35, "cold-top-up"), (50, "hot-top-up"),
            (65, "setpoint-down"), (85, "setpoint-up"))
EVERYDAY_END_MIN = 115
MAX_BATHS = 10000
SAFE_ABOVE_C = 1.5       # under a single fault the true water stays below setpoint + this
WELDED_ALARM_S = 180.0   # ... except a welded relay: alarmed within this long
FAULT_OBSERVE_S = 2400.0
STUCK_AT_C = 45.0        # a probe stuck at a believable value
#: name -> (phase, injection kind)
FAULTS = {
    "dead element": ("warm-up", "dead-element"),
    "probe lifted at warm-up": ("warm-up", "lifted"),
    "probe lifted at hold": ("hold", "lifted"),
    "probe stuck at 45.0": ("hold", "stuck=45"),
    "probe stuck at 0.0": ("hold", "stuck=0"),
    "probe frozen at hold": ("hold", "freeze"),
    "relay welded": ("hold", "stuck-relay"),
}


@dataclass(frozen=True, slots=True)
class _Times:
    full_power_s: float   # full power from cold to setpoint - WARM_BAND_C (true water)
    hold_from_s: float
    hold_to_s: float


def _times(bath: FleetBath) -> _Times:
    plant = StoneBath(bath.params)
    plant.set_lid(bath.lid_off)
    t = 0.0
    target = bath.setpoint_c - WARM_BAND_C
    while plant.water_c < target and t < 8 * 3600:
        plant.advance(1.0, True)
        t += 1.0
    full = t if plant.water_c >= target else math.inf
    warm = (full if math.isfinite(full) else 4 * 3600.0) * 1.3 + 300.0
    return _Times(full, warm + SETTLE_S, warm + SETTLE_S + HOLD_S)


def _config(bath: FleetBath) -> cfgmod.Config:
    return cfgmod.replace(cfgmod.Config(), "control", setpoint_c=bath.setpoint_c)


def _simulation(bath: FleetBath, *, injections=(), on_step=None, seed: int) -> Simulation:
    sim = Simulation(_config(bath), make_plant=partial(StoneBath, bath.params), injections=list(injections),
                     seed=seed, on_step=on_step, keep_trace=False)
    stone_bath(sim).set_lid(bath.lid_off)
    return sim


class _Approach:
    """The overshoot of one approach to a setpoint: the true water's first lobe above it, from the start of the
    approach until the water first falls back to the setpoint (or ``until_s``). What follows is the hold's
    ripple, judged by the hold band."""

    def __init__(self, until_s: float) -> None:
        self.until_s = until_s
        self.peak_c = -math.inf   # the highest water above the setpoint so far (degC)
        self.done = False

    def see(self, t_s: float, above_c: float) -> None:
        """The true water ``above_c`` (degC) above the setpoint at ``t_s``."""
        if self.done:
            return
        if t_s > self.until_s or (self.peak_c >= 0.0 and above_c < 0.0):
            self.done = True
            return
        self.peak_c = max(self.peak_c, above_c)


class _Watch:
    """Per-step figures kept without a trace: O(1) memory per run."""

    def __init__(self, bath: FleetBath, times: _Times) -> None:
        self.bath = bath
        self.times = times
        self.warm_s: float | None = None
        self.approaches = [_Approach(times.hold_from_s)]  # the warm-up, then the setpoint raised
        self.hold_dev_c = 0.0
        self.hold_above_c = -math.inf  # the highest excursion above the setpoint during the hold (the ripple)
        self.peak_water_c = -math.inf
        self.peak_after_s: float | None = None  # peak counted from here (the fault)
        self.learned_at_warm: dict | None = None

    @property
    def overshoot_c(self) -> float:
        """The largest approach overshoot (degC; 0 when the water never passed the setpoint)."""
        return max(0.0, *(a.peak_c for a in self.approaches))

    def setpoint_raised(self, at_s: float) -> None:
        self.approaches.append(_Approach(math.inf))

    def __call__(self, sim: Simulation, row) -> None:
        # The setpoint as it is now: the row's was taken before this step's event (a setpoint raised while the
        # water is still above the lowered one is no overshoot of the raised one)
        t, water, sp = row.t_s, stone_bath(sim).water_c, sim.controller.setpoint_c
        if self.warm_s is None and water >= sp - WARM_BAND_C:
            self.warm_s = t
            self.learned_at_warm = sim.controller.bath.to_dict()
        self.approaches[-1].see(t, water - sp)
        if self.times.hold_from_s <= t <= self.times.hold_to_s:
            self.hold_dev_c = max(self.hold_dev_c, abs(water - sp))
            self.hold_above_c = max(self.hold_above_c, water - sp)
        if self.peak_after_s is not None and t >= self.peak_after_s:
            self.peak_water_c = max(self.peak_water_c, water)


def _everyday(sim: Simulation, at_s: float, what: str, watch: _Watch) -> None:
    plant, sp = stone_bath(sim), sim.controller.setpoint_c
    if what == "stones":
        plant.return_stones(0.4 * plant.stones_kg, 35.0)
    elif what == "lid-open" and not watch.bath.lid_off:
        plant.set_lid(True)
    elif what == "lid-closed" and not watch.bath.lid_off:
        plant.set_lid(False)
    elif what == "cold-top-up":
        plant.add_water(0.1 * plant.params.water_kg, 15.0)
    elif what == "hot-top-up":
        plant.add_water(0.07 * plant.params.water_kg, 70.0)
    elif what == "setpoint-down":
        sim.controller.set_setpoint(sp - 3.0, source="fleet")
    elif what == "setpoint-up":
        sim.controller.set_setpoint(min(sim.cfg.control.max_setpoint_c, sp + 3.0), source="fleet")
        watch.setpoint_raised(at_s)


def run_everyday(bath: FleetBath, *, seed: int = 1) -> dict:
    """The fault-free session of one bath: its figures."""
    times = _times(bath)
    watch = _Watch(bath, times)
    events = [(times.hold_to_s + m * MIN, what) for m, what in EVERYDAY]

    def on_step(sim, row):
        while events and row.t_s >= events[0][0]:
            at_s, what = events.pop(0)
            _everyday(sim, at_s, what, watch)
        watch(sim, row)

    sim = _simulation(bath, on_step=on_step, seed=seed)
    try:
        sim.run(times.hold_to_s + EVERYDAY_END_MIN * MIN)
        faults = [{"t_s": e.monotonic_s - sim.t0, "fault": e.fault, "message": e.message}
                  for e in sim.controller.events.since(0) if e.kind == "fault"]
        learned = sim.controller.bath.to_dict()
        ons = sim.controller.interlock.relay.switch_ons
    finally:
        sim.close()
    pulse_c = bath.pulse_rise_c(sim.cfg.relay.effective_min_switch_s)
    true_rate = bath.heat_rate_c_per_s
    at_warm = watch.learned_at_warm or learned
    return {
        "bath": bath.index, "label": bath.label(), "too_weak": bath.too_weak,
        "false_trips": faults,
        "full_power_s": times.full_power_s if math.isfinite(times.full_power_s) else None,
        "warmup_s": watch.warm_s,
        "warmup_ratio": (watch.warm_s / times.full_power_s
                         if watch.warm_s is not None and math.isfinite(times.full_power_s) else None),
        "overshoot_c": watch.overshoot_c,
        "hold_c": watch.hold_dev_c if not bath.too_weak else None,
        "hold_above_c": watch.hold_above_c if not bath.too_weak else None,
        "pulse_rise_c": pulse_c,
        "hold_allowed_c": max(0.25, 0.6 * pulse_c),
        "true_heat_rate_c_per_min": true_rate * 60.0,
        "learned_heat_rate_c_per_min": at_warm["heat_rate_c_per_s"] * 60.0,
        "heat_rate_error": at_warm["heat_rate_c_per_s"] / true_rate - 1.0,
        "final_heat_rate_error": learned["heat_rate_c_per_s"] / true_rate - 1.0,
        "learned": learned,
        "switch_ons": ons,
    }


def run_fault(bath: FleetBath, fault: str, *, seed: int = 1) -> dict:
    """One bath with one real fault: caught?, when, and how hot the true water got."""
    phase, kind = FAULTS[fault]
    times = _times(bath)
    watch = _Watch(bath, times)
    if phase == "warm-up":
        full = times.full_power_s if math.isfinite(times.full_power_s) else 3600.0
        at_s = max(120.0, 0.3 * full)
    else:
        at_s = times.hold_from_s
    watch.peak_after_s = at_s
    kind, _, value = kind.partition("=")
    injection = Injection(kind, at_s, math.inf, float(value or 0.0))
    sim = _simulation(bath, injections=[injection], on_step=watch, seed=seed)
    try:
        sim.run(at_s + FAULT_OBSERVE_S)
        faults = [e for e in sim.controller.events.since(0) if e.kind == "fault"]
        before = [e for e in faults if e.monotonic_s - sim.t0 < at_s]
        after = [e for e in faults if e.monotonic_s - sim.t0 >= at_s]
        setpoint_c = sim.controller.setpoint_c
        # A welded relay: the alarm is timed from when the interlock first wanted the heater off (the pin)
        offs = [t - sim.t0 for t, level in sim.pin.changes if not level and t - sim.t0 >= at_s]
        on_at_weld = next((level for t, level in reversed(sim.pin.changes) if t - sim.t0 < at_s), False)
    finally:
        sim.close()
    first = after[0] if after else None
    trip_s = first.monotonic_s - sim.t0 - at_s if first else None
    peak = watch.peak_water_c
    if kind == "stuck-relay":
        # Timed from the weld when the pin was off then, or never went off after it: a bath too weak for its
        # setpoint gives a weld no heat beyond what was asked for until its lid goes back on, and it still counts
        wanted_off_s = offs[0] if on_at_weld and offs else at_s
        safe = first is not None and first.monotonic_s - sim.t0 - wanted_off_s <= WELDED_ALARM_S
    else:
        safe = peak <= setpoint_c + SAFE_ABOVE_C
    return {"bath": bath.index, "label": bath.label(), "fault": fault, "at_s": at_s,
            "caught": first is not None, "reported": first.fault if first else None,
            "message": first.message if first else "", "trip_s": trip_s,
            "peak_water_c": peak, "peak_above_setpoint_c": peak - setpoint_c, "safe": safe,
            "false_trips_before": [e.fault for e in before]}


def _run_bath(bath: FleetBath, seed: int) -> tuple[dict, dict]:
    fault = list(FAULTS)[bath.index % len(FAULTS)]
    return run_everyday(bath, seed=seed), run_fault(bath, fault, seed=seed)


def run_fleet(count: int, *, seed: int = 1, workers: int | None = None, progress=print) -> dict:
    """The whole fleet on every core: the JSON-able report."""
    baths = draw(count, seed=seed)
    workers = workers or min(os.cpu_count() or 1, 8)
    started = time.perf_counter()
    progress(f"{count} baths x 2 sessions on {workers} worker(s) ...")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pairs = list(pool.map(_run_bath, baths, [seed] * count))
    report = {"command": f"stonewarmer bench --fleet {count} --seed {seed}", "count": count, "seed": seed,
              "everyday": [p[0] for p in pairs], "faults": [p[1] for p in pairs],
              "wall_s": time.perf_counter() - started}
    report["summary"] = summarize_fleet(report)
    return report


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank; None: no values): the p50 and p95 of every fleet figure."""
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def summarize_fleet(report: dict) -> dict:
    """The Done-when figures of the fleet."""
    runs = report["everyday"]
    able = [r for r in runs if not r["too_weak"]]
    overshoot = [r["overshoot_c"] for r in able]
    ratios = [r["warmup_ratio"] for r in able if r["warmup_ratio"] is not None]
    holds = [(r["hold_c"], r["hold_allowed_c"]) for r in able if r["hold_c"] is not None]
    above = [(r["hold_above_c"], r["pulse_rise_c"]) for r in able if r.get("hold_above_c") is not None]
    errors = [abs(r["heat_rate_error"]) for r in runs]
    by_kind: dict[str, dict] = {}
    for f in report["faults"]:
        k = by_kind.setdefault(f["fault"], {"runs": 0, "caught": 0, "unsafe": 0, "trip_s": [], "peak_above_c": []})
        k["runs"] += 1
        k["caught"] += f["caught"]
        k["unsafe"] += not f["safe"]
        if f["trip_s"] is not None:
            k["trip_s"].append(f["trip_s"])
        k["peak_above_c"].append(f["peak_above_setpoint_c"])
    faults = {name: {"runs": k["runs"], "caught": k["caught"], "unsafe": k["unsafe"],
                     "trip_s_p50": percentile(k["trip_s"], 0.5), "trip_s_max": max(k["trip_s"], default=None),
                     "peak_above_c_max": max(k["peak_above_c"], default=None)}
              for name, k in by_kind.items()}
    return {
        "baths": len(runs), "too_weak": len(runs) - len(able),
        "false_trips": sum(len(r["false_trips"]) for r in runs)
        + sum(len(f["false_trips_before"]) for f in report["faults"]),
        "false_trip_baths": [r["bath"] for r in runs if r["false_trips"]],
        "overshoot_c_p50": percentile(overshoot, 0.5), "overshoot_c_p95": percentile(overshoot, 0.95),
        "overshoot_c_max": max(overshoot, default=None),
        "hold_over_allowed_max": max((h / a for h, a in holds), default=None),
        "hold_outside_allowed": sum(1 for h, a in holds if h > a),
        "hold_above_c_max": max((h for h, _ in above), default=None),
        "hold_above_over_pulse_max": max((h / p for h, p in above), default=None),
        "warmup_ratio_p50": percentile(ratios, 0.5), "warmup_ratio_max": max(ratios, default=None),
        "heat_rate_error_max": max(errors, default=None),
        "heat_rate_within_20pct": sum(1 for e in errors if e <= 0.2),
        "faults": faults,
    }


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_fleet(report: dict) -> str:
    s = report["summary"]
    worst_pct = None if s["heat_rate_error_max"] is None else 100 * s["heat_rate_error_max"]
    lines = [f"{report['command']}: {s['baths']} baths ({s['too_weak']} too weak for their setpoint), "
             f"each once with everyday disturbances and once with one fault",
             f"  false trips:                {s['false_trips']}"
             + (f" (baths {', '.join(map(str, s['false_trip_baths'][:20]))})" if s["false_trip_baths"] else ""),
             f"  approach overshoot:         p50 {_f(s['overshoot_c_p50'], '.2f')}  p95 "
             f"{_f(s['overshoot_c_p95'], '.2f')}  max {_f(s['overshoot_c_max'], '.2f')} degC "
             f"(the true water's first lobe above the setpoint: warm-up, setpoint raised)",
             f"  hold, highest above:        worst {_f(s['hold_above_c_max'], '.2f')} degC, "
             f"{_f(s['hold_above_over_pulse_max'], '.2f')} x one minimum pulse's rise (the relay's ripple)",
             f"  hold band / allowed:        worst {_f(s['hold_over_allowed_max'], '.2f')} "
             f"(allowed: 0.6 x one minimum pulse's rise, at least 0.25 degC); "
             f"{s['hold_outside_allowed']} bath(s) outside",
             f"  warm-up / full-power time:  p50 {_f(s['warmup_ratio_p50'], '.2f')}  max "
             f"{_f(s['warmup_ratio_max'], '.2f')}",
             f"  learned heating rate:       {s['heat_rate_within_20pct']}/{s['baths']} within 20 % of the truth "
             f"after the first warm-up (worst {_f(worst_pct, '.0f')} %)",
             "  faults:                      runs caught unsafe  trip p50/max s   peak above setpoint max"]
    for name, k in s["faults"].items():
        lines.append(f"    {name:<27} {k['runs']:>4} {k['caught']:>6} {k['unsafe']:>6}  "
                     f"{_f(k['trip_s_p50'], '.0f'):>6}/{_f(k['trip_s_max'], '.0f'):<6}   "
                     f"{_f(k['peak_above_c_max'], '+.2f')} degC")
    lines.append(f"({report['wall_s']:.0f} s of wall time)")
    return "\n".join(lines)


def plot_fleet(report: dict, path: str) -> None:
    """Overshoot, hold band and warm-up ratio of every bath against its heating rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in report["everyday"] if not r["too_weak"]]
    rate = [r["true_heat_rate_c_per_min"] for r in runs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("true-water overshoot, degC", [r["overshoot_c"] for r in runs], 0.5),
              ("hold band / allowed", [(r["hold_c"] or 0) / r["hold_allowed_c"] for r in runs], 1.0),
              ("warm-up / full-power time", [r["warmup_ratio"] or math.nan for r in runs], 1.5))
    for ax, (title, values, limit) in zip(axes, panels):
        ax.scatter(rate, values, s=10)
        ax.axhline(limit, color="tab:red", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("full-power heating rate, degC/min", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(report["command"], fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

