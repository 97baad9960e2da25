"""The service's control socket: one JSON line in, JSON lines out; only its owner (and root) may connect."""

from __future__ import annotations

import socket

import pytest

from controller.service.control import CommandRefused, Commands, ControlServer, request, socket_path


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
