"""A simulated warmer as a real Home Assistant sees it, over a real Mosquitto, all on 127.0.0.1.

Home Assistant runs from its own cached virtualenv (``.ci/home-assistant.sh`` builds it; see
``tests/integrations/home_assistant/``), onboarded through its API, with the MQTT integration added
through its config flow. The tests run in file order on one Home Assistant and one warmer: the
entities, HA's own discovery schema, set_temperature, a preset, "Keep it on", hvac mode off and heat,
the acknowledge button with and without a fault, a fault while switched off, a SIGKILL and the way
back, and the device page in Chromium.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from controller.core import config as cfgmod
from controller.qa.processes import command, free_port, relay_pin
from controller.qa.processes import stop as stop_process
from tests.helpers import REPO
from tests.integrations.home_assistant import install
from tests.integrations.home_assistant.hass import HomeAssistant, HomeAssistantError
from tests.integrations.test_mqtt_discovery import ENTITIES
from tests.mqtt_broker import Mosquitto, retained, wait_until

pytestmark = pytest.mark.slow

NODE = "room-1"
ROOT = f"stonewarmer/{NODE}"
FAULT_AT_S = 4  # the restarted warmer's probe file is empty from here ...
FAULT_FOR_S = 6  # ... for this long: 4 bad readings in a row latch a sensor fault
SCREENSHOT = REPO / "artifacts" / "home-assistant-device.png"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def home_assistant_bin() -> Path:
    """The cached Home Assistant's ``bin/``; skip where it cannot be installed, fail in CI where it can."""
    bin_dir = install.installed()
    if bin_dir is not None:
        return bin_dir
    if install.python313() is None:
        pytest.skip(f"Home Assistant cannot be installed here: it needs Python {install.PYTHON_VERSION} "
                    "(pyenv, or set STONEWARMER_HA_PYTHON)")
    reason = f"Home Assistant {install.HA_VERSION} is not built in {install.CACHE}: run .ci/home-assistant.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Warmer:
    """``stonewarmer run --simulate`` with MQTT on, its dashboard on 127.0.0.1; restartable."""

    def __init__(self, workdir: Path, broker: Mosquitto) -> None:
        self.state_dir = workdir / "state"
        self.web_port = free_port()
        self.config = workdir / "stonewarmer.toml"
        self.config.write_text(f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\n'
                               f'name = "{NODE}"\n\n[web]\nhost = "127.0.0.1"\nport = {self.web_port}\n')
        self.dashboard = f"http://127.0.0.1:{self.web_port}/"
        self.process: subprocess.Popen | None = None

    def start(self, *injections: str) -> None:
        inject = [arg for spec in injections for arg in ("--inject", spec)]
        self.process = subprocess.Popen(
            command("run", "--simulate", "--config", str(self.config), "--state-dir", str(self.state_dir), *inject),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)

    def status(self) -> dict:
        """The warmer's own view: its dashboard's /api/status."""
        with urllib.request.urlopen(self.dashboard + "api/status", timeout=5) as answer:
            return json.loads(answer.read())

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)


