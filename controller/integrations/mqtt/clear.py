"""Clearing retained topics a warmer no longer publishes: once (``mqtt-clear``) or in the background until done."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.core.clock import MonotonicClock
from controller.integrations.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S, STOP_TIMEOUT_S, MqttError, make_client
from controller.integrations.mqtt.records import Record, delete_record

log = logging.getLogger("stonewarmer.mqtt")


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
            except (ClearError, MqttError) as exc:
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
