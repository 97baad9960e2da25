"""Property test: no sequence of readings, commands, clock steps and restarts can make the
relay unsafe. Checked on the real gpiozero mock pin the controller drives."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core import config as cfgmod
from controller.core import probe as pr
from controller.core.clock import SimClock
from controller.core.loop import CommandError, Controller
from controller.core.state import StateStore
from controller.sim.simpins import ClockedMockFactory
from tests.helpers import ScriptedProbe

CFG = cfgmod.Config()
CUTOFF_C = CFG.control.cutoff_c
MIN_SWITCH_S = CFG.relay.effective_min_switch_s


near_target = st.tuples(st.just("valid"), st.floats(min_value=35, max_value=60))
readings = st.one_of(
    near_target, near_target, near_target,   # mostly plausible bath temperatures ...
    st.tuples(st.just("valid"), st.floats(min_value=-20, max_value=130, allow_nan=False)),
    st.tuples(st.sampled_from([pr.ReadingKind.MISSING, pr.ReadingKind.CRC, pr.ReadingKind.EMPTY,
                               pr.ReadingKind.RESET85, pr.ReadingKind.ZERO, pr.ReadingKind.GARBLED,
                               pr.ReadingKind.TIMEOUT]), st.none()),
    st.tuples(st.just("nothing"), st.none()),
)
reads = st.tuples(st.just("read"), readings, st.floats(min_value=0.2, max_value=3.0))
actions = st.one_of(
    reads, reads, reads, reads,              # ... read often, with commands and mishaps between

    st.tuples(st.just("wait"), st.floats(min_value=1.0, max_value=40.0), st.none()),
    st.tuples(st.just("setpoint"), st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                             st.floats(min_value=30, max_value=60)), st.none()),
    st.tuples(st.just("ack"), st.none(), st.none()),
    st.tuples(st.just("wall-step"), st.floats(min_value=-7200, max_value=7200), st.none()),
    st.tuples(st.just("restart"), st.none(), st.none()),
    # whatever duty a broken or hostile PID proposes, the interlock alone must keep it safe
    st.tuples(st.just("rogue-duty"), st.floats(min_value=0.0, max_value=1.0), st.none()),
)


def build(clock, factory, state_dir, source):
    cfg = cfgmod.replace(CFG, "state", dir=str(state_dir))
    return Controller(cfg, clock=clock, primary=source, pin_factory=factory, store=StateStore(state_dir))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(actions, min_size=1, max_size=150))
def test_relay_is_never_on_when_unsafe(tmp_path_factory, steps):
    state_dir = tmp_path_factory.mktemp("state")
    clock = SimClock()
    factory = ClockedMockFactory(clock)
    source = ScriptedProbe()
    controller = build(clock, factory, state_dir, source)
    pin = factory.pin(CFG.relay.pin)
    last_temp = None          # last valid temperature handed to the controller
    acked = False
    try:
        for kind, a, b in steps:
            fault_before = controller.status().fault
            if kind == "read":
                (what, celsius), dt = a, b
                if what == "valid":
                    source.next = pr.RawRead(pr.ReadingKind.VALID, celsius, f"t={celsius}", clock.monotonic() + dt)
                elif what != "nothing":
                    source.next = pr.RawRead(what, None, None, clock.monotonic() + dt)
                clock.advance(dt)
                status = controller.tick()
                if what == "valid" and status.reading_kind == pr.ReadingKind.VALID:
                    last_temp = celsius
                    # 0. a plausible reading at the cutoff latches, whatever else holds the relay off
                    if celsius >= CUTOFF_C:
                        assert status.fault is not None
            elif kind == "wait":
                clock.advance(a)
                status = controller.tick()
            elif kind == "setpoint":
                try:
                    controller.set_setpoint(a)
                except CommandError:
                    pass
                status = controller.status()
            elif kind == "ack":
                try:
                    controller.acknowledge_fault()
                    acked = True
                except CommandError:
                    pass
                status = controller.status()
            elif kind == "rogue-duty":
                controller.set_duty_override(lambda _now, _temp, _sp, duty=a: duty)
                status = controller.status()
            elif kind == "wall-step":
                clock.wall_offset_s += a
                status = controller.tick()
            else:  # restart: the process dies and comes back; the pin is claimed afresh
                controller.close()
                factory.reset()
                controller = build(clock, factory, state_dir, source)
                pin = factory.pin(CFG.relay.pin)
                status = controller.status()

            # 1. never on at or above the cutoff, above setpoint + 1, or with a fault latched
            if pin.state:
                assert status.fault is None
                assert last_temp is not None and last_temp < CUTOFF_C
                assert last_temp < status.setpoint_c + 1.0
            # 2. a latched fault is only cleared by an acknowledge
            if fault_before is not None and status.fault is None:
                assert kind == "ack" and acked
            acked = False
            # 3. the setpoint never leaves the allowed range
            assert CFG.control.min_setpoint_c <= status.setpoint_c <= CFG.control.max_setpoint_c
            assert math.isfinite(status.setpoint_c)
            # 4. never switched on sooner than the minimum off-time after any change
            changes = pin.changes
            for (t0, _), (t1, level) in zip(changes, changes[1:]):
                if level:
                    assert t1 - t0 >= MIN_SWITCH_S - 1e-9
    finally:
        controller.close()
