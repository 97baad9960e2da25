"""The web process's controller: the dashboard's API on a RemoteController, against a real control socket."""

from __future__ import annotations

import pytest

from controller.core import config as cfgmod
from controller.core.interfaces import ControllerView
from controller.core.loop import CommandError
from controller.qa.processes import wait_until
from controller.service.control import ControlServer
from controller.service.remote import EVENTS_CURSOR, NOT_RUNNING, RemoteController
from controller.service.session import SessionHub
from tests.helpers import AuthActions, run_ticks


@pytest.fixture
def linked(make_controller, clock, tree, tmp_path):
    """A controller behind a control socket, and a RemoteController connected to it."""
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 2)
    server = ControlServer(tmp_path / "control.sock", SessionHub(controller).commands())
    server.start()
    remote = RemoteController(server.path, controller.cfg)
    remote.start()
    wait_until(lambda: remote.connected, timeout_s=5, what="the session")
    yield controller, remote, server
    remote.stop()
    server.stop()


def test_both_controllers_have_what_the_web_needs(linked):
    controller, remote, _ = linked
    assert isinstance(controller, ControllerView) and isinstance(remote, ControllerView)


def test_a_status_and_an_event_reach_the_web_side_as_the_controller_made_them(linked, clock, tree):
    controller, remote, _ = linked
    run_ticks(controller, clock, tree, [31.5])
    wait_until(lambda: remote.status().tick == controller.status().tick, timeout_s=5, what="the tick")
    assert remote.status() == controller.status()
    assert [e.to_dict() for e in remote.events.since(0)] == [e.to_dict() for e in controller.events.since(0)]


def test_commands_go_through_the_controllers_own_validation(linked):
    controller, remote, _ = linked
    assert remote.set_setpoint(41.5, source="api") == 41.5 == controller.setpoint_c
    with pytest.raises(CommandError, match="outside the allowed range") as refused:
        remote.set_setpoint(80, source="api")
    assert refused.value.field == "setpoint_c"
    assert controller.setpoint_c == 41.5
    assert remote.switch_off(source="mqtt") is True and controller.switched_off
    assert remote.switch_off(source="mqtt") is False


def test_an_off_from_the_web_process_opens_the_relay_at_the_next_tick_and_on_heats_again(linked, clock, tree, pins):
    controller, remote, _ = linked
    run_ticks(controller, clock, tree, [30.0] * 10)              # cold bath: the relay is on
    pin = pins.pin(17)
    assert pin.state
    assert remote.switch_off(source="mqtt") is True              # Home Assistant's mode "off", as MQTT sends it
    switched_off_s = clock.monotonic()
    run_ticks(controller, clock, tree, [30.0] * 30)
    assert pin.changes[-1] == (switched_off_s + 1.0, False)      # the first tick after the command, and never on again
    wait_until(lambda: remote.status().mode == "off", timeout_s=5, what="the off status")
    assert remote.switch_on(source="mqtt") is True
    assert run_ticks(controller, clock, tree, [30.0] * 15)[-1].relay_on and pin.state


def test_with_the_control_process_gone_the_api_says_so_and_changes_nothing(linked, tmp_path):
    from web import create_app

    controller, remote, server = linked
    cfg = cfgmod.replace(controller.cfg, "state", dir=str(tmp_path / "web"))
    app = create_app(remote, cfg)
    client = app.test_client()
    auth = AuthActions(app, client)
    auth.set_password()
    assert auth.login().status_code == 200
    server.stop()  # the control process dies
    wait_until(lambda: not remote.connected, timeout_s=5, what="the session to end")
    assert client.get("/healthz").status_code == 503
    assert client.get("/api/status").get_json()["detail"]["controller"] == NOT_RUNNING
    answer = client.post("/api/setpoint", json={"setpoint_c": 45.0}, headers=auth.headers)
    assert answer.status_code == 503
    assert "controller is not running" in answer.get_json()["error"]
    assert controller.setpoint_c != 45.0


def test_the_settings_commands_reach_the_controller_and_its_refusals_come_back(linked, clock, tree):
    controller, remote, _ = linked
    assert remote.settings() == controller.settings()
    doc = {**remote.settings(), "presets": [{"name": "Hands", "setpoint_c": 49.0}], "probe_offset_c": 0.5}
    assert remote.apply_settings(doc, source="api") == {**doc, "probe_offset_c": 0.5} == controller.settings()
    assert remote.apply_preset("Hands") == 49.0 == controller.setpoint_c
    assert remote.set_auto_off_h(1.5) == 1.5
    assert remote.extend() == pytest.approx(clock.wall() + 5400.0, abs=1.0)
    assert remote.set_probe_offset(-1) == -1.0 == controller.calibration.offset_c
    assert remote.calibrate(30.8) == pytest.approx(0.8)  # the bath reads 30.0
    with pytest.raises(CommandError, match="max_setpoint_c") as refused:
        remote.set_presets([{"name": "Hot", "setpoint_c": 60.0}])
    assert refused.value.field == "presets" and controller.settings()["presets"] == doc["presets"]


