"""MQTT subcommand: ``mqtt-clear`` removes the retained topics (Home Assistant entities) a warmer left."""

from __future__ import annotations

import argparse
import sys

from controller.cli.options import UserError, add_config_arg, add_state_dir_arg, state_dir
from controller.integrations.mqtt.clear import ClearError, clear_record
from controller.integrations.mqtt.records import load_records, records_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mqtt-clear",
                       help="remove this warmer's retained MQTT topics (Home Assistant entities) from the broker")
    add_config_arg(p)
    add_state_dir_arg(p, what="the record is kept in its web/, the web process's own directory")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for each broker (default 10)")
    p.set_defaults(handler=cmd_mqtt_clear)


def cmd_mqtt_clear(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 300:
        raise UserError(f"--timeout {args.timeout:g} is not allowed: must be more than 0 and at most 300 s")
    from web import web_state_dir  # where the web process, which runs MQTT, keeps the record

    where = web_state_dir(state_dir(args))
    records = load_records(where)
    if not records:
        print(f"nothing to clear: no record of retained MQTT topics in {records_dir(where)}")
        return 0
    failed = 0
    for record in records:
        try:
            count = clear_record(where, record, timeout_s=args.timeout)
        except ClearError as exc:
            failed += 1
            print(f"stonewarmer mqtt-clear: {record.node}: {exc}; the record is kept, try again",
                  file=sys.stderr)
            continue
        print(f"cleared {count} retained topics of {record.node} from {record.broker.where}")
    return 1 if failed else 0
