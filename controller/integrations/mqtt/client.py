"""The paho client for a :class:`~.records.Broker`: credentials, TLS, last will, backoff."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from controller.integrations import ha_discovery as ha
from controller.integrations.mqtt.records import Broker

RECONNECT_MIN_S = 1    # paho's backoff after a lost connection: doubles from here ...
RECONNECT_MAX_S = 60   # ... up to this
STOP_TIMEOUT_S = 2.0   # how long stopping waits for the broker to confirm "offline"


class MqttError(Exception):
    """An ``[mqtt]`` setting that cannot work (password file, CA file) or paho-mqtt missing."""


def read_password(broker: Broker) -> str | None:
    """The password from ``[mqtt] password_file`` (first line), or None without one."""
    if not broker.password_file:
        return None
    where = f"[mqtt] password_file = {broker.password_file!r}"
    try:
        text = Path(broker.password_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise MqttError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise MqttError(f"{where}: not a text file") from None
    password = text.splitlines()[0] if text.strip() else ""
    if not password:
        raise MqttError(f"{where}: the file is empty; put the password on its first line")
    return password


def make_client(broker: Broker, *, client_id: str, will_topic: str | None = None) -> Any:
    """A paho client for ``broker``; raise :class:`MqttError` for what the user must fix."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise MqttError("[mqtt] needs paho-mqtt, which is not installed: on the Pi, "
                        "sudo stonewarmer install --with mqtt (from a checkout: make venv)") from None
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, read_password(broker))
    if broker.tls:
        try:
            client.tls_set(ca_certs=broker.ca_file or None)
        except (OSError, ValueError) as exc:
            raise MqttError(f"[mqtt] ca_file = {broker.ca_file!r}: cannot load ({exc})") from None
    if will_topic:
        # The broker publishes this when the connection dies without a goodbye (kill, power cut).
        client.will_set(will_topic, ha.PAYLOAD_OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    # A bug in one of our callbacks is logged, not allowed to end the network thread for good.
    client.suppress_exceptions = True
    client.enable_logger(logging.getLogger("stonewarmer.mqtt.paho"))
    return client
