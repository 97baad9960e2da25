"""A person's day from the Pi's shell, against the running service: ``off``, ``on``, ``preset NAME``,
``extend``, ``settings export [FILE]`` and ``settings import FILE``.

Each goes over the control socket's session (``controller/service/protocol.py``), exactly as the
dashboard's commands do, so the control process validates it again. Run as root (or the
service's user), like ``stonewarmer autotune``. With no service running: a one-line error.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

from controller.cli.options import UserError, add_config_arg, load_config
from controller.core import config as cfgmod
from controller.core.atomic import atomic_write
from controller.service.control import socket_path
from controller.service.remote import RemoteController

CONNECT_S = 5.0  # the control process sends its first status within a tick
SOURCE = "cli"


def register(sub: argparse._SubParsersAction) -> None:
    for name, words in (("off", "switch the warmer off: heater held off, readings and alarms go on"),
                        ("on", "switch the warmer on again: heat to the setpoint"),
                        ("extend", "push auto-off back by [schedule] auto_off_h hours from now")):
        p = sub.add_parser(name, help=f"{words} (the running service)")
        add_config_arg(p)
        p.set_defaults(handler=cmd_day)
    p = sub.add_parser("preset", help="apply a preset, e.g. `stonewarmer preset Body` (the running service)")
    add_config_arg(p)
    p.add_argument("name", help="the preset's name, as the dashboard shows it")
    p.set_defaults(handler=cmd_day)
    p = sub.add_parser("settings", help="export or import the settings (presets, schedule, probe offset) as JSON")
    add_config_arg(p)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    export = verbs.add_parser("export", help="write the settings to FILE (default: standard output)")
    export.add_argument("file", nargs="?", help="where to write them (stonewarmer-settings.json)")
    imported = verbs.add_parser("import", help="replace the settings with FILE's (all of them, or none)")
    imported.add_argument("file", help="a file written by `settings export` or the dashboard's export")
    p.set_defaults(handler=cmd_settings)


def cmd_day(args: argparse.Namespace) -> int:
    remote = connect(load_config(args))
    try:
        if args.command == "off":
            changed = remote.switch_off(source=SOURCE)
            print("switched off: heater held off" if changed else "already off")
        elif args.command == "on":
            changed = remote.switch_on(source=SOURCE)
            print(f"switched on: heating to {remote.status().setpoint_c:.1f} degC" if changed else "already on")
        elif args.command == "preset":
            print(f"preset {args.name}: setpoint {remote.apply_preset(args.name, source=SOURCE):.1f} degC")
        else:
            off_at = remote.extend(source=SOURCE)
            in_s = off_at - remote.status().wall_time_s  # by the controller's own wall clock
            print(f"auto-off pushed back: in {in_s / 3600:.1f} h")
    finally:
        remote.stop()
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.verb == "import":
        doc = _read(Path(args.file))
    remote = connect(cfg)
    try:
        if args.verb == "export":
            text = json.dumps({**remote.settings(), "notify": {"ntfy_url": _ntfy_url(cfg) or None}}, indent=2) + "\n"
            if args.file:
                try:  # a cut or a full card mid-write leaves the previous export whole
                    atomic_write(args.file, text, mode=0o600)
                except OSError as exc:
                    raise UserError(f"cannot write the settings to {args.file}: {exc.strerror or exc}; "
                                    "nothing was written") from None
                print(f"settings written to {args.file}")
            else:
                sys.stdout.write(text)
            return 0
        notify = doc.pop("notify", None)
        remote.apply_settings(doc, source=SOURCE)
    finally:
        remote.stop()
    print(f"settings imported from {args.file}")
    if isinstance(notify, dict) and (notify.get("ntfy_url") or "") != _ntfy_url(cfg):
        print("the ntfy address was not changed: the dashboard keeps it (Settings), set it there")
    return 0


def connect(cfg: cfgmod.Config) -> RemoteController:
    """A session with the running service's control process; :class:`UserError` if there is none."""
    path = socket_path(cfg.state.dir)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.settimeout(CONNECT_S)
        probe.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise UserError(f"the stonewarmer service is not running (nothing listens at {path}): "
                        "start it with `sudo systemctl start stonewarmer`") from None
    except PermissionError:
        raise UserError(f"cannot reach the service at {path}: permission denied (run it with sudo)") from None
    except OSError as exc:
        raise UserError(f"cannot reach the service at {path}: {exc.strerror or exc}") from None
    finally:
        probe.close()
    remote = RemoteController(path, cfg)
    remote.start()
    if not remote.wait_connected(CONNECT_S):
        remote.stop()
        raise UserError(f"the service at {path} did not answer within {CONNECT_S:g} s: is it starting?")
    return remote


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path} is not JSON ({exc}): a file written by `stonewarmer settings export` is") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path} is not a settings document: it must be a JSON object with version, presets, "
                        "schedule and probe_offset_c")
    return doc


def _ntfy_url(cfg: cfgmod.Config) -> str:
    """The ntfy address in force (the dashboard's, kept in the web's dir; else the config's)."""
    from controller.integrations.notify.setting import NtfySetting
    from web import web_state_dir

    return NtfySetting(cfgmod.replace(cfg, "state", dir=str(web_state_dir(cfg.state.dir)))).url
