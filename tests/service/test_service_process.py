"""A real ``stonewarmer run --simulate`` process: signals, SIGKILL, a failing control loop.

The simulated relay pin is mirrored to ``<state-dir>/sim-gpio/GPIO17`` ("1"/"0"),
so the heater's state is observable from outside the process, as a real pin
is, including after the process is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from controller.qa.processes import command, free_port, relay_pin, wait_until
from tests.fake_notify import FakeNotifySocket

SPEED = "20"  # simulated seconds per real second: a tick every 50 ms


@pytest.fixture
def systemd(tmp_path):
    fake = FakeNotifySocket(tmp_path / "notify.sock")
    yield fake
    fake.close()


@pytest.fixture
def warmer(tmp_path, systemd):
    """Start ``run --simulate`` under a fake systemd; yield (process, state_dir) once READY and heating."""
    state_dir = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command("run", "--simulate", "--state-dir", str(state_dir), "--host", "127.0.0.1",
                                    "--port", str(free_port()), "--speed", SPEED),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        systemd.wait_for("READY")
        wait_until(lambda: relay_pin(state_dir) is True, what="the heater to switch on")
        yield proc, state_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_turns_the_heater_off_and_exits_0_within_5_s(warmer, systemd, signum):
    proc, state_dir = warmer
    sent_at = time.monotonic()
    proc.send_signal(signum)
    status = proc.wait(timeout=5)
    took_s = time.monotonic() - sent_at
    output = proc.stdout.read()
    assert status == 0, output
    assert took_s < 5
    assert relay_pin(state_dir) is False
    assert systemd.wait_for("STOPPING", timeout_s=1)["STOPPING"] == "1"
    assert systemd.count("READY") == 1
    assert f"signal {signal.Signals(signum).name}: stopping" in output


def test_after_sigkill_the_pin_stays_on_until_relay_off_drives_it_off(warmer, tmp_path):
    proc, state_dir = warmer
    proc.kill()
    proc.wait(5)
    # Nothing in the process could react: the pin stays driven, as on a Raspberry Pi kernel.
    assert relay_pin(state_dir) is True
    result = subprocess.run(command("relay-off", "--simulate", "--state-dir", str(state_dir)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert relay_pin(state_dir) is False
    assert "simulated relay GPIO17 off" in result.stdout


FAILING_RUN = textwrap.dedent("""
    import sys
    from controller.core import config as cfgmod
    from controller.core.loop import Controller
    from controller.service.supervisor import serve

    real_tick = Controller.tick
    ticks = []

    def tick(self):
        ticks.append(1)
        if len(ticks) == 40:
            raise RuntimeError("a bug in tick 40")
        return real_tick(self)

    Controller.tick = tick
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=sys.argv[1])
    sys.exit(serve(cfg, simulate=True, speed=100.0, host="127.0.0.1", port=int(sys.argv[2])))
""")


def test_an_exception_in_the_control_loop_turns_the_heater_off_and_exits_non_zero(tmp_path, systemd):
    state_dir = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address}
    result = subprocess.run([sys.executable, "-c", FAILING_RUN, str(state_dir), str(free_port())],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "control loop failed; heater off" in result.stderr
    assert "RuntimeError: a bug in tick 40" in result.stderr
    assert relay_pin(state_dir) is False
    messages = systemd.settle(count=40)  # 39 completed ticks, then STOPPING
    assert sum("WATCHDOG" in m for m in messages) == 39  # pings stopped with the failing tick
    assert any(m.get("STATUS", "").endswith("heater on") for m in messages)  # it was heating
    assert "STOPPING" in messages[-1]


def test_a_control_thread_stuck_in_its_tick_still_ends_with_the_heater_off(make_controller, clock, tree, pins,
                                                                          monkeypatch):
    from controller.service import supervisor as service
    from tests.helpers import run_ticks

    controller = make_controller()
    controller.set_duty_override(lambda *_: 1.0)
    run_ticks(controller, clock, tree, [40.0] * 12)
    assert pins.pin(17).state is True
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, args=(10,), daemon=True)  # a tick that never returns
    stuck.start()
    monkeypatch.setattr(service, "JOIN_S", 0.05)
    failure: list[BaseException] = []
    try:
        service._shutdown(controller, stuck, failure)
    finally:
        release.set()
    assert pins.pin(17).state is False and pins.pin(17).function == "output"   # off, and left driven
    assert [type(f) for f in failure] == [TimeoutError]
