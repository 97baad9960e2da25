"""The benchmark's scenarios, and one controller through one of them on one simulated bath.

A run is a :class:`~controller.sim.simulation.Simulation`: the real probe path
(w1thermsensor reading kernel-format files), the real relay timing and the real
safety interlock. The baselines drive the heater through
``Controller.set_duty_override``, so the interlock watches them as it watches
stonewarmer. Temperatures are the true probe-tip temperature (not the noisy reading).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.qa.baselines import BangBang, TextbookPID
from controller.qa.simulated import stone_bath
from controller.sim.plant import PLANTS, StoneBath
from controller.sim.simulation import NOISE_C, Simulation, summarize

RECOVERY_BAND_C = 0.3    # "recovered": back within +/- this of the setpoint, and staying there
NOISY_PROBE_C = 0.2      # the noisier probe: 1 sigma, vs NOISE_C normally
TRACE_EVERY_S = 10       # trace points kept for the plot
SEED = 1


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
    """The benchmark's scenarios; ``quick``: the same at a smaller time scale (CI)."""
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


def make_plant(plant: str):
    return partial(StoneBath, PLANTS[plant])  # picklable: runs go to worker processes


def _override_for(controller: str, gains: Gains | None) -> Callable[[float, float, float], float] | None:
    if controller == "bang-bang":
        return BangBang()
    if controller == "zn-pid":
        return TextbookPID(_given(gains, controller))
    return None


def _given(gains: Gains | None, controller: str) -> Gains:
    if gains is None:
        raise ValueError(f"the {controller} controller needs gains")
    return gains


def run_one(cfg: cfgmod.Config, plant: str, scenario: Scenario, controller: str,
            gains: Gains | None, full_power_s: float) -> dict[str, Any]:
    """One controller on one plant through one scenario: its figures and a thinned trace."""
    if controller == "autotuned":
        tuned = _given(gains, controller)
        cfg = cfgmod.replace(cfg, "control", kp=tuned.kp, ki=tuned.ki, kd=tuned.kd)
    started = time.perf_counter()
    sim = Simulation(cfg, make_plant=make_plant(plant), seed=SEED, noise_c=scenario.noise_c)
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
            if row.duty > 0 and sim.controller.interlock.guarded:
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
        stone_bath(sim).return_stones(*event.value)
    elif event.kind == "lid":
        stone_bath(sim).set_lid(event.value[0])
    else:
        sim.controller.set_setpoint(event.value[0], source="bench")


def _event_figures(trace, scenario: Scenario) -> list[dict[str, Any]]:
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
                    "peak_above_c": max(e for _, e in extremes) if extremes else None,
                    "dip_below_c": -min(e for _, e in extremes) if extremes else None})
    return out