def test_a_settings_document_too_large_for_a_frame_is_refused_before_sending(linked):
    controller, remote, _ = linked
    before = controller.settings()
    with pytest.raises(CommandError, match="too large"):
        remote.apply_settings({**before, "presets": [{"name": "x" * 40, "setpoint_c": 50.0}] * 100})
    assert remote.connected and remote.settings() == before


def test_the_web_side_tells_the_time_by_the_control_clock_not_its_own(linked, clock, tree):
    """History and the dashboard ask "now" of the web's clock: in a simulation (or on a Pi whose clock
    the control process sees differently) that must be the control process's wall clock, else
    ``/api/history?since=<the warmer's time>`` is refused as "until before since"."""
    import time

    controller, remote, _ = linked
    run_ticks(controller, clock, tree, [31.0])
    wait_until(lambda: remote.status().tick == controller.status().tick, timeout_s=5, what="the tick")
    assert abs(controller.clock.wall() - time.time()) > 3600  # the simulated wall clock is far from this one
    assert remote.clock.wall() == pytest.approx(controller.clock.wall(), abs=2.0)


def test_events_after_a_control_restart_reach_the_sinks_and_a_restarted_web_does_not_repeat_them(
        make_controller, clock, tree, tmp_path):
    path, cursor = tmp_path / "control.sock", tmp_path / "web" / EVENTS_CURSOR
    cursor.parent.mkdir()
    first = make_controller()
    run_ticks(first, clock, tree, [30.0] * 2)
    for setpoint_c in (40.0, 41.0, 42.0, 43.0):  # ids up to 5 in the first start
        first.set_setpoint(setpoint_c, source="api")
    server = ControlServer(path, SessionHub(first).commands())
    server.start()
    web = RemoteController(path, first.cfg, events_cursor=cursor)
    heard: list[str] = []
    web.events.add_sink(lambda e: heard.append(e.message))
    web.start()
    try:
        wait_until(lambda: len(heard) == 5, timeout_s=5, what="the first start's events")
        server.stop()
        first.close()
        wait_until(lambda: not web.connected, timeout_s=5, what="the session to end")
        second = make_controller()  # the control process again: its ids count from 1
        server = ControlServer(path, SessionHub(second).commands())
        server.start()
        wait_until(lambda: web.connected, timeout_s=5, what="the web to reconnect")
        second.set_setpoint(44.0, source="api")
        wait_until(lambda: heard[-1].endswith("-> 44.0 degC"), timeout_s=5, what="the new start's events")
        assert len(heard) == 5 + len(second.events)  # every event of the new start, once
        ids = [e.id for e in web.events.since(0)]
        assert ids == sorted(set(ids))  # the dashboard's streams read since(last id): always increasing
    finally:
        web.stop()
    again = RemoteController(path, second.cfg, events_cursor=cursor)  # the web process restarted
    heard_again: list[str] = []
    again.events.add_sink(lambda e: heard_again.append(e.message))
    again.start()
    try:
        wait_until(lambda: again.connected, timeout_s=5, what="the restarted web's session")
        wait_until(lambda: len(again.events.since(0)) == len(second.events), timeout_s=5, what="the backlog")
        assert heard_again == []  # the backlog is there to read, not sent to the phone or the history again
        second.set_setpoint(45.0, source="api")
        wait_until(lambda: heard_again, timeout_s=5, what="the next event")
        assert heard_again == ["setpoint 44.0 -> 45.0 degC"]
    finally:
        again.stop()
        server.stop()


def test_a_command_answered_over_the_socket_shows_in_the_web_sides_status_at_once(linked):
    """The API answers a command with the status: it must be the status after the command, not the
    last tick's (the dashboard and scripts read it straight after their command)."""
    controller, remote, _ = linked
    remote.set_setpoint(40.0, source="test")
    assert remote.status().setpoint_c == 40.0
    remote.set_probe_offset(-1.0, source="test")
    assert remote.status().probe_offset_c == -1.0 == controller.status().probe_offset_c
    remote.switch_off(source="test")
    assert remote.status().switched_off is True
