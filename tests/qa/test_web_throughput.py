"""``stonewarmer bench-web``'s side-by-side comparison: wrk against the dashboard and a bare endpoint."""

from __future__ import annotations

import json
import urllib.request

from controller.qa.web_throughput import bare_app, compare, format_comparison, wsgi_cpu_us
from tests.mqtt_broker import need_binary
from web import attach


def test_the_bare_endpoint_serves_the_same_json_as_the_dashboard(sim, app):
    sim.run(2)
    body = app.test_client().get("/api/status").get_data()
    assert bare_app(body).test_client().get("/api/status").get_data() == body
    assert json.loads(body)["tick"] == 2
    assert 0 < wsgi_cpu_us(app, host="127.0.0.1", requests=50, rounds=1) < 10_000


def test_compare_runs_wrk_against_both_with_no_errors_and_reports_the_ratio(sim):
    need_binary("wrk", package="wrk")
    runtime = attach(sim.controller, sim.cfg)
    runtime.start("127.0.0.1", 0)
    try:
        sim.run(2)
        url = f"http://127.0.0.1:{runtime.server.effective_port}/api/status"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = answer.read()
        figures = compare(url, body, ours_app=runtime.app, threads=4, duration_s=1, rounds=1, connections=8)
    finally:
        runtime.stop()
    assert figures["ours_errors"] == figures["bare_errors"] == 0
    assert figures["ours_requests_per_s"][0] > 0 and figures["bare_requests_per_s"][0] > 0
    assert figures["ratio"] > 0 and figures["cpu_ratio"] > 0
    assert "bare Flask" in format_comparison(figures)
