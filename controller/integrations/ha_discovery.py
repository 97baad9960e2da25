"""What the warmer says over MQTT: its topics, its status payload, its Home Assistant discovery.

Pure functions, no network: :mod:`controller.integrations.mqtt` sends what these build.

Home Assistant MQTT discovery: one retained JSON config per entity at
``<discovery_prefix>/<component>/<node>/<object>/config`` (docs/field-notes.md,
"Web, service, integrations"). Every warmer has its own ``node`` (the
configured ``[mqtt] name``), so its topics, unique ids and device are its own.
"""

from __future__ import annotations

import math
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import __version__
from controller.core.config import MqttConfig
from controller.core.status import Mode, Status

MACHINE_ID_FILE = Path("/etc/machine-id")
PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
ACK_PAYLOAD = "acknowledge"  # what the Home Assistant button sends (any payload acknowledges)


def node_id(cfg: MqttConfig, *, hostname: str | None = None, machine_id: str | None = None) -> str:
    """The warmer's unique MQTT name: ``[mqtt] name``, else ``<host name>-<machine id[:6]>``.

    Raspberry Pi OS names every Pi "raspberrypi": the machine id keeps two
    unnamed warmers apart. Returns letters, digits, ``-`` and ``_`` only.
    """
    if cfg.name:
        return cfg.name
    host = re.sub(r"[^A-Za-z0-9_-]", "-", (hostname if hostname is not None else socket.gethostname()))
    host = host.strip("-")[:40] or "stonewarmer"
    if machine_id is None:
        try:
            machine_id = MACHINE_ID_FILE.read_text().strip()
        except OSError:
            machine_id = ""
    suffix = re.sub(r"[^0-9a-f]", "", machine_id.lower())[:6]
    return f"{host}-{suffix}" if suffix else host


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one warmer, under ``<base_topic>/<node>``."""

    node: str
    root: str
    discovery_prefix: str

    @classmethod
    def for_config(cls, cfg: MqttConfig, node: str) -> Topics:
        return cls(node=node, root=f"{cfg.base_topic}/{node}", discovery_prefix=cfg.discovery_prefix)

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def availability(self) -> str:
        return f"{self.root}/availability"

    @property
    def set_setpoint(self) -> str:
        return f"{self.root}/set/setpoint"

    @property
    def acknowledge(self) -> str:
        return f"{self.root}/set/acknowledge"

    @property
    def result(self) -> str:
        return f"{self.root}/result"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"


def action(status: Status) -> str:
    """Home Assistant's hvac_action: what the heater is doing right now."""
    if status.mode == Mode.FAULT:
        return "off"
    return "heating" if status.relay_on else "idle"


def state_payload(status: Status) -> dict[str, Any]:
    """The status as published on ``<root>/state``.

    Rounded so that probe noise does not make every tick a "change":
    temperature to 0.1 degC, duty to 0.01, time to ready to whole minutes.
    """
    ready_in_min = (None if status.ready_in_s is None or not math.isfinite(status.ready_in_s)
                    else math.ceil(status.ready_in_s / 60.0))
    return {
        "temperature_c": None if status.temperature_c is None else round(status.temperature_c, 1),
        "setpoint_c": status.setpoint_c,
        "min_setpoint_c": status.min_setpoint_c,
        "max_setpoint_c": status.max_setpoint_c,
        "duty": round(status.duty, 2),
        "relay_on": status.relay_on,
        "action": action(status),
        "mode": status.mode,
        "ready": status.mode == Mode.READY,
        "ready_in_min": ready_in_min,
        "fault": status.fault,
        "fault_message": status.fault_message,
        "sensor_errors": status.sensor_errors,
    }


def device_block(node: str) -> dict[str, Any]:
    return {
        "identifiers": [f"stonewarmer_{node}"],
        "name": f"Stone warmer {node}",
        "manufacturer": "stonewarmer",
        "model": "Raspberry Pi hot-stone warmer",
        "sw_version": __version__,
    }


def discovery_payloads(topics: Topics, *, min_setpoint_c: float, max_setpoint_c: float) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload for every entity of one warmer.

    The climate entity's ``min_temp``/``max_temp`` come from ``[control]``:
    Home Assistant's own climate default ``max_temp`` is 35 degC, below any
    stone-warming setpoint. The warmer still validates every command itself.
    """
    node = topics.node
    common = {
        "availability_topic": topics.availability,
        "payload_available": PAYLOAD_ONLINE,
        "payload_not_available": PAYLOAD_OFFLINE,
        "device": device_block(node),
        "origin": {"name": "stonewarmer", "sw_version": __version__},
    }

    def entity(object_id: str, **config: Any) -> dict[str, Any]:
        return {"unique_id": f"stonewarmer_{node}_{object_id}", **config, **common}

    return {
        topics.discovery("climate", "water"): entity(
            "water",
            name=None,  # the entity takes the device's name
            modes=["heat", "off"],
            mode_state_topic=topics.state,
            mode_state_template="{{ 'off' if value_json.mode == 'fault' else 'heat' }}",
            action_topic=topics.state,
            action_template="{{ value_json.action }}",
            current_temperature_topic=topics.state,
            current_temperature_template="{{ value_json.temperature_c }}",
            temperature_command_topic=topics.set_setpoint,
            temperature_state_topic=topics.state,
            temperature_state_template="{{ value_json.setpoint_c }}",
            json_attributes_topic=topics.state,
            min_temp=min_setpoint_c,
            max_temp=max_setpoint_c,
            temp_step=0.5,
            precision=0.1,
            temperature_unit="C",
            optimistic=False,
        ),
        topics.discovery("sensor", "temperature"): entity(
            "temperature",
            name="Water temperature",
            state_topic=topics.state,
            value_template="{{ value_json.temperature_c }}",
            device_class="temperature",
            unit_of_measurement="°C",
            state_class="measurement",
            suggested_display_precision=1,
        ),
        topics.discovery("sensor", "duty"): entity(
            "duty",
            name="Heater duty",
            state_topic=topics.state,
            value_template="{{ (value_json.duty * 100) | round(0) }}",
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:radiator",
        ),
        topics.discovery("sensor", "fault"): entity(
            "fault",
            name="Fault",
            state_topic=topics.state,
            value_template="{{ value_json.fault or 'none' }}",
            json_attributes_topic=topics.state,
            json_attributes_template="{{ {'message': value_json.fault_message} | tojson }}",
            icon="mdi:alert-circle-outline",
        ),
        topics.discovery("binary_sensor", "ready"): entity(
            "ready",
            name="Stones ready",
            state_topic=topics.state,
            value_template="{{ 'ON' if value_json.ready else 'OFF' }}",
            payload_on="ON",
            payload_off="OFF",
            icon="mdi:check-circle-outline",
        ),
        topics.discovery("button", "acknowledge"): entity(
            "acknowledge",
            name="Acknowledge fault",
            command_topic=topics.acknowledge,
            payload_press=ACK_PAYLOAD,
            icon="mdi:restart-alert",
        ),
    }
