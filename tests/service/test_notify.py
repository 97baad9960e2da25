"""sd_notify: the protocol itself, and what the control loop tells systemd, tick by tick."""

from __future__ import annotations

import errno
import os
import threading
import uuid

import pytest

from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.core.loop import Controller
from controller.core.probe import RawRead, ReadingKind, ThreadedProbeSource
from controller.core.schedule import run_forever
from controller.core.state import StateStore
from controller.service.sd_notify import Notifier, socket_address, watchdog_interval_s
from controller.service.supervisor import Supervisor
from controller.sim.simpins import ClockedMockFactory
from controller.sim.simulation import Simulation, parse_injection
from tests.fake_notify import FakeNotifySocket


@pytest.fixture
def systemd(tmp_path):
    # Read by the test itself (drain()), so counts are exact: a datagram is queued by sendto.
    fake = FakeNotifySocket(tmp_path / "notify.sock", reading=False)
    yield fake
    fake.close()


# -- the protocol --------------------------------------------------------------------------
def test_messages_arrive_as_one_datagram_of_key_value_lines(systemd):
    notifier = Notifier(environ={"NOTIFY_SOCKET": systemd.address})
    assert notifier.enabled
    assert notifier.ready(status="warming")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert systemd.drain() == [{"READY": "1", "STATUS": "warming"}, {"WATCHDOG": "1"}, {"STOPPING": "1"}]
    notifier.close()


def test_abstract_namespace_socket_is_reached_through_an_at_sign():
    name = f"@stonewarmer-test-{uuid.uuid4().hex}"
    fake = FakeNotifySocket(name, reading=False)
    try:
        assert socket_address(name) == b"\0" + name[1:].encode()
        notifier = Notifier(environ={"NOTIFY_SOCKET": name})
        assert notifier.send(READY=1)
        assert fake.drain() == [{"READY": "1"}]
        notifier.close()
    finally:
        fake.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails():
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_a_vanished_socket_is_reported_not_raised(tmp_path, caplog):
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    assert sum("cannot notify systemd" in r.message for r in caplog.records) == 1  # logged once


def test_a_full_receiver_queue_drops_a_ping_instead_of_stalling_the_loop(systemd):
    # Nobody reads the socket: the kernel queue fills up (max_dgram_qlen). A blocking
    # send would freeze the control thread with the heater in whatever state it was.
    notifier = Notifier(environ={"NOTIFY_SOCKET": systemd.address})
    sent = [notifier.watchdog() for _ in range(2000)]
    assert sent[0] is True and sent[-1] is False
    assert len(systemd.drain()) == sent.count(True)
    assert notifier.watchdog() is True  # the queue has room again


def test_a_newline_in_a_status_cannot_forge_another_field(systemd):
    notifier = Notifier(environ={"NOTIFY_SOCKET": systemd.address})
    notifier.status("probe says hi\nREADY=1")
    assert systemd.drain() == [{"STATUS": "probe says hi READY=1"}]


def test_watchdog_interval_follows_sd_watchdog_enabled_rules():
    pid = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": pid}) == 10.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None  # another process's
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval_s({}) is None


# -- what the control loop reports ------------------------------------------------------------
def _simulation(tmp_path, **kwargs) -> Simulation:
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    return Simulation(cfg, workdir=tmp_path / "sim", **kwargs)


def _run(sim, supervisor, systemd, *, ticks: int, each_tick=None) -> list:
    """``run_forever`` on simulated time with the supervisor's hook, for ``ticks`` ticks."""
    stop = threading.Event()
    statuses = []

    def after_tick(status):
        supervisor.after_tick(status)
        systemd.drain()  # as systemd does: the queue of a datagram socket is short
        statuses.append(status)
        if each_tick:
            each_tick(len(statuses))
        if len(statuses) >= ticks:
            stop.set()

    run_forever(sim.controller, stop, before_tick=sim.sync, after_tick=after_tick)
    return statuses


def test_watchdog_on_every_completed_tick_and_ready_exactly_once(tmp_path, systemd):
    sim = _simulation(tmp_path)
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    supervisor.web_listening.set()
    statuses = _run(sim, supervisor, systemd, ticks=120)
    messages = systemd.drain()
    assert len(messages) == len(statuses) == 120
    assert all(m["WATCHDOG"] == "1" for m in messages)
    assert [i for i, m in enumerate(messages) if "READY" in m] == [0]  # first tick had a valid reading
    assert "degC, warming, setpoint 52.0 degC, heater" in messages[0]["STATUS"]
    sim.close()


