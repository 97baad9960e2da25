"""The control process's side of a web session (``controller/service/protocol.py``).

Each connected web process gets the status after every tick and every event, and
may send the person's commands. The control thread only *offers* frames to a
bounded queue per client (never a socket write): a client whose queue is full is
slow or stuck and is dropped, so no client can hold up a tick. Every command goes
through the Controller's own command methods, which validate it again; a frame
that is not a valid command gets an error answer and changes nothing.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import uuid
from typing import Any

from controller.core.events import Event
from controller.core.loop import CommandError, Controller
from controller.core.status import Status
from controller.service import protocol
from controller.service.control import Commands
from controller.service.protocol import Command, FrameError

log = logging.getLogger(__name__)

QUEUE_FRAMES = 64   # frames waiting for one client: a minute of statuses; more and it is dropped
BACKLOG_EVENTS = 32  # the latest events a new session starts with


class Client:
    """One session's connection: a bounded queue of frames and the thread that writes them."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.closed = threading.Event()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._writer = threading.Thread(target=self._write, name="control-session-writer", daemon=True)
        self._writer.start()

    def offer(self, frame: bytes) -> None:
        """Queue ``frame`` without waiting; a full queue drops the client."""
        if self.closed.is_set():
            return
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            log.warning("control session: client too slow (%d frames waiting); dropped", QUEUE_FRAMES)
            self.close()

    def finish(self, *, timeout_s: float = 1.0) -> None:
        """Send what is queued (bounded by ``timeout_s``), then close."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._writer.join(timeout=timeout_s)
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        try:
            self.conn.shutdown(socket.SHUT_RDWR)  # wakes the reader; never blocks
        except OSError:
            pass
        try:
            self._queue.put_nowait(None)  # wakes the writer
        except queue.Full:
            pass

    def _write(self) -> None:
        while not self.closed.is_set():
            frame = self._queue.get()
            if frame is None:
                return
            try:
                self.conn.sendall(frame)
            except OSError:
                self.close()


class SessionHub:
    """Fans the controller's statuses and events out to the connected sessions."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.boot = uuid.uuid4().hex  # this start of the control process: its event ids start at 1 again
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        controller.add_listener(self._on_status)
        controller.events.add_sink(self._on_event)

    def commands(self) -> Commands:
        """The session, as a command of the control socket (with the other commands: ``|``)."""
        return Commands(session=self.serve, stop=self.stop)

    @property
    def sessions(self) -> int:
        """How many sessions are connected."""
        with self._lock:
            return len(self._clients)

    def stop(self) -> None:
        """End every session (the control process is stopping)."""
        with self._lock:
            clients, self._clients = list(self._clients), set()
        for client in clients:
            client.close()

    def _on_status(self, status: Status) -> None:  # on the control thread: encode once, offer, return
        self._broadcast(_status_frame(status))

    def _on_event(self, event: Event) -> None:
        self._broadcast(_event_frame(event))

    def _broadcast(self, frame: bytes | None) -> None:
        if frame is None:
            return
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.offer(frame)

    def serve(self, request: dict[str, Any], conn: socket.socket, pending: bytes) -> None:
        """Run one session on ``conn`` until either side ends it (on the connection's thread)."""
        answer = protocol.hello_answer(request, boot=self.boot)
        if "error" in answer:
            conn.sendall(protocol.encode(answer))
            return
        client = Client(conn)
        with self._lock:  # the hello and the backlog go before any live frame
            client.offer(protocol.encode(answer))
            for event in self.controller.events.since(0)[-BACKLOG_EVENTS:]:
                client.offer(_event_frame(event) or b"")
            client.offer(_status_frame(self.controller.status()) or b"")
            self._clients.add(client)
        try:
            self._read(client, pending)
        finally:
            with self._lock:
                self._clients.discard(client)
            client.finish()

    def _read(self, client: Client, data: bytes) -> None:
        while not client.closed.is_set():
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                answer = self.answer(line)
                if "result" in answer:  # the command's effect before its answer: the web's next read shows it
                    client.offer(_status_frame(self.controller.status()) or b"")
                client.offer(protocol.encode(answer))
            if len(data) >= protocol.MAX_FRAME_BYTES:  # the framing is lost: say so and end the session
                client.offer(protocol.encode({"id": None, "error": f"frame longer than {protocol.MAX_FRAME_BYTES} "
                                                                    "bytes: session ended"}))
                return
            try:
                chunk = client.conn.recv(protocol.MAX_FRAME_BYTES)
            except OSError:
                return
            if not chunk:
                return
            data += chunk

    def answer(self, line: bytes) -> dict[str, Any]:
        """The answer to one frame: the command's result, or an error that changed nothing."""
        try:
            command = protocol.parse_command(line)
        except FrameError as exc:
            return {"id": exc.id, "error": str(exc)}
        try:
            return {"id": command.id, "result": self._run(command)}
        except CommandError as exc:
            allowed = exc.allowed if isinstance(exc.allowed, (int, float, str, list, tuple)) else None
            return {"id": command.id, "error": str(exc), "field": exc.field, "allowed": allowed}
        except Exception:  # noqa: BLE001 - a command must not take the session down
            log.exception("control session: %s failed", command.name)
            return {"id": command.id, "error": "the controller could not do it (see its journal)"}

    def _run(self, command: Command) -> dict[str, Any]:
        c, name, value, source = self.controller, command.name, command.value, command.source
        if name == "acknowledge_fault":
            fault = c.acknowledge_fault(source=source)
            return {"fault": {"kind": str(fault.kind), "message": fault.message,
                              "monotonic_s": fault.monotonic_s, "wall_time_s": fault.wall_time_s}}
        if name in ("switch_off", "switch_on"):
            return {"changed": c.switch_off(source=source) if name == "switch_off" else c.switch_on(source=source)}
        if name == "settings":
            return {"settings": c.settings()}
        if name in ("set_presets", "apply_settings"):
            run = c.set_presets if name == "set_presets" else c.apply_settings
            return {"settings": run(value, source=source)}
        if name == "extend":
            return {"auto_off_at": c.extend(source=source)}
        if name == "apply_preset":
            return {"setpoint_c": c.apply_preset(value, source=source)}
        if name == "set_auto_off_h":
            return {"auto_off_h": c.set_auto_off_h(value, source=source)}
        if name in ("set_probe_offset", "calibrate"):
            correct = c.set_probe_offset if name == "set_probe_offset" else c.calibrate
            return {"probe_offset_c": correct(value, source=source)}
        return {"setpoint_c": c.set_setpoint(value, source=source)}


def _status_frame(status: Status) -> bytes | None:
    try:
        return protocol.encode({"status": status.to_dict()})
    except (TypeError, ValueError):  # never raise on the control thread
        log.exception("control session: status not sendable")
        return None


def _event_frame(event: Event) -> bytes | None:
    try:
        return protocol.encode({"event": event.to_dict()})
    except (TypeError, ValueError):
        log.exception("control session: event not sendable")
        return None
