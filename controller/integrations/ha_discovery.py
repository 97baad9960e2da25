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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller import __version__
from controller.core.config import Config, MqttConfig
from controller.core.faults import FaultKind
from controller.core.status import Mode, Status

MACHINE_ID_FILE = Path("/etc/machine-id")
PAYLOAD_ONLINE = "online"
PAYLOAD_OFFLINE = "offline"
ACK_PAYLOAD = "acknowledge"  # what the Home Assistant button sends (any payload acknowledges)
EXTEND_PAYLOAD = "extend"  # what the "Keep it on" button sends (any payload extends)
#: Home Assistant's climate "no preset": it may not be one of ``preset_modes`` (HA refuses the entity),
#: and a state of "None" also reads as it. A preset with either name stays off HA's list.
PRESET_NONE = "none"
RESERVED_PRESETS = frozenset({PRESET_NONE, "None"})
HVAC_HEAT = "heat"  # Home Assistant's climate modes, as it publishes them on the mode command topic
HVAC_OFF = "off"
HVAC_MODES = (HVAC_HEAT, HVAC_OFF)
#: The event types of the "Last command" event entity: every answer on the result topic is one.
RESULT_ACCEPTED = "accepted"
RESULT_REFUSED = "refused"
NO_FAULT = "none"  # the Fault sensor's state while no fault is latched
ALL_ADDRESSES = ("0.0.0.0", "::", "")  # [web] host values that listen on every interface


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
    def set_mode(self) -> str:
        return f"{self.root}/set/mode"

    @property
    def set_preset(self) -> str:
        return f"{self.root}/set/preset"

    @property
    def acknowledge(self) -> str:
        return f"{self.root}/set/acknowledge"

    @property
    def extend(self) -> str:
        return f"{self.root}/set/extend"

    @property
    def result(self) -> str:
        return f"{self.root}/result"

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"


def action(status: Status) -> str:
    """Home Assistant's hvac_action: what the heater is doing right now."""
    if status.mode in (Mode.FAULT, Mode.OFF):
        return "off"
    return "heating" if status.relay_on else "idle"


def hvac_mode(status: Status) -> str:
    """Home Assistant's hvac_mode: ``off`` while the warmer is switched off (by a person, the
    schedule or auto-off), else ``heat``.

    It follows the switch alone, never the fault: a fault latched while on shows ``heat`` with the
    action ``off`` (the warmer heats again once the fault is acknowledged), one latched while off
    shows ``off``. The Fault sensor says which fault, either way.
    """
    return HVAC_OFF if status.switched_off else HVAC_HEAT


def ha_presets(names: Iterable[str]) -> list[str]:
    """The presets Home Assistant may offer: all but a preset it reserves (:data:`RESERVED_PRESETS`)."""
    return [name for name in names if name not in RESERVED_PRESETS]


def preset_mode(status: Status) -> str:
    """The climate's preset_mode: the first preset whose setpoint is the set temperature, else
    :data:`PRESET_NONE` (a temperature set by hand, or a preset HA does not offer)."""
    name = next((p["name"] for p in status.presets if p["setpoint_c"] == status.setpoint_c), None)
    return PRESET_NONE if name is None or name in RESERVED_PRESETS else name


def timestamp(wall_s: float | None) -> str | None:
    """A wall time (s since the epoch) as Home Assistant's timestamp sensors take it: ISO 8601 in
    UTC, whole seconds (e.g. ``2025-05-06T18:30:00+00:00``); None stays None (HA's unknown)."""
    if wall_s is None or not math.isfinite(wall_s):
        return None
    return datetime.fromtimestamp(round(wall_s), tz=UTC).isoformat()


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
        "relay_switches": status.relay_switches,
        "action": action(status),
        "hvac_mode": hvac_mode(status),
        "mode": status.mode,
        "switched_off": status.switched_off,
        "preset": preset_mode(status),
        "auto_off_at": timestamp(status.auto_off_at),
        "next_start": timestamp(status.next_start),
        "ready": status.mode == Mode.READY,
        "ready_in_min": ready_in_min,
        "fault": status.fault,
        "fault_message": status.fault_message,
        "sensor_errors": status.sensor_errors,
    }


