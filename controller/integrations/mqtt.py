"""The MQTT bridge: status out, validated commands in, Home Assistant discovery.

Threads, and why the control loop never waits on the broker:

* the control thread's only part is a listener that sets an :class:`threading.Event`;
* a ``mqtt-publish`` thread wakes on it, reads ``controller.status()`` (a cheap
  immutable snapshot) and publishes on change and every ``publish_interval_s``;
* paho's network thread connects, reconnects with backoff (1 s doubling to
  60 s), and runs commands through :meth:`Controller.set_setpoint` /
  :meth:`Controller.acknowledge_fault`, which validate exactly as for the web.

A broker outage just drops status messages (QoS 0: nothing piles up); the next
connection publishes everything afresh.

Retained topics outlive the warmer, so every broker the bridge published
retained topics on is recorded in ``<state dir>/mqtt-retained/``. A warmer
started with ``[mqtt]`` removed or disabled (or renamed, or moved to another
broker) clears what the record lists, in the background, until the broker has
confirmed it; ``stonewarmer mqtt-clear`` does the same on the command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.cli.main import UserError, add_config_arg, load_config
from controller.core import config as cfgmod
from controller.core.clock import MonotonicClock
from controller.core.loop import CommandError, Controller
from controller.integrations import ha_discovery as ha

log = logging.getLogger("stonewarmer.mqtt")

RECONNECT_MIN_S = 1    # paho's backoff after a lost connection: doubles from here ...
RECONNECT_MAX_S = 60   # ... up to this
STOP_TIMEOUT_S = 2.0   # how long stopping waits for the broker to confirm "offline"
RECORD_DIR = "mqtt-retained"
RECORD_VERSION = 1


# -- the broker and what was retained on it ----------------------------------------------
@dataclass(frozen=True, slots=True)
class Broker:
    """How to reach a broker (the password stays in its file)."""

    host: str
    port: int
    tls: bool = False
    ca_file: str = ""
    username: str = ""
    password_file: str = ""
    keepalive_s: int = 30

    @classmethod
    def from_config(cls, m: cfgmod.MqttConfig) -> Broker:
        return cls(host=m.host, port=m.port, tls=m.tls, ca_file=m.ca_file, username=m.username,
                   password_file=m.password_file, keepalive_s=m.keepalive_s)

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def record_name(self) -> str:
        return f"{self.host}_{self.port}.json"


@dataclass(frozen=True, slots=True)
class Record:
    """The retained topics one warmer published on one broker."""

    broker: Broker
    node: str
    topics: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"version": RECORD_VERSION, "broker": asdict(self.broker), "node": self.node,
                           "topics": list(self.topics)}, indent=2)


def records_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / RECORD_DIR


def load_records(state_dir: str | Path) -> list[Record]:
    """Every readable record in the state dir; an unreadable one is reported and skipped."""
    found = []
    for path in sorted(records_dir(state_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != RECORD_VERSION:
                raise ValueError(f"not version {RECORD_VERSION}")
            found.append(Record(Broker(**data["broker"]), str(data["node"]),
                                tuple(str(t) for t in data["topics"])))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("%s: unusable record of retained MQTT topics (%s); not clearing them", path, exc)
    return found


def save_record(state_dir: str | Path, record: Record) -> None:
    """Write the record atomically: a power cut leaves the old or the new one."""
    directory = records_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(record.to_json())
        os.replace(tmp, directory / record.broker.record_name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def delete_record(state_dir: str | Path, broker: Broker) -> None:
    (records_dir(state_dir) / broker.record_name).unlink(missing_ok=True)


# -- the paho client ---------------------------------------------------------------------
def read_password(broker: Broker) -> str | None:
    """The password from ``[mqtt] password_file`` (first line), or None without one."""
    if not broker.password_file:
        return None
    where = f"[mqtt] password_file = {broker.password_file!r}"
    try:
        text = Path(broker.password_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"{where}: not a text file") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise UserError(f"{where}: the file is empty; put the password on its first line")
    return password


def make_client(broker: Broker, *, client_id: str, will_topic: str | None = None):
    """A paho client for ``broker``; raise :class:`UserError` for what the user must fix."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise UserError("[mqtt] needs paho-mqtt: pip install 'stonewarmer[mqtt]'") from None
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, read_password(broker))
    if broker.tls:
        try:
            client.tls_set(ca_certs=broker.ca_file or None)
        except (OSError, ValueError) as exc:
            raise UserError(f"[mqtt] ca_file = {broker.ca_file!r}: cannot load ({exc})") from None
    if will_topic:
        # The broker publishes this when the connection dies without a goodbye (kill, power cut).
        client.will_set(will_topic, ha.PAYLOAD_OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    # A bug in one of our callbacks is logged, not allowed to end the network thread for good.
    client.suppress_exceptions = True
    client.enable_logger(logging.getLogger("stonewarmer.mqtt.paho"))
    return client


# -- status publishing -------------------------------------------------------------------
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


class Bridge:
    """One warmer on one broker. :meth:`start` returns at once; :meth:`stop` says goodbye."""

    def __init__(self, controller: Controller, cfg: cfgmod.Config, *, clock=None) -> None:
        self.controller = controller
        self.cfg = cfg
        self.clock = clock or MonotonicClock()  # publishing cadence only, not control timing
        m = cfg.mqtt
        self.broker = Broker.from_config(m)
        self.node = ha.node_id(m)
        self.topics = ha.Topics.for_config(m, self.node)
        c = cfg.control
        self.discovery = (ha.discovery_payloads(self.topics, min_setpoint_c=c.min_setpoint_c,
                                                max_setpoint_c=c.max_setpoint_c) if m.discovery else {})
        self.state_dir = cfg.state.dir
        self.schedule = ChangeOrInterval(interval_s=m.publish_interval_s)
        self.client = make_client(self.broker, client_id=f"stonewarmer-{self.node}",
                                  will_topic=self.topics.availability)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.message_callback_add(self.topics.set_setpoint, self._on_setpoint)
        self.client.message_callback_add(self.topics.acknowledge, self._on_acknowledge)
        #: Set once connected, discovery sent and the command topics subscribed (the broker
        #: handles one connection's packets in order, so it has the discovery by then).
        self.connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publish", daemon=True)
        self._problem_logged = False
        controller.add_listener(self._on_tick)

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
        if not self.client.is_connected():
            return False
        payload = json.dumps(ha.state_payload(self.controller.status()), sort_keys=True)
        now = self.clock.monotonic()
        if not self.schedule.due(payload, now):
            return False
        # QoS 0: while the broker is away the message is dropped, not queued.
        info = self.client.publish(self.topics.state, payload, qos=0, retain=True)
        if info.rc != 0:
            return False
        self.schedule.sent(payload, now)
        return True

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
        for topic, config in self.discovery.items():
            client.publish(topic, json.dumps(config, sort_keys=True, ensure_ascii=False), qos=1, retain=True)
        client.publish(self.topics.availability, ha.PAYLOAD_ONLINE, qos=1, retain=True)
        client.subscribe([(self.topics.set_setpoint, 1), (self.topics.acknowledge, 1)])
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

    def _on_acknowledge(self, _client, _userdata, message) -> None:
        self._command("acknowledge", message,
                      lambda: {"fault": self.controller.acknowledge_fault(source="mqtt").kind})

    def _command(self, name: str, message, run) -> None:
        """Run one command and answer on the result topic: ok, or the reason it was refused."""
        shown = message.payload[:200].decode("utf-8", errors="replace")
        result: dict[str, Any] = {"command": name, "payload": shown}
        if message.retain:
            # A retained command would run again on every reconnect: refuse it.
            result.update(ok=False, error=f"retained {name} command ignored: publish it without the retain flag")
        else:
            try:
                result.update(ok=True, **run())
            except CommandError as exc:
                result.update(ok=False, error=str(exc), field=exc.field, allowed=exc.allowed)
        if result["ok"]:
            log.info("MQTT: %s %r accepted", name, shown)
        else:
            log.warning("MQTT: %s %r refused: %s", name, shown, result["error"])
        self.client.publish(self.topics.result, json.dumps(result, sort_keys=True), qos=1)
        self._wake.set()  # show the new setpoint / cleared fault now, not at the next tick


# -- clearing retained topics ----------------------------------------------------------------
class ClearError(Exception):
    """The broker could not be reached or did not confirm; the record is kept."""


def clear_record(state_dir: str | Path, record: Record, *, timeout_s: float = 10.0) -> int:
    """Publish an empty retained message to every recorded topic, then forget the record.

    Home Assistant removes an entity when its discovery topic is emptied.
    Returns the number of topics cleared; raises :class:`ClearError`.
    """
    clock = MonotonicClock()
    deadline = clock.monotonic() + timeout_s
    client = make_client(record.broker, client_id=f"stonewarmer-{record.node}-clear")
    connack: list[Any] = []
    answered = threading.Event()

    def on_connect(_c, _u, _f, reason_code, _p) -> None:
        connack.append(reason_code)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(record.broker.host, record.broker.port, keepalive=record.broker.keepalive_s)
    except OSError as exc:
        raise ClearError(f"cannot connect to {record.broker.where}: {exc.strerror or exc}") from None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise ClearError(f"{record.broker.where} did not answer within {timeout_s:g} s")
        if connack[0].is_failure:
            raise ClearError(f"{record.broker.where} refused the connection: {connack[0]}")
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in record.topics]
        for info in infos:
            try:
                info.wait_for_publish(timeout=max(0.0, deadline - clock.monotonic()))
            except (RuntimeError, ValueError):
                pass
            if not info.is_published():
                raise ClearError(f"{record.broker.where} did not confirm clearing within {timeout_s:g} s")
    finally:
        client.disconnect()
        client.loop_stop()
    delete_record(state_dir, record.broker)
    return len(record.topics)


