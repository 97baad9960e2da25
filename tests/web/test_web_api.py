"""The JSON API, monitoring and page routes, through the Flask test client."""

from __future__ import annotations

import csv
import io
import re

from prometheus_client.parser import text_string_to_metric_families

from controller.sim.simulation import parse_injection
from tests.helpers import token_client
from web import create_app
from web.openapi import spec

STATUS_KEYS = {"temperature_c", "setpoint_c", "min_setpoint_c", "max_setpoint_c", "duty", "relay_on", "mode",
               "fault", "ready_in_s", "reading_age_s"}


def test_status_has_the_documented_fields_and_follows_the_controller(sim, client):
    sim.run(30)
    body = client.get("/api/status").get_json()
    assert body.keys() >= STATUS_KEYS
    status = sim.controller.status()
    assert body["tick"] == status.tick == 30
    assert body["temperature_c"] == status.temperature_c
    assert body["mode"] == "warming" and body["relay_on"] is True
    assert body["tick_age_s"] == 0.0


def test_status_answer_is_not_cached(client):
    assert client.get("/api/status").headers["Cache-Control"] == "no-store"


def test_openapi_lists_exactly_the_api_routes(app, reader):
    document = reader.get("/api/openapi.json").get_json()
    assert document == spec() and document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        if path.startswith("/api/") or path in ("/healthz", "/metrics"):
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_openapi_status_schema_requires_the_issue_fields(reader):
    schema = reader.get("/api/openapi.json").get_json()["components"]["schemas"]["Status"]
    assert set(schema["required"]) >= STATUS_KEYS


def test_healthz_is_200_while_ticking_and_503_when_the_loop_stops(sim, client):
    assert client.get("/healthz").status_code == 503  # no tick yet
    sim.run(3)
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.get_json()["ok"] is True
    sim.clock.advance(6.0)  # the loop misses six ticks
    late = client.get("/healthz")
    assert late.status_code == 503 and late.get_json()["tick_age_s"] == 6.0
    sim.step()
    assert client.get("/healthz").status_code == 200


def _metrics(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_report_the_latest_status_under_the_documented_names(sim, reader):
    sim.run(20)
    status = sim.controller.status()
    m = _metrics(reader)
    assert m[("stonewarmer_temperature_celsius", ())] == status.temperature_c
    assert m[("stonewarmer_setpoint_celsius", ())] == 52.0
    assert m[("stonewarmer_heater_duty_ratio", ())] == status.duty
    assert m[("stonewarmer_relay_on", ())] == 1.0
    assert m[("stonewarmer_relay_switches_total", ())] == status.relay_switches == 1
    assert m[("stonewarmer_sensor_errors_total", ())] == 0
    assert m[("stonewarmer_faults_total", (("kind", "sensor"),))] == 0


def test_metrics_count_a_fault_and_drop_the_temperature_without_a_reading(make_sim):
    sim = make_sim(injections=[parse_injection("unplug@5")])
    client = token_client(create_app(sim.controller, sim.cfg))
    sim.run(30)
    assert sim.controller.status().fault == "sensor"
    m = _metrics(client)
    assert m[("stonewarmer_faults_total", (("kind", "sensor"),))] == 1
    assert m[("stonewarmer_fault_latched", (("kind", "sensor"),))] == 1
    assert m[("stonewarmer_relay_on", ())] == 0
    assert ("stonewarmer_temperature_celsius", ()) not in m  # no stale number


def test_metrics_of_two_apps_do_not_share_state(make_sim):
    a, b = make_sim(), make_sim()
    a.controller.set_setpoint(45.0)
    ca = token_client(create_app(a.controller, a.cfg))
    cb = token_client(create_app(b.controller, b.cfg))
    assert _metrics(ca)[("stonewarmer_setpoint_celsius", ())] == 45.0
    assert _metrics(cb)[("stonewarmer_setpoint_celsius", ())] == 52.0


def test_events_lists_setpoint_changes_newest_first(sim, client, signed_in):
    client.post("/api/setpoint", json={"setpoint_c": 50.0}, headers=signed_in.headers)
    events = client.get("/api/events").get_json()["events"]
    assert [e["kind"] for e in events] == ["setpoint", "start"]
    assert events[0]["source"] == "web" and events[0]["setpoint_c"] == 50.0


def test_history_returns_each_tick_including_those_not_yet_written(sim, reader, history):
    sim.run(40)
    assert history.store.counts()["readings"] == 0  # nothing written yet: batches only
    body = reader.get("/api/history?since=-3600").get_json()
    assert body["resolution"] == "1s" and body["count"] == 40
    assert body["series"]["temperature_c"] == [r.reading_c for r in sim.trace]
    assert body["series"]["setpoint_c"][-1] == 52.0


def test_history_minutes_after_a_flush(sim, reader, history):
    sim.run(180)
    history.flush()
    body = reader.get("/api/history?since=-43200").get_json()  # 12 h: auto picks minutes
    assert body["resolution"] == "1m"
    assert 3 <= body["count"] <= 4
    lows, highs = body["series"]["temperature_min_c"], body["series"]["temperature_max_c"]
    assert all(lo <= mean <= hi for lo, mean, hi in zip(lows, body["series"]["temperature_c"], highs))


def test_history_csv_has_a_header_and_one_row_per_reading(sim, reader):
    sim.run(10)
    answer = reader.get("/api/history.csv?resolution=1s")
    assert answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["time_utc", "t_s", "temperature_c", "setpoint_c", "duty", "relay_on", "mode"]
    assert len(rows) == 11 and rows[1][0].endswith("Z")


def test_history_without_a_database_is_503_with_the_reason(sim):
    client = token_client(create_app(sim.controller, sim.cfg, history_problem="disk full"))
    answer = client.get("/api/history")
    assert answer.status_code == 503 and "disk full" in answer.get_json()["error"]


def test_dashboard_page_manifest_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and b'id="temp"' in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    for icon in manifest.get_json()["icons"]:
        assert client.get(icon["src"]).status_code == 200
    for name in ("app.js", "words.js", "chart.js", "alerts.js", "access.js", "app.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_page_loads_nothing_from_elsewhere(client):
    page = client.get("/").get_data(as_text=True)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_unknown_api_path_is_a_json_404(client):
    answer = client.get("/api/nope")
    assert answer.status_code == 404 and "error" in answer.get_json()


def test_wrong_method_is_a_json_405(client):
    assert client.get("/api/setpoint").status_code == 405


def test_status_is_serialised_once_per_tick_and_answers_what_the_stream_sends(sim, client, monkeypatch):
    from controller.core.status import Status
    from web.api import status_payload

    calls = []
    original = Status.to_dict
    monkeypatch.setattr(Status, "to_dict", lambda self: calls.append(self.tick) or original(self))
    sim.run(2)
    answers = [client.get("/api/status") for _ in range(50)]
    assert calls == [2] and all(a.get_data() == answers[0].get_data() for a in answers)
    sim.clock.advance(0.25)  # tick_age_s still follows the clock, request by request
    assert client.get("/api/status").get_json()["tick_age_s"] == 0.25
    sim.step()
    body = client.get("/api/status").get_json()
    assert calls[-1] == 3 and body == status_payload(sim.controller)
    assert answers[0].mimetype == "application/json" and answers[0].headers["Cache-Control"] == "no-store"
