"""The control process and the web process: each survives the other (real processes, simulated bath)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from controller.qa.processes import command, free_port, relay_pin, stop, wait_until
from controller.service import protocol

SPEED = "20"  # a tick every 50 ms of real time


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _ticks(path: Path, seconds: float) -> list[dict]:
    """The statuses the control process pushes to a session, for ``seconds`` of real time."""
    statuses = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(path))
        sock.sendall(protocol.encode({"command": "session", "version": protocol.VERSION}))
        frames = sock.makefile("rb")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            frame = json.loads(frames.readline())
            if "status" in frame:
                statuses.append(frame["status"])
    return statuses


@pytest.fixture
def pair(tmp_path):
    """A control process and a web process, started as the two units start them."""
    state = tmp_path / "state"
    port = free_port()
    control = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state),
                                       "--speed", SPEED), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    web = subprocess.Popen(command("run", "--role", "web", "--simulate", "--state-dir", str(state), "--host",
                                   "127.0.0.1", "--port", str(port)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: relay_pin(state) is True, what="the heater to switch on")
        wait_until(lambda: _reachable(url), what="the dashboard with a ticking controller")
        yield control, web, state, url
    finally:
        for proc in (web, control):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def _reachable(url: str) -> bool:
    try:
        return _get(url + "/healthz")[0] == 200
    except OSError:
        return False


def test_killing_the_web_process_leaves_the_ticks_on_schedule_and_the_relay_as_it_was(pair):
    control, web, state, _url = pair
    web.send_signal(signal.SIGKILL)
    web.wait(5)
    statuses = _ticks(state / "control.sock", 2.0)  # 40 ticks at this speed
    assert control.poll() is None
    assert len(statuses) >= 30
    gaps_s = [b["monotonic_s"] - a["monotonic_s"] for a, b in zip(statuses, statuses[1:], strict=False)]
    # Simulated seconds: one tick a second; a tick late on this shared machine is made up, never skipped.
    assert sorted(gaps_s)[len(gaps_s) // 2] == pytest.approx(1.0, abs=0.05)
    assert max(gaps_s) < 3.0
    assert [s["tick"] for s in statuses] == list(range(statuses[0]["tick"], statuses[0]["tick"] + len(statuses)))
    assert all(s["relay_on"] for s in statuses)  # warming at full power, as before the kill
    assert relay_pin(state) is True


def test_killing_the_control_process_shows_on_the_dashboard_within_5_s_and_relay_off_ends_the_heat(pair):
    control, web, state, url = pair
    control.send_signal(signal.SIGKILL)
    control.wait(5)
    killed_at = time.monotonic()
    wait_until(lambda: _get(url + "/healthz")[0] == 503, timeout_s=5, what="/healthz to answer 503")
    assert time.monotonic() - killed_at < 5
    _code, status = _get(url + "/api/status")
    assert status["detail"]["controller"] == "not running"
    assert status["tick_age_s"] > 5  # the dashboard's "not responding"
    assert web.poll() is None
    assert relay_pin(state) is True  # the kernel keeps the pin driven: what ExecStopPost is for
    done = subprocess.run(command("relay-off", "--simulate", "--state-dir", str(state)), capture_output=True,
                          timeout=30)
    assert done.returncode == 0
    assert relay_pin(state) is False


def test_a_command_while_the_control_process_is_gone_is_refused_and_the_web_recovers_on_its_restart(pair, tmp_path):
    control, web, state, url = pair
    control.send_signal(signal.SIGKILL)
    control.wait(5)
    wait_until(lambda: _get(url + "/healthz")[0] == 503, timeout_s=5, what="/healthz to answer 503")
    restarted = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state),
                                         "--speed", SPEED), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _get(url + "/healthz")[0] == 200, timeout_s=10, what="the web to reconnect")
        assert "controller" not in _get(url + "/api/status")[1]["detail"]
    finally:
        stop(restarted)
    assert relay_pin(state) is False


def test_run_simulate_starts_both_and_turns_the_relay_off_when_its_control_process_is_killed(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    parent = subprocess.Popen(command("run", "--simulate", "--state-dir", str(state), "--speed", SPEED,
                                      "--host", "127.0.0.1", "--port", str(port)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: relay_pin(state) is True, what="the heater to switch on")
        wait_until(lambda: _reachable(f"http://127.0.0.1:{port}"), what="the dashboard")
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        roles = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children}
        control_pid = next(int(pid) for pid, argv in roles.items() if b"control" in argv)
        assert any(b"web" in argv for argv in roles.values())  # two processes
        os.kill(control_pid, signal.SIGKILL)
        wait_until(lambda: relay_pin(state) is False, timeout_s=5, what="the parent to drive the relay off")
    finally:
        assert stop(parent) == 0
    assert relay_pin(state) is False
