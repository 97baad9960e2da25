"""``stonewarmer bench``: control quality against today's thermostats, and the software's cost.

Every run is a :class:`~controller.sim.simulation.Simulation`: the real probe path
(w1thermsensor reading kernel-format files), the real relay timing and the real
safety interlock, on a simulated bath. Four controllers run the same scenarios
on the same plants with the same probe noise (same seed):

``default``    stonewarmer's PID with the configured gains;
``autotuned``  stonewarmer's PID with gains from ``autotune`` on that plant;
``bang-bang``  a dial thermostat, +/- 1 degC hysteresis (:mod:`controller.qa.baselines`);
``zn-pid``     a textbook PID, Ziegler-Nichols gains, no anti-windup.

The baselines drive the heater through ``Controller.set_duty_override``, so the
interlock watches them as it watches stonewarmer: its guard (heater off at
setpoint + 1 degC) clips their overshoot and ``guard_s`` says for how long it
had to; any fault they trip is listed. Figures are computed live each run, so
they follow the current defaults. Temperatures are the true probe-tip
temperature (not the noisy reading).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial

from controller.cli.main import UserError, add_config_arg, load_config
from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.qa.baselines import BangBang, TextbookPID
from controller.qa.processes import command, free_port, stop
from controller.sim.plant import PLANTS, StoneBath, full_power_time_s
from controller.sim.simulation import NOISE_C, WARM_BAND_C, Simulation, summarize
from controller.tuning import autotune

CONTROLLERS = ("default", "autotuned", "bang-bang", "zn-pid")
RECOVERY_BAND_C = 0.3    # "recovered": back within +/- this of the setpoint, and staying there
NOISY_PROBE_C = 0.2      # the noisier probe: 1 sigma, vs NOISE_C normally
TRACE_EVERY_S = 10       # trace points kept for the plot
TICK_SAMPLES = 3000      # control ticks timed for the CPU figure
RSS_SAMPLE_S = 10.0      # `run --simulate` runs this long before its peak RSS is read
SEED = 1

# Targets of issue 5 (reference plant, mechanical relay, default gains, unless said).
TARGET_WARMUP_RATIO = 1.10
TARGET_OVERSHOOT_C = 0.2
TARGET_HOLD_C = 0.15
TARGET_RECOVERY_S = 240.0
TARGET_RECOVERY_PEAK_C = 0.3
TARGET_SWITCHES_PER_H = 60.0
TARGET_HOLD_VS_BANG_BANG = 0.2
TARGET_TUNED_OVERSHOOT_C = 0.5
TARGET_TUNED_HOLD_C = 0.3
TARGET_SIM_SPEED = 2000.0
TARGET_TICK_MEDIAN_US = 200.0
TARGET_RSS_MB = 60.0


@dataclass(frozen=True, slots=True)
class Event:
    at_s: float
    kind: str            # "stones", "lid", "setpoint"
    value: tuple = ()    # stones: (kg, degC); lid: (open,); setpoint: (degC,)
    measured: bool = True  # recovery figures start here

    @property
    def label(self) -> str:
        if self.kind == "stones":
            return f"{self.value[0]:g} kg stones at {self.value[1]:g} degC"
        if self.kind == "lid":
            return "lid open" if self.value[0] else "lid closed"
        return f"setpoint {self.value[0]:g} degC"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    duration_s: float
    events: tuple[Event, ...] = ()
    noise_c: float = NOISE_C

    @property
    def hold_until_s(self) -> float:
        """Hold figures stop at the first disturbance."""
        return min((e.at_s for e in self.events), default=self.duration_s)


def scenarios(*, quick: bool = False) -> tuple[Scenario, ...]:
    """The issue's scenarios; ``quick``: the same at a smaller time scale (CI)."""
    m = 60.0
    if quick:
        at1, at2, end = 40 * m, 45 * m, 60 * m
        hold = 60 * m
    else:
        at1, at2, end = 90 * m, 110 * m, 150 * m
        hold = 180 * m  # warm-up (~20-40 min) + 15 min settling + 2 h of hold
    lid_close = at1 + 90.0
    return (
        Scenario("warmup-hold", "cold start 21 -> 52 degC, then hold", hold),
        Scenario("stones", "stones returned: 2 kg at 35 degC, then 2.5 kg at 33 degC", end,
                 (Event(at1, "stones", (2.0, 35.0)), Event(at2, "stones", (2.5, 33.0)))),
        Scenario("lid", "lid open 90 s", end,
                 (Event(at1, "lid", (True,)), Event(lid_close, "lid", (False,), measured=False))),
        Scenario("setpoint", "setpoint 52 -> 48 -> 54 degC", end + 10 * m,
                 (Event(at1, "setpoint", (48.0,)), Event(at2 + (10 * m if not quick else 0), "setpoint", (54.0,)))),
        Scenario("noisy", f"noisier probe (sigma {NOISY_PROBE_C} degC), cold start and hold", hold,
                 noise_c=NOISY_PROBE_C),
    )