def test_ready_arrives_once_the_dashboard_listens_even_with_no_probe_at_all(tmp_path, systemd):
    # No probe on the bus from the start; the dashboard is bound after tick 5. Holding READY
    # back until a valid reading would hold multi-user.target, so the boot would never finish.
    sim = _simulation(tmp_path, injections=[parse_injection("unplug@0")])
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))

    def bind_dashboard(tick):
        if tick == 5:
            supervisor.web_listening.set()

    statuses = _run(sim, supervisor, systemd, ticks=10, each_tick=bind_dashboard)
    messages = systemd.drain()
    assert all(s.temperature_c is None for s in statuses)
    assert [i for i, m in enumerate(messages) if "READY" in m] == [5]
    assert not any("EXTEND_TIMEOUT_USEC" in m for m in messages)
    # The probe's state is in STATUS=, for `systemctl status`.
    shown = [m["STATUS"] for m in messages if "STATUS" in m]
    assert shown[0] == "no valid reading (probe: empty): heater off until there is one"
    assert shown[-1] == "FAULT sensor: heater off until acknowledged (probe: empty)"  # and still READY
    assert all(m["WATCHDOG"] == "1" for m in messages)
    assert not any(level for _, level in sim.pin.changes)  # the heater never came on
    sim.close()


def test_status_says_while_the_state_is_not_saved(tmp_path, systemd):
    sim = _simulation(tmp_path)
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    supervisor.web_listening.set()

    def read_only(_data):
        raise OSError(errno.EROFS, "Read-only file system")

    sim.controller.store.save = read_only
    sim.controller.set_setpoint(50.0, source="test")
    _run(sim, supervisor, systemd, ticks=2)
    status = systemd.drain()[0]["STATUS"]
    assert status.endswith(f"; NOT SAVED: cannot save state to {sim.controller.store.path}: Read-only file system")
    sim.close()


class _HangingSource:
    """Wraps a probe source; on poll number ``hang_at`` the read blocks (a hung bus, read inline)."""

    def __init__(self, inner, *, hang_at: int) -> None:
        self.inner = inner
        self.hang_at = hang_at
        self.polls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def poll(self, now_s):
        self.polls += 1
        if self.polls == self.hang_at:
            self.entered.set()
            self.release.wait()
        return self.inner.poll(now_s)

    def close(self):
        self.release.set()


def test_watchdog_pings_stop_while_a_probe_read_hangs_inside_the_tick(tmp_path, systemd):
    sim = _simulation(tmp_path)
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    supervisor.web_listening.set()
    source = _HangingSource(sim.controller.primary_source, hang_at=6)
    sim.controller.primary_source = source
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(sim.controller, stop),
                            kwargs={"before_tick": sim.sync, "after_tick": supervisor.after_tick}, daemon=True)
    loop.start()
    try:
        assert source.entered.wait(10), "the loop never reached the hanging read"
        # Ticks 1-5 completed and each pinged; tick 6 is stuck, so no 6th ping: systemd
        # will abort the process after WatchdogSec and ExecStopPost turns the heater off.
        assert systemd.count("WATCHDOG") == 5
        assert loop.is_alive()
    finally:
        stop.set()
        source.release.set()
        loop.join(5)
    sim.close()


def test_watchdog_pings_stop_when_a_tick_raises(tmp_path, systemd):
    sim = _simulation(tmp_path)
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    supervisor.web_listening.set()
    real_tick = sim.controller.tick
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 8:
            raise RuntimeError("bug in a tick")
        return real_tick()

    sim.controller.tick = tick
    with pytest.raises(RuntimeError, match="bug in a tick"):
        run_forever(sim.controller, threading.Event(), before_tick=sim.sync, after_tick=supervisor.after_tick)
    assert systemd.count("WATCHDOG") == 7
    sim.close()


class _BlockedProbe:
    """A DS18B20 whose read never returns (a 1-Wire bus that stopped answering)."""

    sensor_id = "0000075a1f2b"

    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self, now_s):
        self.release.wait()
        return RawRead(ReadingKind.MISSING, None, None, now_s)


def test_a_hung_read_on_the_worker_thread_keeps_the_loop_alive_and_latches_a_sensor_fault(tmp_path, systemd):
    # On the Pi reads run on a worker thread: the loop does not stall, it sees TIMEOUT
    # readings, keeps the heater off, latches a sensor fault, and keeps feeding the watchdog.
    clock = SimClock()
    probe = _BlockedProbe()
    source = ThreadedProbeSource(probe, clock=clock, timeout_s=3.0)
    factory = ClockedMockFactory(clock)
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    controller = Controller(cfg, clock=clock, primary=source, pin_factory=factory,
                            store=StateStore(tmp_path / "state"))
    supervisor = Supervisor(Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    supervisor.web_listening.set()
    stop = threading.Event()
    statuses = []

    def after_tick(status):
        supervisor.after_tick(status)
        systemd.drain()
        statuses.append(status)
        if len(statuses) == 30:
            stop.set()

    try:
        run_forever(controller, stop, after_tick=after_tick)
    finally:
        probe.release.set()
        controller.close()
    assert systemd.count("WATCHDOG") == 30
    assert systemd.count("READY") == 1  # up, and saying why the heater is off
    assert statuses[-1].fault == "sensor"
    changes = factory.pin(17).changes
    assert len(changes) == 1 and not changes[0][1]  # the relay pin never left its off level
