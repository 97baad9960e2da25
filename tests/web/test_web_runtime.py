"""The web runtime as ``stonewarmer run`` uses it: waitress on a real port, history flushed on stop."""

from __future__ import annotations

import http.client
import json

from web import attach


def test_attach_serves_on_a_real_port_and_stop_writes_the_last_history_batch(sim):
    runtime = attach(sim.controller, sim.cfg)
    runtime.start("127.0.0.1", 0)
    try:
        sim.run(15)
        conn = http.client.HTTPConnection("127.0.0.1", runtime.server.effective_port, timeout=5)
        conn.request("GET", "/api/status")
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["tick"] == 15
        assert runtime.url.endswith(f":{runtime.server.effective_port}/")
        conn.request("GET", "/api/stream")
        stream = conn.getresponse()
        assert stream.status == 200 and stream.readline().startswith(b"retry:")
    finally:
        runtime.stop()
    from web.history import HistoryStore

    store = HistoryStore(runtime.history.store.path)
    assert store.counts()["readings"] == 15  # nothing lost: stop() flushed the pending batch
    store.close()


def test_stop_ends_open_streams_and_the_server_thread(sim):
    runtime = attach(sim.controller, sim.cfg)
    runtime.start("127.0.0.1", 0)
    sim.step()
    conn = http.client.HTTPConnection("127.0.0.1", runtime.server.effective_port, timeout=5)
    conn.request("GET", "/api/stream")
    stream = conn.getresponse()
    assert stream.status == 200
    runtime.stop()
    assert not runtime._thread.is_alive()
    try:
        rest = stream.read()  # returns: the server ended the stream (a hang would time out)
    except (http.client.IncompleteRead, ConnectionError) as exc:
        rest = getattr(exc, "partial", b"")
    assert rest.startswith(b"retry:") or rest == b""


def test_config_refuses_more_streams_than_threads_can_carry():
    import pytest

    from controller.core import config as cfgmod

    with pytest.raises(cfgmod.ConfigError,
                       match=r"\[web\] max_streams = 15 is not allowed: must be at most threads - 2 = 14"):
        cfgmod.from_dict({"web": {"threads": 16, "max_streams": 15}})
    assert cfgmod.from_dict({"web": {"threads": 16, "max_streams": 14}}).web.max_streams == 14
