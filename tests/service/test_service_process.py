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
    """The control process of ``run --simulate`` under a fake systemd; (process, state_dir) once READY, heating."""
    state_dir = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state_dir),
                                    "--speed", SPEED),
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


def test_a_start_up_that_fails_after_claiming_the_pin_still_shuts_down_with_the_heater_off(tmp_path, systemd,
                                                                                          monkeypatch):
    # A bad [mqtt] password file is found only when MQTT attaches: after the relay pin is
    # claimed and the web (with its history database) is built. Shutdown must still run.
    from controller.core import config as cfgmod
    from controller.core.loop import Controller
    from controller.integrations.mqtt.client import MqttError
    from controller.service.sd_notify import Notifier
    from controller.service.supervisor import serve

    state_dir = tmp_path / "state"
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(state_dir))
    cfg = cfgmod.replace(cfg, "mqtt", enabled=True, username="warmer", password_file=str(tmp_path / "missing"))
    closed = []
    real_close = Controller.close

    def close(self, **options):
        closed.append(options)
        real_close(self, **options)

    monkeypatch.setattr(Controller, "close", close)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        with pytest.raises(MqttError, match="password_file"):
            serve(cfg, simulate=True, host="127.0.0.1", port=free_port(),
                  notifier=Notifier(environ={"NOTIFY_SOCKET": systemd.address}))
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert closed == [{"release_pin": False}]  # heater off, the pin left driven off for the exit
    assert relay_pin(state_dir) is False
    assert systemd.wait_for("STOPPING", timeout_s=1)["STATUS"] == "stopping: heater off"


def test_an_injected_stall_blocks_the_control_loop_itself_so_the_watchdog_pings_stop(tmp_path, systemd):
    state_dir = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state_dir),
                                    "--speed", SPEED, "--inject", "stall@40"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        systemd.wait_for("READY")
        wait_until(lambda: relay_pin(state_dir) is True, what="the heater to switch on")
        # Waited for by what the process says, not by real time: on a loaded machine the
        # scaled clock's 40 s come after fewer ticks, never after more.
        wait_until(lambda: any("injected stall: the control loop blocks now" in line for line in lines[:]),
                   timeout_s=120, what="the stall at 40 simulated seconds")
        time.sleep(1)  # every ping sent before the stall has reached the fake systemd
        pings = systemd.count("WATCHDOG")
        assert 1 <= pings <= 42  # a ping per completed tick until the stall (at 40 s, give or take a tick) ...
        time.sleep(1)  # absence takes time to observe: 20 simulated seconds
        assert systemd.count("WATCHDOG") == pings  # ... and none since
        assert proc.poll() is None  # alive and silent: what only the watchdog can end
        assert relay_pin(state_dir) is True  # as it was: why ExecStopPost must run after the abort
    finally:
        proc.kill()
        proc.wait(10)
        reader.join(10)


def test_relay_off_on_a_pi_without_lgpio_is_one_line_and_a_failure_not_a_traceback(monkeypatch, capsys):
    from gpiozero import Device

    from controller.cli.main import main
    from tests.helpers import REPO

    monkeypatch.setitem(sys.modules, "lgpio", None)  # `import lgpio` fails, as without python3-lgpio
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")  # as the unit sets it
    monkeypatch.setattr(Device, "pin_factory", None)
    assert main(["relay-off", "--config", str(REPO / "config" / "stonewarmer.toml")]) == 2
    err = capsys.readouterr().err
    assert err == ("stonewarmer relay-off: cannot drive the relay pin GPIO17: the Python module lgpio is missing. "
                   "On a Raspberry Pi: sudo apt install python3-lgpio; off a Pi, the simulated relay is "
                   "relay-off --simulate\n")


def test_relay_off_simulate_finds_the_simulated_pin_even_in_a_broken_config(tmp_path, capsys):
    # ExecStopPost runs after a start that failed on the config too: the pin must still go off.
    from controller.cli.main import main
    from controller.service.supervisor import SIM_PIN_DIR
    from controller.sim.simpins import write_pin_file

    state_dir = tmp_path / "state"
    write_pin_file(state_dir / SIM_PIN_DIR, "GPIO17", True)  # left on (active high) by a dead process
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[control]\nsetpoint_c = 99.0\n\n[state]\ndir = "{state_dir}"\n')
    assert main(["relay-off", "--simulate", "--config", str(config)]) == 0
    assert relay_pin(state_dir) is False
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "setpoint_c = 99.0 is not allowed" in captured.err
    assert captured.out == "simulated relay GPIO17 off\n"