# -- one run ---------------------------------------------------------------------------------
def _make_plant(plant: str):
    return partial(StoneBath, PLANTS[plant])  # picklable: runs go to worker processes


def _override_for(controller: str, zn_gains: Gains | None):
    if controller == "bang-bang":
        return BangBang()
    if controller == "zn-pid":
        return TextbookPID(zn_gains)
    return None


def run_one(cfg: cfgmod.Config, plant: str, scenario: Scenario, controller: str,
            gains: Gains | None, full_power_s: float) -> dict:
    """One controller on one plant through one scenario: its figures and a thinned trace."""
    if controller == "autotuned":
        cfg = cfgmod.replace(cfg, "control", kp=gains.kp, ki=gains.ki, kd=gains.kd)
    started = time.perf_counter()
    sim = Simulation(cfg, make_plant=_make_plant(plant), seed=SEED, noise_c=scenario.noise_c)
    try:
        override = _override_for(controller, gains)
        if override is not None:
            sim.controller.set_duty_override(override)
        pending = sorted(scenario.events, key=lambda e: e.at_s)
        guard_s = 0.0
        while sim.t_s < scenario.duration_s - 1e-9:
            while pending and sim.t_s >= pending[0].at_s:
                _apply(sim, pending.pop(0))
            row = sim.step()
            reason = sim.controller.interlock.blocked_reason or ""
            if row.duty > 0 and reason.startswith("guard"):
                guard_s += 1.0
        summary = summarize(sim, setpoint_c=cfg.control.setpoint_c, full_power_s=full_power_s,
                            hold_until_s=scenario.hold_until_s)
        events = _event_figures(sim.trace, scenario)
        trace = [(r.t_s, round(r.probe_c, 3), round(r.setpoint_c, 2)) for r in sim.trace
                 if int(r.t_s) % TRACE_EVERY_S == 0]
    finally:
        sim.close()
    s = summary.to_dict()
    return {
        "plant": plant, "scenario": scenario.name, "controller": controller,
        "gains": asdict(gains) if gains is not None and controller in ("autotuned", "zn-pid")
        else {"kp": cfg.control.kp, "ki": cfg.control.ki, "kd": cfg.control.kd} if controller == "default"
        else None,
        "full_power_s": s["full_power_s"], "warmup_s": s["warmup_s"], "warmup_ratio": s["warmup_ratio"],
        "overshoot_c": s["overshoot_c"], "hold_max_c": s["hold_max_c"], "hold_rms_c": s["hold_rms_c"],
        "switch_ons_per_hour": s["switch_ons_per_hour"], "energy_kwh": s["energy_kwh"],
        "peak_probe_c": s["peak_probe_c"], "guard_s": guard_s,
        "faults": [{"t_s": round(f["t_s"]), "fault": f["fault"], "message": f["message"]} for f in s["faults"]],
        "events": events, "duration_s": s["duration_s"], "wall_s": time.perf_counter() - started,
        "trace": trace,
    }


