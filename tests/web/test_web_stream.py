"""Live updates (Server-Sent Events): messages, heartbeats and the bound on open streams."""

from __future__ import annotations

import json

from web import create_app


def _messages(chunks):
    """Parse SSE text chunks into (event, data) pairs."""
    for chunk in chunks:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        for block in text.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"])


def _next_of(stream, kind: str, *, limit: int = 200):
    for _ in range(limit):
        for event, data in _messages([next(stream)]):
            if event == kind:
                return data
    raise AssertionError(f"no {kind} message")


def test_stream_sends_status_then_new_ticks_and_events(sim, reader):
    sim.run(2)
    answer = reader.get("/api/stream")  # events go to those who may read /api/events
    assert answer.mimetype == "text/event-stream" and answer.headers["Cache-Control"] == "no-cache"
    stream = iter(answer.response)
    assert next(stream).startswith(b"retry: ")
    first = _next_of(stream, "status")
    assert first["tick"] == 2 and first["setpoint_c"] == 52.0
    sim.step()
    assert _next_of(stream, "status")["tick"] == 3
    sim.controller.set_setpoint(48.0, source="test")
    event = _next_of(stream, "event")
    assert event["kind"] == "setpoint" and event["setpoint_c"] == 48.0
    answer.close()


def test_idle_stream_sends_heartbeats_with_the_tick_age(sim, client):
    sim.run(1)
    answer = client.get("/api/stream")
    stream = iter(answer.response)
    _next_of(stream, "status")
    sim.clock.advance(3.0)  # no tick: the loop is late
    ping = _next_of(stream, "ping")
    assert ping["tick_age_s"] == 3.0
    answer.close()


def test_streams_are_bounded_and_a_closed_stream_frees_its_slot(make_sim):
    sim = make_sim(threads=4, max_streams=2)
    client = create_app(sim.controller, sim.cfg, heartbeat_s=0.05).test_client()
    first, second = client.get("/api/stream"), client.get("/api/stream")
    assert first.status_code == second.status_code == 200
    refused = client.get("/api/stream")
    assert refused.status_code == 503 and refused.get_json()["allowed"] == {"max_streams": 2}
    assert "Retry-After" in refused.headers
    first.close()
    third = client.get("/api/stream")
    assert third.status_code == 200
    second.close()
    third.close()


def test_streams_end_when_the_feed_closes(sim, app, client):
    from web.context import EXTENSION

    answer = client.get("/api/stream")
    stream = iter(answer.response)
    _next_of(stream, "status")
    app.extensions[EXTENSION].feed.close()
    rest = list(stream)  # ends instead of waiting for the next tick
    assert all(b"status" not in chunk for chunk in rest)
    answer.close()
    assert app.extensions[EXTENSION].streams.open == 0
