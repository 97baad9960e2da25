"""Lift the probe on every bath of a fleet, all cooling in the air with one time constant.

    .venv/bin/python tools/lifted_sweep.py --air-tau 600               # at the hold, seed 1, 200 baths
    .venv/bin/python tools/lifted_sweep.py --air-tau 240 --at warm-up --seed 7

The fleet's own fault runs lift the probe on one bath in seven, each cooling with the time constant it
drew (`controller/sim/fleet.py`, PROBE_AIR_TAU_S); this runs the bench's fault run
(:func:`controller.qa.fleet.run_fault`) with the probe lifted on every bath, so one time constant can be
judged across all heaters: caught, when, and the true water's peak above the setpoint (the target: below
+1.5 degC). docs/safety.md quotes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor

from controller.qa.fleet import SAFE_ABOVE_C, percentile, run_fault
from controller.sim.fleet import FleetBath, draw


def _run(bath: FleetBath, fault: str, air_tau_s: float, seed: int) -> dict:
    params = dataclasses.replace(bath.params, probe_air_tau_s=air_tau_s)
    return run_fault(dataclasses.replace(bath, params=params), fault, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--air-tau", type=float, required=True, help="the lifted probe's time constant in air (s)")
    parser.add_argument("--at", choices=("hold", "warm-up"), default="hold", help="when the probe is lifted")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--worst", type=int, default=5, help="list this many of the hottest runs")
    args = parser.parse_args()
    fault = f"probe lifted at {args.at}"
    baths = draw(args.count, seed=args.seed)
    n = len(baths)
    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8)) as pool:
        runs = list(pool.map(_run, baths, [fault] * n, [args.air_tau] * n, [args.seed] * n))
    trips = [r["trip_s"] for r in runs if r["trip_s"] is not None]
    print(f"{fault}, in the air with {args.air_tau:g} s, fleet seed {args.seed}: "
          f"caught {sum(r['caught'] for r in runs)}/{n}, above setpoint + {SAFE_ABOVE_C} degC: "
          f"{sum(not r['safe'] for r in runs)}, worst {max(r['peak_above_setpoint_c'] for r in runs):+.2f} degC, "
          f"trip p50 {percentile(trips, 0.5) or 0:.0f} s, max {max(trips, default=0):.0f} s")
    for r in sorted(runs, key=lambda r: -r["peak_above_setpoint_c"])[:args.worst]:
        print(f"  {r['peak_above_setpoint_c']:+.2f} degC  {r['reported'] or 'not caught'} at "
              f"{r['trip_s'] or 0:.0f} s  {r['label']}")


if __name__ == "__main__":
    main()
