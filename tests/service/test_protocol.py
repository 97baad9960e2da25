"""The control process's session protocol: every frame checked, nothing trusted from the web side."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.qa.processes import wait_until
from controller.service import protocol
from controller.service.control import ControlServer
from controller.service.session import QUEUE_FRAMES, SessionHub
from tests.helpers import run_ticks

# Integers far beyond a float's range too (a 1000-digit number is valid JSON and fits in a frame).
JSON_SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-(10**1000), 10**1000)
                | st.sampled_from([2**1024, -(2**1024), 10**400]) | st.floats() | st.text(max_size=50))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
NAMES = st.sampled_from([*protocol.COMMANDS, "session", "autotune", "", "SET_SETPOINT"]) | st.text(max_size=20)
PRESET_NAMES = st.sampled_from(["Body", "Face", "Hot", ""]) | st.text(max_size=8)
PRESET_LISTS = st.lists(st.fixed_dictionaries({"name": PRESET_NAMES, "setpoint_c": st.floats(30, 70) | JSON_SCALARS}),
                        max_size=3)
DOCS = st.fixed_dictionaries({}, optional={
    "version": st.sampled_from([1, 2, "1"]), "presets": PRESET_LISTS | JSON_VALUES,
    "schedule": st.fixed_dictionaries({}, optional={"auto_off_h": st.floats(-1, 50) | JSON_SCALARS,
                                                    "days": st.dictionaries(st.sampled_from(["mon", "sun", "x"]),
                                                                            JSON_VALUES, max_size=2)}),
    "probe_offset_c": st.floats(-4, 4) | JSON_SCALARS, "extra": JSON_VALUES})
FRAMES = st.fixed_dictionaries({}, optional={"id": JSON_SCALARS, "command": NAMES,
                                             "value": JSON_VALUES | st.floats(-60, 60),
                                             "name": st.sampled_from(["Body", "Feet", "Hot"]) | JSON_VALUES,
                                             "presets": PRESET_LISTS | JSON_VALUES, "settings": DOCS | JSON_VALUES,
                                             "source": JSON_SCALARS | st.sampled_from(["api", "mqtt", "web-ui"]),
                                             "extra": JSON_VALUES})


def _state(controller):
    s = controller.status()
    return (controller.setpoint_c, s.mode, s.fault, len(controller.events), controller.settings(),
            s.auto_off_at)


def test_no_frame_crashes_control_or_changes_more_than_a_valid_command_may(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 3)
    hub = SessionHub(controller)
    low, high = controller.cfg.control.min_setpoint_c, controller.cfg.control.max_setpoint_c

    @settings(max_examples=600, deadline=None)
    @given(frame=FRAMES | st.binary(max_size=200).map(lambda b: {"raw": b}))
    def check(frame):
        before = _state(controller)
        line = frame["raw"] if "raw" in frame else json.dumps(frame, allow_nan=True).encode()
        answer = hub.answer(line)
        protocol.encode(answer)  # always a sendable frame
        after = _state(controller)
        setpoint, doc = after[0], after[4]
        assert low <= setpoint <= high
        assert all(low <= p["setpoint_c"] <= high for p in doc["presets"])  # no preset above the ceiling, ever
        assert -3.0 <= doc["probe_offset_c"] <= 3.0
        if "error" in answer:  # refused: nothing changed
            assert after == before
            return
        # accepted: only what that command does
        command = frame["command"]
        assert answer["id"] == frame["id"] and command in protocol.COMMANDS
        if command == "set_setpoint":
            assert setpoint == frame["value"]
        elif command == "apply_preset":
            assert setpoint == dict((p["name"], p["setpoint_c"]) for p in before[4]["presets"])[frame["name"]]
        else:
            assert setpoint == before[0]
        if command in ("switch_off", "switch_on"):
            assert controller.switched_off is (command == "switch_off")
        if command not in ("set_presets", "apply_settings"):
            assert doc["presets"] == before[4]["presets"]
        if command not in ("set_probe_offset", "calibrate", "apply_settings"):
            assert doc["probe_offset_c"] == before[4]["probe_offset_c"]
        if command not in ("set_auto_off_h", "apply_settings"):
            assert doc["schedule"] == before[4]["schedule"]
        if command == "settings":
            assert answer["result"] == {"settings": before[4]} and after == before

    check()
    # No frame ticks the loop or touches the relay: the pin never switched on.
    assert controller.interlock.relay.is_on is False


def test_a_valid_setpoint_frame_is_applied_and_answered_with_its_id(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 3)
    answer = SessionHub(controller).answer(b'{"id": 5, "command": "set_setpoint", "value": 40, "source": "api"}')
    assert answer == {"id": 5, "result": {"setpoint_c": 40.0}}
    assert controller.setpoint_c == 40.0


def test_a_number_too_large_for_a_float_is_refused_and_the_session_goes_on(make_controller, clock, tree, tmp_path):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 3)
    before = controller.setpoint_c
    with served(tmp_path, controller) as server:
        sock, frames = _session(server.path)
        sock.sendall(b'{"id": 1, "command": "set_setpoint", "value": 1%s}\n' % (b"0" * 400))
        sock.sendall(b'{"id": 2, "command": "switch_off"}\n')
        answers = {}
        while len(answers) < 2:
            frame = json.loads(frames.readline())
            if "id" in frame:
                answers[frame["id"]] = frame
        sock.close()
    assert answers[1]["error"].startswith("set_setpoint value must be a number")
    assert answers[2] == {"id": 2, "result": {"changed": True}}  # the same session, still served
    assert controller.setpoint_c == before


def test_a_check_that_fails_on_an_unforeseen_frame_is_a_refusal_never_an_exception(monkeypatch):
    monkeypatch.setitem(protocol._SHAPES, "value", (lambda v: 1 / 0, "a number"))
    with pytest.raises(protocol.FrameError, match=r"could not be checked \(ZeroDivisionError\)"):
        protocol.parse_command(b'{"id": 3, "command": "set_setpoint", "value": 40}')


def test_a_setpoint_above_the_ceiling_is_refused_by_the_controller_itself(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 3)
    before = controller.setpoint_c
    answer = SessionHub(controller).answer(b'{"id": 1, "command": "set_setpoint", "value": 90}')
    assert answer["id"] == 1 and "outside the allowed range" in answer["error"]
    assert controller.setpoint_c == before


def _session(path, version=protocol.VERSION):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    sock.sendall(protocol.encode({"command": "session", "version": version}))
    return sock, sock.makefile("rb")


@contextlib.contextmanager
def served(tmp_path, controller, *, hub: SessionHub | None = None):
    """``controller``'s sessions (through ``hub``) on a real control socket, stopped on the way out."""
    server = ControlServer(tmp_path / "control.sock", (hub or SessionHub(controller)).commands())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_another_protocol_version_is_refused_with_the_version_this_side_speaks(make_controller, tmp_path):
    with served(tmp_path, make_controller()) as server:
        sock, frames = _session(server.path, version=2)
        answer = json.loads(frames.readline())
        assert answer["error"].startswith("protocol version 2 is not supported: this controller speaks version 1")
        assert frames.readline() == b""  # closed
        sock.close()


