"""The control process and the web process: each survives the other (real processes, simulated bath)."""

from __future__ import annotations

import contextlib
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
from tests.integrations.ntfy_receiver import Receiver
from web import web_state_dir
from web.credentials import CredentialStore

SPEED = "20"  # a tick every 50 ms of real time
PROBE_FAULT = "Probe problem: heater off"  # the phone notification's title


def _get(url: str, *, data: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """GET ``url`` (POST ``data`` as JSON, with an API token): the status code and the JSON answer."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    body = None if data is None else json.dumps(data).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _commands(path: Path, frames: list[dict]) -> list[dict]:
    """Send commands in a session of our own on the control socket; their answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(protocol.encode({"command": "session", "version": protocol.VERSION}))
        sock.sendall(b"".join(protocol.encode({"id": n, **frame}) for n, frame in enumerate(frames, 1)))
        answers: dict[int, dict] = {}
        for line in sock.makefile("rb"):
            frame = json.loads(line)
            if isinstance(frame.get("id"), int):
                answers[frame["id"]] = frame
            if len(answers) == len(frames):
                return [answers[n] for n in sorted(answers)]
    raise AssertionError(f"the control process answered only {answers}")


def _ticks(path: Path, count: int, *, timeout_s: float = 60.0) -> list[dict]:
    """The next ``count`` statuses the control process pushes to a session (at most ``timeout_s`` of real time)."""
    statuses = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(protocol.encode({"command": "session", "version": protocol.VERSION}))
        frames = sock.makefile("rb")
        deadline = time.monotonic() + timeout_s
        while len(statuses) < count and time.monotonic() < deadline:
            frame = json.loads(frames.readline())
            if "status" in frame:
                statuses.append(frame["status"])
    return statuses


@pytest.fixture
def pair(tmp_path):
    """A control process and a web process, started as the two units start them."""
    with started_pair(tmp_path) as processes:
        yield processes


@contextlib.contextmanager
def started_pair(tmp_path, *options: str):
    """The two processes on one state dir (``options``: more for both, e.g. ``--config FILE``)."""
    state = tmp_path / "state"
    port = free_port()
    control = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state),
                                       "--speed", SPEED, *options), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    web = subprocess.Popen(command("run", "--role", "web", "--simulate", "--state-dir", str(state), "--host",
                                   "127.0.0.1", "--port", str(port), *options),
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


def test_killing_the_web_process_leaves_the_ticks_going_and_the_relay_as_it_was(pair):
    control, web, state, _url = pair
    web.send_signal(signal.SIGKILL)
    web.wait(5)
    statuses = _ticks(state / "control.sock", 40)  # 2 s of real time at this speed, more on a loaded machine
    assert control.poll() is None
    assert len(statuses) == 40
    assert [s["tick"] for s in statuses] == list(range(statuses[0]["tick"], statuses[0]["tick"] + 40))
    # A tick that waited for the dead web process would stand still for a socket timeout (the
    # session's 1 s, the request's 5 s). Ticks are 50 ms apart, which a loaded shared machine
    # stretches by tenths of a second: the bound lies between the two. (How long a tick takes is
    # the bench's to measure, docs/bench.md, not a test's.)
    starts_s = [s["monotonic_s"] / float(SPEED) for s in statuses]  # each tick's start, real seconds
    gaps_s = [later - earlier for earlier, later in zip(starts_s, starts_s[1:], strict=False)]
    assert max(gaps_s) < 0.9
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
    token = CredentialStore(web_state_dir(state)).create_token("test")
    assert _get(url + "/api/setpoint", data={"setpoint_c": 44.0}, token=token)[0] == 200
    control.send_signal(signal.SIGKILL)
    control.wait(5)
    wait_until(lambda: _get(url + "/healthz")[0] == 503, timeout_s=5, what="/healthz to answer 503")
    code, refused = _get(url + "/api/setpoint", data={"setpoint_c": 46.0}, token=token)
    assert (code, refused["field"]) == (503, "controller") and "not running" in refused["error"]
    restarted = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state),
                                         "--speed", SPEED), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _get(url + "/healthz")[0] == 200, timeout_s=10, what="the web to reconnect")
        status = _get(url + "/api/status")[1]
        assert "controller" not in status["detail"]
        assert status["setpoint_c"] == 44.0  # the refused command changed nothing, not even later
        assert _get(url + "/api/setpoint", data={"setpoint_c": 46.0}, token=token)[0] == 200
    finally:
        stop(restarted)
    assert relay_pin(state) is False


def test_a_fault_after_the_control_process_restarts_reaches_the_phone(tmp_path):
    config = tmp_path / "stonewarmer.toml"
    with Receiver() as receiver:
        config.write_text(f'[notify]\nntfy_url = "{receiver.url("room-1")}"\n')
        with started_pair(tmp_path, "--config", str(config)) as (control, _web, state, url):
            answers = _commands(state / "control.sock", [{"command": "set_setpoint", "value": 40.0 + n}
                                                         for n in range(8)])  # event ids up to 9 in this start
            assert all("result" in a for a in answers), answers
            control.send_signal(signal.SIGKILL)
            control.wait(5)
            wait_until(lambda: _get(url + "/healthz")[0] == 503, timeout_s=5, what="/healthz to answer 503")
            restarted = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir",
                                                 str(state), "--speed", SPEED, "--config", str(config),
                                                 "--inject", "unplug@10"),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:  # its fault is one of its first events: ids the first start used already
                wait_until(lambda: any(post.headers["Title"] == PROBE_FAULT for post in receiver.posts),
                           timeout_s=20, what="the fault's notification")
            finally:
                stop(restarted)
    assert [post.headers["Title"] for post in receiver.posts].count(PROBE_FAULT) == 1


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
