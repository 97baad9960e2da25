"""Core subcommands: ``run``, ``simulate``, ``relay-off``."""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.cli.options import (
    UserError,
    add_config_arg,
    add_state_dir_arg,
    dumps_json,
    load_config,
    parsed,
)
from controller.core import config as cfgmod

if TYPE_CHECKING:
    from controller.sim.simulation import Injection

PlantFactory = Callable[[], Any]  # makes a fresh simulated bath


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the warmer (the service), with its dashboard")
    add_config_arg(p)
    p.add_argument("--simulate", action="store_true",
                   help="drive a simulated stone bath on mock pins instead of the hardware")
    p.add_argument("--plant", default="reference", metavar="SPEC",
                   help="with --simulate: a built-in bath name or module:Class (default: reference)")
    add_state_dir_arg(p)
    p.add_argument("--host", help="override [web] host")
    p.add_argument("--port", type=int, help="override [web] port")
    p.add_argument("--speed", type=float, default=1.0,
                   help="with --simulate: run the bath this many times faster than real time")
    p.add_argument("--inject", action="append", default=[], metavar="KIND@S[:DUR]",
                   help="with --simulate: inject a fault S simulated seconds after start (repeatable); "
                        "stall@S blocks the control loop itself, for systemd's watchdog")
    p.add_argument("--role", choices=("control", "web"),
                   help="run one of the two processes: control (probe, relay, interlock; no network) or web "
                        "(dashboard, MQTT, notifications); default: both, each in a process of its own")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("simulate", help="simulate hours of operation as fast as possible")
    add_config_arg(p)
    p.add_argument("--plant", default="reference", metavar="SPEC",
                   help="a built-in bath (reference, small, large-open, laggy) or module:Class")
    p.add_argument("--duration", default="4h", help="simulated time, e.g. 4h, 90m, 600 (default 4h)")
    p.add_argument("--setpoint", type=float, metavar="C", help="setpoint in degC (default: config)")
    p.add_argument("--inject", action="append", default=[], metavar="KIND@S[:DUR]",
                   help="inject a fault at S seconds (repeatable); KIND is one of "
                        "unplug, crc, empty, reset85, zero, freeze, jump, stuck-relay, dead-element, lifted, hang")
    p.add_argument("--at", action="append", default=[], metavar="SECONDS:ACTION",
                   help="what a person does at SECONDS (repeatable): ack (acknowledge the fault), "
                        "setpoint=C, off (switch the warmer off) or on")
    p.add_argument("--ready-at", metavar="SECONDS",
                   help="a \"ready by\" at that simulated time (90, 15m, 2h): the warmer starts switched off "
                        "and the schedule switches it on")
    add_state_dir_arg(p, what="keep what was learned of the bath there for the next run; default: a throwaway one")
    p.add_argument("--trace", metavar="FILE.csv", help="write one row per tick")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--seed", type=int, default=1, help="probe-noise seed")
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("relay-off", help="drive the relay pin to its off level and exit")
    add_config_arg(p)
    p.add_argument("--simulate", action="store_true", help="the simulated relay of `run --simulate`")
    add_state_dir_arg(p)
    p.set_defaults(handler=cmd_relay_off)


def _with_overrides(cfg: cfgmod.Config, args: argparse.Namespace) -> cfgmod.Config:
    if args.host:
        cfg = cfgmod.replace(cfg, "web", host=args.host)
    if args.port is not None:
        cfg = cfgmod.replace(cfg, "web", port=args.port)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    from controller.service.supervisor import serve

    cfg = _with_overrides(load_config(args, simulate=args.simulate), args)
    if not args.simulate and args.speed != 1.0:
        raise UserError("--speed only applies with --simulate")
    if not 0.1 <= args.speed <= 1000:
        raise UserError(f"--speed {args.speed:g} is not allowed: must be between 0.1 and 1000")
    if args.inject and not args.simulate:
        raise UserError("--inject only applies with --simulate")
    injections = _parse_injections(args.inject)
    if args.simulate:
        _check_plant(args.plant)
    if args.role == "web" and (args.inject or args.speed != 1.0):
        raise UserError("--speed and --inject apply to the control process, not --role web")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.role is None:
        return _run_pair(args, cfg)
    if args.role == "web":
        return serve(cfg, role="web")
    from controller.tuning.job import commands  # autotune as a job of the service

    return serve(cfg, simulate=args.simulate, plant=args.plant, speed=args.speed, injections=injections,
                 commands=commands, role="control")


