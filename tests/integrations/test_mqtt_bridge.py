"""The MQTT bridge against a real Mosquitto broker, with a simulated warmer in this process."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import threading

import pytest

from controller.cli.main import main
from controller.core import config as cfgmod
from controller.core.clock import MonotonicClock, SimClock
from controller.core.presets import Presets
from controller.core.schedule import run_forever
from controller.integrations import ha_discovery as ha
from controller.integrations import mqtt
from controller.integrations.mqtt.bridge import Bridge
from controller.integrations.mqtt.client import MqttError
from controller.integrations.mqtt.records import Broker, Record, load_records, save_record
from controller.sim.simulation import Simulation, parse_injection
from tests.integrations.test_mqtt_discovery import ENTITIES
from tests.mqtt_broker import Mosquitto, Subscriber, free_port, need_binary, publish, retained, wait_until
from web import web_state_dir

NODE = "room-1"
ROOT = f"stonewarmer/{NODE}"


def make_cfg(tmp_path, broker, **mqtt_keys) -> cfgmod.Config:
    """The web process's config: its state dir is the warmer's ``web/``."""
    keys = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "name": NODE, **mqtt_keys}
    return cfgmod.from_dict({"mqtt": keys, "state": {"dir": str(web_state_dir(tmp_path / "state"))}})



def publish_once(sim) -> None:
    """Connect a bridge (which publishes discovery and status, retained), then stop it."""
    bridge = Bridge(sim.controller, sim.cfg)
    bridge.start()
    assert bridge.connected.wait(10), "bridge did not connect"
    bridge.stop()

@pytest.fixture
def warmer(tmp_path, broker):
    """A simulated warmer (stepped by the test) with its bridge connected."""
    sim = Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim")
    sim.run(3)
    bridge = Bridge(sim.controller, sim.cfg)
    bridge.start()
    assert bridge.connected.wait(10), "bridge did not connect"
    yield sim, bridge
    bridge.stop()
    sim.close()


def command(broker, sub, topic, payload, *, retain=False):
    """Publish a command and return the answer on the result topic."""
    after = sub.count()
    publish(broker, f"{ROOT}/set/{topic}", payload, retain=retain)
    return sub.wait_for(lambda m: m.topic == f"{ROOT}/result", after=after, what="a command result").json()


@pytest.fixture
def results(broker):
    sub = Subscriber(broker, f"{ROOT}/result", f"{ROOT}/state")
    yield sub
    sub.close()


# -- discovery and status --------------------------------------------------------------------
def test_discovery_is_retained_on_the_broker_as_valid_json(warmer, broker):
    sim, _ = warmer
    found = retained(broker, "homeassistant/#")
    assert len(found) == len(ENTITIES)
    configs = {topic: json.loads(payload) for topic, payload in found.items()}
    climate = configs[f"homeassistant/climate/{NODE}/water/config"]
    assert climate["max_temp"] == sim.cfg.control.max_setpoint_c == 54.0
    assert climate["min_temp"] == sim.cfg.control.min_setpoint_c == 35.0
    assert configs[f"homeassistant/binary_sensor/{NODE}/ready/config"]["state_topic"] == f"{ROOT}/state"
    assert {c["unique_id"] for c in configs.values()} == {f"stonewarmer_{NODE}_{topic.split('/')[3]}"
                                                          for topic in ENTITIES}
    # The default [web] listens on every address: the "Visit" link is the Pi's mDNS name.
    dashboard = f"http://{socket.gethostname().split('.')[0]}.local:8080/"
    assert {c["device"]["configuration_url"] for c in configs.values()} == {dashboard}


def test_availability_is_retained_online_and_offline_after_a_clean_stop(warmer, broker):
    _, bridge = warmer
    assert retained(broker, f"{ROOT}/availability") == {f"{ROOT}/availability": b"online"}
    bridge.stop()
    assert retained(broker, f"{ROOT}/availability") == {f"{ROOT}/availability": b"offline"}


def test_status_is_published_when_it_changes(warmer, broker, results):
    sim, _ = warmer
    first = results.wait_for(lambda m: m.topic == f"{ROOT}/state", what="a state message").json()
    assert first["setpoint_c"] == 52.0 and first["mode"] == "warming" and first["ready"] is False
    sim.run(120)  # two minutes of warming: the temperature rises
    now = sim.controller.status()
    latest = results.wait_for(lambda m: m.topic == f"{ROOT}/state" and
                              m.json()["temperature_c"] == round(now.temperature_c, 1),
                              what="the state after warming").json()
    assert latest["temperature_c"] > first["temperature_c"]
    assert latest["duty"] == round(now.duty, 2)


def test_unchanged_status_is_repeated_only_when_the_interval_is_up(tmp_path, broker, results):
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim") as sim:
        clock = SimClock(start_s=0.0)
        bridge = Bridge(sim.controller, sim.cfg, clock=clock)
        assert bridge.schedule.interval_s == 30.0
        try:
            # Connected without start(): no publishing thread, the test calls publish_state() itself.
            bridge.client.connect(sim.cfg.mqtt.host, sim.cfg.mqtt.port)
            bridge.client.loop_start()
            wait_until(bridge.connected.is_set, what="the bridge to connect")
            sim.run(3)
            before = results.count()
            assert bridge.publish_state() is True
            assert bridge.publish_state() is False  # same status, 0 s later
            clock.advance(29.0)
            assert bridge.publish_state() is False
            clock.advance(1.0)
            assert bridge.publish_state() is True  # 30 s: sent again although unchanged
            results.wait_for(lambda m: m.topic == f"{ROOT}/state", after=before, what="state")
            wait_until(lambda: sum(m.topic == f"{ROOT}/state" for m in results.messages[before:]) == 2,
                       what="two state messages")
        finally:
            bridge.client.disconnect()
            bridge.client.loop_stop()
            sim.close()


# -- commands -------------------------------------------------------------------------------------
def test_setpoint_command_is_accepted_and_applied(warmer, broker, results):
    sim, _ = warmer
    answer = command(broker, results, "setpoint", "50.5")
    assert answer == {"event_type": "accepted", "command": "setpoint", "ok": True, "setpoint_c": 50.5,
                      "payload": "50.5"}
    assert sim.controller.status().setpoint_c == 50.5
    assert sim.controller.events.since(0)[-1].source == "mqtt"
    state = results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["setpoint_c"] == 50.5,
                             what="the new setpoint in the state")
    assert state.json()["setpoint_c"] == 50.5


@pytest.mark.parametrize(("payload", "reason"), [
    ("60", "setpoint_c 60.0 is outside the allowed range 35 to 54 degC"),
    ("57.5", "setpoint_c 57.5 is outside the allowed range 35 to 54 degC"),
    ("-5", "outside the allowed range"),
    ("NaN", "outside the allowed range"),
    ("hot", "setpoint_c must be a number of degC, got 'hot'"),
    ("true", "setpoint_c must be a number of degC, got True"),
    ('{"setpoint_c": 99}', "setpoint_c 99.0 is outside the allowed range"),
    ('{"setpoint_c": 50, "x": 1}', "must hold only setpoint_c"),
    ("", "setpoint_c must be a number of degC"),
])
def test_bad_setpoint_is_refused_with_the_reason_and_changes_nothing(warmer, broker, results, payload, reason):
    sim, _ = warmer
    events_before = len(sim.controller.events)
    answer = command(broker, results, "setpoint", payload)
    assert answer["ok"] is False
    assert reason in answer["error"]
    assert answer["field"] == "setpoint_c"
    assert sim.controller.status().setpoint_c == 52.0
    assert sim.controller.store.load().get("setpoint_c", 52.0) == 52.0
    assert len(sim.controller.events) == events_before


def test_refusal_names_the_allowed_range(warmer, broker, results):
    answer = command(broker, results, "setpoint", "60")
    assert answer["allowed"] == {"min": 35.0, "max": 54.0, "unit": "degC"}


def test_retained_command_is_refused_so_it_cannot_replay_on_reconnect(warmer, broker, results):
    sim, bridge = warmer
    # Retained before the bridge subscribes: a fresh connection gets it with the retain flag.
    bridge.stop()
    publish(broker, f"{ROOT}/set/setpoint", "45", retain=True)
    again = Bridge(sim.controller, sim.cfg)
    after = results.count()
    again.start()
    try:
        answer = results.wait_for(lambda m: m.topic == f"{ROOT}/result", after=after, what="a result").json()
    finally:
        again.stop()
        publish(broker, f"{ROOT}/set/setpoint", b"", retain=True)
    assert answer["ok"] is False and "retained setpoint command ignored" in answer["error"]
    assert sim.controller.status().setpoint_c == 52.0


def test_a_bug_while_handling_a_command_does_not_end_the_bridge(warmer, broker, results, monkeypatch, caplog):
    sim, bridge = warmer

    def broken(value, *, source):
        raise RuntimeError("simulated bug")

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="stonewarmer.mqtt.paho"):
        patch.setattr(sim.controller, "set_setpoint", broken)
        publish(broker, f"{ROOT}/set/setpoint", "50")
        wait_until(lambda: "simulated bug" in caplog.text, what="the bug in the log")
    answer = command(broker, results, "setpoint", "51")  # the network thread still runs commands
    assert answer["ok"] is True and sim.controller.status().setpoint_c == 51.0


def test_acknowledge_without_a_fault_is_refused_with_the_reason(warmer, broker, results):
    answer = command(broker, results, "acknowledge", "acknowledge")
    assert answer["ok"] is False
    assert answer["error"] == "cannot acknowledge: there is no fault to acknowledge"
    assert answer["event_type"] == "refused"  # what Home Assistant's "Last command" event shows


def test_home_assistants_off_holds_the_heater_off_and_heat_switches_it_on_again(warmer, broker, results):
    sim, _ = warmer
    sim.run(60)
    assert sim.relay_pin_on(), "the cold bath should be heating"
    answer = command(broker, results, "mode", "off")
    assert answer == {"event_type": "accepted", "command": "mode", "payload": "off", "ok": True, "mode": "off",
                      "changed": True}
    sim.run(120)  # two minutes, still cold: only the switch keeps the heater off
    assert not sim.relay_pin_on()
    assert sim.controller.status().mode == "off"
    assert sim.controller.events.since(0)[-1].source == "mqtt"
    results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["hvac_mode"] == "off",
                     what="hvac_mode off in the state")
    again = command(broker, results, "mode", "off")
    assert (again["ok"], again["changed"]) == (True, False)  # already off: nothing recorded

    answer = command(broker, results, "mode", "heat")
    assert (answer["ok"], answer["mode"], answer["changed"]) == (True, "heat", True)
    sim.run(30)
    assert sim.relay_pin_on()
    assert sim.controller.status().mode == "warming"


def test_a_mode_home_assistant_does_not_offer_is_refused_and_changes_nothing(warmer, broker, results):
    sim, _ = warmer
    events_before = len(sim.controller.events)
    answer = command(broker, results, "mode", "cool")
    assert answer["ok"] is False and answer["event_type"] == "refused"
    assert answer["error"] == "mode must be one of heat, off, got 'cool'"
    assert (answer["field"], answer["allowed"]) == ("mode", ["heat", "off"])
    assert sim.controller.status().mode != "off"
    assert len(sim.controller.events) == events_before


@pytest.fixture
def faulting_warmer(tmp_path, broker):
    """A simulated warmer with its bridge connected whose probe file is empty from 5 s for 20 s (the
    kernel gave up): a sensor fault latches."""
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim",
                    injections=[parse_injection("empty@5:20")]) as sim:
        bridge = Bridge(sim.controller, sim.cfg)
        bridge.start()
        try:
            assert bridge.connected.wait(10)
            yield sim
        finally:
            bridge.stop()


def test_acknowledge_clears_a_latched_fault(faulting_warmer, broker, results):
    sim = faulting_warmer
    sim.run(40)
    assert sim.controller.status().fault == "sensor"
    assert not sim.relay_pin_on()  # the interlock switched the heater off
    fault_state = results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["fault"] == "sensor",
                                   what="the fault in the state").json()
    assert fault_state["mode"] == "fault" and fault_state["action"] == "off"
    answer = command(broker, results, "acknowledge", "acknowledge")
    assert answer == {"event_type": "accepted", "command": "acknowledge", "ok": True, "fault": "sensor",
                      "payload": "acknowledge"}
    assert sim.controller.status().fault is None


def test_a_fault_latched_while_switched_off_shows_off_and_heat_shows_heat_with_the_fault_still_latched(
        faulting_warmer, broker, results):
    sim = faulting_warmer
    sim.run(2)
    assert command(broker, results, "mode", "off")["ok"] is True
    sim.run(40)
    assert (sim.controller.status().fault, sim.controller.status().mode) == ("sensor", "fault")
    state = results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["fault"] == "sensor",
                             what="the fault in the state").json()
    assert (state["hvac_mode"], state["action"], state["switched_off"]) == ("off", "off", True)
    after = results.count()
    assert command(broker, results, "mode", "heat")["changed"] is True
    sim.run(1)
    state = results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["hvac_mode"] == "heat",
                             after=after, what="heat in the state").json()
    assert (state["fault"], state["action"]) == ("sensor", "off")  # on, but held off by the fault
    assert not sim.relay_pin_on()


# -- presets and auto-off -------------------------------------------------------------------------
def test_a_preset_from_home_assistant_sets_its_setpoint_and_shows_as_the_preset_mode(warmer, broker, results):
    sim, _ = warmer
    answer = command(broker, results, "preset", "Face")
    assert answer == {"event_type": "accepted", "command": "preset", "ok": True, "payload": "Face",
                      "preset": "Face", "setpoint_c": 48.0}
    assert sim.controller.status().setpoint_c == 48.0
    assert sim.controller.events.since(0)[-1].source == "mqtt (preset Face)"
    sim.run(1)
    results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["preset"] == "Face",
                     what="the Face preset in the state")


@pytest.mark.parametrize("payload", ["Sauna", "none", "face", ""])
def test_an_unknown_preset_is_refused_logged_and_changes_nothing(warmer, broker, results, caplog, payload):
    sim, _ = warmer
    events_before = len(sim.controller.events)
    with caplog.at_level(logging.WARNING, logger="stonewarmer.mqtt"):
        answer = command(broker, results, "preset", payload)
    assert answer["ok"] is False and answer["event_type"] == "refused"
    assert answer["error"] == f"preset {payload!r} is not known: allowed are Body, Face, Feet"
    assert (answer["field"], answer["allowed"]) == ("preset", ["Body", "Face", "Feet"])
    assert f"MQTT: preset {payload!r} refused" in caplog.text
    assert sim.controller.status().setpoint_c == 52.0
    assert len(sim.controller.events) == events_before


def test_keep_it_on_pushes_auto_off_back_by_the_full_hours_from_now(warmer, broker, results):
    sim, _ = warmer
    sim.run(600)
    before = sim.controller.status().auto_off_at
    answer = command(broker, results, "extend", "extend")
    assert (answer["event_type"], answer["command"]) == ("accepted", "extend")
    status = sim.controller.status()
    assert answer["auto_off_at"] == ha.timestamp(status.auto_off_at)
    # Before: 10 h from the start, 603 s ago (the fixture's 3 s and these 600 s); now: 10 h from now.
    assert before - status.wall_time_s == pytest.approx(10 * 3600 - 603, abs=2)
    assert status.auto_off_at - status.wall_time_s == pytest.approx(10 * 3600, abs=2)
    event = sim.controller.events.since(0)[-1]
    assert (event.source, event.message) == ("mqtt", "auto-off pushed back by 10 h")
    sim.run(1)
    results.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["auto_off_at"] == answer["auto_off_at"],
                     what="the new auto-off time in the state")


def test_home_assistants_preset_list_follows_presets_changed_while_running(warmer, broker):
    sim, _ = warmer
    topic = f"homeassistant/climate/{NODE}/water/config"
    sub = Subscriber(broker, topic)
    try:
        assert sub.wait_for(what="the climate's discovery").json()["preset_modes"] == ["Body", "Face", "Feet"]
        after = sub.count()
        # As the phone's settings change them: the status carries the presets now in force.
        sim.controller.cfg = dataclasses.replace(sim.controller.cfg, presets=Presets((("Back", 50.0),)))
        sim.run(1)
        climate = sub.wait_for(after=after, what="the discovery sent again").json()
    finally:
        sub.close()
    assert climate["preset_modes"] == ["Back"]
    assert json.loads(retained(broker, topic)[topic])["preset_modes"] == ["Back"]


def test_a_preset_home_assistant_reserves_is_left_out_with_a_warning(tmp_path, broker, caplog):
    cfg = dataclasses.replace(make_cfg(tmp_path, broker), presets=Presets((("none", 50.0), ("Body", 52.0))))
    with Simulation(cfg, workdir=tmp_path / "sim") as sim, caplog.at_level(logging.WARNING, logger="stonewarmer.mqtt"):
        bridge = Bridge(sim.controller, sim.cfg)
    assert bridge.discovery[f"homeassistant/climate/{NODE}/water/config"]["preset_modes"] == ["Body"]
    assert "MQTT: preset 'none' is not offered to Home Assistant, which reserves the name" in caplog.text


# -- clearing retained topics -------------------------------------------------------------------
def test_disabling_mqtt_clears_discovery_and_the_warmers_retained_topics(tmp_path, broker):
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim") as sim:
        try:
            runtime = mqtt.attach(sim.controller, sim.cfg)
            runtime.start()
            assert runtime.bridge.connected.wait(10)
            wait_until(lambda: len(retained(broker, "homeassistant/#")) == len(ENTITIES), what="discovery")
            runtime.stop()
            assert load_records(sim.cfg.state.dir)[0].node == NODE

            disabled = cfgmod.replace(sim.cfg, "mqtt", enabled=False)
            runtime = mqtt.attach(sim.controller, disabled)
            assert runtime.bridge is None
            runtime.start()
            assert runtime.clearer.done.wait(10), "clearing did not finish"
            runtime.stop()
        finally:
            sim.close()
        assert retained(broker, "homeassistant/#") == {}
        assert retained(broker, "stonewarmer/#") == {}
        assert load_records(sim.cfg.state.dir) == []


def test_without_a_record_disabled_mqtt_does_nothing(tmp_path):
    with Simulation(cfgmod.from_dict({"state": {"dir": str(tmp_path / "state")}}), workdir=tmp_path / "sim") as sim:
        try:
            runtime = mqtt.attach(sim.controller, sim.cfg)
            assert (runtime.bridge, runtime.clearer) == (None, None)
            runtime.start()
            runtime.stop()
        finally:
            sim.close()


def test_renaming_a_warmer_removes_the_old_names_entities(tmp_path, broker):
    with Simulation(make_cfg(tmp_path, broker, name="old-name"), workdir=tmp_path / "sim") as sim:
        try:
            first = Bridge(sim.controller, sim.cfg)
            first.start()
            assert first.connected.wait(10)
            first.stop()
            renamed = Bridge(sim.controller, cfgmod.replace(sim.cfg, "mqtt", name="room-7"))
            renamed.start()
            assert renamed.connected.wait(10)
            renamed.stop()
        finally:
            sim.close()
        nodes = {topic.split("/")[2] for topic in retained(broker, "homeassistant/#")}
        assert nodes == {"room-7"}
        assert set(retained(broker, "stonewarmer/#")) == {"stonewarmer/room-7/state", "stonewarmer/room-7/availability"}


def test_clearing_waits_for_the_broker_and_keeps_the_record_until_confirmed(tmp_path, broker, caplog):
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim") as sim:
        try:
            publish_once(sim)
            broker.stop()
            clearer = mqtt.attach(sim.controller, cfgmod.replace(sim.cfg, "mqtt", enabled=False)).clearer
            with caplog.at_level(logging.WARNING, logger="stonewarmer.mqtt"):
                clearer.start()
                wait_until(lambda: "cannot connect" in caplog.text, what="a refused attempt in the log")
            assert not clearer.done.is_set()
            assert len(load_records(sim.cfg.state.dir)) == 1  # kept until the broker confirms
            broker.start()
            assert clearer.done.wait(10), "clearing did not finish once the broker was back"
            clearer.stop()
        finally:
            sim.close()
        assert load_records(sim.cfg.state.dir) == []


def test_mqtt_clear_command_clears_and_reports(tmp_path, broker, capsys):
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim") as sim:
        try:
            publish_once(sim)
        finally:
            sim.close()
        warmer_dir = str(tmp_path / "state")  # the web process's records are in its web/
        assert main(["mqtt-clear", "--state-dir", warmer_dir]) == 0
        cleared = f"cleared {len(ENTITIES) + 2} retained topics of {NODE} from mqtt://127.0.0.1:{broker.port}"
        assert cleared in capsys.readouterr().out
        assert retained(broker, "homeassistant/#") == {}
        assert main(["mqtt-clear", "--state-dir", warmer_dir]) == 0
        assert "nothing to clear" in capsys.readouterr().out


def test_mqtt_clear_command_keeps_the_record_when_the_broker_is_down(tmp_path, broker, capsys):
    state_dir = tmp_path / "state"
    save_record(web_state_dir(state_dir), Record(Broker("127.0.0.1", free_port()), NODE, ("a/b",)))
    assert main(["mqtt-clear", "--state-dir", str(state_dir), "--timeout", "2"]) == 1
    assert "cannot connect to mqtt://127.0.0.1:" in capsys.readouterr().err
    assert len(load_records(web_state_dir(state_dir))) == 1


# -- credentials -----------------------------------------------------------------------------------
def test_username_and_password_file_authenticate(tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([need_binary("mosquitto_passwd", package="mosquitto"), "-b", "-c", str(passwd),
                    "warmer", "s3cret"], check=True, capture_output=True)
    (tmp_path / "broker").mkdir()
    secured = Mosquitto(tmp_path / "broker", allow_anonymous=False,
                        extra_config=f"password_file {passwd}\n")
    secured.start()
    try:
        password_file = tmp_path / "mqtt-password"
        password_file.write_text("s3cret\n")
        cfg = make_cfg(tmp_path, secured, username="warmer", password_file=str(password_file))
        with Simulation(cfg, workdir=tmp_path / "sim") as sim:
            bridge = Bridge(sim.controller, sim.cfg)
            bridge.start()
            try:
                assert bridge.connected.wait(10), "did not authenticate"
            finally:
                bridge.stop()
                sim.close()
    finally:
        secured.stop()


def test_wrong_password_is_logged_and_control_carries_on(tmp_path, caplog):
    passwd = tmp_path / "passwd"
    subprocess.run([need_binary("mosquitto_passwd", package="mosquitto"), "-b", "-c", str(passwd),
                    "warmer", "s3cret"], check=True, capture_output=True)
    (tmp_path / "broker").mkdir()
    secured = Mosquitto(tmp_path / "broker", allow_anonymous=False, extra_config=f"password_file {passwd}\n")
    secured.start()
    try:
        password_file = tmp_path / "mqtt-password"
        password_file.write_text("wrong\n")
        with Simulation(make_cfg(tmp_path, secured, username="warmer", password_file=str(password_file)),
                         workdir=tmp_path / "sim") as sim:
            bridge = Bridge(sim.controller, sim.cfg)
            with caplog.at_level(logging.WARNING, logger="stonewarmer.mqtt"):
                bridge.start()
                try:
                    wait_until(lambda: "refused the connection" in caplog.text, what="the refusal in the log")
                    sim.run(30)
                    assert sim.controller.status().tick == 30 and sim.controller.status().fault is None
                    assert not bridge.connected.is_set()
                finally:
                    bridge.stop()
                    sim.close()
            assert "Not authorized" in caplog.text or "Bad user name or password" in caplog.text
    finally:
        secured.stop()


def test_unreadable_password_file_stops_start_up_with_its_name(tmp_path, broker):
    cfg = make_cfg(tmp_path, broker, username="warmer", password_file=str(tmp_path / "missing"))
    with Simulation(cfg, workdir=tmp_path / "sim") as sim, pytest.raises(MqttError) as exc:
        mqtt.attach(sim.controller, sim.cfg)
    missing = tmp_path / "missing"
    assert str(exc.value) == f"[mqtt] password_file = '{missing}': cannot read (No such file or directory)"


# -- a broker outage during a session -------------------------------------------------------------
def test_broker_restart_during_a_session_misses_no_control_tick(tmp_path, broker):
    """The control loop runs on the real clock at 5 ticks/s while the broker goes away and comes back."""
    period_s = 0.2
    with Simulation(make_cfg(tmp_path, broker), workdir=tmp_path / "sim", clock=MonotonicClock()) as sim:
        ticks: list[tuple[int, float]] = []
        sim.controller.add_listener(lambda s: ticks.append((s.tick, s.monotonic_s)))
        bridge = Bridge(sim.controller, sim.cfg)
        stop = threading.Event()
        loop = threading.Thread(target=run_forever, args=(sim.controller, stop),
                                kwargs={"period_s": period_s, "before_tick": sim.sync}, daemon=True)
        bridge.start()
        loop.start()
        try:
            assert bridge.connected.wait(10)
            broker.stop()
            wait_until(lambda: not bridge.connected.is_set(), what="the bridge to notice")
            down_from = len(ticks)
            wait_until(lambda: len(ticks) >= down_from + 10, what="ticks during the outage")
            broker.start()  # a new, empty broker on the same port
            assert bridge.connected.wait(10), "the bridge did not reconnect"
            sub = Subscriber(broker, f"{ROOT}/state")
            sub.wait_for(what="a state message after the restart")
            sub.close()
            back_at = len(ticks)
            wait_until(lambda: len(ticks) >= back_at + 5, what="ticks after the restart")
        finally:
            stop.set()
            loop.join(5)
            bridge.stop()
            sim.close()
        numbers = [n for n, _ in ticks]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        gaps = [b - a for (_, a), (_, b) in zip(ticks, ticks[1:])]
        # A missed tick would show as a gap of two periods or more.
        print(f"{len(ticks)} ticks, longest gap {max(gaps):.3f} s (period {period_s} s)")
        assert max(gaps) < 2 * period_s, f"longest gap between ticks {max(gaps):.3f} s"
        # Everything the broker lost with its restart was published again.
        wait_until(lambda: len(retained(broker, "homeassistant/#")) == len(ENTITIES), what="discovery again")
        assert retained(broker, f"{ROOT}/availability")[f"{ROOT}/availability"] == b"offline"


@pytest.fixture
def tls_broker(tmp_path):
    """A broker that speaks only TLS, with a certificate for 127.0.0.1 signed by a throwaway CA."""
    openssl = need_binary("openssl", package="openssl")
    certs = tmp_path / "certs"
    certs.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=certs, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=stonewarmer test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (certs / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")
    (tmp_path / "broker").mkdir()
    b = Mosquitto(tmp_path / "broker", extra_config=f"cafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\n"
                                                    f"keyfile {certs / 'server.key'}\n")
    b.start()
    yield b, certs / "ca.pem"
    b.stop()


def test_tls_with_the_brokers_ca_connects(tmp_path, tls_broker):
    broker, ca_file = tls_broker
    with Simulation(make_cfg(tmp_path, broker, tls=True, ca_file=str(ca_file)), workdir=tmp_path / "sim") as sim:
        bridge = Bridge(sim.controller, sim.cfg)
        bridge.start()
        try:
            assert bridge.connected.wait(10), "no TLS connection"
            assert bridge.broker.where == f"mqtts://127.0.0.1:{broker.port}"
        finally:
            bridge.stop()
            sim.close()


def test_tls_refuses_a_broker_certificate_it_cannot_verify(tmp_path, tls_broker, caplog):
    broker, _ = tls_broker  # signed by a CA the system does not trust
    with Simulation(make_cfg(tmp_path, broker, tls=True), workdir=tmp_path / "sim") as sim:
        bridge = Bridge(sim.controller, sim.cfg)
        with caplog.at_level(logging.WARNING, logger="stonewarmer.mqtt"):
            bridge.start()
            try:
                wait_until(lambda: "cannot connect to mqtts://" in caplog.text, what="the failed TLS handshake")
                assert not bridge.connected.is_set()
            finally:
                bridge.stop()
                sim.close()


def test_missing_ca_file_stops_start_up_with_its_name(tmp_path, broker):
    cfg = make_cfg(tmp_path, broker, tls=True, ca_file=str(tmp_path / "nope.pem"))
    with Simulation(cfg, workdir=tmp_path / "sim") as sim:
        try:
            with pytest.raises(MqttError) as exc:
                mqtt.attach(sim.controller, sim.cfg)
        finally:
            sim.close()
        assert str(exc.value).startswith(f"[mqtt] ca_file = '{tmp_path / 'nope.pem'}': cannot load")