class Clearer:
    """Clears recorded retained topics in the background, retrying with backoff until done."""

    def __init__(self, state_dir: str | Path, records: Iterable[Record]) -> None:
        self.state_dir = state_dir
        self.records = list(records)
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-clear", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)

    def _run(self) -> None:
        pending = list(self.records)
        delay_s = float(RECONNECT_MIN_S)
        logged: set[str] = set()
        while pending and not self._stop.is_set():
            record = pending[0]
            try:
                count = clear_record(self.state_dir, record)
            except (ClearError, UserError) as exc:
                if str(exc) not in logged:
                    logged.add(str(exc))
                    log.warning("MQTT: clearing the retained topics of %r: %s; retrying", record.node, exc)
                if self._stop.wait(delay_s):
                    return
                delay_s = min(delay_s * 2, RECONNECT_MAX_S)
                continue
            log.info("MQTT: cleared %d retained topics of %r from %s (Home Assistant discovery removed)",
                     count, record.node, record.broker.where)
            pending.pop(0)
            delay_s = float(RECONNECT_MIN_S)
        if not pending:
            self.done.set()


class MqttRuntime:
    """What :func:`attach` returns: start and stop whatever MQTT work there is (maybe none)."""

    def __init__(self, bridge: Bridge | None = None, clearer: Clearer | None = None) -> None:
        self.bridge = bridge
        self.clearer = clearer

    def start(self) -> None:
        for part in (self.clearer, self.bridge):
            if part is not None:
                part.start()

    def stop(self) -> None:
        for part in (self.bridge, self.clearer):
            if part is not None:
                part.stop()


