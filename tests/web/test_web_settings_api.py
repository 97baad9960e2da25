"""The day's commands and the settings over the API: signed in, checked for shape, validated by the
controller, refused with what is allowed and nothing changed; export and import round-trip."""

from __future__ import annotations

import json

import pytest

from web.context import EXTENSION


def doc_of(client, headers=None):
    answer = client.get("/api/settings", headers=headers or {})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_off_holds_the_heater_off_and_heat_switches_it_on_again(sim, client, signed_in):
    sim.run(20)
    answer = client.post("/api/mode", json={"mode": "off"}, headers=signed_in.headers)
    assert answer.status_code == 200 and answer.get_json()["mode"] == "off"
    assert answer.get_json()["status"]["switched_off"] is True
    sim.run(40)
    assert sim.controller.status().mode == "off" and not sim.controller.interlock.relay.is_on
    assert client.post("/api/mode", json={"mode": "heat"}, headers=signed_in.headers).status_code == 200
    sim.run(20)
    assert sim.controller.status().relay_on  # a cold bath: heating again


@pytest.mark.parametrize("body, field", [({"mode": "cool"}, "mode"), ({"mode": None}, "mode"), ({}, "mode"),
                                         ({"mode": "off", "x": 1}, "x")])
def test_a_wrong_mode_is_refused_and_changes_nothing(sim, client, signed_in, body, field):
    answer = client.post("/api/mode", json=body, headers=signed_in.headers)
    assert answer.status_code == 422 and answer.get_json()["field"] == field
    assert not sim.controller.switched_off


def test_a_command_without_a_sign_in_is_refused(sim, client):
    for path, body in [("/api/mode", {"mode": "off"}), ("/api/preset", {"name": "Face"}),
                       ("/api/probe/calibrate", {"probe_offset_c": 1})]:
        assert client.post(path, json=body).status_code in (401, 403)
    assert client.get("/api/settings").status_code == 401
    assert not sim.controller.switched_off and sim.controller.setpoint_c == 52.0


def test_a_preset_sets_its_setpoint_and_an_unknown_one_names_the_allowed(sim, client, signed_in):
    answer = client.post("/api/preset", json={"name": "Face"}, headers=signed_in.headers)
    assert answer.status_code == 200 and answer.get_json()["setpoint_c"] == 48.0 == sim.controller.setpoint_c
    wrong = client.post("/api/preset", json={"name": "Hot"}, headers=signed_in.headers)
    assert wrong.status_code == 422 and wrong.get_json()["allowed"] == ["Body", "Face", "Feet"]
    assert sim.controller.setpoint_c == 48.0


def test_extend_answers_when_auto_off_comes_and_409_when_there_is_none(sim, client, signed_in):
    sim.run(5)
    answer = client.post("/api/auto-off/extend", headers=signed_in.headers)
    assert answer.status_code == 200
    assert answer.get_json()["auto_off_at"] == pytest.approx(sim.clock.wall() + 10 * 3600.0, abs=2.0)
    client.post("/api/mode", json={"mode": "off"}, headers=signed_in.headers)
    refused = client.post("/api/auto-off/extend", json={}, headers=signed_in.headers)
    assert refused.status_code == 409 and "switched off" in refused.get_json()["error"]


def test_calibrate_from_a_thermometer_then_reset(sim, client, signed_in):
    sim.run(30)
    raw_c = sim.controller.status().raw_temperature_c
    answer = client.post("/api/probe/calibrate", json={"thermometer_c": round(raw_c + 0.8, 2)},
                         headers=signed_in.headers)
    assert answer.status_code == 200
    assert answer.get_json()["probe_offset_c"] == pytest.approx(0.8, abs=0.011)
    assert answer.get_json()["status"]["probe_offset_c"] == answer.get_json()["probe_offset_c"]
    too_far = client.post("/api/probe/calibrate", json={"thermometer_c": raw_c + 5}, headers=signed_in.headers)
    assert too_far.status_code == 422 and too_far.get_json()["field"] == "thermometer_c"
    reset = client.post("/api/probe/calibrate", json={"probe_offset_c": 0}, headers=signed_in.headers)
    assert reset.status_code == 200 and sim.controller.calibration.offset_c == 0.0
    both = client.post("/api/probe/calibrate", json={"probe_offset_c": 0, "thermometer_c": 50},
                       headers=signed_in.headers)
    assert both.status_code == 422


