"""A real Mosquitto broker and a recording subscriber, for the MQTT tests.

Debian's ``mosquitto`` runs on a free loopback port with a generated config
(no persistence: a restart forgets retained messages, like a broker that lost
its disk). Missing binaries skip the tests, except with CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from controller.qa.processes import free_port  # noqa: F401 - the tests import it from here

DEADLINE_S = 10.0  # bound on every wait for the broker or a message


def need_binary(name: str, *, package: str) -> str:
    """The path of a Debian binary, or skip (fail under CI=true) when missing."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.access(p, os.X_OK)), None)
    if path is None:
        reason = f"{name} not installed (Debian package {package}; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def wait_until(predicate, *, timeout_s: float = DEADLINE_S, what: str = "condition"):
    """Poll ``predicate()`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.02)


class Mosquitto:
    """One broker process on 127.0.0.1:``port``; :meth:`stop` and :meth:`start` again to restart."""

    def __init__(self, workdir: Path, *, extra_config: str = "", allow_anonymous: bool = True) -> None:
        self.binary = need_binary("mosquitto", package="mosquitto")
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # As root, mosquitto would switch to the "mosquitto" user, who cannot read our files.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            f"allow_anonymous {'true' if allow_anonymous else 'false'}\n"
            "persistence false\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
            "log_type all\n"
            + extra_config)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, what=f"mosquitto on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=DEADLINE_S)
        self.process = None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """Records every message on ``topics``; waits for one that matches."""

    def __init__(self, broker: Mosquitto, *topics: str) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self)}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert self._subscribed.wait(DEADLINE_S), "subscription not confirmed"

    def _on_message(self, _client, _userdata, msg) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate=lambda m: True, *, after: int = 0, what: str = "a message") -> Message:
        """The first message from index ``after`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + DEADLINE_S
        with self._cond:
            while True:
                for message in self.messages[after:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(f"  {m.topic} {m.payload[:120]!r}" for m in self.messages[after:])
                    raise AssertionError(f"no {what} within {DEADLINE_S:g} s; saw:\n{seen}")
                self._cond.wait(remaining)

    def count(self) -> int:
        with self._cond:
            return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Mosquitto, pattern: str) -> dict[str, bytes]:
    """Every retained message matching ``pattern`` right now, without waiting on a timeout.

    The broker answers subscriptions in order: once the retained marker of a
    second subscription arrives, all retained messages of the first have.
    """
    marker = f"test-marker/{id(pattern)}-{time.monotonic_ns()}"
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish(marker, b"end", qos=1, retain=True).wait_for_publish(DEADLINE_S)
    sub = Subscriber(broker, pattern)
    sub.client.subscribe(marker, 1)
    sub.wait_for(lambda m: m.topic == marker, what="the retained marker")
    sub.close()
    pub.publish(marker, b"", qos=1, retain=True).wait_for_publish(DEADLINE_S)
    pub.disconnect()
    pub.loop_stop()
    return {m.topic: m.payload for m in sub.messages if m.retain and m.topic != marker and m.payload}


def publish(broker: Mosquitto, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(DEADLINE_S)
    client.disconnect()
    client.loop_stop()