def attach(controller: Controller, cfg: cfgmod.Config) -> MqttRuntime:
    """The MQTT side of ``stonewarmer run``.

    ``[mqtt] enabled``: a :class:`Bridge` (and a :class:`Clearer` for brokers it
    no longer uses). Disabled or absent: a :class:`Clearer` for whatever an
    earlier run left retained, or nothing. Raises :class:`UserError` for a bad
    password file, CA file or a missing paho-mqtt, before anything starts.
    """
    records = load_records(cfg.state.dir)
    if cfg.mqtt.enabled:
        bridge = Bridge(controller, cfg)
        elsewhere = [r for r in records if r.broker != bridge.broker]
        return MqttRuntime(bridge, Clearer(cfg.state.dir, elsewhere) if elsewhere else None)
    return MqttRuntime(None, Clearer(cfg.state.dir, records) if records else None)


# -- stonewarmer mqtt-clear --------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mqtt-clear",
                       help="remove this warmer's retained MQTT topics (Home Assistant entities) from the broker")
    add_config_arg(p)
    p.add_argument("--state-dir", metavar="DIR", help="override [state] dir (where the record is kept)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for each broker (default 10)")
    p.set_defaults(handler=cmd_mqtt_clear)


def cmd_mqtt_clear(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= 300:
        raise UserError(f"--timeout {args.timeout:g} is not allowed: must be more than 0 and at most 300 s")
    state_dir = Path(args.state_dir) if args.state_dir else Path(load_config(args, simulate=True).state.dir)
    records = load_records(state_dir)
    if not records:
        print(f"nothing to clear: no record of retained MQTT topics in {records_dir(state_dir)}")
        return 0
    failed = 0
    for record in records:
        try:
            count = clear_record(state_dir, record, timeout_s=args.timeout)
        except ClearError as exc:
            failed += 1
            print(f"stonewarmer mqtt-clear: {record.node}: {exc}; the record is kept, try again",
                  file=sys.stderr)
            continue
        print(f"cleared {count} retained topics of {record.node} from {record.broker.where}")
    return 1 if failed else 0