def _apply(sim: Simulation, event: Event) -> None:
    if event.kind == "stones":
        sim.plant.return_stones(*event.value)
    elif event.kind == "lid":
        sim.plant.set_lid(event.value[0])
    else:
        sim.controller.set_setpoint(event.value[0], source="bench")


def _event_figures(trace, scenario: Scenario) -> list[dict]:
    """Per disturbance: how far the bath strayed, when it was back, when it settled for good.

    ``back_in_band_s``: from the event until the probe is back within
    RECOVERY_BAND_C of the setpoint after its lowest point ("back
    within +/-0.3 degC"; after a setpoint change: first within the band around
    the new setpoint); ``settled_s``: until it stays within that band up
    to the next disturbance. None: not within the window. ``peak_above_c`` /
    ``dip_below_c``: extremes against the setpoint; after a setpoint change
    they count from when the bath first reaches the new setpoint (the
    overshoot or undershoot), before that the bath is simply on its way.
    """
    measured = [e for e in scenario.events if e.measured]
    out = []
    for event, following in zip(measured, measured[1:] + [None]):
        end = following.at_s if following else scenario.duration_s
        rows = [r for r in trace if event.at_s < r.t_s < end]  # the row at at_s predates the event
        if not rows:
            continue
        errors = [(r.t_s, r.probe_c - r.setpoint_c) for r in rows]
        if event.kind == "setpoint":
            start_sign = math.copysign(1.0, errors[0][1])
            reached = next((i for i, (_, e) in enumerate(errors) if e * start_sign <= 0), len(errors))
            extremes = errors[reached:]
            back = next((t for t, e in errors if abs(e) <= RECOVERY_BAND_C), None)
        else:
            # returned stones and an open lid cool the bath: back in the band after the lowest point
            lowest = min(range(len(errors)), key=lambda i: errors[i][1])
            extremes = errors
            back = next((t for t, e in errors[lowest:] if abs(e) <= RECOVERY_BAND_C), None)
        outside = [t for t, e in errors if abs(e) > RECOVERY_BAND_C]
        if not outside:
            settled = 0.0
        elif outside[-1] >= rows[-1].t_s:
            settled = None
        else:
            settled = outside[-1] + 1.0 - event.at_s
        out.append({"at_s": event.at_s, "event": event.label, "kind": event.kind,
                    "back_in_band_s": None if back is None else max(0.0, back - event.at_s),
                    "settled_s": settled,
                    "peak_above_c": max((e for _, e in extremes), default=None),
                    "dip_below_c": -min((e for _, e in extremes), default=None) if extremes else None})
    return out


# -- the whole benchmark ---------------------------------------------------------------------
def _tune(cfg: cfgmod.Config, plant: str) -> dict:
    result, sim = autotune.tune_in_simulation(cfg, _make_plant(plant), seed=SEED)
    sim.close()
    return result.to_dict()