def result_payload(command: str, payload: str, *, error: str | None = None, **result: Any) -> dict[str, Any]:
    """The answer to one command, as published on ``<root>/result``.

    ``event_type`` makes it an event of the "Last command" entity (Home Assistant's MQTT event
    takes it from the JSON; the other keys become the event's attributes).
    """
    if error is not None:
        return {"event_type": RESULT_REFUSED, "command": command, "payload": payload, "ok": False,
                "error": error, **result}
    return {"event_type": RESULT_ACCEPTED, "command": command, "payload": payload, "ok": True, **result}


def dashboard_url(cfg: Config, *, hostname: str | None = None) -> str:
    """Where a browser finds this warmer's dashboard: ``[mqtt] dashboard_url``, else from ``[web]``.

    A dashboard that listens on every address is reached by the Pi's mDNS name,
    ``<host name>.local`` (avahi, on by default on Raspberry Pi OS); one bound to a
    single address by that address.
    """
    if cfg.mqtt.dashboard_url:
        return cfg.mqtt.dashboard_url
    host = cfg.web.host
    if host in ALL_ADDRESSES:
        name = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
        host = f"{name or 'localhost'}.local"
    elif ":" in host:  # an IPv6 address goes in brackets
        host = f"[{host}]"
    return f"http://{host}:{cfg.web.port}/"


def device_block(node: str, *, configuration_url: str) -> dict[str, Any]:
    return {
        "identifiers": [f"stonewarmer_{node}"],
        "name": f"Stone warmer {node}",
        "manufacturer": "stonewarmer",
        "model": "Raspberry Pi hot-stone warmer",
        "sw_version": __version__,
        "configuration_url": configuration_url,  # HA's "Visit" link
    }


