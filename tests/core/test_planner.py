"""The planner: ready-by starts, "off at", power-cut recovery, auto-off, and an unsynchronised clock.

The wall clock is the SimClock's, placed on a local date and time (2026-11-30 is a Monday);
the heater is judged by the relay pin's recorded changes.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from controller.core.bath_model import BathModel
from controller.core.events import EventKind
from controller.core.loop import CommandError
from controller.core.planner import AIM_EARLY_S, DEFAULT_FACTOR, WARNING_S, Planner, warmup_s
from controller.core.weekly import Schedule
from tests.helpers import run_ticks

MONDAY = (2026, 11, 30)
ROOM_C = 21.0


def set_local(clock, hour: int, minute: int = 0, *, day: tuple[int, int, int] = MONDAY) -> float:
    """Put the wall clock on ``day`` at ``hour:minute`` local time; return that wall time."""
    wall_s = datetime(*day, hour, minute).timestamp()
    clock.wall_offset_s = wall_s - clock.monotonic()
    return wall_s


def wall_of(hour: int, minute: int = 0, *, day: tuple[int, int, int] = MONDAY) -> float:
    return datetime(*day, hour, minute).timestamp()


def kinds(controller, *wanted):
    return [e for e in controller.events.since(0) if e.kind in wanted]


def relay_on_times(pins) -> list[float]:
    return [t for t, level in pins.pin(17).changes if level]


def switched_off_warmer(make_controller, clock, tree, schedule: dict, **kwargs):
    controller = make_controller(**kwargs)
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule(schedule, source="test")
    controller.switch_off(source="test")
    return controller


def test_a_ready_by_starts_the_warmer_early_enough_for_a_cold_bath_and_not_before(make_controller, clock, tree, pins):
    set_local(clock, 6, 0)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30"}})
    lead_s = DEFAULT_FACTOR * warmup_s(controller.bath, ROOM_C, controller.setpoint_c) + AIM_EARLY_S
    status = run_ticks(controller, clock, tree, [ROOM_C])[-1]
    assert status.next_start == pytest.approx(wall_of(8, 30) - lead_s, abs=1.0)
    before = relay_on_times(pins)
    while clock.wall() < wall_of(8, 30) - lead_s - 70:
        run_ticks(controller, clock, tree, [ROOM_C], dt_s=60.0)
    while clock.wall() < wall_of(8, 30) - lead_s - 2:
        run_ticks(controller, clock, tree, [ROOM_C])
    assert relay_on_times(pins) == before and controller.switched_off      # not a second too early
    run_ticks(controller, clock, tree, [ROOM_C] * 30)
    started = kinds(controller, EventKind.AUTO_ON)
    assert len(started) == 1 and started[0].source == "schedule"
    assert wall_of(8, 30) - lead_s <= started[0].wall_time_s <= wall_of(8, 30) - lead_s + 1
    assert relay_on_times(pins)[-1] >= started[0].monotonic_s      # the interlock switched the relay after it
    assert controller.status().next_start == pytest.approx(wall_of(8, 30, day=(2026, 12, 7)) - lead_s, abs=60)


def test_a_ready_by_with_a_preset_applies_it_before_switching_on(make_controller, clock, tree):
    set_local(clock, 8, 29)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30", "preset": "Face"}})
    run_ticks(controller, clock, tree, [ROOM_C])
    assert controller.setpoint_c == 48.0 and not controller.switched_off


def test_a_scheduled_start_with_a_preset_never_makes_the_tick_wait_for_the_disk(make_controller, clock, tree):
    set_local(clock, 8, 29)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30", "preset": "Face"}})
    saving = controller._saver._save_lock
    saving.acquire()  # another thread is in the middle of a slow save
    try:
        ticking = threading.Thread(target=run_ticks, args=(controller, clock, tree, [ROOM_C]))
        ticking.start()
        ticking.join(timeout=2.0)
        assert not ticking.is_alive()  # the tick did not wait for that save
    finally:
        saving.release()
        ticking.join()
    assert controller.setpoint_c == 48.0 and not controller.switched_off
    controller.tick()  # the queued save goes with a later tick
    assert controller.store.load()["setpoint_c"] == 48.0


def test_an_unsynchronised_clock_never_starts_the_warmer_and_says_so(make_controller, clock, tree, pins):
    clock.synced = False
    set_local(clock, 8, 0)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30", "off_at": "18:00"}})
    before = relay_on_times(pins)
    statuses = run_ticks(controller, clock, tree, [ROOM_C] * 20, dt_s=30.0)
    assert controller.switched_off and relay_on_times(pins) == before
    assert not statuses[-1].clock_synced and statuses[-1].next_start is None
    said = kinds(controller, EventKind.CLOCK_UNSYNCED)
    assert len(said) == 1 and "not synchronised" in said[0].message
    clock.synced = True  # NTP has set the time: the ready-by is still in its window
    status = run_ticks(controller, clock, tree, [ROOM_C])[-1]
    assert status.clock_synced and not controller.switched_off and kinds(controller, EventKind.AUTO_ON)


def test_after_a_power_cut_a_ready_by_still_in_its_window_starts(make_controller, clock, tree, tmp_path):
    set_local(clock, 7, 0)
    first = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30", "off_at": "18:00"}})
    first.close()
    set_local(clock, 9, 15)  # the power comes back after the planned start
    again = make_controller()
    run_ticks(again, clock, tree, [ROOM_C])
    assert not again.switched_off and [e.source for e in kinds(again, EventKind.AUTO_ON)] == ["schedule"]


def test_after_a_power_cut_past_the_off_at_the_warmer_stays_off(make_controller, clock, tree, pins):
    set_local(clock, 7, 0)
    first = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:30", "off_at": "18:00"}})
    first.close()
    set_local(clock, 19, 0)
    again = make_controller()
    before = relay_on_times(pins)
    run_ticks(again, clock, tree, [ROOM_C] * 10)
    assert again.switched_off and not kinds(again, EventKind.AUTO_ON) and relay_on_times(pins) == before


def test_a_missed_off_at_takes_effect_after_a_power_cut(make_controller, clock, tree, pins):
    set_local(clock, 8, 0)
    first = make_controller()
    run_ticks(first, clock, tree, [ROOM_C])
    first.set_schedule({"mon": {"off_at": "18:00"}}, source="test")
    run_ticks(first, clock, tree, [ROOM_C])
    first.close()  # the power goes at 08:00 with the warmer on ...
    set_local(clock, 20, 0)  # ... and comes back after its off-at
    again = make_controller()
    run_ticks(again, clock, tree, [ROOM_C] * 5)
    assert again.switched_off
    stopped = kinds(again, EventKind.AUTO_OFF)
    assert [e.source for e in stopped] == ["schedule"] and "off at 18:00" in stopped[0].message
    assert not pins.pin(17).state


def test_an_off_at_switches_off_but_not_a_warmer_a_person_switched_on_after_it(make_controller, clock, tree):
    set_local(clock, 17, 58)
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule({"mon": {"off_at": "18:00"}}, source="test")
    run_ticks(controller, clock, tree, [ROOM_C] * 130)
    assert controller.switched_off and len(kinds(controller, EventKind.AUTO_OFF)) == 1
    controller.switch_on(source="test")  # she works late
    run_ticks(controller, clock, tree, [ROOM_C] * 60)
    assert not controller.switched_off and len(kinds(controller, EventKind.AUTO_OFF)) == 1


def test_auto_off_warns_then_extend_pushes_it_back_then_it_switches_off(make_controller, clock, tree, pins):
    set_local(clock, 9, 0)
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule({"auto_off_h": 1}, source="test")
    touched_s = clock.monotonic()
    assert controller.status().auto_off_at == pytest.approx(clock.wall() + 3600.0, abs=1.0)
    run_ticks(controller, clock, tree, [ROOM_C] * int((3600 - WARNING_S) / 30 - 1), dt_s=30.0)
    assert not kinds(controller, EventKind.AUTO_OFF_WARNING)
    run_ticks(controller, clock, tree, [ROOM_C] * 2, dt_s=30.0)
    warnings = kinds(controller, EventKind.AUTO_OFF_WARNING)
    assert len(warnings) == 1 and warnings[0].monotonic_s - touched_s == pytest.approx(3600 - WARNING_S, abs=30)
    extended_s = clock.monotonic()
    assert controller.extend(source="test") == pytest.approx(clock.wall() + 3600.0, abs=1.0)
    run_ticks(controller, clock, tree, [ROOM_C] * 118, dt_s=30.0)  # past the first deadline, not the new one
    assert not controller.switched_off
    run_ticks(controller, clock, tree, [ROOM_C] * 3, dt_s=30.0)
    stopped = kinds(controller, EventKind.AUTO_OFF)
    assert controller.switched_off and [e.source for e in stopped] == ["auto-off"]
    assert stopped[0].monotonic_s - extended_s == pytest.approx(3600.0, abs=30)
    assert len(kinds(controller, EventKind.AUTO_OFF_WARNING)) == 2
    assert not pins.pin(17).state and controller.status().auto_off_at is None


@pytest.mark.parametrize("act", [
    lambda c: c.set_setpoint(50.0, source="web"),
    lambda c: c.apply_preset("Feet", source="web"),
    lambda c: c.switch_off(source="web") and c.switch_on(source="web"),
    lambda c: c.set_setpoint(c.setpoint_c, source="web"),  # the same again: nothing changes but auto-off
    lambda c: c.apply_preset("Body", source="web") and c.apply_preset("Body", source="web"),
])
def test_a_persons_command_makes_auto_off_count_afresh(make_controller, clock, tree, act):
    set_local(clock, 9, 0)
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule({"auto_off_h": 1}, source="test")
    run_ticks(controller, clock, tree, [ROOM_C] * 60, dt_s=30.0)  # 30 min
    act(controller)
    acted_s = clock.monotonic()
    run_ticks(controller, clock, tree, [ROOM_C] * 100, dt_s=30.0)  # 50 min later: past the first deadline
    assert not controller.switched_off
    assert controller.status().auto_off_at == pytest.approx(clock.wall() + 3600.0 - (clock.monotonic() - acted_s),
                                                            abs=1.0)


def test_auto_off_zero_never_switches_off(make_controller, clock, tree):
    set_local(clock, 9, 0)
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule({"auto_off_h": 0}, source="test")
    run_ticks(controller, clock, tree, [ROOM_C] * 200, dt_s=180.0)  # 10 h
    assert not controller.switched_off and controller.status().auto_off_at is None


@pytest.mark.parametrize("table, named", [
    ({"mon": {"ready_by": "8:30"}}, "ready_by"),
    ({"mon": {"ready_by": "08:30", "preset": "Hands"}}, "preset"),
    ({"auto_off_h": 49}, "auto_off_h"),
    ({"funday": {}}, "funday"),
    ("mon 08:30", "schedule"),
])
def test_a_bad_schedule_is_refused_with_what_is_allowed_and_changes_nothing(make_controller, table, named):
    controller = make_controller()
    before = controller.planner.schedule
    with pytest.raises(CommandError) as info:
        controller.set_schedule(table)
    assert named in str(info.value) and "allowed" in str(info.value) and info.value.field == "schedule"
    assert controller.planner.schedule == before and not controller.store.path.exists()


def test_a_set_schedule_is_kept_across_a_restart(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.set_schedule({"auto_off_h": 2, "tue": {"ready_by": "10:00", "off_at": "16:00"}})
    controller.close()
    assert make_controller().planner.schedule == Schedule.from_table({"auto_off_h": 2,
                                                                      "tue": {"ready_by": "10:00", "off_at": "16:00"}})


def test_each_warm_up_from_cold_refines_the_warm_up_factor():
    model = BathModel(warmups=1)
    planner = Planner(Schedule(), now_s=0.0)
    predicted_s = warmup_s(model, 21.0, 52.0)

    def warm_up(start_s: float, took_s: float) -> bool:
        planner.observe(now_s=start_s, reading_c=21.0, setpoint_c=52.0, heating=True, model=model)
        return planner.observe(now_s=start_s + took_s, reading_c=51.6, setpoint_c=52.0, heating=True, model=model)

    assert warm_up(0.0, 1.5 * predicted_s) and planner.factor == pytest.approx(1.5)
    assert warm_up(90_000.0, 1.1 * predicted_s) and planner.factor == pytest.approx(1.3)
    planner.observe(now_s=200_000.0, reading_c=21.0, setpoint_c=52.0, heating=True, model=model)
    planner.observe(now_s=200_100.0, reading_c=30.0, setpoint_c=50.0, heating=True, model=model)  # setpoint moved
    assert not planner.observe(now_s=203_000.0, reading_c=49.8, setpoint_c=50.0, heating=True, model=model)
    assert planner.factor == pytest.approx(1.3) and planner.warmups == 2


def test_a_saved_planner_state_that_cannot_be_used_is_named():
    restored, problems = Planner.restore({"factor": 9.0, "schedule": {"mon": {"ready_by": "25:00"}},
                                          "started_for_wall_s": "soon"})
    assert restored == {} and len(problems) == 2
    assert "factor" in problems[0] and "schedule" in problems[1]


def test_a_ready_by_that_passed_before_it_was_set_does_not_switch_on_a_warmer_switched_off(make_controller, clock,
                                                                                           tree, pins):
    set_local(clock, 19, 0)
    controller = make_controller()
    run_ticks(controller, clock, tree, [ROOM_C])
    controller.switch_off(source="test")  # she switches off for the night ...
    set_local(clock, 20, 0)
    controller.set_schedule({"mon": {"ready_by": "08:00"}, "tue": {"ready_by": "08:00"}}, source="test")  # and plans
    before = relay_on_times(pins)
    status = run_ticks(controller, clock, tree, [ROOM_C] * 30, dt_s=60.0)[-1]
    assert controller.switched_off and not kinds(controller, EventKind.AUTO_ON) and relay_on_times(pins) == before
    assert status.next_start is not None and status.next_start > wall_of(20, 0)  # tomorrow's, not today's
    controller.close()
    set_local(clock, 21, 0)  # a power cut after the plan: today's 08:00 still does not start
    again = make_controller()
    run_ticks(again, clock, tree, [ROOM_C] * 5)
    assert again.switched_off and not kinds(again, EventKind.AUTO_ON)


def test_a_later_ready_by_set_during_the_day_still_starts(make_controller, clock, tree):
    set_local(clock, 9, 0)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:00", "off_at": "18:00"}})
    run_ticks(controller, clock, tree, [ROOM_C] * 5)
    assert controller.switched_off  # 08:00 had passed when it was set
    controller.set_schedule({"mon": {"ready_by": "10:00", "off_at": "18:00"}}, source="test")  # an afternoon client
    run_ticks(controller, clock, tree, [ROOM_C] * 60, dt_s=60.0)
    started = kinds(controller, EventKind.AUTO_ON)
    assert not controller.switched_off and len(started) == 1 and "ready by 10:00" in started[0].message


def test_editing_the_off_at_during_a_window_switches_off_at_the_new_time(make_controller, clock, tree):
    set_local(clock, 7, 59)
    controller = switched_off_warmer(make_controller, clock, tree, {"mon": {"ready_by": "08:00", "off_at": "18:00"}})
    run_ticks(controller, clock, tree, [ROOM_C] * 5, dt_s=60.0)
    assert not controller.switched_off
    controller.set_schedule({"mon": {"ready_by": "08:00", "off_at": "08:30"}}, source="test")  # a short day
    run_ticks(controller, clock, tree, [ROOM_C] * 30, dt_s=60.0)
    stopped = kinds(controller, EventKind.AUTO_OFF)
    assert controller.switched_off and [e.source for e in stopped] == ["schedule"]
    assert wall_of(8, 30) <= stopped[0].wall_time_s <= wall_of(8, 31)
    assert len(kinds(controller, EventKind.AUTO_ON)) == 1  # the 08:00 window does not start it again


def test_a_persons_switch_on_before_the_clock_is_synchronised_is_not_undone_at_sync(make_controller, clock, tree):
    set_local(clock, 7, 0)
    first = make_controller()
    run_ticks(first, clock, tree, [ROOM_C])
    first.set_schedule({"mon": {"ready_by": "08:00", "off_at": "18:00"}}, source="test")
    first.close()  # on since 07:00, the power goes ...
    clock.synced = False
    set_local(clock, 19, 0)  # ... and comes back after the off-at, without network
    again = make_controller()
    run_ticks(again, clock, tree, [ROOM_C])
    again.switch_off(source="test")
    again.switch_on(source="test")  # she wants it on this evening
    run_ticks(again, clock, tree, [ROOM_C] * 5)
    clock.synced = True  # the network comes up
    run_ticks(again, clock, tree, [ROOM_C] * 10)
    assert not again.switched_off and not kinds(again, EventKind.AUTO_OFF)


# -- time zones, daylight saving, midnight and the week's end (the planner alone, on a zone's wall clock) --

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp()


def decisions(planner: Planner, from_wall_s: float, to_wall_s: float, *, lead_s: float, switched_off: bool = True,
              step_s: float = 60.0) -> list[tuple[float, str]]:
    """Tick the planner each ``step_s`` of wall time; (wall time, action) of each decision."""
    made = []
    wall_s = from_wall_s
    while wall_s <= to_wall_s:
        decision = planner.decide(now_s=wall_s - from_wall_s, wall_s=wall_s, synced=True, switched_off=switched_off,
                                  lead_s=lambda _preset: lead_s)
        if decision is not None and decision.action in ("on", "off"):
            made.append((wall_s, decision.action))
            switched_off = decision.action == "off"
        wall_s += step_s
    return made


@pytest.mark.parametrize("day", [(2026, 3, 29), (2026, 10, 25)])  # the clocks go forward, and back
def test_a_ready_by_on_a_daylight_saving_day_is_at_that_local_time(day):
    planner = Planner(Schedule.from_table({"auto_off_h": 0, "sun": {"ready_by": "08:00", "off_at": "12:00"}}),
                      now_s=0.0, tz=BERLIN)
    made = decisions(planner, berlin(*day, 0, 0), berlin(*day, 13, 0), lead_s=3600.0)
    assert made == [(berlin(*day, 7, 0), "on"), (berlin(*day, 12, 0), "off")]


def test_a_ready_by_at_a_time_the_clocks_skip_is_an_hour_later():
    planner = Planner(Schedule.from_table({"auto_off_h": 0, "sun": {"ready_by": "02:30"}}), now_s=0.0, tz=BERLIN)
    made = decisions(planner, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 29, 6, 0), lead_s=600.0)
    assert made == [(berlin(2026, 3, 29, 3, 20), "on")]  # 02:30 does not exist that night: 03:30 it is


def test_a_ready_by_just_after_midnight_starts_the_evening_before_on_the_previous_weekday():
    planner = Planner(Schedule.from_table({"auto_off_h": 0, "mon": {"ready_by": "00:30"}}), now_s=0.0, tz=BERLIN)
    made = decisions(planner, berlin(2026, 11, 29, 22, 0), berlin(2026, 11, 30, 2, 0), lead_s=2 * 3600.0)
    assert made == [(berlin(2026, 11, 29, 22, 30), "on")]  # Sunday evening, for Monday 00:30


def test_after_a_power_cut_a_sunday_ready_by_does_not_start_on_monday():
    schedule = Schedule.from_table({"auto_off_h": 0, "sun": {"ready_by": "20:00"}})
    saved = {"planned_through_wall_s": berlin(2026, 11, 29, 12, 0)}  # the power went on Sunday at noon
    planner = Planner(schedule, now_s=0.0, tz=BERLIN, saved=saved)
    assert decisions(planner, berlin(2026, 11, 30, 0, 5), berlin(2026, 11, 30, 8, 0), lead_s=600.0) == []
    planner = Planner(schedule, now_s=0.0, tz=BERLIN, saved=saved)
    assert decisions(planner, berlin(2026, 11, 29, 23, 50), berlin(2026, 11, 29, 23, 55), lead_s=600.0) == \
        [(berlin(2026, 11, 29, 23, 50), "on")]  # back before midnight: its window is still open


def test_the_first_start_after_install_does_not_start_for_a_ready_by_already_passed_today():
    planner = Planner(Schedule.from_table({"mon": {"ready_by": "08:00"}}), now_s=0.0, tz=BERLIN)
    assert decisions(planner, berlin(2026, 3, 2, 20, 0), berlin(2026, 3, 2, 21, 0), lead_s=1800.0) == []
    assert planner.to_state()["planned_through_wall_s"] == berlin(2026, 3, 2, 21, 0)


def test_the_status_says_the_warmers_time_zone_and_its_offset_from_utc_now(make_controller, clock, tree,
                                                                           monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")  # the Pi's zone, as timedatectl set-timezone would make it
    time.tzset()
    try:
        controller = make_controller()
        clock.wall_offset_s = berlin(2026, 7, 1, 12, 0) - clock.monotonic()
        summer = run_ticks(controller, clock, tree, [ROOM_C])[-1]
        clock.wall_offset_s = berlin(2026, 12, 1, 12, 0) - clock.monotonic()
        winter = run_ticks(controller, clock, tree, [ROOM_C])[-1]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert (summer.time_zone, summer.utc_offset_s) == ("Europe/Berlin", 7200.0)
    assert (winter.time_zone, winter.utc_offset_s) == ("Europe/Berlin", 3600.0)
