"""Monitoring: ``/metrics`` (Prometheus text) and ``/healthz``.

The collector reads the latest status on every scrape, so there is no global
registry state: each app has its own :class:`CollectorRegistry`.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from controller.core.faults import FaultKind
from controller.core.interfaces import ControllerView
from controller.core.status import Mode
from web.auth import read_required
from web.context import ctx
from web.stream import StreamSlots

bp = Blueprint("metrics", __name__)

#: ``/healthz`` fails when the last tick is older than this (controller-clock seconds). A tick
#: is due every second: five missed ticks mean the control loop is stuck.
HEALTHY_TICK_AGE_S = 5.0


class StatusCollector:
    """Prometheus metrics from the controller's latest status snapshot."""

    def __init__(self, controller: ControllerView, streams: StreamSlots) -> None:
        self.controller = controller
        self.streams = streams

    def collect(self) -> Iterator[Metric]:
        s = self.controller.status()
        if s.temperature_c is not None:  # no sample beats a stale or made-up one
            yield GaugeMetricFamily("stonewarmer_temperature_celsius", "Bath temperature (primary probe)",
                                    value=s.temperature_c)
        if s.reading_age_s is not None:
            yield GaugeMetricFamily("stonewarmer_reading_age_seconds", "Seconds since the last valid reading",
                                    value=s.reading_age_s)
        yield GaugeMetricFamily("stonewarmer_setpoint_celsius", "Target temperature", value=s.setpoint_c)
        yield GaugeMetricFamily("stonewarmer_heater_duty_ratio", "Heater duty proposed by the PID (0..1)",
                                value=s.duty)
        yield GaugeMetricFamily("stonewarmer_relay_on", "1 while the relay is driven on", value=int(s.relay_on))
        latched = GaugeMetricFamily("stonewarmer_fault_latched",
                                    "1 while a fault is latched (heater off until acknowledged)", labels=["kind"])
        latched.add_metric([s.fault or ""], int(s.fault is not None))
        yield latched
        mode = GaugeMetricFamily("stonewarmer_mode", "1 for the current mode", labels=["mode"])
        for name in Mode:
            mode.add_metric([name], int(s.mode == name))
        yield mode
        yield GaugeMetricFamily("stonewarmer_tick_age_seconds", "Controller-clock seconds since the last tick",
                                value=self.controller.clock.monotonic() - s.monotonic_s)
        yield CounterMetricFamily("stonewarmer_relay_switches_total", "Relay switch-ons since start",
                                  value=s.relay_switches)
        faults = CounterMetricFamily("stonewarmer_faults_total", "Faults latched since start, by kind",
                                     labels=["kind"])
        for kind in dict.fromkeys((*FaultKind, *s.faults_total)):
            faults.add_metric([kind], s.faults_total.get(kind, 0))
        yield faults
        yield CounterMetricFamily("stonewarmer_sensor_errors_total", "Bad probe readings since start",
                                  value=s.sensor_errors)
        yield GaugeMetricFamily("stonewarmer_web_streams", "Live-update streams open", value=self.streams.open)


def registry_for(controller: ControllerView, streams: StreamSlots) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(controller, streams))
    return registry


@bp.get("/metrics")
@read_required("open_metrics")
def metrics():
    c = ctx()
    registry = c.metrics_registry
    return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)


@bp.get("/healthz")
def healthz():
    """200 while the control loop ticks on time, 503 otherwise (for a watchdog or a load balancer)."""
    controller = ctx().controller
    s = controller.status()
    age_s = controller.clock.monotonic() - s.monotonic_s
    ok = s.tick > 0 and age_s <= HEALTHY_TICK_AGE_S
    body = {"ok": ok, "tick": s.tick, "tick_age_s": round(age_s, 3), "max_tick_age_s": HEALTHY_TICK_AGE_S,
            "mode": s.mode, "fault": s.fault}
    return jsonify(body), 200 if ok else 503