def test_calibrate_without_a_fresh_reading_is_409(sim, client, signed_in):
    answer = client.post("/api/probe/calibrate", json={"thermometer_c": 40}, headers=signed_in.headers)
    assert answer.status_code == 409 and answer.get_json()["field"] == "reading"


def test_put_settings_applies_all_and_get_shows_them(sim, app, client, signed_in):
    doc = doc_of(client)
    assert doc["version"] == 1 and doc["notify"] == {"ntfy_url": None}
    new = {**doc, "presets": [{"name": "Hands", "setpoint_c": 49.0}],
           "schedule": {"auto_off_h": 4, "days": {"fri": {"ready_by": "08:30", "preset": "Hands"}}},
           "probe_offset_c": -0.4, "notify": {"ntfy_url": "https://ntfy.example/stones"}}
    answer = client.put("/api/settings", json=new, headers=signed_in.headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {**new, "schedule": {**new["schedule"], "auto_off_h": 4.0}} == doc_of(client)
    assert app.extensions[EXTENSION].ntfy.url == "https://ntfy.example/stones"
    assert json.loads(app.extensions[EXTENSION].ntfy.path.read_text()) == {"ntfy_url": "https://ntfy.example/stones"}


@pytest.mark.parametrize("change, field", [
    ({"presets": [{"name": "Hot", "setpoint_c": 60}]}, "presets"),
    ({"probe_offset_c": 4}, "probe_offset_c"),
    ({"schedule": {"auto_off_h": 1, "days": {"mon": {"ready_by": "25:00"}}}}, "schedule"),
    ({"notify": {"ntfy_url": "https://me:secret@ntfy.example/stones"}}, "notify.ntfy_url"),
    ({"notify": {"ntfy_url": "ftp://ntfy.example/stones"}}, "notify.ntfy_url"),
    ({"notify": "https://ntfy.example/stones"}, "notify"),
    ({"version": 7}, "version"),
    ({"extra": 1}, "extra"),
])
def test_a_wrong_settings_document_is_refused_whole(sim, app, client, signed_in, change, field):
    path = sim.controller.store.path
    before, state_before = doc_of(client), path.read_text() if path.exists() else None
    answer = client.put("/api/settings", json={**before, **change}, headers=signed_in.headers)
    assert answer.status_code == 422 and answer.get_json()["field"] == field, answer.get_json()
    assert doc_of(client) == before and (path.read_text() if path.exists() else None) == state_before
    assert not app.extensions[EXTENSION].ntfy.path.exists()


def test_a_settings_document_without_a_part_is_refused(client, signed_in):
    doc = doc_of(client)
    del doc["notify"]
    answer = client.put("/api/settings", json=doc, headers=signed_in.headers)
    assert answer.status_code == 422 and answer.get_json()["field"] == "notify"


def test_export_on_one_warmer_imports_on_another(make_sim, sim, client, signed_in):
    doc = {**doc_of(client), "presets": [{"name": "Feet", "setpoint_c": 53.0}], "probe_offset_c": 1.5}
    assert client.put("/api/settings", json=doc, headers=signed_in.headers).status_code == 200
    exported = client.get("/api/settings/export")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="stonewarmer-settings.json"'
    from tests.helpers import AuthActions
    from web import create_app

    other = make_sim()
    other_app = create_app(other.controller, other.cfg)
    other_client = other_app.test_client()
    auth = AuthActions(other_app, other_client)
    auth.set_password()
    assert auth.login().status_code == 200
    answer = other_client.post("/api/settings/import", data=exported.data, content_type="application/json",
                               headers=auth.headers)
    assert answer.status_code == 200, answer.get_json()
    assert doc_of(other_client) == exported.get_json()
    assert other.controller.settings()["probe_offset_c"] == 1.5
