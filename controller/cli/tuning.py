"""Tuning subcommand: ``autotune``, on a simulated bath or on the real probe and relay."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from controller.cli.options import UserError, add_config_arg, add_state_dir_arg, load_config, parsed
from controller.core.loop import CommandError, Controller
from controller.tuning.autotune import AutotuneError, limit_c, run
from controller.tuning.experiment import Phase
from controller.tuning.results import apply
from controller.tuning.rules import DEFAULT_RULE, RULES


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
    add_state_dir_arg(p, what="where the gains are saved")
    p.set_defaults(handler=cmd_autotune)


def cmd_autotune(args: argparse.Namespace) -> int:
    simulate = bool(args.simulate or args.plant)
    cfg = load_config(args, simulate=simulate)
    step: Callable[[], object]
    close: Callable[[], None]
    if simulate:
        from controller.sim.plant import load_plant
        from controller.sim.simulation import Simulation

        make_plant = parsed(load_plant, args.plant or "reference")
        sim = Simulation(cfg, make_plant=make_plant)
        controller, step, close = sim.controller, sim.step, sim.close
        print(f"autotune: simulated plant {args.plant or 'reference'}, simulated time", flush=True)
    else:
        from controller.tuning.hardware import claim

        print("autotune: on the real probe and relay. The stonewarmer service must be stopped first "
              "(sudo systemctl stop stonewarmer): only one process may drive the relay.", flush=True)
        controller, step = claim(cfg)
        close = controller.close
    try:
        return _tune(controller, step, args)
    finally:
        close()  # heater off, pin released


def _tune(controller: Controller, step: Callable[[], object], args: argparse.Namespace) -> int:
    if args.setpoint is not None:
        try:
            controller.set_setpoint(args.setpoint, source="autotune")
        except CommandError as exc:
            raise UserError(f"--setpoint: {exc}") from None
    latched = controller.interlock.latched
    if latched:
        raise UserError(f"a fault is latched ({latched.kind}): acknowledge it first")
    wall_start = time.monotonic()
    print(f"autotune: target {controller.setpoint_c:.1f} degC; the experiment stays below "
          f"{limit_c(controller):.1f} degC. Ctrl-C cancels (heater off).", flush=True)
    try:
        result = run(controller, step=step, report=_print_progress, rule=args.rule)
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


def _print_progress(p: dict[str, Any]) -> None:
    eta = "estimating" if p["eta_s"] is None else f"~{p['eta_s'] / 60:.0f} min left"
    temp = "n/a" if p["temperature_c"] is None else f"{p['temperature_c']:.2f} degC"
    centre = ("measuring the noise band" if p["phase"] == Phase.NOISE
              else f"centre {p['centre_c']:.2f} +/- {p['hysteresis_c']:.2f} degC")
    print(f"  [{p['elapsed_s'] / 60:6.1f} min] {p['phase']:<8} cycle {p['cycle']}/{p['cycles_needed']}"
          f"  {centre}  now {temp}  {eta}", flush=True)
