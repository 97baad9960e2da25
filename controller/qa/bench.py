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

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.qa.scenarios import SEED, make_plant, run_one, scenarios
from controller.qa.software import measure_software
from controller.qa.targets import evaluate_targets
from controller.sim.plant import PLANTS, full_power_time_s
from controller.sim.simulation import WARM_BAND_C
from controller.tuning import autotune, rules

CONTROLLERS = ("default", "autotuned", "bang-bang", "zn-pid")
BENCH_EXTRA_HINT = ("the benchmark's textbook PID needs simple-pid: install the bench extra, "
                    ".venv/bin/pip install -e '.[bench]' (or: pip install 'stonewarmer[bench]')")


class BenchError(Exception):
    """The benchmark cannot run as asked (a missing optional package); the message says how to fix it."""


def require_baselines() -> None:
    """Raise :class:`BenchError` unless simple-pid (the textbook PID baseline) is installed."""
    try:
        import simple_pid  # noqa: F401
    except ImportError:
        raise BenchError(BENCH_EXTRA_HINT) from None


def _tune(cfg: cfgmod.Config, plant: str) -> dict[str, Any]:
    result, sim = autotune.tune_in_simulation(cfg, make_plant(plant), seed=SEED)
    sim.close()
    return result.to_dict()


def run_bench(cfg: cfgmod.Config, *, quick: bool = False, plants: tuple[str, ...] | None = None,
              workers: int | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run everything; return the JSON-able report (see docs/bench.md for the fields).

    Raises :class:`BenchError` at once (before any simulation) when simple-pid is missing.
    """
    require_baselines()
    cfg = cfgmod.replace(cfg, "state", dir=cfgmod.StateConfig().dir)  # throwaway state dirs
    plants = plants or (("reference",) if quick else tuple(PLANTS))
    workers = workers or min(os.cpu_count() or 1, 8)
    started = time.perf_counter()
    plant_info: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        progress(f"autotuning {len(plants)} plant(s) in simulation ...")
        tunes = {p: pool.submit(_tune, cfg, p) for p in plants}
        full_power = {p: pool.submit(full_power_time_s, make_plant(p), cfg.control.setpoint_c - WARM_BAND_C)
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
        "autotune_rule": rules.DEFAULT_RULE,
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
