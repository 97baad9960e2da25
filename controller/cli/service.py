"""Service subcommands: ``check`` (the doctor), ``install`` and ``uninstall``.

Standard library only, like the installer it drives: ``sudo python3 -m
controller install`` runs from a fresh checkout, before anything is installed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from controller.cli.options import UserError, add_config_arg
from controller.core import config as cfgmod
from controller.service import upgrade
from controller.service.doctor import System, config_findings, diagnose
from controller.service.installer import (
    Host,
    check_hostname,
    current_hostname,
    execute,
    install_plan,
    running_from,
    uninstall_plan,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="the doctor: probes, relay, boot config, clock, state, password, service")
    add_config_arg(p)
    p.add_argument("--root", metavar="DIR", default="/",
                   help="inspect the system image at DIR (boot config, kernel parameters, service)")
    p.add_argument("--config-only", action="store_true",
                   help="only check that the config loads, with what it needs installed (the installer runs this "
                        "with a new version before switching to it)")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("install", help="install, enable and start the service (Raspberry Pi OS); idempotent")
    _common(p)
    p.add_argument("--source", metavar="DIR",
                   help="the stonewarmer checkout to install (default: the working directory if it is one, "
                        "else the checkout this command runs from, else the one the last install used)")
    p.add_argument("--with", dest="extras", metavar="EXTRA,...",
                   help="optional parts to install into the service's venv, e.g. mqtt (default: those installed "
                        "before; '' for none)")
    p.add_argument("--hostname", metavar="NAME",
                   help="name this Pi (NAME.local on the network): one name per warmer, e.g. stonewarmer-room1")
    p.add_argument("--configure-boot", action="store_true",
                   help="add dtoverlay=w1-gpio and dtparam=strict_gpiod to the boot config (then reboot)")
    p.set_defaults(handler=cmd_install)

    p = sub.add_parser("uninstall", help="stop and remove the service (keeps config and state unless --purge)")
    _common(p)
    p.add_argument("--purge", action="store_true", help="also remove the config, the state and the system user")
    p.set_defaults(handler=cmd_uninstall)


def cmd_check(args: argparse.Namespace) -> int:
    system = System(root=Path(args.root).resolve())
    config_path = Path(args.config) if args.config else system.path(cfgmod.DEFAULT_PATH)
    sections = [("Config", config_findings(config_path))] if args.config_only else diagnose(system, config_path)
    for title, findings in sections:
        print(f"{title}:")
        for finding in findings:
            print(f"  {finding}".replace("\n", "\n  "))
    errors = sum(f.level == "error" for _, findings in sections for f in findings)
    warnings = sum(f.level == "warn" for _, findings in sections for f in findings)
    print(f"{errors} problem(s), {warnings} warning(s)")
    return 1 if errors else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print every action; change nothing")
    p.add_argument("--root", metavar="DIR", default="/",
                   help="work on the system image at DIR instead of this system (default: /)")


def _host(args: argparse.Namespace) -> Host:
    root = Path(args.root).resolve()
    if not root.is_dir():
        raise UserError(f"--root {args.root}: no such directory")
    if not args.dry_run and os.geteuid() != 0:
        raise UserError(f"must run as root: sudo stonewarmer {args.command} (or --dry-run to see what it would do)")
    return Host(root=root)


def cmd_install(args: argparse.Namespace) -> int:
    host = _host(args)
    current = upgrade.installed(host)
    source, why = upgrade.find_checkout(given=Path(args.source).resolve() if args.source else None,
                                        cwd=Path.cwd(), running_from=running_from(),
                                        remembered=current.source if current else None)
    if args.extras is not None:
        extras = upgrade.parse_extras(args.extras, source)
    else:
        extras = current.extras if current else ()
    hostname = check_hostname(args.hostname) if args.hostname is not None else None
    print(f"stonewarmer install{' (dry run: nothing is changed)' if args.dry_run else ''}, root {host.root}")
    print(f"checkout {source} ({why})")
    execute(install_plan(host, source, configure_boot=args.configure_boot, extras=extras, hostname=hostname),
            host, dry_run=args.dry_run)
    if host.is_live and not args.dry_run:
        name = current_hostname(host) or "<this Pi's name>"
        print(f"Dashboard: http://{name}.local:8080/ (`sudo stonewarmer check` tells what is missing)")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    host = _host(args)
    print(f"stonewarmer uninstall{' (dry run: nothing is changed)' if args.dry_run else ''}, root {host.root}")
    execute(uninstall_plan(host, purge=args.purge), host, dry_run=args.dry_run)
    return 0