def run_bench(cfg: cfgmod.Config, *, quick: bool = False, plants: tuple[str, ...] | None = None,
              workers: int | None = None, progress=print) -> dict:
    """Run everything; return the JSON-able report (see docs/bench.md for the fields)."""
    cfg = cfgmod.replace(cfg, "state", dir=cfgmod.StateConfig().dir)  # throwaway state dirs
    plants = plants or (("reference",) if quick else tuple(PLANTS))
    workers = workers or min(os.cpu_count() or 1, 8)
    started = time.perf_counter()
    plant_info: dict[str, dict] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        progress(f"autotuning {len(plants)} plant(s) in simulation ...")
        tunes = {p: pool.submit(_tune, cfg, p) for p in plants}
        full_power = {p: pool.submit(full_power_time_s, _make_plant(p), cfg.control.setpoint_c - WARM_BAND_C)
                      for p in plants}
        for p in plants:
            tune = tunes[p].result()
            plant_info[p] = {"full_power_s": full_power[p].result(), "autotune": tune,
                             "autotuned_gains": tune["gains"],
                             "zn_gains": tune["other_rules"]["ziegler-nichols"]}
        jobs = []
        for p in plants:
            info = plant_info[p]
            for scenario in scenarios(quick=quick):
                for controller in CONTROLLERS:
                    gains = {"autotuned": info["autotuned_gains"], "zn-pid": info["zn_gains"]}.get(controller)
                    jobs.append(pool.submit(run_one, cfg, p, scenario, controller,
                                            Gains(**gains) if gains else None, info["full_power_s"]))
        progress(f"running {len(jobs)} simulations on {workers} worker(s) ...")
        runs = [job.result() for job in jobs]
    control_wall_s = time.perf_counter() - started
    progress("measuring the software (tick time, simulator speed, memory) ...")
    software = measure_software(cfg, quick=quick)
    report = {
        "quick": quick,
        "command": "stonewarmer bench" + (" --quick" if quick else ""),
        "relay": {"kind": cfg.relay.kind, "window_s": cfg.relay.effective_window_s,
                  "min_switch_s": cfg.relay.effective_min_switch_s},
        "default_gains": {"kp": cfg.control.kp, "ki": cfg.control.ki, "kd": cfg.control.kd},
        "setpoint_c": cfg.control.setpoint_c,
        "autotune_rule": autotune.DEFAULT_RULE,
        "scenarios": [{"name": s.name, "title": s.title, "duration_s": s.duration_s,
                       "noise_c": s.noise_c, "events": [{"at_s": e.at_s, "event": e.label} for e in s.events]}
                      for s in scenarios(quick=quick)],
        "plants": plant_info,
        "runs": runs,
        "software": software,
        "control_wall_s": control_wall_s,
    }
    report["targets"] = evaluate_targets(report)
    return report


# -- software figures -------------------------------------------------------------------------
class _PreRead:
    """A probe source whose read was done beforehand: the timed tick excludes the sensor wait."""

    def __init__(self, source) -> None:
        self.source = source
        self.ready = None

    def read_ahead(self, now_s: float) -> None:
        self.ready = self.source.poll(now_s)

    def poll(self, now_s: float):
        ready, self.ready = self.ready, None
        return ready

    def close(self) -> None:
        self.source.close()


def measure_tick_us(cfg: cfgmod.Config, ticks: int = TICK_SAMPLES) -> dict:
    """CPU time of Controller.tick (thread CPU clock), the w1thermsensor read done before it."""
    sim = Simulation(cfg, seed=SEED)
    try:
        pre = _PreRead(sim.controller.primary_source)
        sim.controller.primary_source = pre
        samples = []
        for _ in range(ticks):
            sim.clock.advance(1.0)
            sim.sync(1.0)
            pre.read_ahead(sim.clock.monotonic())
            t0 = time.thread_time_ns()
            sim.controller.tick()
            samples.append((time.thread_time_ns() - t0) / 1000.0)
    finally:
        sim.close()
    samples.sort()
    return {"tick_median_us": statistics.median(samples),
            "tick_p99_us": samples[min(len(samples) - 1, int(0.99 * len(samples)))], "tick_samples": ticks}


def measure_sim_speed(cfg: cfgmod.Config, sim_s: float) -> dict:
    """Simulated seconds per wall-clock second through the real w1thermsensor path."""
    started = time.perf_counter()
    sim = Simulation(cfg, seed=SEED)
    try:
        sim.run(sim_s)
    finally:
        sim.close()
    wall = time.perf_counter() - started
    return {"sim_seconds": sim_s, "sim_wall_s": wall, "sim_seconds_per_wall_second": sim_s / wall}


