"""Measurement subcommands: ``bench`` (control quality, or ``--faults``: the fault matrix), ``soak``, ``bench-web``.

simple-pid (the benchmark's textbook PID, the optional ``bench`` extra) is imported
only where it is used: ``stonewarmer bench`` without it says so in one line
rather than lose the command.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict

from controller.cli.options import UserError, add_config_arg, dumps_json, load_config
from controller.qa.bench import require_baselines, run_bench
from controller.qa.bench_report import format_report
from controller.sim.plant import PLANTS


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
    p.add_argument("--fleet", type=int, metavar="N",
                   help="run N random realistic baths instead, each with everyday disturbances and with one fault")
    p.add_argument("--seed", type=int, default=1, help="with --fleet: which fleet (default 1)")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("soak", help="days of simulated operation with disturbances and web traffic")
    add_config_arg(p)
    p.add_argument("--hours", type=float, default=72.0, help="simulated hours (default 72)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random disturbances")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=cmd_soak)

    p = sub.add_parser("bench-web", help="measure /api/status latency under load and the control tick's lateness")
    p.add_argument("--clients", type=int, default=50, help="concurrent /api/status clients (default 50)")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between one client's requests; 0 = back to back (default 1)")
    p.add_argument("--streams", type=int, default=20, help="open live-update streams (default 20)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    p.add_argument("--speed", type=float, default=10.0,
                   help="simulation speed: ticks per real second (default 10)")
    p.add_argument("--threads", type=int, default=32, help="waitress threads (default 32)")
    p.add_argument("--throughput", type=float, default=3.0, metavar="S",
                   help="then compare /api/status with a bare Flask + waitress endpoint of the same JSON: "
                        "wrk, 50 connections, five runs of S seconds each (default 3; 0 = skip; needs wrk)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(handler=cmd_bench_web)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.fleet is not None:
        return _fleet(args)
    if args.faults:
        return _fault_matrix(args)
    from controller.qa.bench_plot import plot, require_matplotlib

    require_baselines()
    if args.plot:
        require_matplotlib()
    cfg = load_config(args, simulate=True)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    report = run_bench(cfg, quick=args.quick, plants=tuple(args.plant) if args.plant else None, progress=say)
    if args.plot:
        plot(report, args.plot)
        say(f"plot written to {args.plot}")
    print(dumps_json(report) if args.json else format_report(report))
    return 0


def _fault_matrix(args: argparse.Namespace) -> int:
    """``bench --faults``: the table of controller.qa.faults; exit 1 if any case failed."""
    from controller.qa import faults

    logging.disable(logging.ERROR)  # the injected faults log errors by design; the table says it all
    started = time.perf_counter()
    results = faults.run_matrix() + faults.run_process_matrix()
    if args.json:
        print(dumps_json([asdict(r) for r in results]))
    else:
        print(faults.format_table(results))
        print(f"({time.perf_counter() - started:.0f} s of wall time)")
    return 0 if all(r.passed for r in results) else 1


def _fleet(args: argparse.Namespace) -> int:
    """``bench --fleet N``: random realistic baths (controller.qa.fleet); exit 1 on a false trip or an unsafe fault."""
    from controller.qa import fleet

    if args.faults or args.quick or args.plant:
        raise UserError("--fleet runs its own baths: it does not go with --faults, --quick or --plant")
    if not 1 <= args.fleet <= fleet.MAX_BATHS:
        raise UserError(f"--fleet {args.fleet} is not allowed: must be between 1 and {fleet.MAX_BATHS} baths")
    if args.plot:
        from controller.qa.bench_plot import require_matplotlib

        require_matplotlib()
    logging.disable(logging.ERROR)  # the injected faults log errors by design; the figures say it all
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    report = fleet.run_fleet(args.fleet, seed=args.seed, progress=say)
    if args.plot:
        fleet.plot_fleet(report, args.plot)
        say(f"plot written to {args.plot}")
    print(dumps_json(report) if args.json else fleet.format_fleet(report))
    s = report["summary"]
    return 0 if s["false_trips"] == 0 and all(k["unsafe"] == 0 for k in s["faults"].values()) else 1


def cmd_soak(args: argparse.Namespace) -> int:
    from controller.qa.soak import format_report, run_soak

    if not 0 < args.hours <= 24 * 30:
        raise UserError(f"--hours {args.hours:g} is not allowed: must be more than 0 and at most 720")
    logging.disable(logging.WARNING)  # injected glitches log by design; the report says it all
    cfg = load_config(args, simulate=True)
    report = run_soak(cfg, hours=args.hours, seed=args.seed,
                      progress=None if args.json else lambda text: print(text, flush=True))
    print(json.dumps(report.to_dict()) if args.json else format_report(report))
    return 0 if not report.problems() else 1


def cmd_bench_web(args: argparse.Namespace) -> int:
    from controller.qa.webbench import format_figures, run_web_bench

    if args.streams + 2 > args.threads:
        raise UserError(f"--streams {args.streams} needs --threads of at least {args.streams + 2}")
    if not 1 <= args.clients <= 500 or args.duration <= 0 or args.interval < 0 or args.throughput < 0:
        raise UserError("--clients must be 1-500, --duration > 0, --interval >= 0 and --throughput >= 0")
    figures = run_web_bench(clients=args.clients, interval_s=args.interval, streams=args.streams,
                            duration_s=args.duration, speed=args.speed, threads=args.threads,
                            throughput_s=args.throughput)
    print(dumps_json(figures) if args.json else format_figures(figures))
    return 0
