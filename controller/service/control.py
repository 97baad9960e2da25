"""The service's local command socket: how ``sudo stonewarmer autotune`` reaches the running service.

A Unix stream socket, ``control.sock`` in the state dir, mode 0660: only the
service user, its group (the web process's user is in it) and root can connect
(no network, no password). Who connected is then known from the kernel
(``SO_PEERCRED``, see :class:`Peers`): the web process's user may open its
session and nothing else; the other commands (autotune) are for root and the
service's own user. A client sends one
JSON object on one line, ``{"command": NAME, ...}``; the service answers with JSON
lines until it closes the connection. The commands are given by the layer that
owns them (:class:`Commands`: autotune's come from ``controller.tuning.job``), so
this module knows nothing of what they do. A client that goes away ends only its
own connection, never what it started. The web process's session
(``controller/service/protocol.py``) is one more command on the same socket,
``{"command": "session", "version": 1}``, that keeps the connection open.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.service.protocol import SESSION, source_problem

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"  # in the state dir
WEB_USER = "stonewarmer-web"  # the web process's user (the installer creates it)
MAX_REQUEST_BYTES = 4096
REQUEST_TIMEOUT_S = 5.0       # a client has this long to send its request line

#: ``handler(request, send)``: ``send(message)`` writes one JSON line and returns False once
#: the client has gone. A handler raises :class:`CommandRefused` to answer ``{"error": ...}``.
Handler = Callable[[dict[str, Any], Callable[[dict[str, Any]], bool]], None]
#: ``session(request, conn, pending)``: runs a long-lived session on the connection; ``pending``
#: holds what the client sent after its request line.
SessionHandler = Callable[[dict[str, Any], socket.socket, bytes], None]


class CommandRefused(Exception):
    """The request cannot be done; the message says why (sent to the client as ``{"error": ...}``)."""


@dataclass
class Commands:
    """What the socket offers: command name -> handler, and what to stop with the service."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    stop: Callable[[], None] = lambda: None
    session: SessionHandler | None = None  # the web process's session (controller/service/session.py)

    def __or__(self, other: Commands) -> Commands:
        """Both sets of commands on one socket."""
        def stop() -> None:
            self.stop()
            other.stop()

        return Commands({**self.handlers, **other.handlers}, stop, other.session or self.session)


@dataclass(frozen=True)
class Peers:
    """Who may do what on the socket, by the uid the kernel gives for the connection."""

    commands: frozenset[int]  # every command: root and the service's own user
    sessions: frozenset[int]  # the web session only: those and the web process's user

    @classmethod
    def of_this_service(cls, *, web_user: str = WEB_USER) -> Peers:
        """Root and this process's user for everything; ``web_user`` (when it exists) for the session."""
        own = frozenset({0, os.geteuid()})
        try:
            web = {pwd.getpwnam(web_user).pw_uid}
        except KeyError:  # no such user: a development checkout, where both processes run as one user
            web = set()
        return cls(commands=own, sessions=own | web)

    def check(self, uid: int, command: object) -> None:
        """Raise :class:`CommandRefused` unless the user ``uid`` may send ``command``."""
        allowed = self.sessions if command == SESSION else self.commands
        if uid not in allowed:
            raise CommandRefused(f"{command!r} is not allowed for uid {uid}: only for root and the service's user"
                                 + (" and the web process's user" if command == SESSION else ""))


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (from the kernel: it cannot lie)."""
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return int(uid)


def socket_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / SOCKET_NAME


class ControlServer:
    """Serves :class:`Commands` on ``path``, one thread per connection."""

    def __init__(self, path: Path, commands: Commands, *, peers: Peers | None = None) -> None:
        self.path = path
        self.commands = commands
        self.peers = peers or Peers.of_this_service()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Bound and listening under a temporary name, then renamed into place: a client that
        # sees the path can connect at once, and only ever to a socket of mode 0660. (A socket
        # file needs write permission to connect to, so nobody else can use the temporary one,
        # and no process-wide umask is changed under the other threads.)
        building = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        building.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(str(building))
            os.chmod(building, 0o660)  # the service user, its group (the web process's user) and root
            sock.listen(4)
            os.replace(building, self.path)  # also replaces one left by a process that was killed
        except BaseException:
            sock.close()
            building.unlink(missing_ok=True)
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name="control-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.commands.stop()
        if self._sock is not None:
            sock, self._sock = self._sock, None
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
            except OSError:
                pass
            sock.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed: the service is stopping
            threading.Thread(target=self._serve, args=(conn,), name="control-socket-client", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            def send(message: dict[str, Any]) -> bool:
                try:
                    conn.sendall(json.dumps(message).encode() + b"\n")
                except OSError:
                    return False
                return True

            try:
                uid = peer_uid(conn)
                request, pending = _read_request(conn)
                self.peers.check(uid, request.get("command"))
                if request.get("command") == SESSION and self.commands.session is not None:
                    self.commands.session(request, conn, pending)
                    return
                handler = self.commands.handlers.get(str(request.get("command")))
                if handler is None:
                    raise CommandRefused(f"unknown command {request.get('command')!r}: one of "
                                         f"{', '.join(sorted(self.commands.handlers))}")
                handler(request, send)
            except CommandRefused as exc:
                send({"error": str(exc)})
            except Exception:  # noqa: BLE001 - a bad request must not take the service down
                log.exception("control socket: the request failed")
                send({"error": "the service could not do it (see its journal)"})


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], bytes]:
    """The request line, and whatever the client sent after it."""
    conn.settimeout(REQUEST_TIMEOUT_S)
    data = b""
    try:
        while b"\n" not in data:
            chunk = conn.recv(MAX_REQUEST_BYTES)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                raise CommandRefused(f"request longer than {MAX_REQUEST_BYTES} bytes")
    except TimeoutError:
        raise CommandRefused(f"no request line within {REQUEST_TIMEOUT_S:g} s") from None
    finally:
        conn.settimeout(None)
    try:
        line, _, pending = data.partition(b"\n")
        request = json.loads(line)
    except ValueError:
        raise CommandRefused('the request must be one JSON object on one line, e.g. {"command": "..."}') from None
    if not isinstance(request, dict):
        raise CommandRefused('the request must be one JSON object, e.g. {"command": "..."}')
    problem = source_problem(request.get("source", "cli"))  # it goes into the event log
    if problem:
        raise CommandRefused(problem)
    return request, pending


def request(path: Path, message: dict[str, Any], *, connect_timeout_s: float = 5.0) -> Iterator[dict[str, Any]]:
    """Send ``message`` to the service at ``path``; yield its answers until it closes.

    Raises ``OSError`` (``FileNotFoundError``, ``ConnectionRefusedError``) when no
    service listens there.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(connect_timeout_s)
        sock.connect(str(path))
        sock.settimeout(None)
        sock.sendall(json.dumps(message).encode() + b"\n")
        with sock.makefile("rb") as answers:
            for line in answers:
                yield json.loads(line)
