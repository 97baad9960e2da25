"""Tuning subcommand: ``autotune``, on a simulated bath or on the real probe and relay."""

from __future__ import annotations

import argparse
import functools
import itertools
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.cli.options import UserError, add_config_arg, add_state_dir_arg, load_config, parsed
from controller.core import config as cfgmod
from controller.core.loop import CommandError, Controller
from controller.service.control import request, socket_path
from controller.tuning.autotune import AutotuneError, limit_c, run
from controller.tuning.experiment import Phase
from controller.tuning.hardware import cancel_on_signals
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
    service = p.add_mutually_exclusive_group()
    service.add_argument("--watch", action="store_true", help="follow the autotune the service is running")
    service.add_argument("--cancel", action="store_true", help="cancel the autotune the service is running")
    p.set_defaults(handler=cmd_autotune)


def cmd_autotune(args: argparse.Namespace) -> int:
    simulate = bool(args.simulate or args.plant)
    cfg = load_config(args, simulate=simulate)
    if (args.watch or args.cancel) and simulate:
        raise UserError("--watch and --cancel are for the autotune the service runs, not with --simulate/--plant")
    if not simulate:
        # The running service does the experiment (under its watchdog, as its own user);
        # only when it is stopped does this command drive the probe and relay itself.
        path = socket_path(cfg.state.dir)
        if args.cancel:
            message: dict[str, Any] = {"command": "autotune-cancel"}
        elif args.watch:
            message = {"command": "autotune-watch"}
        else:
            message = {"command": "autotune", "setpoint_c": args.setpoint, "rule": args.rule, "source": "cli"}
        code = _in_service(path, message)
        if code is not None:
            return code
        if args.watch or args.cancel:
            raise UserError(f"the service is not running (no answer on {path})")
    cancel = threading.Event()
    with cancel_on_signals(cancel) as received:  # until the heater is off and the pin settled
        controller, step, close = _claim(cfg, args, cancel=cancel)
        try:
            return _tune(controller, step, args, cancel=cancel, received=received)
        finally:
            close()


def _claim(cfg: cfgmod.Config, args: argparse.Namespace, *,
           cancel: threading.Event) -> tuple[Controller, Callable[[], object], Callable[[], None]]:
    """The controller to tune, its ``step()`` and its ``close()``: a simulated bath, or the hardware."""
    if args.simulate or args.plant:
        from controller.sim.plant import load_plant
        from controller.sim.simulation import Simulation

        make_plant = parsed(load_plant, args.plant or "reference")
        sim = Simulation(cfg, make_plant=make_plant)
        say(f"autotune: simulated plant {args.plant or 'reference'}, simulated time")
        return sim.controller, sim.step, sim.close
    from controller.tuning.hardware import claim

    say("autotune: the service is not running: this command drives the real probe and relay itself "
        "(a hang-up, SIGTERM or Ctrl-C cancels it, heater off).")
    controller, step = claim(cfg, cancel=cancel)
    # Heater off, and the pin left driven off: the command exits without releasing it (a
    # released line floats), as `run` does; the service's ExecStartPre drives it off again.
    return controller, step, functools.partial(controller.close, release_pin=False)


def _tune(controller: Controller, step: Callable[[], object], args: argparse.Namespace, *,
          cancel: threading.Event, received: list[int]) -> int:
    if args.setpoint is not None:
        try:
            controller.set_setpoint(args.setpoint, source="autotune")
        except CommandError as exc:
            raise UserError(f"--setpoint: {exc}") from None
    latched = controller.interlock.latched
    if latched:
        raise UserError(f"a fault is latched ({latched.kind}): acknowledge it first")
    wall_start = time.monotonic()
    say(f"autotune: target {controller.setpoint_c:.1f} degC; the experiment stays below "
        f"{limit_c(controller):.1f} degC. Ctrl-C cancels (heater off).")
    try:
        result = run(controller, step=step, cancel=cancel, report=_print_progress, rule=args.rule)
    except AutotuneError as exc:
        if received:
            name = signal.Signals(received[0]).name
            say(f"autotune: cancelled by {name}; heater off, gains unchanged", err=True)
            return 128 + received[0]
        say(f"autotune: {exc.phase}: {exc}", err=True)
        return 1
    path = apply(controller, result)
    m = result.measurement
    say(f"autotune: done in {result.duration_s / 60:.0f} min ({time.monotonic() - wall_start:.1f} s wall)\n"
        f"  Ku = {m.ku:.3g} duty/degC (4d/(pi a) = {m.ku_classic:.3g}), Pu = {m.pu_s:.0f} s, "
        f"swing +/-{m.amplitude_c:.2f} degC around {m.centre_c:.2f} degC\n"
        f"  dead time + lag {m.dead_time_s:.0f} s, heating {m.heating_rate_c_per_min:.2f} degC/min at full power\n"
        f"  gains ({result.rule}) saved to {controller.store.path} and used from now on; "
        f"measurement in {path}\n"
        f"Paste into the config file to keep them:\n{result.config_lines()}")
    return 0


def _in_service(path: Path, message: dict[str, Any]) -> int | None:
    """Ask the running service to do ``message``, showing its answers; None when no service listens."""
    answers = request(path, message)
    try:
        first = next(answers)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError:
        raise UserError(f"cannot reach the service at {path}: permission denied (run it with sudo)") from None
    except StopIteration:
        raise UserError(f"the service at {path} closed the connection without an answer") from None
    shown = None
    try:
        for answer in itertools.chain([first], answers):
            if "error" in answer:
                raise UserError(answer["error"])
            if "cancelled" in answer:
                say("autotune: cancelled; heater back under the PID, gains unchanged" if answer["cancelled"]
                    else "autotune: none was running")
                return 0
            if "started" in answer:
                say(f"autotune: running in the stonewarmer service, target {answer['started']['setpoint_c']:.1f} "
                    "degC. Closing this terminal does not stop it: `stonewarmer autotune --watch` follows it, "
                    "`stonewarmer autotune --cancel` cancels it.")
            progress = answer.get("progress")
            if progress and "cycle" in progress and (progress["phase"], progress["cycle"]) != shown:
                shown = (progress["phase"], progress["cycle"])
                _print_progress(progress)
            if "done" in answer:
                outcome = answer["done"] or {}
                say(f"autotune: {outcome.get('phase')}: {outcome.get('message')}",
                    err=outcome.get("phase") != Phase.DONE)
                return 0 if outcome.get("phase") == Phase.DONE else 1
    except KeyboardInterrupt:
        say("autotune: stopped watching; the service goes on with the experiment "
            "(`stonewarmer autotune --cancel` cancels it)")
        return 130
    raise UserError(f"the service at {path} stopped answering (is it restarting? `stonewarmer autotune --watch`)")


def say(text: str, *, err: bool = False) -> None:
    """Print, but never fail: after an SSH hang-up the terminal is gone, and a failed print
    must not skip the heater's shutdown or the saving of a finished result."""
    try:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
    except OSError:
        pass


def _print_progress(p: dict[str, Any]) -> None:
    eta = "estimating" if p["eta_s"] is None else f"~{p['eta_s'] / 60:.0f} min left"
    temp = "n/a" if p["temperature_c"] is None else f"{p['temperature_c']:.2f} degC"
    centre = ("measuring the noise band" if p["phase"] == Phase.NOISE
              else f"centre {p['centre_c']:.2f} +/- {p['hysteresis_c']:.2f} degC")
    say(f"  [{p['elapsed_s'] / 60:6.1f} min] {p['phase']:<8} cycle {p['cycle']}/{p['cycles_needed']}"
        f"  {centre}  now {temp}  {eta}")
