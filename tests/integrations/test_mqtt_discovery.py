"""The [mqtt] config, the topics, the status payload and the Home Assistant discovery payloads."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from datetime import UTC, datetime

import jinja2
import pytest

from controller.core import config as cfgmod
from controller.core.faults import FaultKind
from controller.core.loop import CommandError
from controller.integrations import ha_discovery as ha
from controller.integrations.mqtt.bridge import ChangeOrInterval, parse_mode, parse_preset, parse_setpoint
from controller.sim.simulation import Simulation, parse_injection
from tests.helpers import REPO


def mqtt_cfg(**keys) -> cfgmod.MqttConfig:
    return cfgmod.from_dict({"mqtt": {"enabled": True, **keys}}).mqtt


# -- config ---------------------------------------------------------------------------------
def test_mqtt_is_disabled_unless_configured():
    assert cfgmod.Config().mqtt.enabled is False
    assert cfgmod.from_dict({}).mqtt == cfgmod.MqttConfig()


def test_mqtt_section_is_read_from_toml(tmp_path):
    path = tmp_path / "sw.toml"
    path.write_text('[mqtt]\nenabled = true\nhost = "broker.lan"\nport = 8883\ntls = true\n'
                    'username = "warmer"\npassword_file = "/etc/stonewarmer/mqtt-password"\nname = "room-2"\n')
    m = cfgmod.load(path).mqtt
    assert (m.enabled, m.host, m.port, m.tls) == (True, "broker.lan", 8883, True)
    assert (m.username, m.name) == ("warmer", "room-2")
    assert m.password_file == "/etc/stonewarmer/mqtt-password"


@pytest.mark.parametrize(("keys", "expected"), [
    ({"name": "room 1"}, "[mqtt] name = 'room 1' is not allowed: must be letters, digits"),
    ({"name": "x" * 65}, "[mqtt] name = "),
    ({"base_topic": "spa/#"}, "[mqtt] base_topic = 'spa/#' is not allowed: must be topic levels"),
    ({"base_topic": "/spa"}, "[mqtt] base_topic = '/spa' is not allowed"),
    ({"discovery_prefix": "home+assistant"}, "[mqtt] discovery_prefix = 'home+assistant' is not allowed"),
    ({"port": 0}, "[mqtt] port = 0 is not allowed: must be between 1 and 65535"),
    ({"publish_interval_s": 0.1}, "[mqtt] publish_interval_s = 0.1 is not allowed: must be between 1 and 3600 s"),
    ({"keepalive_s": 2}, "[mqtt] keepalive_s = 2 is not allowed: must be between 5 and 600 s"),
    ({"password_file": "/etc/pw"}, "[mqtt] password_file = '/etc/pw' is not allowed without a username"),
    ({"ca_file": "/etc/ca.pem"}, "[mqtt] ca_file = '/etc/ca.pem' is not allowed with tls = false"),
    ({"password": "hunter2"}, "[mqtt] password is not a known key: allowed are"),
    ({"tls": "yes"}, "[mqtt] tls = 'yes' is not allowed: must be true or false"),
])
def test_bad_mqtt_settings_are_refused_with_what_is_allowed(keys, expected):
    with pytest.raises(cfgmod.ConfigError) as exc:
        mqtt_cfg(**keys)
    assert str(exc.value).startswith(expected)


# -- names ----------------------------------------------------------------------------------
def test_the_configured_name_is_the_node():
    assert ha.node_id(mqtt_cfg(name="room-3"), hostname="raspberrypi", machine_id="abc") == "room-3"


def test_two_unnamed_pis_with_the_default_host_name_get_different_nodes():
    cfg = mqtt_cfg()
    a = ha.node_id(cfg, hostname="raspberrypi", machine_id="0f3a9c11d2e84b7f9a0c1d2e3f4a5b6c")
    b = ha.node_id(cfg, hostname="raspberrypi", machine_id="7be2c4d0aa5f4e1c8d9e0f1a2b3c4d5e")
    assert a == "raspberrypi-0f3a9c" and b == "raspberrypi-7be2c4"


def test_an_odd_host_name_becomes_a_valid_topic_level():
    node = ha.node_id(mqtt_cfg(), hostname="spa.room#1+west", machine_id="")
    assert node == "spa-room-1-west"
    cfgmod.from_dict({"mqtt": {"name": node}})  # accepted as a configured name too


# -- payloads -------------------------------------------------------------------------------
@pytest.fixture
def status():
    sim = Simulation()
    try:
        sim.run(5)
        yield sim.controller.status()
    finally:
        sim.close()


DASHBOARD = "http://room-1.local:8080/"


PRESETS = ("Body", "Face", "Feet")


def payloads(node="room-1", *, min_c=40.0, max_c=55.0, presets=PRESETS):
    topics = ha.Topics.for_config(mqtt_cfg(name=node), node)
    return topics, ha.discovery_payloads(topics, min_setpoint_c=min_c, max_setpoint_c=max_c,
                                         configuration_url=DASHBOARD, presets=presets)


def test_climate_entity_takes_its_limits_from_the_config_not_home_assistants_35_c():
    topics, found = payloads(min_c=40.0, max_c=55.0)
    climate = found["homeassistant/climate/room-1/water/config"]
    assert (climate["min_temp"], climate["max_temp"]) == (40.0, 55.0)
    assert climate["temperature_command_topic"] == "stonewarmer/room-1/set/setpoint"
    assert climate["current_temperature_topic"] == topics.state
    assert climate["temperature_state_topic"] == topics.state
    assert climate["action_topic"] == topics.state
    assert set(climate["modes"]) == {"heat", "off"}
    assert climate["temperature_unit"] == "C"


ENTITIES = [
    "homeassistant/binary_sensor/room-1/ready/config",
    "homeassistant/button/room-1/acknowledge/config",
    "homeassistant/button/room-1/extend/config",
    "homeassistant/climate/room-1/water/config",
    "homeassistant/event/room-1/last_command/config",
    "homeassistant/sensor/room-1/auto_off_at/config",
    "homeassistant/sensor/room-1/duty/config",
    "homeassistant/sensor/room-1/fault/config",
    "homeassistant/sensor/room-1/next_start/config",
    "homeassistant/sensor/room-1/ready_in/config",
    "homeassistant/sensor/room-1/relay_switches/config",
    "homeassistant/sensor/room-1/sensor_errors/config",
    "homeassistant/sensor/room-1/temperature/config",
]


def test_discovery_has_the_climate_sensors_a_ready_binary_sensor_a_button_and_the_last_command_event():
    _, found = payloads()
    assert sorted(found) == ENTITIES
    button = found["homeassistant/button/room-1/acknowledge/config"]
    assert button["command_topic"] == "stonewarmer/room-1/set/acknowledge"
    for config in found.values():
        assert config["availability_topic"] == "stonewarmer/room-1/availability"
        assert config["device"]["identifiers"] == ["stonewarmer_room-1"]
        json.dumps(config)  # serialisable as is


def test_unique_ids_are_unique_per_entity_and_per_warmer():
    _, one = payloads("room-1")
    _, two = payloads("room-2")
    ids_one = [c["unique_id"] for c in one.values()]
    ids_two = [c["unique_id"] for c in two.values()]
    assert len(set(ids_one)) == len(ids_one) == len(ENTITIES)
    assert not set(ids_one) & set(ids_two)
    assert not set(one) & set(two)


def test_state_payload_carries_what_the_issue_names(status):
    payload = ha.state_payload(status)
    for key in ("temperature_c", "setpoint_c", "duty", "mode", "fault", "ready"):
        assert key in payload
    assert payload["setpoint_c"] == status.setpoint_c == 52.0
    assert payload["temperature_c"] == round(status.temperature_c, 1)
    assert payload["ready"] is False and payload["mode"] == "warming"
    assert payload["action"] == ("heating" if status.relay_on else "idle")
    json.dumps(payload)


# -- what Home Assistant makes of the payloads ---------------------------------------------------
def render(template: str, status) -> str:
    """A discovery template applied to a status message, as Home Assistant renders it.

    HA's templates are Jinja2; the filters used here (``tojson``, ``round``) are Jinja2's own.
    """
    return jinja2.Environment().from_string(template).render(value_json=ha.state_payload(status))


@pytest.fixture(scope="module")
def statuses():
    """Real statuses: warming, switched off, a sensor fault latched while on, and one latched while off."""
    found = {}
    with Simulation() as sim:
        sim.run(180)  # long enough for a steady rate of rise, so an estimate
        found["warming"] = sim.controller.status()
        sim.controller.switch_off(source="test")
        sim.run(2)
        found["off"] = sim.controller.status()
    with Simulation(injections=[parse_injection("empty@2:20")]) as sim:
        sim.run(12)
        found["fault"] = sim.controller.status()
    with Simulation(injections=[parse_injection("empty@2:20")]) as sim:
        sim.controller.switch_off(source="test")
        sim.run(12)
        found["fault_while_off"] = sim.controller.status()
    assert [s.mode for s in found.values()] == ["warming", "off", "fault", "fault"]
    assert [s.switched_off for s in found.values()] == [False, True, False, True]
    return found


def entity(object_id: str, component: str = "sensor") -> dict:
    return payloads()[1][f"homeassistant/{component}/room-1/{object_id}/config"]


def test_the_climates_off_and_heat_go_to_the_mode_command_topic_and_its_mode_follows_the_switch(statuses):
    topics, _ = payloads()
    climate = entity("water", "climate")
    assert climate["mode_command_topic"] == topics.set_mode == "stonewarmer/room-1/set/mode"
    assert climate["modes"] == ["heat", "off"]
    modes = {name: render(climate["mode_state_template"], s) for name, s in statuses.items()}
    # The mode is the switch alone: a fault does not make "off" out of on, nor "heat" out of off.
    # The action and the Fault sensor say why it is cold.
    assert modes == {"warming": "heat", "off": "off", "fault": "heat", "fault_while_off": "off"}
    actions = {name: render(climate["action_template"], s) for name, s in statuses.items()}
    assert actions == {"warming": "heating" if statuses["warming"].relay_on else "idle", "off": "off",
                       "fault": "off", "fault_while_off": "off"}


@pytest.mark.parametrize(("payload", "mode"), [(b"heat", "heat"), (b"off", "off"), (b" off\n", "off")])
def test_mode_payload_is_home_assistants_heat_or_off(payload, mode):
    assert parse_mode(payload) == mode


@pytest.mark.parametrize("payload", [b"cool", b"OFF", b"", b'{"mode": "off"}', b"\xff"])
def test_any_other_mode_payload_is_refused_naming_what_is_allowed(payload):
    with pytest.raises(CommandError) as exc:
        parse_mode(payload)
    assert str(exc.value).startswith("mode must be one of heat, off, got ")
    assert (exc.value.field, exc.value.allowed) == ("mode", ["heat", "off"])


@pytest.mark.parametrize(("web", "hostname", "url"), [
    ({}, "room-1", "http://room-1.local:8080/"),
    ({"host": "0.0.0.0", "port": 8081}, "spa-pi.lan", "http://spa-pi.local:8081/"),
    ({"host": "::"}, "room-2", "http://room-2.local:8080/"),
    ({"host": "192.168.1.40"}, "room-1", "http://192.168.1.40:8080/"),
    ({"host": "127.0.0.1", "port": 9000}, "room-1", "http://127.0.0.1:9000/"),
    ({"host": "fe80::1"}, "room-1", "http://[fe80::1]:8080/"),
])
def test_the_dashboard_link_is_built_from_the_web_section(web, hostname, url):
    cfg = cfgmod.from_dict({"web": web})
    assert ha.dashboard_url(cfg, hostname=hostname) == url


def test_a_configured_dashboard_url_wins_and_a_bad_one_is_refused():
    cfg = cfgmod.from_dict({"mqtt": {"dashboard_url": "https://spa.example/room-1/"}})
    assert ha.dashboard_url(cfg, hostname="room-1") == "https://spa.example/room-1/"
    with pytest.raises(cfgmod.ConfigError) as exc:
        mqtt_cfg(dashboard_url="room-1.local:8080")
    assert str(exc.value) == ("[mqtt] dashboard_url = 'room-1.local:8080' is not allowed: must be an http:// or "
                              'https:// address, or "" to build it from [web]')


def test_every_entity_links_its_device_to_the_dashboard_and_its_origin_to_help():
    for config in payloads()[1].values():
        assert config["device"]["configuration_url"] == DASHBOARD
        assert config["origin"]["support_url"] == DASHBOARD


def test_command_answers_are_events_of_the_last_command_entity():
    topics, _ = payloads()
    event = entity("last_command", "event")
    assert event["state_topic"] == topics.result
    refused = ha.result_payload("acknowledge", "acknowledge", error="cannot acknowledge: there is no fault",
                                field="fault", allowed=None)
    accepted = ha.result_payload("mode", "off", mode="off", changed=True)
    assert (refused["event_type"], accepted["event_type"]) == ("refused", "accepted")
    assert set(event["event_types"]) == {refused["event_type"], accepted["event_type"]}
    assert (refused["ok"], accepted["ok"]) == (False, True)


def test_time_to_ready_is_a_duration_sensor_in_minutes(statuses):
    sensor = entity("ready_in")
    assert (sensor["device_class"], sensor["unit_of_measurement"]) == ("duration", "min")
    warming = statuses["warming"]
    assert render(sensor["value_template"], warming) == str(math.ceil(warming.ready_in_s / 60))
    # "None" is Home Assistant's word for unknown: no estimate while off or faulted.
    assert render(sensor["value_template"], statuses["off"]) == "None"
    assert render(sensor["value_template"], statuses["fault"]) == "None"


def test_the_fault_sensor_is_an_enum_of_every_fault_kind(statuses):
    sensor = entity("fault")
    assert sensor["device_class"] == "enum"
    assert sensor["options"] == ["none", *(kind.value for kind in FaultKind)]
    shown = {name: render(sensor["value_template"], s) for name, s in statuses.items()}
    assert shown == {"warming": "none", "off": "none", "fault": "sensor", "fault_while_off": "sensor"}
    assert json.loads(render(sensor["json_attributes_template"], statuses["fault"]))["message"]


def test_stones_ready_has_a_device_class_whose_icon_follows_the_state():
    ready = entity("ready", "binary_sensor")
    assert ready["device_class"] == "heat"
    assert "icon" not in ready  # a fixed icon would override the device class's icon per state


def test_duty_and_the_counters_are_diagnostics_and_the_rest_are_not():
    diagnostic = {topic.split("/")[3] for topic, c in payloads()[1].items() if c.get("entity_category") == "diagnostic"}
    assert diagnostic == {"duty", "sensor_errors", "relay_switches"}
    for object_id in ("sensor_errors", "relay_switches"):
        assert entity(object_id)["state_class"] == "total_increasing"  # a restart starts again from 0


def test_the_climate_keeps_only_the_slow_warmer_mode_as_an_attribute(statuses):
    climate = entity("water", "climate")
    attributes = {name: json.loads(render(climate["json_attributes_template"], s)) for name, s in statuses.items()}
    assert attributes == {"warming": {"warmer_mode": "warming"}, "off": {"warmer_mode": "off"},
                          "fault": {"warmer_mode": "fault"}, "fault_while_off": {"warmer_mode": "fault"}}


# -- presets, auto-off and the next start --------------------------------------------------------
def test_presets_are_the_climates_preset_modes_sent_to_the_preset_topic(statuses):
    topics, _ = payloads()
    climate = entity("water", "climate")
    assert climate["preset_modes"] == ["Body", "Face", "Feet"]  # HA adds its own "none" in front
    assert climate["preset_mode_command_topic"] == topics.set_preset == "stonewarmer/room-1/set/preset"
    assert climate["preset_mode_state_topic"] == topics.state
    warming = statuses["warming"]
    assert warming.setpoint_c == 52.0
    assert render(climate["preset_mode_value_template"], warming) == "Body"  # the default presets' 52 degC


def test_the_preset_mode_is_the_preset_whose_setpoint_is_set_else_none(statuses):
    template = entity("water", "climate")["preset_mode_value_template"]
    warming = statuses["warming"]
    assert render(template, dataclasses.replace(warming, setpoint_c=48.0)) == "Face"
    assert render(template, dataclasses.replace(warming, setpoint_c=50.5)) == "none"  # set by hand
    twins = [{"name": "Back", "setpoint_c": 52.0}, {"name": "Body", "setpoint_c": 52.0}]
    assert render(template, dataclasses.replace(warming, presets=twins)) == "Back"  # the first, as listed


def test_a_preset_home_assistant_reserves_is_left_off_its_list_and_never_its_state(statuses):
    climate = payloads(presets=("Body", "none", "None"))[1]["homeassistant/climate/room-1/water/config"]
    assert climate["preset_modes"] == ["Body"]
    reserved = dataclasses.replace(statuses["warming"], setpoint_c=50.0,
                                   presets=[{"name": "none", "setpoint_c": 50.0}])
    assert render(climate["preset_mode_value_template"], reserved) == "none"


def test_without_presets_the_climate_has_no_preset_modes():
    climate = payloads(presets=())[1]["homeassistant/climate/room-1/water/config"]
    assert not {key for key in climate if key.startswith("preset")}


@pytest.mark.parametrize(("payload", "name"), [(b"Face", "Face"), (b" Body 52\n", "Body 52"), (b"\xff", "\ufffd")])
def test_preset_payload_is_the_name_left_to_the_controller_to_judge(payload, name):
    assert parse_preset(payload) == name


@pytest.mark.parametrize(("object_id", "name"), [("auto_off_at", "Auto-off at"), ("next_start", "Next start")])
def test_auto_off_and_next_start_are_timestamp_sensors_in_utc(statuses, object_id, name):
    sensor = entity(object_id)
    assert (sensor["name"], sensor["device_class"]) == (name, "timestamp")
    at_s = 1_746_556_230.4  # 2025-05-06 18:30:30.4 UTC
    shown = render(sensor["value_template"], dataclasses.replace(statuses["warming"], **{object_id: at_s}))
    assert shown == "2025-05-06T18:30:30+00:00"
    assert datetime.fromisoformat(shown) == datetime.fromtimestamp(round(at_s), tz=UTC)
    # None is HA's unknown: switched off, auto-off 0 (never), no start planned.
    assert render(sensor["value_template"], dataclasses.replace(statuses["warming"], **{object_id: None})) == "None"


def test_a_warmer_that_is_on_shows_when_auto_off_will_switch_it_off(statuses):
    warming, off = statuses["warming"], statuses["off"]
    sensor = entity("auto_off_at")
    shown = datetime.fromisoformat(render(sensor["value_template"], warming))
    assert shown.timestamp() == round(warming.auto_off_at)
    # 10 h after it was switched on (the default auto_off_h), give or take the ticks since.
    assert 10 * 3600 - 200 <= warming.auto_off_at - warming.wall_time_s <= 10 * 3600
    assert render(sensor["value_template"], off) == "None"


def test_the_keep_it_on_button_sends_extend_to_its_own_topic():
    topics, _ = payloads()
    button = entity("extend", "button")
    assert (button["name"], button["command_topic"]) == ("Keep it on", topics.extend)
    assert topics.extend == "stonewarmer/room-1/set/extend"
    assert button["payload_press"] == ha.EXTEND_PAYLOAD


# -- publishing cadence -----------------------------------------------------------------------
def test_status_is_due_on_change_and_every_interval_but_not_repeated_in_between():
    schedule = ChangeOrInterval(interval_s=30.0)
    assert schedule.due("a", 100.0)
    schedule.sent("a", 100.0)
    assert not schedule.due("a", 129.9)
    assert schedule.wait_s(120.0) == pytest.approx(10.0)
    assert schedule.due("b", 101.0)
    assert schedule.due("a", 130.0)
    schedule.forget()
    assert schedule.due("a", 100.5)


# -- command payloads -------------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "value"), [
    (b"52.5", 52.5), (b" 50 ", 50), (b'{"setpoint_c": 49}', 49), (b"abc", "abc"), (b"true", True),
])
def test_setpoint_payload_is_unpacked_and_left_to_the_controller_to_judge(payload, value):
    assert parse_setpoint(payload) == value


def test_setpoint_object_with_other_keys_is_refused():
    with pytest.raises(CommandError) as exc:
        parse_setpoint(b'{"setpoint_c": 50, "force": true}')
    assert exc.value.field == "setpoint_c"
    assert "only setpoint_c" in str(exc.value)


def test_the_commented_mqtt_block_in_the_shipped_config_shows_the_real_defaults():
    text = (REPO / "config" / "stonewarmer.toml").read_text()
    start = text.index("# [mqtt]")
    block = text[start:text.index("\n[", start)]  # up to the next section that is not commented out
    uncommented = "\n".join(re.sub(r"^# (\[mqtt\]|\w+ = .*)$", r"\1", line) for line in block.splitlines())
    assert cfgmod.from_dict(tomllib.loads(uncommented)).mqtt == cfgmod.MqttConfig()
    assert len(re.findall(r"^# \w+ = ", block, flags=re.MULTILINE)) == len(cfgmod.MqttConfig.__slots__)
