"""The service's control socket: one JSON line in, JSON lines out; only its owner (and root) may connect."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from controller.service.control import CommandRefused, Commands, ControlServer, Peers, request, socket_path


@pytest.fixture
def server(tmp_path):
    stopped = []

    def echo(req, send):
        send({"echo": req})
        send({"done": True})

    def refuse(_req, _send):
        raise CommandRefused("not now: a fault is latched")

    def crash(_req, _send):
        raise RuntimeError("a bug")

    server = ControlServer(socket_path(tmp_path), Commands({"echo": echo, "refuse": refuse, "crash": crash},
                                                          stop=lambda: stopped.append(True)))
    server.start()
    yield server
    server.stop()
    assert stopped == [True] and not server.path.exists()


def raw(path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(4096), b""))


def test_a_command_streams_its_answers_and_the_socket_is_for_its_owner_and_group_only(server):
    assert list(request(server.path, {"command": "echo", "x": 1})) == [{"echo": {"command": "echo", "x": 1}},
                                                                        {"done": True}]
    assert server.path.stat().st_mode & 0o777 == 0o660  # the group: the web process's user


@pytest.mark.parametrize("data, error", [
    (b'{"command": "launch"}\n', "unknown command 'launch': one of crash, echo, refuse"),
    (b"autotune please\n", "the request must be one JSON object on one line"),
    (b"[1, 2]\n", "the request must be one JSON object"),
    (b'{"command": "refuse"}\n', "not now: a fault is latched"),
    (b'{"command": "crash"}\n', "the service could not do it (see its journal)"),
    (b"x" * 5000, "request longer than 4096 bytes"),
])
def test_a_bad_or_refused_request_gets_one_error_line_and_the_server_goes_on(server, data, error):
    answer = raw(server.path, data)
    assert answer.count(b"\n") == 1 and error in answer.decode()
    assert list(request(server.path, {"command": "echo"}))[-1] == {"done": True}


def test_no_service_listening_is_an_oserror_the_cli_can_tell_apart(tmp_path):
    with pytest.raises(FileNotFoundError):
        next(request(socket_path(tmp_path), {"command": "echo"}))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path(tmp_path)))  # left behind by a killed service: nobody listens
    stale.close()
    with pytest.raises(ConnectionRefusedError):
        next(request(socket_path(tmp_path), {"command": "echo"}))


def serve_as(tmp_path, peers: Peers) -> ControlServer:
    def echo(req, send):
        send({"echo": req})

    def session(_req, conn, _pending):
        conn.sendall(b'{"hello": "stonewarmer"}\n')

    server = ControlServer(socket_path(tmp_path), Commands({"autotune": echo}, session=session), peers=peers)
    server.start()
    return server


def test_the_web_processs_user_may_open_its_session_but_not_start_autotune(tmp_path):
    server = serve_as(tmp_path, Peers(commands=frozenset({12345}), sessions=frozenset({os.geteuid()})))
    try:
        assert list(request(server.path, {"command": "session", "version": 1})) == [{"hello": "stonewarmer"}]
        (refused,) = request(server.path, {"command": "autotune", "source": "cli"})
        assert refused == {"error": f"'autotune' is not allowed for uid {os.geteuid()}: only for root and the "
                                    "service's user"}
    finally:
        server.stop()
    stranger = serve_as(tmp_path, Peers(commands=frozenset({12345}), sessions=frozenset({12345})))
    try:
        assert "is not allowed for uid" in next(request(stranger.path, {"command": "session", "version": 1}))["error"]
    finally:
        stranger.stop()


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="connects as another user (needs root and a system Python)")
def test_the_uid_is_the_kernels_for_a_real_process_of_another_user():
    nobody = 65534
    where = Path(tempfile.mkdtemp(prefix="stonewarmer-peer-"))  # a dir the other user can reach
    where.chmod(0o755)
    server = serve_as(where, Peers(commands=frozenset({0}), sessions=frozenset({0, nobody})))
    try:
        os.chown(server.path, 0, nobody)  # the socket's group: the web user's, as the installer's groups do
        client = ("import json, socket, sys\n"
                  "for line in sys.argv[2:]:\n"
                  "    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(line.encode() + b'\\n')\n"
                  "    print(s.makefile().readline().strip())\n")
        done = subprocess.run(["/usr/bin/python3", "-c", client, str(server.path), '{"command": "autotune"}',
                               '{"command": "session", "version": 1}'], user=nobody, group=nobody,
                              capture_output=True, text=True, timeout=30, check=True)
    finally:
        server.stop()
        shutil.rmtree(where)
    refused, hello = (json.loads(line) for line in done.stdout.splitlines())
    assert refused == {"error": f"'autotune' is not allowed for uid {nobody}: only for root and the service's user"}
    assert hello == {"hello": "stonewarmer"}


@pytest.mark.parametrize("source", ["x" * 200, "Robert'); DROP", 7, "api\nfault"])
def test_a_source_that_is_not_a_short_word_is_refused_before_the_command_runs(server, source):
    (answer,) = request(server.path, {"command": "echo", "source": source})
    assert answer["error"].startswith("source must be a word of lower-case letters")
