"""The web process's controller: the control process, reached over the control socket.

:class:`RemoteController` has the part of :class:`~controller.core.loop.Controller`
that the web, MQTT and the phone notifications use (``status``, ``add_listener``,
``events``, ``clock`` and the commands of
:class:`~controller.core.interfaces.ControllerView`), so they run unchanged in a process that has no pin and no probe.
It keeps the connection up by itself (reconnecting with backoff). While the
control process is not there, :meth:`status` says so (``detail.controller``:
``"not running"``, and its tick ages, so ``/healthz`` answers 503 and the
dashboard shows the controller as not responding) and commands are refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.core.atomic import atomic_write
from controller.core.config import Config
from controller.core.events import EVENTS_KEPT, Event, EventKind
from controller.core.faults import Fault, FaultKind
from controller.core.interfaces import UNAVAILABLE_FIELD
from controller.core.loop import CommandError
from controller.core.probe import ReadingKind
from controller.core.status import Mode, Status
from controller.service import protocol

log = logging.getLogger(__name__)

EVENTS_CURSOR = "events-cursor.json"  # in the web process's state dir: the last event its sinks had

COMMAND_TIMEOUT_S = 3.0   # the control process answers a command within one tick
RETRY_MIN_S = 0.1         # reconnect after this long, doubling ...
RETRY_MAX_S = 2.0         # ... up to this: the dashboard shows the controller back within 2 s
NOT_RUNNING = "not running"
#: A tick age that /healthz and the dashboard take as "not responding", for a session that is gone.
GONE_AGE_S = 3600.0


class ControllerUnavailable(CommandError):
    """The control process is not running (or not answering): nothing was changed."""


class RemoteClock:
    """The control process's clock, as far as this process can tell (for tick ages)."""

    def __init__(self, remote: RemoteController) -> None:
        self._remote = remote

    def monotonic(self) -> float:
        return self._remote.control_monotonic()

    def wall(self) -> float:
        """The control process's wall clock (its last status plus the time since): the history and the
        dashboard's "now" must be the warmer's, which a simulation runs faster than this one."""
        return self._remote.control_wall()

    def wall_synced(self) -> bool:
        """What the control process last said (the schedule runs there)."""
        return self._remote.status().clock_synced

    def sleep_until(self, deadline_s: float, stop: threading.Event) -> bool:
        return stop.wait(max(0.0, deadline_s - self.monotonic()))


class RemoteEvents:
    """The control process's events as they arrive (an :class:`~controller.core.events.EventLog` to read).

    The control process numbers its events from 1 at every start (its ``boot`` in the hello),
    so an event is known here by ``(boot, id)`` and gets an id of this process's own, always
    increasing (the dashboard's streams read ``since(last id)``). The sinks (history, phone
    notifications) hear of each event once: a new session starts with the latest events
    again, and what a sink already had is only kept for reading. ``cursor_path``: where the
    last event handed to the sinks is kept, so a restarted web process does not hand them
    the same events again (None: in memory only).
    """

    def __init__(self, *, cursor_path: Path | None = None) -> None:
        self._events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._sinks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()
        self._cursor_path = cursor_path
        self._boot = ""            # the control process's start the events come from
        self._seen_id = 0          # its last event kept here
        self._delivered = _read_cursor(cursor_path)  # (boot, id) of the last event handed to the sinks
        self._next_id = 1

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        self._sinks.append(sink)

    def since(self, after_id: int = 0) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.id > after_id]

    def begin(self, boot: str) -> None:
        """A session with the control process's start ``boot`` begins (its events follow)."""
        with self._lock:
            if boot != self._boot:  # the control process started again: its ids count from 1
                self._boot, self._seen_id = boot, 0

    def receive(self, event: Event) -> None:
        with self._lock:
            if event.id <= self._seen_id:
                return  # already here (a new session starts with the latest events again)
            self._seen_id = event.id
            local = dataclasses.replace(event, id=self._next_id)
            self._next_id += 1
            self._events.append(local)
            boot, delivered_id = self._delivered
            if boot == self._boot and event.id <= delivered_id:
                return  # handed to the sinks before this process started: for reading only
            self._delivered = (self._boot, event.id)
        for sink in self._sinks:
            sink(local)
        self._keep_cursor()

    def _keep_cursor(self) -> None:
        if self._cursor_path is None:
            return
        boot, event_id = self._delivered
        try:
            atomic_write(self._cursor_path, json.dumps({"boot": boot, "event_id": event_id}).encode(), durable=False)
        except OSError as exc:  # the events still go on; only a restart may repeat some
            log.error("cannot keep the events' cursor in %s: %s", self._cursor_path, exc.strerror or exc)


