"""MQTT: status out, validated commands in, Home Assistant discovery; :func:`attach` is the service's part.

The parts: :mod:`.records` (what was retained where, on disk), :mod:`.client`
(the paho client), :mod:`.bridge` (publishing and commands), :mod:`.clear`
(removing retained topics no longer published).

Retained topics outlive the warmer, so every broker the bridge published
retained topics on is recorded in ``<state dir>/mqtt-retained/``. A warmer
started with ``[mqtt]`` removed or disabled (or renamed, or moved to another
broker) clears what the record lists, in the background, until the broker has
confirmed it; ``stonewarmer mqtt-clear`` does the same on the command line.
"""

from __future__ import annotations

from controller.core import config as cfgmod
from controller.core.interfaces import ControllerView
from controller.integrations.mqtt.bridge import Bridge
from controller.integrations.mqtt.clear import Clearer
from controller.integrations.mqtt.records import load_records


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


def attach(controller: ControllerView, cfg: cfgmod.Config) -> MqttRuntime:
    """The MQTT side of ``stonewarmer run``.

    ``[mqtt] enabled``: a :class:`Bridge` (and a :class:`Clearer` for brokers it
    no longer uses). Disabled or absent: a :class:`Clearer` for whatever an
    earlier run left retained, or nothing. Raises :class:`~.client.MqttError` for a bad
    password file, CA file or a missing paho-mqtt, before anything starts.
    """
    records = load_records(cfg.state.dir)
    if cfg.mqtt.enabled:
        bridge = Bridge(controller, cfg)
        elsewhere = [r for r in records if r.broker != bridge.broker]
        return MqttRuntime(bridge, Clearer(cfg.state.dir, elsewhere) if elsewhere else None)
    return MqttRuntime(None, Clearer(cfg.state.dir, records) if records else None)
