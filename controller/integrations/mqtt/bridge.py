"""The bridge: one warmer on one broker. Status out (on change and every interval), validated commands in.

Threads, and why the control loop never waits on the broker:

* the control thread's only part is a listener that sets an :class:`threading.Event`;
* a ``mqtt-publish`` thread wakes on it, reads ``controller.status()`` (a cheap
  immutable snapshot) and publishes on change and every ``publish_interval_s``;
* paho's network thread connects, reconnects with backoff (1 s doubling to
  60 s), and runs commands through :meth:`Controller.set_setpoint`,
  :meth:`Controller.switch_off` / :meth:`Controller.switch_on`, :meth:`Controller.apply_preset`,
  :meth:`Controller.extend` and :meth:`Controller.acknowledge_fault`, which validate exactly as
  for the web.

A broker outage just drops status messages (QoS 0: nothing piles up); the next
connection publishes everything afresh.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from controller.core import config as cfgmod
from controller.core.clock import MonotonicClock
from controller.core.interfaces import ControllerView
from controller.core.loop import CommandError
from controller.core.status import Status
from controller.integrations import ha_discovery as ha
from controller.integrations.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S, STOP_TIMEOUT_S, make_client
from controller.integrations.mqtt.records import Broker, Record, load_records, records_dir, save_record

log = logging.getLogger("stonewarmer.mqtt")


class ChangeOrInterval:
    """Publish when the payload changed, and at least every ``interval_s`` (s) anyway."""

    def __init__(self, *, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_payload: str | None = None
        self._last_s = float("-inf")
        self._lock = threading.Lock()

    def due(self, payload: str, now_s: float) -> bool:
        with self._lock:
            return payload != self._last_payload or now_s - self._last_s >= self.interval_s

    def sent(self, payload: str, now_s: float) -> None:
        with self._lock:
            self._last_payload, self._last_s = payload, now_s

    def forget(self) -> None:
        """Make the next payload due (a fresh connection)."""
        with self._lock:
            self._last_payload, self._last_s = None, float("-inf")

    def wait_s(self, now_s: float) -> float:
        """Seconds until the interval forces a publish."""
        with self._lock:
            return max(0.0, min(self.interval_s, self._last_s + self.interval_s - now_s))


def parse_setpoint(payload: bytes) -> Any:
    """The value in a setpoint command: ``52.5`` or ``{"setpoint_c": 52.5}``.

    Only unpacks; :meth:`Controller.set_setpoint` judges the value (type,
    range), the same as for the web, so anything odd is refused there.
    """
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return payload
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict):
        if set(value) != {"setpoint_c"}:
            raise CommandError(f"a setpoint command object must hold only setpoint_c, got keys {sorted(value)}",
                               field="setpoint_c")
        return value["setpoint_c"]
    return value


def parse_mode(payload: bytes) -> str:
    """The Home Assistant hvac mode in a mode command: ``heat`` or ``off``; anything else is refused."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text not in ha.HVAC_MODES:
        raise CommandError(f"mode must be one of {', '.join(ha.HVAC_MODES)}, got {text[:40]!r}",
                           field="mode", allowed=list(ha.HVAC_MODES))
    return text


def parse_preset(payload: bytes) -> str:
    """The preset's name in a preset command, as Home Assistant sends it (the name itself).

    Only unpacks; :meth:`Controller.apply_preset` judges the name against ``[presets]``.
    """
    return payload.decode("utf-8", errors="replace").strip()