def measure_run_rss(sample_s: float = RSS_SAMPLE_S) -> dict:
    """Peak RSS (VmHWM) of `stonewarmer run --simulate` after ``sample_s`` of running, MB."""
    with tempfile.TemporaryDirectory(prefix="stonewarmer-bench-") as state_dir:
        cmd = command("run", "--simulate", "--state-dir", state_dir, "--host", "127.0.0.1", "--port", str(free_port()))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + sample_s
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            if proc.poll() is not None:
                return {"run_peak_rss_mb": None, "run_sample_s": sample_s,
                        "run_error": f"`{' '.join(cmd[2:])}` exited with status {proc.returncode}"}
            with open(f"/proc/{proc.pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            peak_kb = int(fields["VmHWM"].split()[0])
        finally:
            stop(proc)
    return {"run_peak_rss_mb": peak_kb / 1024.0, "run_sample_s": sample_s, "run_error": None}


def measure_software(cfg: cfgmod.Config, *, quick: bool = False) -> dict:
    return {**measure_tick_us(cfg, ticks=1000 if quick else TICK_SAMPLES),
            **measure_sim_speed(cfg, 3600.0 if quick else 4 * 3600.0),
            **measure_run_rss(5.0 if quick else RSS_SAMPLE_S)}


# -- targets ------------------------------------------------------------------------------------
def _find(report: dict, plant: str, scenario: str, controller: str) -> dict | None:
    return next((r for r in report["runs"] if (r["plant"], r["scenario"], r["controller"])
                 == (plant, scenario, controller)), None)


def _target(name: str, value, limit: float, *, unit: str = "", at_most: bool = True) -> dict:
    met = None if value is None else (value <= limit if at_most else value >= limit)
    by = None if value is None else (value - limit if at_most else limit - value)
    return {"target": name, "limit": limit, "value": value, "unit": unit, "met": met,
            "missed_by": None if met is None or met else by}


def evaluate_targets(report: dict) -> list[dict]:
    """Issue 5's targets, each met / missed (and by how much). None: not measured in this run."""
    out = []
    hold = _find(report, "reference", "warmup-hold", "default")
    bang = _find(report, "reference", "warmup-hold", "bang-bang")
    stones = _find(report, "reference", "stones", "default")
    if hold:
        out += [_target("reference, default gains: warm-up / full-power limit", hold["warmup_ratio"],
                        TARGET_WARMUP_RATIO),
                _target("reference, default gains: overshoot", hold["overshoot_c"], TARGET_OVERSHOOT_C,
                        unit="degC"),
                _target("reference, default gains: hold band max |T-SP|", hold["hold_max_c"], TARGET_HOLD_C,
                        unit="degC"),
                _target("reference, default gains: relay switch-ons per hour", hold["switch_ons_per_hour"],
                        TARGET_SWITCHES_PER_H)]
        if bang and hold["hold_max_c"] is not None and bang["hold_max_c"]:
            out.append(_target("reference: hold band / bang-bang's", hold["hold_max_c"] / bang["hold_max_c"],
                               TARGET_HOLD_VS_BANG_BANG))
    if stones:
        recoveries = [e["back_in_band_s"] for e in stones["events"]]
        worst = None if any(r is None for r in recoveries) or not recoveries else max(recoveries)
        out += [_target("reference, default gains: stones returned, back within +/-0.3 degC", worst,
                        TARGET_RECOVERY_S, unit="s"),
                _target("reference, default gains: stones returned, peak above setpoint",
                        max((e["peak_above_c"] for e in stones["events"]), default=None),
                        TARGET_RECOVERY_PEAK_C, unit="degC")]
    for plant in report["plants"]:
        if plant == "reference":
            continue
        tuned = _find(report, plant, "warmup-hold", "autotuned")
        if tuned:
            out += [_target(f"{plant}, autotuned: overshoot", tuned["overshoot_c"], TARGET_TUNED_OVERSHOOT_C,
                            unit="degC"),
                    _target(f"{plant}, autotuned: hold band max |T-SP|", tuned["hold_max_c"],
                            TARGET_TUNED_HOLD_C, unit="degC")]
    sw = report["software"]
    out += [_target("simulated seconds per wall second", sw["sim_seconds_per_wall_second"], TARGET_SIM_SPEED,
                    at_most=False),
            _target("control tick CPU time, median", sw["tick_median_us"], TARGET_TICK_MEDIAN_US, unit="us"),
            _target("`run --simulate` peak RSS", sw["run_peak_rss_mb"], TARGET_RSS_MB, unit="MB")]
    return out


# -- output ---------------------------------------------------------------------------------------
def _f(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _events_text(events: list[dict]) -> str:
    parts = []
    for e in events:
        back = "never" if e["back_in_band_s"] is None else f"{e['back_in_band_s']:.0f}s"
        settled = "never" if e["settled_s"] is None else f"{e['settled_s']:.0f}s"
        parts.append(f"{e['kind']} {back}/{settled} {_f(e['peak_above_c'], '+.2f')}/"
                     f"{_f(None if e['dip_below_c'] is None else -e['dip_below_c'], '+.2f')}")
    return "; ".join(parts) or "-"


def format_report(report: dict) -> str:
    lines = [f"stonewarmer bench{' --quick' if report['quick'] else ''}: relay {report['relay']['kind']} "
             f"(window {report['relay']['window_s']:g} s, min on/off {report['relay']['min_switch_s']:g} s), "
             f"setpoint {report['setpoint_c']:g} degC, default gains kp={report['default_gains']['kp']:g} "
             f"ki={report['default_gains']['ki']:g} kd={report['default_gains']['kd']:g}"]
    header = (f"{'scenario':<12} {'controller':<10} {'warm-up':>7} {'oversh':>6} {'hold±':>6} {'RMS':>6} "
              f"{'ons/h':>6} {'kWh':>5} {'guard':>6}  disturbances: back in band/settled, peak/dip vs SP degC; faults")
    for plant, info in report["plants"].items():
        m, tuned, zn = info["autotune"]["measurement"], info["autotuned_gains"], info["zn_gains"]
        lines += ["", f"== {plant}: full power to {report['setpoint_c'] - WARM_BAND_C:g} degC in "
                  f"{info['full_power_s'] / 60:.1f} min; autotune Ku={m['ku']:.3g}/degC Pu={m['pu_s']:.0f} s "
                  f"dead time {m['dead_time_s']:.0f} s -> autotuned kp={tuned['kp']:.3g} ki={tuned['ki']:.3g} "
                  f"kd={tuned['kd']:.3g}; ZN kp={zn['kp']:.3g} ki={zn['ki']:.3g} kd={zn['kd']:.3g}",
                  header, "-" * len(header)]
        for r in (r for r in report["runs"] if r["plant"] == plant):
            faults = ", ".join(f"{f['fault']}@{f['t_s'] / 60:.0f}min" for f in r["faults"])
            lines.append(
                f"{r['scenario']:<12} {r['controller']:<10} {_f(r['warmup_ratio']):>7} {_f(r['overshoot_c']):>6} "
                f"{_f(r['hold_max_c']):>6} {_f(r['hold_rms_c'], '.3f'):>6} {_f(r['switch_ons_per_hour'], '.0f'):>6} "
                f"{_f(r['energy_kwh']):>5} {r['guard_s']:>5.0f}s  {_events_text(r['events'])}"
                + (f"; FAULT {faults}" if faults else ""))
    sw = report["software"]
    lines += ["", "software:",
              f"  control tick CPU time: median {sw['tick_median_us']:.0f} us, p99 {sw['tick_p99_us']:.0f} us "
              f"(sensor read excluded, {sw['tick_samples']} ticks)",
              f"  simulator: {sw['sim_seconds_per_wall_second']:.0f} simulated s per wall s "
              f"(real w1thermsensor path)",
              f"  `stonewarmer run --simulate` peak RSS: {_f(sw['run_peak_rss_mb'], '.1f')} MB"
              + (f" ({sw['run_error']})" if sw["run_error"] else ""),
              "", "targets:"]
    for t in report["targets"]:
        verdict = "n/a" if t["met"] is None else "met" if t["met"] else f"MISSED by {t['missed_by']:.3g}{t['unit']}"
        lines.append(f"  {t['target']}: {_f(t['value'], '.3g')}{t['unit']} (limit {t['limit']:g}{t['unit']}) "
                     f"-> {verdict}")
    lines.append(f"\ncontrol runs took {report['control_wall_s']:.0f} s of wall time")
    return "\n".join(lines)


PLOT_HINT = ("--plot needs matplotlib, the optional `plot` extra: "
             ".venv/bin/pip install -e '.[plot]' (or: pip install 'stonewarmer[plot]')")
COLOURS = {"default": "tab:blue", "autotuned": "tab:green", "bang-bang": "tab:red", "zn-pid": "tab:orange"}


def plot(report: dict, path: str) -> None:
    """Traces of every controller, one panel per scenario (rows) and plant (columns)."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(PLOT_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plants = list(report["plants"])
    names = [s["name"] for s in report["scenarios"]]
    fig, axes = plt.subplots(len(names), len(plants), figsize=(4.2 * len(plants), 2.6 * len(names)),
                             squeeze=False, sharex="row")
    for i, scenario in enumerate(report["scenarios"]):
        for j, plant in enumerate(plants):
            ax = axes[i][j]
            for r in report["runs"]:
                if r["plant"] == plant and r["scenario"] == scenario["name"]:
                    t = [p[0] / 60 for p in r["trace"]]
                    ax.plot(t, [p[1] for p in r["trace"]], color=COLOURS[r["controller"]], lw=0.9,
                            label=r["controller"])
                    sp = [p[2] for p in r["trace"]]
            ax.plot(t, sp, color="black", lw=0.6, ls="--", label="setpoint")
            ax.set_ylim(min(sp) - 2.5, max(sp) + 2.5)
            ax.set_title(f"{plant}: {scenario['name']}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("probe degC", fontsize=8)
            if i == len(names) - 1:
                ax.set_xlabel("minutes", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report['command']}: probe temperature, all controllers", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -- the command ----------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="control quality vs. a dial thermostat and a textbook PID, and software cost")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw the traces (needs the `plot` extra: matplotlib)")
    p.add_argument("--quick", action="store_true", help="reference plant only, short scenarios (CI)")
    p.add_argument("--plant", action="append", choices=tuple(PLANTS), metavar="NAME",
                   help=f"only this plant (repeatable; one of {', '.join(PLANTS)})")
    p.add_argument("--faults", action="store_true",
                   help="run the fault-injection matrix instead: every fault at warm-up and at hold")
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.faults:
        return _fault_matrix(args)
    if args.plot:
        try:
            import matplotlib  # noqa: F401 - fail before an hour of simulation, not after
        except ImportError:
            raise UserError(PLOT_HINT) from None
    cfg = load_config(args, simulate=True)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    report = run_bench(cfg, quick=args.quick, plants=tuple(args.plant) if args.plant else None, progress=say)
    if args.plot:
        plot(report, args.plot)
        say(f"plot written to {args.plot}")
    if args.json:
        print(json.dumps(_finite(report), allow_nan=False))
    else:
        print(format_report(report))
    return 0


def _finite(value):
    """JSON has no NaN or infinity: they become null (not measured / never)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _fault_matrix(args: argparse.Namespace) -> int:
    """``bench --faults``: the table of controller.qa.faults; exit 1 if any case failed."""
    import logging

    from controller.qa import faults

    logging.disable(logging.ERROR)  # the injected faults log errors by design; the table says it all
    started = time.perf_counter()
    results = faults.run_matrix() + faults.run_process_matrix()
    if args.json:
        print(json.dumps(_finite([asdict(r) for r in results]), allow_nan=False))
    else:
        print(faults.format_table(results))
        print(f"({time.perf_counter() - started:.0f} s of wall time)")
    return 0 if all(r.passed for r in results) else 1

