"""The command interface validates everything; a refused command changes nothing."""

from __future__ import annotations

import math
import threading

import pytest

from controller.core.loop import CommandError
from tests.helpers import run_ticks


@pytest.mark.parametrize("value", [54.01, 57.0, 58.0, 1e9, 10**400, 34.9, -5.0, math.nan, math.inf, -math.inf,
                                   "53", None, True, [52.0]])
def test_a_setpoint_outside_the_range_or_not_a_number_is_refused_and_changes_nothing(make_controller, value):
    controller = make_controller()
    events_before = len(controller.events)
    with pytest.raises(CommandError) as info:
        controller.set_setpoint(value)
    assert info.value.field == "setpoint_c"
    assert info.value.allowed == {"min": 35.0, "max": 54.0, "unit": "degC"}
    assert controller.setpoint_c == 52.0 and controller.status().setpoint_c == 52.0
    assert len(controller.events) == events_before
    assert not controller.store.path.exists()        # nothing persisted either


def test_a_valid_setpoint_is_applied_persisted_and_recorded(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0])
    assert controller.set_setpoint(53.5, source="test") == 53.5
    assert controller.status().setpoint_c == 53.5
    event = controller.events.since(0)[-1]
    assert (event.kind, event.setpoint_c, event.source) == ("setpoint", 53.5, "test")
    assert controller.store.load()["setpoint_c"] == 53.5


def test_the_maximum_itself_is_allowed(make_controller):
    assert make_controller().set_setpoint(54) == 54.0


def test_commands_from_many_threads_while_ticking_stay_consistent(make_controller, clock, tree):
    controller = make_controller()
    errors = []

    def hammer(values):
        for v in values:
            try:
                controller.set_setpoint(v)
            except CommandError:
                pass
            except Exception as exc:  # noqa: BLE001 - any other failure is the bug we look for
                errors.append(exc)

    threads = [threading.Thread(target=hammer, args=([40.0 + i % 14, 60.0, 50.5] * 30,)) for i in range(4)]
    for t in threads:
        t.start()
    run_ticks(controller, clock, tree, [45.0] * 50)
    for t in threads:
        t.join()
    assert errors == []
    assert 35.0 <= controller.status().setpoint_c <= 54.0


class SlowDisk:
    """A state store whose save blocks until released: an SD card busy with fsyncs."""

    def __init__(self, store):
        self.store = store
        self.path = store.path
        self.dir = store.dir
        self.saving = threading.Event()
        self.release = threading.Event()

    def load(self):
        return self.store.load()

    def save(self, data):
        self.saving.set()
        assert self.release.wait(10)
        self.store.save(data)


def test_a_slow_state_save_never_holds_up_the_control_tick(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0] * 3)
    controller.store = SlowDisk(controller.store)
    setter = threading.Thread(target=controller.set_setpoint, args=(50.0,))
    setter.start()
    assert controller.store.saving.wait(10)           # the save is under way ...
    ticked = threading.Event()
    threading.Thread(target=lambda: (run_ticks(controller, clock, tree, [40.0]), ticked.set())).start()
    assert ticked.wait(10), "the tick waited for the state file"   # ... and the tick went on
    controller.store.release.set()
    setter.join(10)
    assert controller.store.load()["setpoint_c"] == 50.0


# -- off and on ---------------------------------------------------------------------------------
def test_switched_off_the_relay_opens_and_stays_open_while_the_bath_is_cold(make_controller, clock, tree, pins):
    controller = make_controller()
    assert run_ticks(controller, clock, tree, [30.0] * 15)[-1].relay_on       # cold bath: heating
    assert controller.switch_off(source="test") is True
    statuses = run_ticks(controller, clock, tree, [30.0] * 600)
    pin = pins.pin(17)
    off_at_s = clock.monotonic() - 600
    assert not any(level for t, level in pin.changes if t >= off_at_s)       # never on again while off
    assert not pin.state
    assert {s.mode for s in statuses} == {"off"} and all(s.ready_in_s is None for s in statuses)
    assert controller.events.since(0)[-1].kind == "off"


def test_switched_on_again_it_heats_to_the_setpoint(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 5)
    controller.switch_off()
    run_ticks(controller, clock, tree, [30.0] * 60)
    assert controller.switch_on(source="test") is True
    statuses = run_ticks(controller, clock, tree, [30.0] * 15)
    assert statuses[-1].relay_on and statuses[-1].mode == "warming"
    assert [e.kind for e in controller.events.since(0)][-2:] == ["off", "on"]


def test_switching_off_twice_records_one_event(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0])
    before = len(controller.events)
    assert controller.switch_off() is True and controller.switch_off() is False
    assert len(controller.events) == before + 1


def test_a_warmer_switched_off_stays_off_after_a_restart(make_controller, clock, tree, tmp_path, pins):
    first = make_controller(state_dir=tmp_path / "kept")
    run_ticks(first, clock, tree, [30.0] * 3)
    first.switch_off()
    first.close()
    again = make_controller(state_dir=tmp_path / "kept")
    statuses = run_ticks(again, clock, tree, [30.0] * 30)
    assert {s.mode for s in statuses} == {"off"} and not any(s.relay_on for s in statuses)


def test_an_unreadable_saved_off_switch_stays_off_and_is_reported(make_controller, clock, tree, tmp_path):
    from controller.core.state import StateStore

    StateStore(tmp_path / "kept").save({"setpoint_c": 50.0, "switched_off": "maybe"})
    controller = make_controller(state_dir=tmp_path / "kept")
    assert controller.switched_off is True
    assert "switched_off" in (controller.state_problem or "")


def test_the_interlock_still_trips_while_switched_off(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [50.0] * 5)
    controller.switch_off()
    rising = [50.0 + 0.25 * i for i in range(1, 41)]              # to 60 degC: e.g. a welded relay
    statuses = run_ticks(controller, clock, tree, rising)
    assert statuses[-1].fault == "overtemp" and statuses[-1].mode == "fault"


def test_switching_off_opens_the_relay_at_the_next_tick_not_after_its_minimum_on_time(make_controller, clock, tree,
                                                                                      pins):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 12)             # cold bath: the relay is on
    pin = pins.pin(17)
    on_since_s = max(t for t, level in pin.changes if level)
    assert pin.state and clock.monotonic() - on_since_s < controller.cfg.relay.effective_min_switch_s
    controller.switch_off(source="test")
    switched_off_s = clock.monotonic()
    run_ticks(controller, clock, tree, [30.0])
    assert not pin.state
    assert pin.changes[-1] == (switched_off_s + 1.0, False)      # the first tick after the command