def test_a_session_gets_the_hello_then_the_controllers_status_and_answers_commands(make_controller, clock, tree,
                                                                                   tmp_path):
    controller = make_controller()
    run_ticks(controller, clock, tree, [30.0] * 2)
    before = controller.status()
    with served(tmp_path, controller) as server:
        sock, frames = _session(server.path)
        hello = json.loads(frames.readline())
        assert hello == {"hello": "stonewarmer", "version": 1, "boot": hello["boot"]}
        assert re.fullmatch(r"[0-9a-f]{32}", hello["boot"])  # new at every start of the control process
        sock.sendall(b'not json\n{"id": 3, "command": "switch_off", "source": "api"}\n')
        seen = []
        while not any(f.get("id") == 3 for f in seen) and len(seen) < 20:
            seen.append(json.loads(frames.readline()))
        status = next(f["status"] for f in seen if "status" in f)
        assert status == json.loads(json.dumps(before.to_dict()))  # the controller's own
        errors = [f for f in seen if f.get("error")]
        assert errors and errors[0]["id"] is None and "one JSON object" in errors[0]["error"]
        assert {"id": 3, "result": {"changed": True}} in seen
        sock.close()


def test_a_frame_longer_than_the_bound_ends_that_session_only(make_controller, tmp_path):
    with served(tmp_path, make_controller()) as server:
        sock, frames = _session(server.path)
        frames.readline()
        sock.sendall(b"x" * protocol.MAX_FRAME_BYTES)  # no newline within the bound
        rest = [json.loads(line) for line in frames.readlines()]
        assert rest[-1] == {"id": None, "error": f"frame longer than {protocol.MAX_FRAME_BYTES} bytes: session ended"}
        other, other_frames = _session(server.path)  # the server still serves others
        assert json.loads(other_frames.readline())["hello"] == "stonewarmer"
        sock.close()
        other.close()