class Bridge:
    """One warmer on one broker. :meth:`start` returns at once; :meth:`stop` says goodbye."""

    def __init__(self, controller: ControllerView, cfg: cfgmod.Config, *, clock=None) -> None:
        self.controller = controller
        self.cfg = cfg
        self.clock = clock or MonotonicClock()  # publishing cadence only, not control timing
        m = cfg.mqtt
        self.broker = Broker.from_config(m)
        self.node = ha.node_id(m)
        self.topics = ha.Topics.for_config(m, self.node)
        self._dashboard_url = ha.dashboard_url(cfg)
        # The climate's presets follow the warmer's (they can change from the phone): the
        # discovery is rebuilt and sent again when they do (:meth:`_follow_presets`).
        self._discovery_lock = threading.Lock()
        self.preset_names: tuple[str, ...] = ()
        self.discovery: dict[str, dict[str, Any]] = {}
        self._set_presets(cfg.presets.names)
        self.state_dir = cfg.state.dir
        self.schedule = ChangeOrInterval(interval_s=m.publish_interval_s)
        self.client = make_client(self.broker, client_id=f"stonewarmer-{self.node}",
                                  will_topic=self.topics.availability)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.message_callback_add(self.topics.set_setpoint, self._on_setpoint)
        self.client.message_callback_add(self.topics.set_mode, self._on_mode)
        self.client.message_callback_add(self.topics.set_preset, self._on_preset)
        self.client.message_callback_add(self.topics.acknowledge, self._on_acknowledge)
        self.client.message_callback_add(self.topics.extend, self._on_extend)
        #: Set once connected, discovery sent and the command topics subscribed (the broker
        #: handles one connection's packets in order, so it has the discovery by then).
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publish", daemon=True)
        self._problem_logged = False
        controller.add_listener(self._on_tick)

    @property
    def command_topics(self) -> tuple[str, ...]:
        t = self.topics
        return (t.set_setpoint, t.set_mode, t.set_preset, t.acknowledge, t.extend)

    @property
    def retained_topics(self) -> tuple[str, ...]:
        return (*self.discovery, self.topics.state, self.topics.availability)

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()
        self._publisher.start()
        log.info("MQTT: warmer %r on %s, topics under %s/", self.node, self.broker.where, self.topics.root)

    def stop(self) -> None:
        """Publish "offline" (retained), disconnect; bounded by STOP_TIMEOUT_S."""
        self._stop.set()
        self._wake.set()
        if self._publisher.is_alive():
            self._publisher.join(timeout=STOP_TIMEOUT_S)
        if self.client.is_connected():
            info = self.client.publish(self.topics.availability, ha.PAYLOAD_OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=STOP_TIMEOUT_S)
            except (RuntimeError, ValueError):
                pass  # not sent: the broker publishes the last will instead
        self.client.disconnect()
        self.client.loop_stop()

    # -- control thread: only this ---------------------------------------------------------
    def _on_tick(self, _status) -> None:
        self._wake.set()

    # -- mqtt-publish thread -----------------------------------------------------------------
    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.schedule.wait_s(self.clock.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.publish_state()
            except Exception:  # noqa: BLE001 - a publishing bug must not end status updates for good
                log.exception("MQTT: publishing the status failed")

    def publish_state(self) -> bool:
        """Publish the latest status if it changed or the interval is up; True if sent."""
        status = self.controller.status()
        self._follow_presets(status)
        if not self.client.is_connected():
            return False
        payload = json.dumps(ha.state_payload(status), sort_keys=True)
        now = self.clock.monotonic()
        if not self.schedule.due(payload, now):
            return False
        # QoS 0: while the broker is away the message is dropped, not queued.
        info = self.client.publish(self.topics.state, payload, qos=0, retain=True)
        if info.rc != 0:
            return False
        self.schedule.sent(payload, now)
        return True

    def _follow_presets(self, status: Status) -> None:
        """Send the climate's discovery again when the warmer's presets have changed."""
        names = tuple(preset["name"] for preset in status.presets)
        if status.tick == 0 or names == self.preset_names:  # tick 0: no tick yet, maybe no presets known yet
            return
        log.info("MQTT: presets now %s: Home Assistant's list follows", ", ".join(names) or "(none)")
        with self._discovery_lock:
            self._set_presets(names)
            if self.client.is_connected():
                self._publish_discovery(self.client)

    def _set_presets(self, names: tuple[str, ...]) -> None:
        self.preset_names = names
        if not self.cfg.mqtt.discovery:
            return
        c = self.cfg.control
        self.discovery = ha.discovery_payloads(self.topics, min_setpoint_c=c.min_setpoint_c,
                                               max_setpoint_c=c.max_setpoint_c,
                                               configuration_url=self._dashboard_url, presets=names)
        hidden = [name for name in names if name not in ha.ha_presets(names)]
        if hidden:
            log.warning("MQTT: preset %s is not offered to Home Assistant, which reserves the name; "
                        "rename it to use it there", ", ".join(map(repr, hidden)))

    def _publish_discovery(self, client) -> None:
        for topic, config in self.discovery.items():
            client.publish(topic, json.dumps(config, sort_keys=True, ensure_ascii=False), qos=1, retain=True)

    # -- paho's network thread ---------------------------------------------------------------
    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._log_problem(f"the broker refused the connection: {reason_code}")
            return
        log.info("MQTT: connected to %s", self.broker.where)
        self._problem_logged = False
        previous = next((r for r in load_records(self.state_dir) if r.broker == self.broker), None)
        stale = [t for t in (previous.topics if previous else ()) if t not in self.retained_topics]
        # Recorded before publishing: a crash in between still leaves a record to clear.
        try:
            save_record(self.state_dir, Record(self.broker, self.node, self.retained_topics))
        except OSError as exc:
            log.error("MQTT: cannot record retained topics in %s (%s); removing [mqtt] will not clear "
                      "them by itself", records_dir(self.state_dir), exc)
        for topic in stale:  # renamed warmer or discovery turned off: remove the old entities
            client.publish(topic, b"", qos=1, retain=True)
        with self._discovery_lock:
            self._publish_discovery(client)
        client.publish(self.topics.availability, ha.PAYLOAD_ONLINE, qos=1, retain=True)
        client.subscribe([(topic, 1) for topic in self.command_topics])
        self.schedule.forget()
        self._wake.set()

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("MQTT: the broker refused the command subscriptions (%s): check its ACL for %s/set/#",
                      ", ".join(refused), self.topics.root)
            return
        self.connected.set()

    def _on_connect_fail(self, _client, _userdata) -> None:
        self._log_problem("cannot connect")

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            self._log_problem(f"connection lost ({reason_code})")

    def _log_problem(self, what: str) -> None:
        # Once per outage, not once per retry: the control loop carries on regardless.
        if not self._problem_logged:
            self._problem_logged = True
            log.warning("MQTT: %s to %s; retrying every %d-%d s, control carries on",
                        what, self.broker.where, RECONNECT_MIN_S, RECONNECT_MAX_S)

    def _on_setpoint(self, _client, _userdata, message) -> None:
        self._command("setpoint", message,
                      lambda: {"setpoint_c": self.controller.set_setpoint(parse_setpoint(message.payload),
                                                                          source="mqtt")})

    def _on_mode(self, _client, _userdata, message) -> None:
        def switch() -> dict[str, Any]:
            mode = parse_mode(message.payload)
            if mode == ha.HVAC_OFF:
                changed = self.controller.switch_off(source="mqtt")
            else:
                changed = self.controller.switch_on(source="mqtt")
            return {"mode": mode, "changed": changed}

        self._command("mode", message, switch)

    def _on_preset(self, _client, _userdata, message) -> None:
        def apply() -> dict[str, Any]:
            name = parse_preset(message.payload)
            return {"preset": name, "setpoint_c": self.controller.apply_preset(name, source="mqtt")}

        self._command("preset", message, apply)

    def _on_acknowledge(self, _client, _userdata, message) -> None:
        self._command("acknowledge", message,
                      lambda: {"fault": self.controller.acknowledge_fault(source="mqtt").kind})

    def _on_extend(self, _client, _userdata, message) -> None:
        self._command("extend", message,
                      lambda: {"auto_off_at": ha.timestamp(self.controller.extend(source="mqtt"))})

    def _command(self, name: str, message, run) -> None:
        """Run one command and answer on the result topic: ok, or the reason it was refused."""
        shown = message.payload[:200].decode("utf-8", errors="replace")
        if message.retain:
            # A retained command would run again on every reconnect: refuse it.
            result = ha.result_payload(name, shown, error=f"retained {name} command ignored: "
                                                           "publish it without the retain flag")
        else:
            try:
                result = ha.result_payload(name, shown, **run())
            except CommandError as exc:
                result = ha.result_payload(name, shown, error=str(exc), field=exc.field, allowed=exc.allowed)
        if result["ok"]:
            log.info("MQTT: %s %r accepted", name, shown)
        else:
            log.warning("MQTT: %s %r refused: %s", name, shown, result["error"])
        self.client.publish(self.topics.result, json.dumps(result, sort_keys=True), qos=1)
        self._wake.set()  # show the new setpoint / cleared fault now, not at the next tick
