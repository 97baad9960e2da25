"""The ``stonewarmer`` command.

Each feature module registers its own subcommands (``register(subparsers)``)
and handles them; this file only assembles them. A user mistake is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from controller import __version__
from controller.core import config as cfgmod

#: Modules that add subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "controller.cli.run",     # run, simulate, relay-off
    "controller.service.doctor",       # check
    "controller.tuning.autotune",     # autotune
    "controller.qa.bench",        # bench
    "controller.integrations.mqtt",         # mqtt-clear
    "controller.service.installer",    # install, uninstall
    "controller.qa.soak",         # soak
    "controller.cli.web",                 # set-password, token, bench-web
)

EXIT_USAGE = 2
PIN_HOLDING_COMMANDS = ("run", "relay-off")  # they leave the relay pin driven off when they exit


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"config file (default: {cfgmod.DEFAULT_PATH}, or the built-in "
                             "defaults when simulating and it does not exist)")


def load_config(args: argparse.Namespace, *, simulate: bool = False) -> cfgmod.Config:
    """The config named by ``--config``; the defaults when simulating without one."""
    path = getattr(args, "config", None)
    if path is None:
        if simulate and not cfgmod.DEFAULT_PATH.exists():
            return cfgmod.Config()
        path = cfgmod.DEFAULT_PATH
    try:
        return cfgmod.load(path)
    except cfgmod.ConfigError as exc:
        raise UserError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stonewarmer",
        description="Hot-stone warmer controller: DS18B20 probe, relay, PID, safety interlock.")
    parser.add_argument("--version", action="version", version=f"stonewarmer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    missing = set()
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # `python3 -m controller install` runs before the venv exists, with the standard
            # library only: offer what can run, and say why the rest cannot.
            if not exc.name or exc.name.split(".")[0] in ("controller", "web"):
                raise
            missing.add(exc.name.split(".")[0])
            continue
        module.register(sub)
    if missing:
        parser.epilog = (f"Some commands need packages that are not installed ({', '.join(sorted(missing))}): "
                         "install stonewarmer first (make venv, or stonewarmer install).")
        plain_error = parser.error
        parser.error = lambda message: plain_error(f"{message}\n{parser.epilog}")
    return parser


def main(argv: list[str] | None = None, *, hold_pins: bool = False) -> int:
    """Run one subcommand; return its exit status.

    ``hold_pins`` (the installed command): after ``run`` and ``relay-off`` leave the
    process at once, so gpiozero's exit handler cannot turn the relay pin, driven
    off, into a floating input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
    except UserError as exc:
        print(f"stonewarmer {args.command}: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    if hold_pins and args.command in PIN_HOLDING_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def console() -> None:
    """The ``stonewarmer`` console script and ``python -m controller``."""
    sys.exit(main(hold_pins=True))
