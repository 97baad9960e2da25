"""Shared fixtures.

Core: simulated time (``clock``), mock pins that keep it (``pins``), a fake 1-Wire tree (``tree``),
``make_controller``. Web: ``sim`` (a simulated warmer), ``history``, ``app``, ``client``, ``auth``, ``signed_in``.
Plain helpers (ids, ``run_ticks``, ``AuthActions``) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import pytest
from gpiozero import Device

from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.core.loop import Controller
from controller.core.probe import SyncProbeSource, W1Probe
from controller.core.state import StateStore
from controller.sim.fake_w1 import FakeW1Tree
from controller.sim.simpins import ClockedMockFactory
from controller.sim.simulation import Simulation
from tests.helpers import PROBE_ID, SAFETY_ID, AuthActions, token_client


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def pins(clock):
    """A mock pin factory on simulated time; also gpiozero's default for the test."""
    factory = ClockedMockFactory(clock)
    previous = Device.pin_factory
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


@pytest.fixture
def tree(tmp_path) -> FakeW1Tree:
    return FakeW1Tree(tmp_path / "w1", atomic=False)


@pytest.fixture
def make_controller(tmp_path, clock, pins, tree):
    """Build a Controller reading ``tree`` through w1thermsensor, on ``pins``.

    ``make_controller(**control)`` overrides [control] keys; ``relay=dict(...)`` [relay] keys;
    ``second=True`` adds the safety probe.
    """
    built = []

    def make(*, second: bool = False, relay: dict | None = None, state_dir=None, **control):
        cfg = cfgmod.Config()
        if control:
            cfg = cfgmod.replace(cfg, "control", **control)
        if relay:
            cfg = cfgmod.replace(cfg, "relay", **relay)
        state = state_dir or tmp_path / "state"
        cfg = cfgmod.replace(cfg, "state", dir=str(state))
        cfg = cfgmod.replace(cfg, "probe", w1_dir=str(tree.root), id=PROBE_ID,
                             safety_id=SAFETY_ID if second else "")
        primary = SyncProbeSource(W1Probe(w1_dir=tree.root, sensor_id=PROBE_ID))
        secondary = SyncProbeSource(W1Probe(w1_dir=tree.root, sensor_id=SAFETY_ID)) if second else None
        controller = Controller(cfg, clock=clock, primary=primary, secondary=secondary,
                                pin_factory=pins, store=StateStore(state))
        built.append(controller)
        return controller

    yield make
    for controller in built:
        controller.close()


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


@pytest.fixture
def auth(app, client) -> AuthActions:
    """Sign-in actions for ``client``: ``auth.set_password()``, ``auth.login()``, ``auth.headers``."""
    return AuthActions(app, client)


@pytest.fixture
def signed_in(auth) -> AuthActions:
    """``client`` signed in (password set first): send changes with ``headers=signed_in.headers``."""
    auth.set_password()
    answer = auth.login()
    assert answer.status_code == 200, answer.get_json()
    return auth


@pytest.fixture
def reader(app):
    """A test client whose every request carries an API token: it may read the history, the events,
    /metrics and the API description, which need a sign-in by default."""
    return token_client(app)


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free loopback port (tests/mqtt_broker.py)."""
    from tests.mqtt_broker import Mosquitto

    (tmp_path / "broker").mkdir()
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