def discovery_payloads(topics: Topics, *, min_setpoint_c: float, max_setpoint_c: float,
                       configuration_url: str, presets: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload for every entity of one warmer.

    The climate entity's ``min_temp``/``max_temp`` come from ``[control]``:
    Home Assistant's own climate default ``max_temp`` is 35 degC, below any
    stone-warming setpoint. The warmer still validates every command itself.
    ``configuration_url`` is the dashboard (:func:`dashboard_url`). ``presets``
    (the ``[presets]`` names) become the climate's preset modes.

    What each entity is and why: docs/field-notes.md, "Home Assistant".
    """
    node = topics.node
    common = {
        "availability_topic": topics.availability,
        "payload_available": PAYLOAD_ONLINE,
        "payload_not_available": PAYLOAD_OFFLINE,
        "device": device_block(node, configuration_url=configuration_url),
        # The project has no web home of its own: the warmer's dashboard is where its user gets help.
        "origin": {"name": "stonewarmer", "sw_version": __version__, "support_url": configuration_url},
    }

    found: dict[str, dict[str, Any]] = {}

    def add(component: str, object_id: str, **config: Any) -> None:
        found[topics.discovery(component, object_id)] = {"unique_id": f"stonewarmer_{node}_{object_id}",
                                                         **config, **common}

    def from_state(component: str, object_id: str, name: str, value_template: str, **config: Any) -> None:
        """An entity whose state is one value of the status message."""
        add(component, object_id, name=name, state_topic=topics.state, value_template=value_template, **config)

    add("climate", "water",
        name=None,  # the entity takes the device's name
        modes=list(HVAC_MODES),
        mode_command_topic=topics.set_mode,
        mode_state_topic=topics.state,
        mode_state_template="{{ value_json.hvac_mode }}",
        action_topic=topics.state,
        action_template="{{ value_json.action }}",
        current_temperature_topic=topics.state,
        current_temperature_template="{{ value_json.temperature_c }}",
        temperature_command_topic=topics.set_setpoint,
        temperature_state_topic=topics.state,
        temperature_state_template="{{ value_json.setpoint_c }}",
        # Only what no other entity shows and what changes slowly: the recorder stores every change.
        json_attributes_topic=topics.state,
        json_attributes_template="{{ {'warmer_mode': value_json.mode} | tojson }}",
        min_temp=min_setpoint_c, max_temp=max_setpoint_c, temp_step=0.5, precision=0.1, temperature_unit="C",
        optimistic=False, **preset_keys(topics, presets))
    from_state("sensor", "temperature", "Water temperature", "{{ value_json.temperature_c }}",
               device_class="temperature", unit_of_measurement="°C", state_class="measurement",
               suggested_display_precision=1)
    # null (HA's unknown) while off, faulted or cooling: there is no estimate then.
    from_state("sensor", "ready_in", "Time to ready", "{{ value_json.ready_in_min }}",
               device_class="duration", unit_of_measurement="min", icon="mdi:timer-sand")
    from_state("sensor", "fault", "Fault", f"{{{{ value_json.fault or '{NO_FAULT}' }}}}",
               device_class="enum", options=[NO_FAULT, *FaultKind], icon="mdi:alert-circle-outline",
               json_attributes_topic=topics.state,
               json_attributes_template="{{ {'message': value_json.fault_message} | tojson }}")
    # device_class heat: on = the stones are hot; HA draws a flame, else a thermometer (no fixed icon).
    from_state("binary_sensor", "ready", "Stones ready", "{{ 'ON' if value_json.ready else 'OFF' }}",
               payload_on="ON", payload_off="OFF", device_class="heat")
    add("button", "acknowledge", name="Acknowledge fault", command_topic=topics.acknowledge,
        payload_press=ACK_PAYLOAD, icon="mdi:restart-alert")
    # null (HA's unknown) while switched off, with auto-off at 0 (never), or with nothing planned.
    from_state("sensor", "auto_off_at", "Auto-off at", "{{ value_json.auto_off_at }}",
               device_class="timestamp", icon="mdi:timer-off-outline")
    add("button", "extend", name="Keep it on", command_topic=topics.extend, payload_press=EXTEND_PAYLOAD,
        icon="mdi:timer-plus-outline")
    from_state("sensor", "next_start", "Next start", "{{ value_json.next_start }}",
               device_class="timestamp", icon="mdi:calendar-clock")
    add("event", "last_command", name="Last command", state_topic=topics.result,
        event_types=[RESULT_ACCEPTED, RESULT_REFUSED], icon="mdi:message-reply-text-outline")
    from_state("sensor", "duty", "Heater duty", "{{ (value_json.duty * 100) | round(0) }}",
               unit_of_measurement="%", state_class="measurement", entity_category="diagnostic",
               icon="mdi:radiator")
    # Counted since the service started: total_increasing tells HA a restart is a reset, not a drop.
    for object_id, name, icon in (("sensor_errors", "Probe errors", "mdi:thermometer-alert"),
                                  ("relay_switches", "Relay switch-ons", "mdi:electric-switch")):
        from_state("sensor", object_id, name, f"{{{{ value_json.{object_id} }}}}",
                   state_class="total_increasing", entity_category="diagnostic", icon=icon)
    return found


def preset_keys(topics: Topics, presets: Iterable[str]) -> dict[str, Any]:
    """The climate's preset keys: one tap applies a preset through ``<root>/set/preset``; none without presets."""
    modes = ha_presets(presets)
    if not modes:
        return {}
    return {"preset_modes": modes, "preset_mode_command_topic": topics.set_preset,
            "preset_mode_state_topic": topics.state, "preset_mode_value_template": "{{ value_json.preset }}"}