def _run_pair(args: argparse.Namespace, cfg: cfgmod.Config) -> int:
    """Both processes, on the same state dir (the web process keeps its files in ``<state dir>/web``)."""
    from controller.service.pair import exec_watcher

    state = Path(cfg.state.dir).resolve()
    common = ["--config", args.config] if args.config else []
    control = ["run", "--role", "control", *common, "--state-dir", str(state)]
    if args.simulate:
        control += ["--simulate", "--plant", args.plant, "--speed", repr(args.speed)]
        control += [f"--inject={text}" for text in args.inject]
    simulated = ["--simulate"] if args.simulate else []
    web = ["run", "--role", "web", *common, *simulated, "--state-dir", str(state),
           "--host", cfg.web.host, "--port", str(cfg.web.port)]
    relay_off = ["relay-off", *common, "--state-dir", str(state), *simulated]
    exec_watcher(control, web, relay_off)  # does not return
    return 0


def _parse_injections(texts: list[str]) -> list[Injection]:
    from controller.sim.simulation import parse_injection

    return [parsed(parse_injection, text) for text in texts]


def _check_plant(spec: str) -> PlantFactory:
    from controller.sim.plant import load_plant

    return parsed(load_plant, spec)


def cmd_simulate(args: argparse.Namespace) -> int:
    from controller.core.events import EventKind
    from controller.sim.simulation import Simulation, parse_action, parse_duration, summarize

    cfg = load_config(args, simulate=True)
    injections = _parse_injections(args.inject)
    actions = [parsed(parse_action, text) for text in args.at]
    c = cfg.control
    for text, action in zip(args.at, actions):
        if action.kind == "setpoint" and not c.min_setpoint_c <= action.value_c <= c.max_setpoint_c:
            raise UserError(f"--at {text}: setpoint {action.value_c:g} is not allowed: must be between "
                            f"{c.min_setpoint_c:g} and {c.max_setpoint_c:g} degC")
    if any(i.kind == "stall" for i in injections):
        raise UserError("--inject stall only applies to `run --simulate`: it blocks the real-time control loop")
    duration_s = parsed(parse_duration, args.duration)
    if not 0 < duration_s <= 30 * 24 * 3600:
        raise UserError(f"--duration {args.duration}: must be more than 0 and at most 30 days")
    if args.setpoint is not None:
        c = cfg.control
        if not (math.isfinite(args.setpoint) and c.min_setpoint_c <= args.setpoint <= c.max_setpoint_c):
            raise UserError(f"--setpoint {args.setpoint:g} is not allowed: must be between "
                            f"{c.min_setpoint_c:g} and {c.max_setpoint_c:g} degC (max_setpoint_c)")
        cfg = cfgmod.replace(cfg, "control", setpoint_c=args.setpoint)
    ready_at_s = None
    if args.ready_at is not None:
        try:
            ready_at_s = parse_duration(args.ready_at)
        except ValueError:
            ready_at_s = math.nan
        if not 0 < ready_at_s <= duration_s:
            raise UserError(f"--ready-at {args.ready_at}: must be a time (90, 15m, 2h) more than 0 and at most "
                            f"--duration ({duration_s:g} s)")
    make_plant = _check_plant(args.plant)
    if not args.state_dir:
        cfg = cfgmod.replace(cfg, "state", dir=cfgmod.StateConfig().dir)  # a throwaway state dir
    started = time.perf_counter()
    sim = Simulation(cfg, make_plant=make_plant, injections=injections, seed=args.seed, actions=actions,
                     ready_at_s=ready_at_s)
    try:
        sim.run(duration_s)
        summary = summarize(sim)
    finally:
        sim.close()
    summary.wall_s = time.perf_counter() - started
    if args.trace:
        _write_trace(Path(args.trace), sim.trace)
    automatic = [(e.monotonic_s - sim.t0, str(e.kind), e.message) for e in sim.controller.events.since(0)
                 if e.kind in (EventKind.AUTO_ON, EventKind.AUTO_OFF)]
    done = [{"t_s": t_s, "action": kind, "outcome": outcome}
            for t_s, kind, outcome in sorted(sim.actions_done + automatic)]
    if args.json:
        print(dumps_json({**summary.to_dict(), "actions": done}))
    else:
        print(format_summary(summary))
        for a in done:
            print(f"  at {a['t_s']:.0f} s: {a['action']}: {a['outcome']}")
    return 0


TRACE_HEADER = ("t_s", "probe_c", "setpoint_c", "duty", "relay", "mode", "fault")


def _write_trace(path: Path, trace) -> None:
    try:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(TRACE_HEADER)
            for r in trace:
                w.writerow((f"{r.t_s:.0f}", f"{r.probe_c:.3f}", f"{r.setpoint_c:.2f}", f"{r.duty:.3f}",
                            int(r.relay), r.mode, r.fault or ""))
    except OSError as exc:
        raise UserError(f"--trace {path}: cannot write ({exc.strerror})") from None


