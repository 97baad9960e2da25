"""The settings from the phone: presets, schedule, auto-off and probe offset, validated as a whole,
kept in the state file, winning over the config; no preset ever above the ceiling."""

from __future__ import annotations

import json
import threading

import pytest

from controller.core.events import EventKind
from controller.core.loop import CommandError
from controller.core.settings import NO_READING_FIELD
from controller.core.weekly import Schedule
from tests.helpers import run_ticks

DOC = {"version": 1,
       "presets": [{"name": "Hands", "setpoint_c": 50.0}, {"name": "Back", "setpoint_c": 53.5}],
       "schedule": {"auto_off_h": 6, "days": {"tue": {"ready_by": "09:00", "preset": "Back", "off_at": "17:00"}}},
       "probe_offset_c": -0.5}


def notices(controller):
    return [e for e in controller.events.since(0) if e.kind == EventKind.NOTICE]


def test_the_settings_of_a_fresh_warmer_are_the_configs(make_controller):
    doc = make_controller().settings()
    assert doc == {"version": 1, "presets": [{"name": "Body", "setpoint_c": 52.0}, {"name": "Face", "setpoint_c": 48.0},
                                             {"name": "Feet", "setpoint_c": 54.0}],
                   "schedule": {"auto_off_h": 10.0, "days": {}}, "probe_offset_c": 0.0}


def test_applied_settings_are_in_force_kept_across_a_restart_and_win_over_the_config(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0])
    assert controller.apply_settings(DOC, source="test") == {**DOC, "schedule": {**DOC["schedule"], "auto_off_h": 6.0}}
    status = controller.status()
    assert status.presets == DOC["presets"] and status.probe_offset_c == -0.5
    assert controller.apply_preset("Back") == 53.5
    controller.close()
    again = make_controller()  # same state dir, same config file
    assert again.settings()["presets"] == DOC["presets"]
    kept = again.settings()
    assert kept["probe_offset_c"] == -0.5 and kept["schedule"]["days"] == DOC["schedule"]["days"]
    run_ticks(again, clock, tree, [40.0])
    assert again.status().temperature_c == pytest.approx(39.5) and again.status().raw_temperature_c == 40.0


@pytest.mark.parametrize("change, field", [
    ({"presets": [{"name": "Hot", "setpoint_c": 54.01}]}, "presets"),
    ({"presets": [{"name": "Hot", "setpoint_c": 90}]}, "presets"),
    ({"presets": [{"name": "A", "setpoint_c": 50}, {"name": "A", "setpoint_c": 51}]}, "presets"),
    ({"presets": [{"name": "A", "setpoint_c": 50, "x": 1}]}, "presets"),
    ({"presets": [{"name": "Hands", "setpoint_c": 50}]}, "schedule"),  # the schedule names Back
    ({"schedule": {"auto_off_h": 49, "days": {}}}, "schedule"),
    ({"schedule": {"auto_off_h": 1, "days": {"tue": {"ready_by": "09:00", "preset": "Feet"}}}}, "schedule"),
    ({"schedule": {"auto_off_h": 1, "days": {"someday": {}}}}, "schedule"),
    ({"probe_offset_c": 3.5}, "probe_offset_c"),
    ({"probe_offset_c": "0"}, "probe_offset_c"),
    ({"probe_offset_c": 10**400}, "probe_offset_c"),                # ints too large for a float
    ({"presets": [{"name": "Hot", "setpoint_c": 10**400}]}, "presets"),
    ({"schedule": {"auto_off_h": 10**400, "days": {}}}, "schedule"),
    ({"version": 2}, "version"),
    ({"colour": "red"}, "colour"),
])
def test_a_wrong_settings_document_is_refused_whole_and_changes_nothing(make_controller, change, field):
    controller = make_controller()
    before, events_before = controller.settings(), len(controller.events)
    with pytest.raises(CommandError) as info:
        controller.apply_settings({**DOC, **change})
    assert info.value.field == field
    assert controller.settings() == before and len(controller.events) == events_before
    assert not controller.store.path.exists()


def test_a_document_without_a_part_is_refused(make_controller):
    controller = make_controller()
    with pytest.raises(CommandError, match="the whole document") as info:
        controller.apply_settings({k: v for k, v in DOC.items() if k != "schedule"})
    assert info.value.field == "schedule"


@pytest.mark.parametrize("path", [
    lambda c: c.set_presets([{"name": "Hot", "setpoint_c": 54.5}]),
    lambda c: c.apply_settings({**DOC, "presets": [{"name": "Back", "setpoint_c": 54.5}]}),
])
def test_no_preset_can_be_set_above_the_ceiling(make_controller, path):
    controller = make_controller()
    with pytest.raises(CommandError, match="max_setpoint_c = 54"):
        path(controller)
    assert max(p["setpoint_c"] for p in controller.status().presets) <= 54.0


def test_a_saved_preset_above_the_ceiling_is_not_used_and_the_heater_stays_off_until_acknowledged(
        make_controller, tmp_path, clock, tree, pins):
    controller = make_controller()
    controller.set_presets([{"name": "Hot", "setpoint_c": 54.0}])
    controller.close()
    path = controller.store.path
    saved = json.loads(path.read_text())
    saved["settings"]["presets"] = [{"name": "Hot", "setpoint_c": 70.0}]  # edited by hand
    path.write_text(json.dumps(saved))
    again = make_controller()
    assert [p["name"] for p in again.status().presets] == ["Body", "Face", "Feet"]  # the config's
    with pytest.raises(CommandError):
        again.apply_preset("Hot")
    run_ticks(again, clock, tree, [30.0] * 5)
    assert again.status().fault == "state" and not pins.pin(17).state


