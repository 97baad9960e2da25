"""Bad input to the API: each answered 4xx naming what was wrong, and nothing changes."""

from __future__ import annotations

import json

import pytest

from web.errors import MAX_BODY_BYTES

J = "application/json"

# (name, raw body, content type, expected status, field named in the answer)
BAD_SETPOINTS = [
    ("non-numeric", json.dumps({"setpoint_c": "hot"}), J, 422, "setpoint_c"),
    ("numeric-string", json.dumps({"setpoint_c": "50"}), J, 422, "setpoint_c"),
    ("nan", '{"setpoint_c": NaN}', J, 422, "setpoint_c"),
    ("infinity", '{"setpoint_c": Infinity}', J, 422, "setpoint_c"),
    ("minus-infinity", '{"setpoint_c": -Infinity}', J, 422, "setpoint_c"),
    ("huge-float", '{"setpoint_c": 1e308}', J, 422, "setpoint_c"),
    ("overflowing-float", '{"setpoint_c": 1e999}', J, 422, "setpoint_c"),
    ("huge-integer", '{"setpoint_c": 1' + "0" * 400 + "}", J, 422, "setpoint_c"),
    ("above-maximum", json.dumps({"setpoint_c": 54.01}), J, 422, "setpoint_c"),
    ("ceiling", json.dumps({"setpoint_c": 57.0}), J, 422, "setpoint_c"),
    ("below-minimum", json.dumps({"setpoint_c": 34.9}), J, 422, "setpoint_c"),
    ("negative", json.dumps({"setpoint_c": -5}), J, 422, "setpoint_c"),
    ("null", json.dumps({"setpoint_c": None}), J, 422, "setpoint_c"),
    ("boolean", json.dumps({"setpoint_c": True}), J, 422, "setpoint_c"),
    ("list-value", json.dumps({"setpoint_c": [50]}), J, 422, "setpoint_c"),
    ("missing", json.dumps({}), J, 422, "setpoint_c"),
    ("unknown-field", json.dumps({"setpoint_c": 50, "cutoff_c": 70}), J, 422, "cutoff_c"),
    ("fahrenheit-field", json.dumps({"setpoint_f": 122}), J, 422, "setpoint_f"),
    ("not-an-object", json.dumps([50]), J, 400, "body"),
    ("bare-number", "50", J, 400, "body"),
    ("not-json", "fifty degrees", J, 400, "body"),
    ("empty-body", "", J, 400, "body"),
    ("form-encoded", "setpoint_c=50", "application/x-www-form-urlencoded", 415, "Content-Type"),
    ("text-plain-json", json.dumps({"setpoint_c": 50}), "text/plain", 415, "Content-Type"),
    ("no-content-type", json.dumps({"setpoint_c": 50}), None, 415, "Content-Type"),
    ("oversized-body", json.dumps({"setpoint_c": 50, "pad": "x" * MAX_BODY_BYTES}), J, 413, "body"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"),
                         [case[1:] for case in BAD_SETPOINTS], ids=[case[0] for case in BAD_SETPOINTS])
def test_bad_setpoint_is_refused_and_changes_nothing(sim, client, signed_in, body, content_type, status, field):
    sim.run(3)
    events_before = len(sim.controller.events.since(0))
    store = sim.controller.store.path
    saved_before = store.read_text() if store.exists() else None
    headers = signed_in.headers
    if content_type:
        headers["Content-Type"] = content_type
    answer = client.post("/api/setpoint", data=body.encode(), headers=headers)
    assert answer.status_code == status
    error = answer.get_json()
    assert error["field"] == field and error["error"]
    if field == "setpoint_c" and status == 422:
        assert error["allowed"]["max"] == 54.0 and error["allowed"]["min"] == 35.0
    assert sim.controller.status().setpoint_c == 52.0
    assert len(sim.controller.events.since(0)) == events_before
    assert (store.read_text() if store.exists() else None) == saved_before


@pytest.mark.parametrize("body", ['{"force": true}', "[]", "nonsense"])
def test_acknowledge_with_a_body_it_does_not_understand_is_refused(sim, client, signed_in, body):
    answer = client.post("/api/fault/ack", data=body, headers={**signed_in.headers, "Content-Type": J})
    assert answer.status_code in (400, 422)


@pytest.mark.parametrize(("query", "field"), [
    ("since=yesterday", "since"), ("since=nan", "since"), ("since=inf", "since"), ("since=-99999999999", "since"),
    ("resolution=5s", "resolution"), ("since=2000&until=1000", "until"), ("until=1e400", "until"),
])
def test_bad_history_query_is_422_naming_the_argument(reader, query, field):
    answer = reader.get(f"/api/history?{query}")
    assert answer.status_code == 422 and answer.get_json()["field"] == field


@pytest.mark.parametrize("limit", ["0", "501", "ten", "1.5", "-3"])
def test_bad_events_limit_is_422(reader, limit):
    answer = reader.get(f"/api/events?limit={limit}")
    assert answer.status_code == 422 and answer.get_json()["field"] == "limit"


@pytest.mark.parametrize("password", [123, None, ["x"], "x" * 300])
def test_sign_in_with_a_password_that_is_not_a_short_string_is_422(app, client, password, auth):
    from tests.helpers import csrf_token

    auth.set_password()
    answer = client.post("/api/session", json={"password": password}, headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 422 and answer.get_json()["field"] == "password"
