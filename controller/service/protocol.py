"""The protocol between the control process and the web process, over the control socket.

Newline-delimited JSON frames, each at most :data:`MAX_FRAME_BYTES`. The web process
opens a session on the control socket (``controller/service/control.py``) with

    {"command": "session", "version": 1}

and the control process answers ``{"hello": "stonewarmer", "version": 1, "boot": "<hex>"}``
(or an ``error`` naming the version it speaks, and closes). ``boot`` is new at every start
of the control process, whose event ids count from 1 again: the web side keeps events
apart by ``(boot, id)``. From then on the control process
pushes ``{"status": {...}}`` after every tick and ``{"event": {...}}`` for every event
(the events it holds first), and the web process sends commands

    {"id": 7, "command": "set_setpoint", "value": 40.0, "source": "api"}
    {"id": 8, "command": "acknowledge_fault", "source": "mqtt"}
    {"id": 9, "command": "switch_off", "source": "api"}      (and "switch_on", "extend", "settings")
    {"id": 10, "command": "apply_preset", "name": "Body", "source": "api"}
    {"id": 11, "command": "calibrate", "value": 51.2, "source": "api"}
                                   (and "set_probe_offset", "set_auto_off_h": a number as "value")
    {"id": 12, "command": "set_presets", "presets": [{"name": "Body", "setpoint_c": 52}], "source": "api"}
    {"id": 13, "command": "apply_settings", "settings": {"version": 1, ...}, "source": "api"}

each answered ``{"id": 7, "result": {...}}`` or ``{"id": 7, "error": "...", "field": ...,
"allowed": ...}``. This module only parses and checks the frames: the Controller's own
command methods stay the authority on what a value may be.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from controller.core.numbers import finite_float

VERSION = 1
SESSION = "session"            # the control-socket command that opens a session
MAX_FRAME_BYTES = 4096         # one frame, newline included; a longer one ends the session
MAX_ID = 2**31 - 1
#: Who asked, as the event log records it: "api", "mqtt", "web", "token:<name>" (a token's name: 1-40 of
#: letters, digits, - _ .).
SOURCE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}(:[\w.-]{1,40})?")
COMMANDS = ("set_setpoint", "acknowledge_fault", "switch_off", "switch_on", "apply_preset", "extend",
            "set_probe_offset", "calibrate", "set_auto_off_h", "set_presets", "settings", "apply_settings")
#: The commands that carry a value, its field, and what shape it must have (the controller checks the rest).
PAYLOADS = {"set_setpoint": "value", "set_probe_offset": "value", "calibrate": "value", "set_auto_off_h": "value",
            "apply_preset": "name", "set_presets": "presets", "apply_settings": "settings"}
_SHAPES: dict[str, tuple[Any, str]] = {
    "value": (lambda v: finite_float(v) is not None, "a number"),
    "name": (lambda v: isinstance(v, str) and 0 < len(v) <= 40, "a preset's name (1 to 40 characters)"),
    "presets": (lambda v: isinstance(v, list), 'a list of {"name", "setpoint_c"}'),
    "settings": (lambda v: isinstance(v, dict), "a settings document (an object)"),
}
#: The fields each command may carry, beyond ``id`` and ``command``.
FIELDS = {name: {"source", *([PAYLOADS[name]] if name in PAYLOADS else [])} for name in COMMANDS}


class FrameError(ValueError):
    """A frame that is not a valid command; the message says what is allowed. ``id`` when it had one."""

    def __init__(self, message: str, *, id: int | None = None) -> None:
        super().__init__(message)
        self.id = id


@dataclass(frozen=True, slots=True)
class Command:
    """One checked command frame."""

    id: int
    name: str
    source: str
    value: Any = None  # the payload (PAYLOADS), checked again by the Controller's command


def encode(message: dict[str, Any]) -> bytes:
    """One frame: compact JSON and a newline. NaN and infinities are refused (not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def hello_answer(request: dict[str, Any], *, boot: str) -> dict[str, Any]:
    """The control process's answer to a session request: the hello, or why not (``error``).

    ``boot``: this start of the control process (its event ids count from 1 again at every start).
    """
    version = request.get("version")
    if type(version) is not int or version != VERSION:
        return {"error": f"protocol version {version!r} is not supported: this controller speaks version {VERSION}",
                "version": VERSION}
    return {"hello": "stonewarmer", "version": VERSION, "boot": boot}


def parse_command(line: bytes) -> Command:
    """Check one command frame (without its newline); raise :class:`FrameError` naming what is wrong.

    Whatever goes wrong in the checking is a :class:`FrameError` too: no frame ends the session.
    """
    try:
        return _parse(line)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - a check that failed on a frame nobody thought of: refused
        raise FrameError(f"the frame could not be checked ({type(exc).__name__}): nothing was changed") from None


def _parse(line: bytes) -> Command:
    if len(line) >= MAX_FRAME_BYTES:
        raise FrameError(f"frame longer than {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise FrameError('a frame must be one JSON object on one line, e.g. {"id": 1, "command": "switch_off"}') \
            from None
    if not isinstance(frame, dict):
        raise FrameError('a frame must be one JSON object, e.g. {"id": 1, "command": "switch_off"}')
    frame_id = frame.get("id")
    if type(frame_id) is not int or not 0 <= frame_id <= MAX_ID:
        raise FrameError(f"id must be an integer from 0 to {MAX_ID}, got {_short(frame_id)}")
    name = frame.get("command")
    if name not in COMMANDS:
        raise FrameError(f"unknown command {_short(name)}: one of {', '.join(COMMANDS)}", id=frame_id)
    extra = set(frame) - {"id", "command"} - FIELDS[name]
    if extra:
        raise FrameError(f"{name} takes only {', '.join(sorted(FIELDS[name]))}, got {sorted(extra)[:5]}", id=frame_id)
    source = frame.get("source", "api")
    problem = source_problem(source)
    if problem:
        raise FrameError(problem, id=frame_id)
    value: Any = None
    if name in PAYLOADS:
        key = PAYLOADS[name]
        value = frame.get(key)
        shape_ok, shape = _SHAPES[key]
        if not shape_ok(value):
            raise FrameError(f"{name} {key} must be {shape}, got {_short(value)}", id=frame_id)
    return Command(frame_id, name, source, value)


def source_problem(source: object) -> str | None:
    """Why ``source`` cannot be recorded as who asked (None: it can)."""
    if isinstance(source, str) and SOURCE_RE.fullmatch(source):
        return None
    return f"source must be a word of lower-case letters, digits, - or _ (and :name), got {_short(source)}"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