def test_presets_the_schedule_names_cannot_be_removed(make_controller):
    controller = make_controller()
    controller.set_schedule({"mon": {"ready_by": "08:00", "preset": "Face"}})
    with pytest.raises(CommandError, match="change the schedule first") as info:
        controller.set_presets([{"name": "Body", "setpoint_c": 52}])
    assert info.value.field == "presets" and "Face" in [p["name"] for p in controller.status().presets]


def test_calibrate_sets_the_offset_from_the_latest_raw_reading(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [50.0] * 3)
    assert controller.calibrate(51.2, source="test") == pytest.approx(1.2)
    run_ticks(controller, clock, tree, [50.0])
    status = controller.status()
    assert status.temperature_c == pytest.approx(51.2) and status.raw_temperature_c == pytest.approx(50.0)
    assert controller.calibrate(49.7) == pytest.approx(-0.3)  # from the raw reading, not the corrected one
    assert notices(controller)[-1].message == "probe offset set to -0.30 degC"


@pytest.mark.parametrize("thermometer_c, offset_c", [(51.0, 1.0), (49.0, -1.0)])
def test_calibrating_twice_before_the_next_reading_sets_the_offset_once(make_controller, clock, tree,
                                                                         thermometer_c, offset_c):
    controller = make_controller()
    run_ticks(controller, clock, tree, [50.0] * 3)
    assert controller.calibrate(thermometer_c) == pytest.approx(offset_c)
    assert controller.status().raw_temperature_c == pytest.approx(50.0)  # the reading in hand is still raw 50
    assert controller.calibrate(thermometer_c) == pytest.approx(offset_c)  # a second tap: not twice the offset
    status = run_ticks(controller, clock, tree, [50.0])[-1]
    assert status.temperature_c == pytest.approx(thermometer_c) and status.raw_temperature_c == pytest.approx(50.0)


def test_two_settings_commands_at_once_both_take_effect(make_controller, monkeypatch):
    controller = make_controller()
    other = threading.Thread(target=controller.set_probe_offset, args=(1.0,))
    from_table = Schedule.from_table

    def slow_from_table(table):  # another command arrives while set_auto_off_h is building its schedule
        if not other.is_alive() and other.ident is None:
            other.start()
            other.join(timeout=0.2)
        return from_table(table)
    monkeypatch.setattr(Schedule, "from_table", staticmethod(slow_from_table))
    assert controller.set_auto_off_h(3) == 3.0
    other.join()
    assert controller.settings()["schedule"]["auto_off_h"] == 3.0 and controller.settings()["probe_offset_c"] == 1.0


def test_calibrate_without_a_fresh_reading_is_refused(make_controller):
    controller = make_controller()
    with pytest.raises(CommandError, match="no fresh reading") as info:
        controller.calibrate(50.0)
    assert info.value.field == NO_READING_FIELD and controller.status().probe_offset_c == 0.0


@pytest.mark.parametrize("thermometer_c", [53.5, 46.0, "51", None, True, float("nan"), 1e9])
def test_a_calibration_out_of_range_or_not_a_number_is_refused(make_controller, clock, tree, thermometer_c):
    controller = make_controller()
    run_ticks(controller, clock, tree, [50.0] * 3)
    with pytest.raises(CommandError) as info:
        controller.calibrate(thermometer_c)
    assert info.value.field == "thermometer_c" and controller.status().probe_offset_c == 0.0
    assert not controller.store.load().get("settings")


def test_set_probe_offset_resets_it_and_refuses_beyond_three(make_controller):
    controller = make_controller()
    assert controller.set_probe_offset(2.5) == 2.5
    assert controller.set_probe_offset(0) == 0.0
    with pytest.raises(CommandError, match="between -3 and 3") as info:
        controller.set_probe_offset(-3.01)
    assert info.value.field == "probe_offset_c" and controller.settings()["probe_offset_c"] == 0.0


def test_set_auto_off_h_moves_the_auto_off(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [40.0])
    assert controller.set_auto_off_h(2) == 2.0
    assert controller.status().auto_off_at == pytest.approx(clock.wall() + 7200.0, abs=1.0)
    with pytest.raises(CommandError, match="between 0 and 48") as info:
        controller.set_auto_off_h(49)
    assert info.value.field == "auto_off_h" and controller.settings()["schedule"]["auto_off_h"] == 2.0


@pytest.mark.parametrize("prepare, why", [
    (lambda c: c.set_auto_off_h(0), "is 0"),
    (lambda c: c.switch_off(), "switched off"),
])
def test_extend_with_nothing_to_push_back_is_refused_and_records_nothing(make_controller, prepare, why):
    controller = make_controller()
    prepare(controller)
    events_before = len(controller.events)
    with pytest.raises(CommandError, match=why) as info:
        controller.extend()
    assert info.value.field == "auto_off" and len(controller.events) == events_before