def test_a_client_that_never_reads_is_dropped_and_never_holds_up_a_tick(make_controller, clock, tree, tmp_path):
    controller = make_controller()
    hub = SessionHub(controller)
    with served(tmp_path, controller, hub=hub) as server:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(str(server.path))
        sock.sendall(protocol.encode({"command": "session", "version": 1}))
        wait_until(lambda: hub.sessions == 1, timeout_s=5, what="the session to be registered")
        slowest_s = 0.0
        for _ in range(QUEUE_FRAMES * 20):  # far more statuses than fit in the socket and the queue
            started = time.perf_counter()
            run_ticks(controller, clock, tree, [30.0])
            slowest_s = max(slowest_s, time.perf_counter() - started)
        assert slowest_s < 0.05  # a tick never waits for the client
        sock.settimeout(5)
        received = b""
        while chunk := sock.recv(65536):  # the server closed the connection: dropped
            received += chunk
        assert len(received) < QUEUE_FRAMES * 20 * 200
        sock.close()


def test_each_new_command_is_answered_with_what_the_controller_did(make_controller, clock, tree):
    controller = make_controller()
    run_ticks(controller, clock, tree, [50.0] * 3)
    hub = SessionHub(controller)

    def ask(**frame):
        return hub.answer(json.dumps({"id": 1, **frame}).encode())

    assert ask(command="apply_preset", name="Face") == {"id": 1, "result": {"setpoint_c": 48.0}}
    assert ask(command="set_auto_off_h", value=2) == {"id": 1, "result": {"auto_off_h": 2.0}}
    assert ask(command="extend")["result"]["auto_off_at"] == clock.wall() + 7200.0
    assert ask(command="calibrate", value=50.4)["result"]["probe_offset_c"] == 0.4
    assert ask(command="set_probe_offset", value=0)["result"] == {"probe_offset_c": 0.0}
    presets = [{"name": "Hands", "setpoint_c": 49.5}]
    assert ask(command="set_presets", presets=presets)["result"]["settings"]["presets"] == presets
    doc = ask(command="settings")["result"]["settings"]
    assert ask(command="apply_settings", settings={**doc, "probe_offset_c": -1})["result"]["settings"] == \
        {**doc, "probe_offset_c": -1.0}
    refused = ask(command="apply_preset", name="Face")
    assert refused["field"] == "preset" and refused["allowed"] == ["Hands"] and controller.setpoint_c == 48.0


def test_a_frame_with_a_payload_of_the_wrong_shape_is_refused_by_the_protocol(make_controller):
    hub = SessionHub(make_controller())
    for frame, word in [({"command": "apply_preset", "name": 5}, "name must be"),
                        ({"command": "apply_settings", "settings": []}, "settings must be"),
                        ({"command": "set_presets", "presets": {}}, "presets must be"),
                        ({"command": "calibrate"}, "value must be"),
                        ({"command": "extend", "value": 1}, "extend takes only source")]:
        answer = hub.answer(json.dumps({"id": 2, **frame}).encode())
        assert answer["id"] == 2 and word in answer["error"], answer