class Stack:
    """Mosquitto, Home Assistant and one warmer; the entity ids Home Assistant gave the warmer."""

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        (workdir / "broker").mkdir()
        self.broker = Mosquitto(workdir / "broker")
        self.hass = HomeAssistant(bin_dir, workdir / "ha")
        self.warmer = Warmer(workdir, self.broker)
        self.ids: dict[str, str] = {}  # object id ("water", "fault" ...) -> entity id
        self.registry: dict[str, list[dict]] = {}  # Home Assistant's entity and device registries

    def entity(self, object_id: str, states: dict | None = None) -> dict:
        return (states or self.hass.states())[self.ids[object_id]]

    def retained_state(self) -> dict:
        return json.loads(retained(self.broker, f"{ROOT}/state")[f"{ROOT}/state"])

    def discovery(self) -> dict[str, dict]:
        return {topic: json.loads(payload) for topic, payload in retained(self.broker, "homeassistant/#").items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    bin_dir = home_assistant_bin()
    s = Stack(tmp_path_factory.mktemp("home-assistant"), bin_dir)
    s.hass.start()  # its start takes longest: the broker and the warmer start meanwhile
    try:
        s.broker.start()
        s.warmer.start()
        s.hass.wait_started()
        s.hass.onboard(broker_port=s.broker.port)
        discovery = wait_until(lambda: len(s.discovery()) == len(ENTITIES) and s.discovery(),
                               what="the warmer's discovery")
        expected = {config["unique_id"]: topic.split("/")[3] for topic, config in discovery.items()}

        def all_known():
            registry = json.loads(s.hass.in_ha("registry", s.hass.base, s.hass.token))
            s.registry = registry
            found = {e["unique_id"]: e["entity_id"] for e in registry["entities"] if e["platform"] == "mqtt"}
            return set(found) == set(expected) and found

        found = wait_until(all_known, timeout_s=30, what="every entity in Home Assistant's registry")
        s.ids = {expected[unique_id]: entity_id for unique_id, entity_id in found.items()}
        yield s
    finally:
        s.warmer.stop()
        s.hass.stop()
        s.broker.stop()


def test_every_entity_shows_the_warmers_state_with_its_attributes(stack):
    hass, ids = stack.hass, stack.ids
    states = hass.wait_for(lambda st: all(st[e]["state"] != "unavailable" for e in ids.values()), what="available")

    def agrees(st) -> bool:  # HA shows what the warmer last published (it moves on every tick: poll)
        state = stack.retained_state()
        water = stack.entity("water", st)["attributes"]
        return (water["current_temperature"] == state["temperature_c"]
                and float(stack.entity("temperature", st)["state"]) == state["temperature_c"])

    states = hass.wait_for(agrees, what="Home Assistant to show the published temperature")
    water = stack.entity("water", states)
    assert water["state"] == "heat"
    attributes = water["attributes"]
    assert attributes["friendly_name"] == f"Stone warmer {NODE}"
    assert attributes["hvac_modes"] == ["heat", "off"]
    assert (attributes["min_temp"], attributes["max_temp"], attributes["target_temp_step"]) == (35.0, 54.0, 0.5)
    assert attributes["temperature"] == 52.0
    assert attributes["hvac_action"] in ("heating", "idle")
    assert attributes["warmer_mode"] in ("starting", "warming")
    # Only the slow attribute of our own: nothing the recorder would store on every tick.
    assert not {"duty", "temperature_c", "relay_on", "sensor_errors", "ready_in_min"} & set(attributes)

    temperature = stack.entity("temperature", states)["attributes"]
    assert (temperature["unit_of_measurement"], temperature["device_class"]) == ("°C", "temperature")
    ready_in = stack.entity("ready_in", states)
    assert (ready_in["attributes"]["unit_of_measurement"], ready_in["attributes"]["device_class"]) == \
        ("min", "duration")
    assert ready_in["state"] == "unknown" or math.isfinite(float(ready_in["state"]))
    fault = stack.entity("fault", states)
    assert fault["state"] == "none" and fault["attributes"]["device_class"] == "enum"
    assert fault["attributes"]["options"][0] == "none" and "sensor" in fault["attributes"]["options"]
    ready = stack.entity("ready", states)
    assert (ready["state"], ready["attributes"]["device_class"]) == ("off", "heat")
    event = stack.entity("last_command", states)
    assert event["attributes"]["event_types"] == ["accepted", "refused"]
    assert float(stack.entity("duty", states)["state"]) >= 0
    assert stack.entity("sensor_errors", states)["state"] == "0"
    assert stack.entity("acknowledge", states)["state"] == "unknown"  # never pressed
    # The config has no [presets]: the defaults, after HA's own "none".
    assert (attributes["preset_modes"], attributes["preset_mode"]) == (["none", "Body", "Face", "Feet"], "Body")
    auto_off = stack.entity("auto_off_at", states)
    assert auto_off["attributes"]["device_class"] == "timestamp"
    assert datetime.fromisoformat(auto_off["state"]) == datetime.fromisoformat(stack.retained_state()["auto_off_at"])
    next_start = stack.entity("next_start", states)
    assert (next_start["state"], next_start["attributes"]["device_class"]) == ("unknown", "timestamp")  # no schedule
    assert stack.entity("extend", states)["state"] == "unknown"

    registry = {e["entity_id"]: e for e in stack.registry["entities"]}
    diagnostic = {o for o, e in ids.items() if registry[e]["entity_category"] == "diagnostic"}
    assert diagnostic == {"duty", "sensor_errors", "relay_switches"}
    [device] = [d for d in stack.registry["devices"] if d["id"] == registry[ids["water"]]["device_id"]]
    assert device["name"] == f"Stone warmer {NODE}"
    assert device["configuration_url"] == stack.warmer.dashboard  # the "Visit" link
    assert {registry[e]["device_id"] for e in ids.values()} == {device["id"]}


def test_every_payload_passes_home_assistants_own_discovery_schema_with_no_key_dropped(stack, tmp_path):
    payloads = tmp_path / "discovery.json"
    payloads.write_text(json.dumps(stack.discovery()))
    checked = json.loads(stack.hass.in_ha("schema", str(payloads)))
    assert len(checked) == len(ENTITIES)
    assert checked == {topic: {"dropped": [], "error": None} for topic in checked}
    warnings = [line for line in stack.hass.log().splitlines()
                if "WARNING" in line and "components.mqtt" in line]
    assert warnings == []


def test_set_temperature_reaches_the_warmer_and_home_assistant_refuses_60_c_itself(stack):
    hass, water = stack.hass, stack.ids["water"]
    hass.call("climate", "set_temperature", entity_id=water, temperature=50)
    wait_until(lambda: stack.warmer.status()["setpoint_c"] == 50.0, timeout_s=5, what="setpoint 50 at the warmer")
    hass.wait_for(lambda st: st[water]["attributes"]["temperature"] == 50.0, what="50 degC in Home Assistant")
    with pytest.raises(HomeAssistantError) as refused:
        hass.call("climate", "set_temperature", entity_id=water, temperature=60)
    assert refused.value.status == 500  # HA's ServiceValidationError: outside min_temp..max_temp
    assert stack.warmer.status()["setpoint_c"] == 50.0


def test_a_preset_tapped_in_home_assistant_sets_the_warmer_and_shows_as_its_preset_mode(stack):
    hass, warmer, water = stack.hass, stack.warmer, stack.ids["water"]
    hass.call("climate", "set_preset_mode", entity_id=water, preset_mode="Face")
    wait_until(lambda: warmer.status()["setpoint_c"] == 48.0, timeout_s=5, what="the Face preset at the warmer")
    states = hass.wait_for(lambda st: st[water]["attributes"]["preset_mode"] == "Face", what="Face in Home Assistant")
    assert states[water]["attributes"]["temperature"] == 48.0
    # HA's own "none" is no preset: refused by the warmer, nothing changes, and HA says so.
    hass.call("climate", "set_preset_mode", entity_id=water, preset_mode="none")
    states = hass.wait_for(lambda st: stack.entity("last_command", st)["attributes"].get("payload") == "none",
                           what="the refused preset as the last command")
    assert stack.entity("last_command", states)["attributes"]["event_type"] == "refused"
    assert warmer.status()["setpoint_c"] == 48.0


def test_keep_it_on_pushes_auto_off_back_and_home_assistant_shows_the_new_time(stack):
    hass, warmer = stack.hass, stack.warmer
    before = warmer.status()["auto_off_at"]
    hass.call("button", "press", entity_id=stack.ids["extend"])
    wait_until(lambda: warmer.status()["auto_off_at"] > before, timeout_s=5, what="auto-off pushed back")
    auto_off_at = warmer.status()["auto_off_at"]
    hass.wait_for(lambda st: datetime.fromisoformat(stack.entity("auto_off_at", st)["state"]).timestamp()
                  == round(auto_off_at), what="the new auto-off time in Home Assistant")
    states = hass.wait_for(lambda st: stack.entity("last_command", st)["attributes"].get("command") == "extend",
                           what="Keep it on as the last command")
    assert stack.entity("last_command", states)["attributes"]["event_type"] == "accepted"


def test_hvac_mode_off_holds_the_heater_off_and_heat_switches_it_on(stack):
    hass, warmer, water = stack.hass, stack.warmer, stack.ids["water"]
    hass.call("climate", "set_hvac_mode", entity_id=water, hvac_mode="off")
    wait_until(lambda: warmer.status()["mode"] == "off", timeout_s=5, what="the warmer switched off")
    # Off is a duty of 0: the relay opens once it has been on for its minimum time (10 s, mechanical).
    min_on_s = cfgmod.RelayConfig().effective_min_switch_s
    wait_until(lambda: relay_pin(warmer.state_dir) is False, timeout_s=min_on_s + 2, what="the relay off")
    states = hass.wait_for(lambda st: st[water]["state"] == "off", what="off in Home Assistant")
    assert states[water]["attributes"]["hvac_action"] == "off"
    event = hass.wait_for(lambda st: stack.entity("last_command", st)["attributes"].get("command") == "mode",
                          what="the mode command as the last command")
    assert stack.entity("last_command", event)["attributes"]["event_type"] == "accepted"

    hass.call("climate", "set_hvac_mode", entity_id=water, hvac_mode="heat")
    wait_until(lambda: warmer.status()["mode"] != "off", timeout_s=5, what="the warmer switched on")
    hass.wait_for(lambda st: st[water]["state"] == "heat", what="heat in Home Assistant")

    # climate.turn_off, the Off button of HA's thermostat card, goes the same way.
    hass.call("climate", "turn_off", entity_id=water)
    wait_until(lambda: warmer.status()["mode"] == "off", timeout_s=5, what="turn_off at the warmer")
    hass.call("climate", "turn_on", entity_id=water)
    wait_until(lambda: warmer.status()["mode"] != "off", timeout_s=5, what="turn_on at the warmer")


def test_acknowledge_without_a_fault_shows_the_refusal_in_home_assistant(stack):
    hass = stack.hass
    hass.call("button", "press", entity_id=stack.ids["acknowledge"])
    states = hass.wait_for(lambda st: stack.entity("last_command", st)["attributes"].get("command") == "acknowledge",
                           what="the refusal as the last command")
    attributes = stack.entity("last_command", states)["attributes"]
    assert attributes["event_type"] == "refused"
    assert attributes["error"] == "cannot acknowledge: there is no fault to acknowledge"


def test_a_killed_warmer_is_unavailable_and_back_with_its_fault_which_home_assistant_acknowledges(stack):
    hass, warmer, ids = stack.hass, stack.warmer, stack.ids
    warmer.kill()
    hass.wait_for(lambda st: all(st[e]["state"] == "unavailable" for e in ids.values()), timeout_s=10,
                  what="every entity unavailable after SIGKILL")

    warmer.start(f"empty@{FAULT_AT_S}:{FAULT_FOR_S}")
    hass.wait_for(lambda st: stack.entity("water", st)["state"] == "heat", what="the warmer back in Home Assistant")
    states = hass.wait_for(lambda st: stack.entity("fault", st)["state"] == "sensor", what="the sensor fault")
    assert "probe" in stack.entity("fault", states)["attributes"]["message"]
    # Switched off with the fault latched: Off, and the fault stays its own entity.
    hass.call("climate", "set_hvac_mode", entity_id=ids["water"], hvac_mode="off")
    states = hass.wait_for(lambda st: stack.entity("water", st)["state"] == "off", what="off with the fault latched")
    assert stack.entity("fault", states)["state"] == "sensor" and warmer.status()["mode"] == "fault"
    hass.call("climate", "set_hvac_mode", entity_id=ids["water"], hvac_mode="heat")
    hass.wait_for(lambda st: stack.entity("water", st)["state"] == "heat", what="heat again with the fault latched")
    wait_until(lambda: warmer.status()["reading_kind"] == "valid", timeout_s=FAULT_AT_S + FAULT_FOR_S + 10,
               what="the probe reading again")
    assert warmer.status()["fault"] == "sensor"
    states = hass.wait_for(lambda st: stack.entity("water", st)["attributes"]["hvac_action"] == "off",
                           what="the heater off in Home Assistant")
    assert stack.entity("water", states)["state"] == "heat"  # a fault is not the person's Off

    hass.call("button", "press", entity_id=ids["acknowledge"])
    wait_until(lambda: warmer.status()["fault"] is None, timeout_s=5, what="the fault cleared at the warmer")
    states = hass.wait_for(lambda st: stack.entity("fault", st)["state"] == "none", what="no fault in HA")
    event = stack.entity("last_command", hass.wait_for(
        lambda st: stack.entity("last_command", st)["attributes"].get("ok") is True
        and stack.entity("last_command", st)["attributes"].get("command") == "acknowledge",
        what="the accepted ack"))  # not the mode commands' answers before it
    assert (event["attributes"]["command"], event["attributes"]["fault"]) == ("acknowledge", "sensor")


def test_the_device_page_renders_in_the_home_assistant_frontend(stack):
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (Debian package chromium; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    hass = stack.hass
    [device_id] = {e["device_id"] for e in stack.registry["entities"] if e["entity_id"] == stack.ids["water"]}
    # Signed in as the frontend keeps it after a sign-in: the owner's tokens in localStorage.
    tokens = {**hass.tokens, "hassUrl": hass.base, "clientId": hass.client_id}
    sign_in = (f"localStorage.setItem('hassTokens', JSON.stringify(Object.assign({json.dumps(tokens)}, "
               f"{{expires: Date.now() + {hass.tokens['expires_in']} * 1000}})));")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.add_init_script(sign_in)
            # Nothing beyond 127.0.0.1: the frontend would fetch brand icons from the internet.
            page.route(lambda url: not url.startswith(hass.base), lambda route: route.abort())
            page.goto(f"{hass.base}/config/devices/device/{device_id}", timeout=60_000)
            page.get_by_text("Acknowledge fault").first.wait_for(timeout=60_000)
            for name in ("Last command", "Time to ready", "Keep it on", "Auto-off at", "Next start", "Probe errors",
                         "Visit"):
                page.get_by_text(name).first.wait_for(timeout=10_000)
            page.wait_for_timeout(1500)  # let the cards finish drawing for the picture
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
