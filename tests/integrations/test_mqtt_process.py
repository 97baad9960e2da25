"""A real ``stonewarmer run --simulate`` process on a real Mosquitto broker, seen by mosquitto_sub/pub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO
from tests.integrations.test_mqtt_discovery import ENTITIES
from tests.mqtt_broker import DEADLINE_S, Mosquitto, Subscriber, free_port, need_binary, retained, wait_until
from web import web_state_dir

NODE = "room-4"
ROOT = f"stonewarmer/{NODE}"
STONEWARMER = [sys.executable, "-m", "controller"]


def write_config(tmp_path: Path, broker: Mosquitto, *, enabled: bool = True) -> Path:
    path = tmp_path / "stonewarmer.toml"
    path.write_text(f'[mqtt]\nenabled = {"true" if enabled else "false"}\nhost = "127.0.0.1"\n'
                    f'port = {broker.port}\nname = "{NODE}"\n')
    return path


def start_warmer(tmp_path: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*STONEWARMER, "run", "--simulate", "--config", str(config), "--state-dir", str(tmp_path / "state"),
         "--host", "127.0.0.1", "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=DEADLINE_S)
    return out.decode()


def test_simulated_warmer_shows_up_in_mosquitto_sub_follows_commands_and_goes_offline_when_killed(
        tmp_path, broker):
    mosquitto_sub = need_binary("mosquitto_sub", package="mosquitto-clients")
    mosquitto_pub = need_binary("mosquitto_pub", package="mosquitto-clients")
    watch = Subscriber(broker, f"{ROOT}/#")
    warmer = start_warmer(tmp_path, write_config(tmp_path, broker))
    try:
        watch.wait_for(lambda m: m.topic == f"{ROOT}/availability" and m.text == "online", what="online")
        # The README's demo: one discovery config per entity, each valid JSON.
        shown = subprocess.run([mosquitto_sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "homeassistant/#",
                                "-v", "-C", str(len(ENTITIES)), "-W", str(int(DEADLINE_S))],
                               capture_output=True, text=True, timeout=DEADLINE_S + 5, check=True).stdout
        lines = shown.splitlines()
        assert len(lines) == len(ENTITIES)
        configs = {topic: json.loads(payload) for topic, payload in (line.split(" ", 1) for line in lines)}
        climate = configs[f"homeassistant/climate/{NODE}/water/config"]
        assert (climate["min_temp"], climate["max_temp"]) == (35.0, 54.0)

        # Follows commands: one accepted, one refused with the reason.
        for value in ("49", "58"):
            subprocess.run([mosquitto_pub, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                            "-t", f"{ROOT}/set/setpoint", "-m", value], check=True, timeout=DEADLINE_S)
        accepted = watch.wait_for(lambda m: m.topic == f"{ROOT}/result" and m.json()["payload"] == "49",
                                  what="the result for 49").json()
        refused = watch.wait_for(lambda m: m.topic == f"{ROOT}/result" and m.json()["payload"] == "58",
                                 what="the result for 58").json()
        assert accepted["ok"] is True and accepted["setpoint_c"] == 49.0
        assert refused["ok"] is False
        assert refused["error"] == "setpoint_c 58.0 is outside the allowed range 35 to 54 degC"
        watch.wait_for(lambda m: m.topic == f"{ROOT}/state" and m.json()["setpoint_c"] == 49.0,
                       what="setpoint 49 in the state")

        # Killed without a goodbye: the broker publishes the last will.
        before = watch.count()
        os.kill(warmer.pid, signal.SIGKILL)
        warmer.wait(timeout=DEADLINE_S)
        offline = watch.wait_for(lambda m: m.topic == f"{ROOT}/availability", after=before, what="the last will")
        assert offline.text == "offline"
        assert retained(broker, f"{ROOT}/availability") == {f"{ROOT}/availability": b"offline"}
        assert retained(broker, f"{ROOT}/state")  # the last status stays for whoever looks
    finally:
        watch.close()
        stop(warmer)


def test_restarting_with_mqtt_disabled_removes_the_warmer_from_home_assistant(tmp_path, broker):
    config = write_config(tmp_path, broker)
    warmer = start_warmer(tmp_path, config)
    watch = Subscriber(broker, f"{ROOT}/availability")
    try:
        watch.wait_for(lambda m: m.text == "online", what="online")
    finally:
        watch.close()
        out = stop(warmer)
    assert warmer.returncode == 0, out
    assert len(retained(broker, "homeassistant/#")) == len(ENTITIES)

    record = web_state_dir(tmp_path / "state") / "mqtt-retained"  # kept by the web process
    warmer = start_warmer(tmp_path, write_config(tmp_path, broker, enabled=False))
    try:
        wait_until(lambda: not any(record.glob("*.json")) or warmer.poll() is not None,
                   what="the record of retained topics to be cleared")
        assert warmer.poll() is None, "the warmer exited"
    finally:
        out = stop(warmer)
    assert f"cleared {len(ENTITIES) + 2} retained topics of 'room-4'" in out
    assert retained(broker, "homeassistant/#") == {}
    assert retained(broker, "stonewarmer/#") == {}
