"""The ``stonewarmer`` command: the top layer, which nothing else imports.

Each command family is one module here (``register(subparsers)`` adds its
subcommands, ``cmd_*`` handle them) calling the runtime modules with typed
arguments. The runtime modules raise their own exceptions; :data:`USER_ERRORS`
lists those that mean "the user can fix this", and :func:`main` turns them, in
one place, into one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from controller import __version__
from controller.cli.options import UserError

#: Modules that add subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "controller.cli.run",      # run, simulate, relay-off
    "controller.cli.service",  # check, install, uninstall
    "controller.cli.day",      # off, on, preset, extend, settings
    "controller.cli.tuning",   # autotune
    "controller.cli.qa",       # bench, soak, bench-web
    "controller.cli.mqtt",     # mqtt-clear
    "controller.cli.web",      # set-password, token
)

#: The runtime modules' exceptions that are a user's mistake ("module:Class"). Named, not
#: imported: `python3 -m controller install` runs with the standard library alone, and an
#: exception of a class whose module was never imported cannot have been raised.
USER_ERRORS = (
    "controller.cli.options:UserError",
    "controller.core.config:ConfigError",
    "controller.core.state:StateError",
    "controller.core.loop:CommandError",
    "controller.service.installer:InstallError",
    "controller.integrations.mqtt.client:MqttError",
    "controller.qa.bench:BenchError",
    "controller.tuning.hardware:ClaimError",
    "web.credentials:CredentialError",
)

EXIT_USAGE = 2
PIN_HOLDING_COMMANDS = ("run", "relay-off", "autotune")  # they leave the relay pin driven off when they exit


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`USER_ERRORS`."""
    for name in USER_ERRORS:
        module_name, _, class_name = name.partition(":")
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return True
    return False


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

        def error(message: str) -> NoReturn:
            plain_error(f"{message}\n{parser.epilog}")

        parser.error = error  # type: ignore[method-assign]  # the epilog also under a usage error
    return parser


def main(argv: list[str] | None = None, *, hold_pins: bool = False) -> int:
    """Run one subcommand; return its exit status.

    ``hold_pins`` (the installed command): after ``run``, ``relay-off`` and ``autotune`` leave the
    process at once, so gpiozero's exit handler cannot turn the relay pin, driven
    off, into a floating input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"stonewarmer {args.command}: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    if hold_pins and args.command in PIN_HOLDING_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def console() -> None:
    """The ``stonewarmer`` console script and ``python -m controller``."""
    sys.exit(main(hold_pins=True))


__all__ = ["EXIT_USAGE", "USER_ERRORS", "UserError", "build_parser", "console", "is_user_error", "main"]