def _fmt(value, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def format_summary(s) -> str:
    lines = [
        f"simulated {s.duration_s / 3600:.2f} h in {s.wall_s:.2f} s of wall time "
        f"({s.duration_s / max(s.wall_s, 1e-9):.0f}x real time), setpoint {s.setpoint_c:.1f} degC",
        f"warm-up to within 0.5 degC:  {_fmt(s.warmup_s and s.warmup_s / 60, '.1f', ' min')}"
        f"  (full power alone: {_fmt(s.full_power_s and s.full_power_s / 60, '.1f', ' min')}, "
        f"ratio {_fmt(s.warmup_ratio, '.2f')})",
        f"overshoot:                   {_fmt(s.overshoot_c, '.2f', ' degC')}",
        f"hold band after settling:    +/-{_fmt(s.hold_max_c, '.2f', ' degC')} "
        f"(RMS {_fmt(s.hold_rms_c, '.3f', ' degC')})",
        f"relay switch-ons per hour:   {_fmt(s.switch_ons_per_hour, '.1f')}",
        f"energy:                      {_fmt(s.energy_kwh, '.2f', ' kWh')}",
        f"peak probe / water:          {_fmt(s.peak_probe_c, '.2f')} / {_fmt(s.peak_water_c, '.2f', ' degC')}",
        f"faults:                      {len(s.faults)}",
    ]
    lines += [f"  at {f['t_s']:.0f} s: {f['fault']}: {f['message']}" for f in s.faults]
    return "\n".join(lines)


def relay_settings(path: Path | None) -> tuple[cfgmod.RelayConfig, Path, str | None]:
    """The relay pin and polarity, and the state dir, even from a config that is otherwise broken.

    ``relay-off`` runs after every stop, including one caused by a bad config: it
    must still find the pin (and, with ``--simulate``, the simulated pin's file under
    the state dir). Returns the settings and a warning, if any.
    """
    defaults, default_dir = cfgmod.RelayConfig(), Path(cfgmod.StateConfig().dir)
    if path is None:
        return defaults, default_dir, None
    try:
        cfg = cfgmod.load(path)
        return cfg.relay, Path(cfg.state.dir), None
    except cfgmod.ConfigError as exc:
        warning = str(exc)
    try:
        raw = tomllib.loads(path.read_text())
        relay, state = raw.get("relay", {}), raw.get("state", {})
        directory = state.get("dir") if isinstance(state.get("dir"), str) and state.get("dir") else default_dir
        pin = relay.get("pin", defaults.pin)
        active_high = relay.get("active_high", defaults.active_high)
        if isinstance(pin, int) and not isinstance(pin, bool) and pin in cfgmod.GPIO_PINS \
                and isinstance(active_high, bool):
            return cfgmod.RelayConfig(pin=pin, active_high=active_high), Path(directory), warning
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return defaults, default_dir, warning + f"; using the default relay pin GPIO{defaults.pin}, active high"


def cmd_relay_off(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else (cfgmod.DEFAULT_PATH if cfgmod.DEFAULT_PATH.exists() else None)
    relay, config_state_dir, warning = relay_settings(path)
    if warning:
        print(f"stonewarmer relay-off: warning: {warning}", file=sys.stderr)
    if args.simulate:
        from controller.qa.processes import relay_pin_name
        from controller.service.supervisor import SIM_PIN_DIR
        from controller.sim.simpins import write_pin_file

        pin_dir = (Path(args.state_dir) if args.state_dir else config_state_dir).resolve() / SIM_PIN_DIR
        pin_dir.mkdir(parents=True, exist_ok=True)
        write_pin_file(pin_dir, relay_pin_name(relay), not relay.active_high)
        print(f"simulated relay {relay_pin_name(relay)} off")
        return 0
    # initial_value=False drives the pin to the relay's off level at once. Not closed, and
    # the command exits without gpiozero's exit handler (cli.console): a closed pin floats,
    # while a line left driven stays off (or returns to its pull-down with strict_gpiod).
    device = claim_relay_off(relay)
    device.off()
    print(f"relay GPIO{relay.pin} off ({'active high' if relay.active_high else 'active low'})")
    return 0


def claim_relay_off(relay: cfgmod.RelayConfig):
    """The relay's pin, claimed and driven to its off level; a :class:`UserError` (one line) if it cannot be.

    Off a Pi, or on a Pi without Debian's python3-lgpio, gpiozero cannot load its pin
    factory: say so, and what to do, instead of a traceback in the journal.
    """
    with warnings.catch_warnings(record=True) as fallbacks:  # gpiozero warns per factory it skips
        warnings.simplefilter("always")
        try:
            from gpiozero import DigitalOutputDevice

            return DigitalOutputDevice(relay.pin, active_high=relay.active_high, initial_value=False)
        except ImportError as exc:  # gpiozero's BadPinFactory is one too
            reason = f"the Python module {exc.name} is missing" if exc.name else str(exc)
        except Exception as exc:  # noqa: BLE001 - gpiozero's, lgpio's and the kernel's errors alike
            reason = str(exc) or type(exc).__name__
    if fallbacks:
        reason += f" ({fallbacks[0].message})"
    raise UserError(f"cannot drive the relay pin GPIO{relay.pin}: {reason}. On a Raspberry Pi: "
                    "sudo apt install python3-lgpio; off a Pi, the simulated relay is relay-off --simulate")
