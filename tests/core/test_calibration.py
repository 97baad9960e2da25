"""Probe calibration: the control uses the corrected reading, the safety rules the hotter of
the raw and the corrected one, so an offset can never loosen the cutoff."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core import config as cfgmod
from controller.core import probe as pr
from controller.core.clock import SimClock
from controller.core.loop import Controller
from controller.core.state import StateStore
from controller.sim.simpins import ClockedMockFactory
from tests.helpers import ScriptedProbe

CFG = cfgmod.Config()
CUTOFF_C = CFG.control.cutoff_c


def build(tmp_path, offset_c, *, setpoint_c=CFG.control.max_setpoint_c):
    clock = SimClock()
    factory = ClockedMockFactory(clock)
    cfg = cfgmod.replace(CFG, "probe", offset_c=offset_c)
    cfg = cfgmod.replace(cfg, "control", setpoint_c=setpoint_c)
    cfg = cfgmod.replace(cfg, "state", dir=str(tmp_path))
    source = ScriptedProbe()
    controller = Controller(cfg, clock=clock, primary=source, pin_factory=factory, store=StateStore(tmp_path))
    return controller, clock, source, factory.pin(CFG.relay.pin)


def feed(controller, clock, source, raw_c, dt_s=1.0):
    clock.advance(dt_s)
    source.next = pr.RawRead(pr.ReadingKind.VALID, raw_c, f"t={raw_c}", clock.monotonic())
    return controller.tick()


def test_offset_out_of_range_is_refused_with_what_is_allowed():
    with pytest.raises(cfgmod.ConfigError, match=r"\[probe\] offset_c = -3.5 is not allowed: must be between -3 and 3"):
        cfgmod.from_dict({"probe": {"offset_c": -3.5}})


@pytest.mark.parametrize("offset_c", [-2.0, 1.5])
def test_status_and_control_use_the_corrected_reading(tmp_path, offset_c):
    controller, clock, source, _pin = build(tmp_path, offset_c)
    try:
        status = feed(controller, clock, source, 40.0)
        assert status.temperature_c == pytest.approx(40.0 + offset_c)
        assert status.probe_offset_c == offset_c
        assert controller.bath_summary()["water_c"] == pytest.approx(40.0 + offset_c, abs=0.01)
    finally:
        controller.close()


def test_a_negative_offset_cannot_lift_the_cutoff(tmp_path):
    # Corrected, 58.5 - 3 = 55.5 degC is below the cutoff; the raw 58.5 is not: the relay opens and latches.
    controller, clock, source, pin = build(tmp_path, -3.0)
    try:
        for step in range(18):
            status = feed(controller, clock, source, 50.0 + step * 0.5, dt_s=5.0)
        assert status.temperature_c == pytest.approx(55.5)
        assert status.fault == "overtemp"
        assert not pin.state
    finally:
        controller.close()


def test_a_positive_offset_trips_the_cutoff_on_the_corrected_reading(tmp_path):
    controller, clock, source, pin = build(tmp_path, 2.0)
    try:
        for step in range(13):
            status = feed(controller, clock, source, 50.0 + step * 0.5, dt_s=5.0)
        assert status.temperature_c == pytest.approx(58.0)  # raw 56.0, corrected: the cutoff
        assert status.fault == "overtemp"
        assert not pin.state
    finally:
        controller.close()


ramps = st.lists(st.tuples(st.floats(min_value=-1.5, max_value=1.5), st.floats(min_value=0.5, max_value=5.0)),
                 min_size=10, max_size=120)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset_c=st.floats(min_value=-3.0, max_value=3.0), start_c=st.floats(min_value=45.0, max_value=57.0),
       steps=ramps, rogue=st.booleans())
def test_the_raw_reading_never_passes_the_cutoff_with_the_relay_closed(tmp_path_factory, offset_c, start_c,
                                                                          steps, rogue):
    controller, clock, source, pin = build(tmp_path_factory.mktemp("state"), offset_c)
    if rogue:  # whatever the PID proposes, the interlock alone keeps it safe
        controller.set_duty_override(lambda _now, _temp, _sp: 1.0)
    raw_c = start_c
    try:
        for change_c, dt_s in steps:
            raw_c = min(70.0, max(20.0, raw_c + change_c))
            status = feed(controller, clock, source, raw_c, dt_s)
            if status.reading_kind != pr.ReadingKind.VALID:
                continue
            if raw_c >= CUTOFF_C:
                assert not pin.state
                assert status.fault is not None
            if pin.state:  # the guard, too, judges the hotter of the two
                assert max(raw_c, raw_c + offset_c) < status.setpoint_c + 1.0
    finally:
        controller.close()
