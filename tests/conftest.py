"""Shared fixtures. Web: ``sim`` (a simulated warmer), ``history``, ``app``, ``client``, ``signed_in``."""

from __future__ import annotations

import pytest

from controller import config as cfgmod
from controller.simulation import Simulation

WEB_PASSWORD = "correct horse battery"


@pytest.fixture
def make_sim(tmp_path):
    """``make_sim(injections=[...], **web_keys)``: a simulated warmer with its state in tmp_path."""
    made = []

    def make(*, injections=(), **web):
        cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / f"state{len(made)}"))
        if web:
            cfg = cfgmod.replace(cfg, "web", **web)
        sim = Simulation(cfg, injections=list(injections))
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


@pytest.fixture
def sim(make_sim):
    return make_sim()


@pytest.fixture
def history(sim):
    from web.history import HistoryRecorder

    recorder = HistoryRecorder.open(sim.cfg.state.dir)
    recorder.follow(sim.controller)
    yield recorder
    recorder.stop()


@pytest.fixture
def app(sim, history):
    from web import create_app

    # Short real-time stream timings so stream tests finish quickly.
    return create_app(sim.controller, sim.cfg, history=history, heartbeat_s=0.05, stream_max_s=10.0)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client) -> str:
    return client.get("/api/session").get_json()["csrf_token"]


@pytest.fixture
def signed_in(app, client):
    """Set the password, sign ``client`` in; return the CSRF token to send with changes."""
    from web.context import EXTENSION

    app.extensions[EXTENSION].credentials.set_password(WEB_PASSWORD)
    answer = client.post("/api/session", json={"password": WEB_PASSWORD},
                         headers={"X-CSRF-Token": csrf_token(client)})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["csrf_token"]
