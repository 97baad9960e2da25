"""The [mqtt] config, the topics, the status payload and the Home Assistant discovery payloads."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from controller.core import config as cfgmod
from controller.core.loop import CommandError
from controller.integrations import ha_discovery as ha
from controller.integrations.mqtt.bridge import ChangeOrInterval, parse_setpoint
from controller.sim.simulation import Simulation
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


def payloads(node="room-1", *, min_c=40.0, max_c=55.0):
    topics = ha.Topics.for_config(mqtt_cfg(name=node), node)
    return topics, ha.discovery_payloads(topics, min_setpoint_c=min_c, max_setpoint_c=max_c)


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


def test_discovery_has_climate_sensors_for_duty_and_fault_a_ready_binary_sensor_and_a_button():
    _, found = payloads()
    assert sorted(found) == [
        "homeassistant/binary_sensor/room-1/ready/config",
        "homeassistant/button/room-1/acknowledge/config",
        "homeassistant/climate/room-1/water/config",
        "homeassistant/sensor/room-1/duty/config",
        "homeassistant/sensor/room-1/fault/config",
        "homeassistant/sensor/room-1/temperature/config",
    ]
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
    assert len(set(ids_one)) == len(ids_one) == 6
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
    block = text[text.index("# [mqtt]"):]
    uncommented = "\n".join(re.sub(r"^# (\[mqtt\]|\w+ = .*)$", r"\1", line) for line in block.splitlines())
    assert cfgmod.from_dict(tomllib.loads(uncommented)).mqtt == cfgmod.MqttConfig()
    assert len(re.findall(r"^# \w+ = ", block, flags=re.MULTILINE)) == len(cfgmod.MqttConfig.__slots__)
