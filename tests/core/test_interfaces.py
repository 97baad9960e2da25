"""The declared interfaces hold: every clock, probe source and plant conforms to its Protocol,
and the StrEnums leave every JSON payload exactly as the plain strings did."""

from __future__ import annotations

import inspect
import json
import threading

import pytest

from controller.core.clock import MonotonicClock, ScaledClock, SimClock
from controller.core.events import EventKind
from controller.core.faults import FaultKind
from controller.core.interfaces import Clock, ProbeSource
from controller.core.probe import (
    RawRead,
    Reading,
    ReadingClassifier,
    ReadingKind,
    SyncProbeSource,
    ThreadedProbeSource,
    W1Probe,
)
from controller.core.status import Mode
from controller.sim.fake_w1 import FakeW1Tree
from controller.sim.plant import FirstOrderDeadTime, Plant, StoneBath
from controller.sim.simulation import Injection, Simulation, _HangableSource


def assert_conforms(obj: object, protocol: type) -> None:
    """``isinstance`` on a runtime-checkable Protocol only sees that the methods exist; also
    check that each takes the Protocol's parameters, by name and in order."""
    assert isinstance(obj, protocol), f"{type(obj).__name__} is not a {protocol.__name__}"
    for name, member in vars(protocol).items():
        if name.startswith("_") or not callable(member):
            continue
        wanted = list(inspect.signature(member).parameters)[1:]  # without self
        got = list(inspect.signature(getattr(obj, name)).parameters)
        assert got == wanted, f"{type(obj).__name__}.{name}{tuple(got)}: {protocol.__name__} wants {tuple(wanted)}"


@pytest.mark.parametrize("make_clock", [MonotonicClock, lambda: ScaledClock(60.0), SimClock])
def test_every_clock_is_a_clock(make_clock):
    assert_conforms(make_clock(), Clock)


def test_every_probe_source_is_a_probe_source(tmp_path):
    probe = W1Probe(w1_dir=FakeW1Tree(tmp_path / "w1").root, sensor_id="0000075a1f2b")
    sync = SyncProbeSource(probe)
    threaded = ThreadedProbeSource(probe, clock=SimClock(), timeout_s=3.0)
    try:
        for source in (sync, threaded, _HangableSource(sync, hung=lambda: False, timeout_s=3.0)):
            assert_conforms(source, ProbeSource)
    finally:
        threaded.close()


@pytest.mark.parametrize("make_plant", [StoneBath, FirstOrderDeadTime])
def test_every_plant_is_a_plant(make_plant):
    assert_conforms(make_plant(), Plant)


def test_a_source_with_the_wrong_poll_does_not_conform():
    class NoTime:
        def poll(self):
            return None

        def close(self):
            pass

    with pytest.raises(AssertionError, match="poll"):
        assert_conforms(NoTime(), ProbeSource)


def test_sleep_until_returns_whether_stop_was_set():
    clock, stop = SimClock(), threading.Event()
    assert clock.sleep_until(clock.monotonic() + 5.0, stop) is False and clock.monotonic() == 1005.0
    stop.set()
    assert clock.sleep_until(clock.monotonic() + 5.0, stop) is True


def plain(value):
    """``value`` with every str subclass (a StrEnum) turned into a plain str, recursively."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def test_status_and_events_serialise_to_the_same_json_as_plain_strings():
    with Simulation(injections=[Injection("unplug", 30.0, 1e9)]) as sim:
        sim.run(45.0)   # warming, then a sensor fault: a mode, a fault kind, reading kinds, events
        status = sim.controller.status()
        events = sim.controller.events.since(0)
    payload = status.to_dict()
    assert json.dumps(payload) == json.dumps(plain(payload))
    decoded = json.loads(json.dumps(payload))
    assert decoded["mode"] == "fault" and decoded["fault"] == "sensor"
    assert decoded["reading_kind"] in ("empty", "missing") and decoded["faults_total"] == {"sensor": 1}
    assert [e["kind"] for e in json.loads(json.dumps([e.to_dict() for e in events]))] == ["start", "fault"]
    assert str(Mode.FAULT) == f"{Mode.FAULT}" == "fault"   # str() and f-strings too (systemd STATUS=, MQTT)


def test_the_enums_keep_the_words_of_the_api():
    assert [m.value for m in Mode] == ["starting", "warming", "holding", "ready", "cooling", "fault", "off"]
    assert [k.value for k in FaultKind] == ["stuck_relay", "overtemp", "over_target", "probe_disagree",
                                            "sensor", "heating", "state"]
    assert [k.value for k in EventKind] == ["fault", "ack", "setpoint", "start", "ready", "off", "on",
                                            "notice", "auto-on", "auto-off", "auto-off-warning", "clock-unsynced"]
    assert ReadingKind.VALID == "valid" and ReadingKind.OUT_OF_RANGE == "out_of_range"


def test_a_reading_carries_a_temperature_exactly_when_it_is_valid():
    assert Reading(ReadingKind.VALID, 50.0, 0.0).valid
    with pytest.raises(ValueError, match="only a valid one"):
        Reading(ReadingKind.VALID, None, 0.0)
    with pytest.raises(ValueError, match="only a valid one"):
        Reading(ReadingKind.CRC, 50.0, 0.0)


def test_a_valid_raw_read_without_a_value_is_classified_unreadable_not_valid():
    # Nothing could act on it: before, it became a valid reading without a temperature.
    reading = ReadingClassifier().classify(RawRead(ReadingKind.VALID, None, "t=?", 5.0), expected_change_c=0.1)
    assert reading.kind == ReadingKind.GARBLED and reading.celsius is None