def _read_cursor(path: Path | None) -> tuple[str, int]:
    """(boot, id) of the last event handed to the sinks by an earlier run of this process; ("", 0) for none."""
    if path is None:
        return "", 0
    try:
        cursor = json.loads(path.read_text(encoding="utf-8"))
        boot, event_id = cursor["boot"], cursor["event_id"]
    except FileNotFoundError:
        return "", 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("%s is not usable (%s): the latest events may be sent again", path, exc)
        return "", 0
    if not isinstance(boot, str) or type(event_id) is not int:
        return "", 0
    return boot, event_id


class RemoteController:
    """A client of the control process's session; :meth:`start` connects (and reconnects) in the background."""

    def __init__(self, path: Path, cfg: Config, *, events_cursor: Path | None = None) -> None:
        """``events_cursor``: the file that keeps which events the sinks already had (see :class:`RemoteEvents`)."""
        self.path = path
        self.cfg = cfg
        self.clock = RemoteClock(self)
        self.events = RemoteEvents(cursor_path=events_cursor)
        self._listeners: list[Callable[[Status], None]] = []
        self._status = _placeholder(cfg)
        self._received_s = time.monotonic()  # local time the status arrived
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._next_id = 0
        self._answers: dict[int, list[dict[str, Any]]] = {}
        self._answered = threading.Condition()
        self._thread: threading.Thread | None = None

    # --- what the web uses ---

    def status(self) -> Status:
        status = self._status
        if self._connected.is_set():
            return status
        return dataclasses.replace(status, detail={**status.detail, "controller": NOT_RUNNING})

    def control_monotonic(self) -> float:
        """The control clock's time now, estimated from the last status (far ahead of it when gone)."""
        if not self._connected.is_set():
            return self._status.monotonic_s + GONE_AGE_S
        return self._status.monotonic_s + (time.monotonic() - self._received_s)

    def control_wall(self) -> float:
        """The control clock's wall time now (s since the epoch), from the last status; this process's
        own clock before the first status and once the control process is gone."""
        if not self._connected.is_set():
            return time.time()
        return self._status.wall_time_s + (time.monotonic() - self._received_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (real seconds) for the session's first status; return whether it came."""
        return self._connected.wait(timeout_s)

    def add_listener(self, listener: Callable[[Status], None]) -> None:
        self._listeners.append(listener)

    def set_setpoint(self, value: Any, *, source: str = "api") -> float:
        result = self._call({"command": "set_setpoint", "value": value, "source": source})
        return float(result["setpoint_c"])

    def acknowledge_fault(self, *, source: str = "api") -> Fault:
        f = self._call({"command": "acknowledge_fault", "source": source})["fault"]
        return Fault(FaultKind(f["kind"]), f["message"], f["monotonic_s"], f["wall_time_s"])

    def switch_off(self, *, source: str = "api") -> bool:
        return bool(self._call({"command": "switch_off", "source": source})["changed"])

    def switch_on(self, *, source: str = "api") -> bool:
        return bool(self._call({"command": "switch_on", "source": source})["changed"])

    def apply_preset(self, name: Any, *, source: str = "api") -> float:
        return float(self._call({"command": "apply_preset", "name": name, "source": source})["setpoint_c"])

    def extend(self, *, source: str = "api") -> float:
        return float(self._call({"command": "extend", "source": source})["auto_off_at"])

    def set_probe_offset(self, offset_c: Any, *, source: str = "api") -> float:
        return float(self._call({"command": "set_probe_offset", "value": offset_c, "source": source})["probe_offset_c"])

    def calibrate(self, thermometer_c: Any, *, source: str = "api") -> float:
        return float(self._call({"command": "calibrate", "value": thermometer_c, "source": source})["probe_offset_c"])

    def set_auto_off_h(self, hours: Any, *, source: str = "api") -> float:
        return float(self._call({"command": "set_auto_off_h", "value": hours, "source": source})["auto_off_h"])

    def set_presets(self, items: Any, *, source: str = "api") -> dict[str, Any]:
        return self._settings_call({"command": "set_presets", "presets": items, "source": source})

    def settings(self) -> dict[str, Any]:
        return self._settings_call({"command": "settings"})

    def apply_settings(self, doc: Any, *, source: str = "api") -> dict[str, Any]:
        return self._settings_call({"command": "apply_settings", "settings": doc, "source": source})

    def _settings_call(self, message: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = self._call(message)["settings"]
        return settings

    # --- the connection ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="control-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._drop()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        retry_s = RETRY_MIN_S
        while not self._stop.is_set():
            try:
                self._session()
                retry_s = RETRY_MIN_S
            except (OSError, ValueError) as exc:
                log.debug("control process not reachable at %s: %s", self.path, exc)
            if self._connected.is_set():
                log.warning("the control process went away: controller not running")
            self._drop()
            if self._stop.wait(retry_s):
                return
            retry_s = min(RETRY_MAX_S, retry_s * 2)

    def _session(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(COMMAND_TIMEOUT_S)
        sock.connect(str(self.path))
        sock.sendall(protocol.encode({"command": protocol.SESSION, "version": protocol.VERSION}))
        with sock.makefile("rb") as frames:
            hello = json.loads(frames.readline(protocol.MAX_FRAME_BYTES * 16) or b"null")
            if not isinstance(hello, dict) or hello.get("hello") != "stonewarmer":
                raise ValueError(f"the control process refused the session: {hello}")
            self.events.begin(str(hello.get("boot", "")))
            sock.settimeout(None)
            self._sock = sock
            log.info("connected to the control process at %s", self.path)
            for line in frames:
                self._receive(json.loads(line))
                if self._stop.is_set():
                    return

    def _receive(self, frame: dict[str, Any]) -> None:
        if "status" in frame:
            status = _status(frame["status"])
            self._status, self._received_s = status, time.monotonic()
            self._connected.set()
            for listener in self._listeners:
                listener(status)
        elif "event" in frame:
            self.events.receive(_event(frame["event"]))
        elif isinstance(frame.get("id"), int):
            with self._answered:
                self._answers[frame["id"]] = [frame]
                self._answered.notify_all()

    def _drop(self) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self._answered:
            self._answered.notify_all()
        if was_connected:
            for listener in self._listeners:  # the streams show the controller gone at once
                listener(self.status())

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        sock = self._sock
        if sock is None or not self._connected.is_set():
            raise ControllerUnavailable("the controller is not running: nothing was changed", field=UNAVAILABLE_FIELD)
        with self._send_lock:
            self._next_id = (self._next_id + 1) % protocol.MAX_ID
            frame_id = self._next_id
            try:
                frame = protocol.encode({"id": frame_id, **message})
            except ValueError as exc:  # NaN or infinity: not JSON
                raise CommandError(f"{message['command']} is not sendable ({exc}): nothing was changed") from None
            if len(frame) >= protocol.MAX_FRAME_BYTES:  # the control side would end the session
                raise CommandError(f"{message['command']} is too large: at most {protocol.MAX_FRAME_BYTES} bytes "
                                   "are allowed, nothing was changed", field=protocol.PAYLOADS.get(message["command"]))
            try:
                sock.sendall(frame)
            except (OSError, ValueError) as exc:
                raise ControllerUnavailable(f"the controller is not answering ({exc}): nothing was changed",
                                            field=UNAVAILABLE_FIELD) from None
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        with self._answered:
            while frame_id not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._connected.is_set():
                    raise ControllerUnavailable("the controller did not answer; check the dashboard before "
                                                "trying again", field=UNAVAILABLE_FIELD)
                self._answered.wait(left)
            answer = self._answers.pop(frame_id)[0]
        if "error" in answer:
            raise CommandError(answer["error"], field=answer.get("field"), allowed=answer.get("allowed"))
        result: dict[str, Any] = answer["result"]
        return result


def _status(data: dict[str, Any]) -> Status:
    data = dict(data)
    data["mode"] = Mode(data["mode"])
    data["reading_kind"] = ReadingKind(data["reading_kind"])
    data["fault"] = FaultKind(data["fault"]) if data.get("fault") else None
    data["faults_total"] = {FaultKind(k): v for k, v in data.get("faults_total", {}).items()}
    return Status(**data)


def _event(data: dict[str, Any]) -> Event:
    data = dict(data)
    data["kind"] = EventKind(data["kind"])
    data["fault"] = FaultKind(data["fault"]) if data.get("fault") else None
    return Event(**data)


def _placeholder(cfg: Config) -> Status:
    """What the web shows before the control process first answers: no tick yet."""
    c = cfg.control
    return Status(tick=0, monotonic_s=0.0, wall_time_s=time.time(), temperature_c=None, safety_temperature_c=None,
                  reading_age_s=None, reading_kind=ReadingKind.MISSING, setpoint_c=c.setpoint_c,
                  min_setpoint_c=c.min_setpoint_c, max_setpoint_c=c.max_setpoint_c, cutoff_c=c.cutoff_c,
                  duty=0.0, relay_on=False, mode=Mode.STARTING, fault=None, fault_message=None, ready_in_s=None,
                  relay_switches=0, sensor_errors=0, detail={"controller": NOT_RUNNING})
