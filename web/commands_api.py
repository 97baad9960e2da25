"""A person's day from the phone: ``/api/mode`` (off / heat), ``/api/preset``,
``/api/auto-off/extend`` and ``/api/probe/calibrate``.

This layer only checks the shape of a request; the controller validates every value again
(over the session socket in the two-process service) and refuses with what is allowed. A
refused command changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, jsonify

from controller.core.interfaces import UNAVAILABLE_FIELD
from controller.core.loop import CommandError
from controller.core.settings import NO_READING_FIELD
from web.api import status_payload
from web.auth import change_required
from web.context import ctx
from web.errors import ApiError, finite_number, json_body

bp = Blueprint("commands", __name__)
T = TypeVar("T")

MODES = ("off", "heat")
#: Refusals that are about now, not about the value: 409 (the error says what to wait for).
NOT_NOW_FIELDS = ("auto_off", NO_READING_FIELD)


def refused(exc: CommandError) -> ApiError:
    """The API's answer to a refused command: 503 no controller, 409 not now, else 422."""
    status = 503 if exc.field == UNAVAILABLE_FIELD else 409 if exc.field in NOT_NOW_FIELDS else 422
    return ApiError(status, str(exc), field=exc.field, allowed=exc.allowed)


def run(command: Callable[[], T]) -> T:
    """``command()``'s result; its refusal as the API's answer (:func:`refused`)."""
    try:
        return command()
    except CommandError as exc:
        raise refused(exc) from None


@bp.post("/api/mode")
@change_required
def set_mode(*, source: str):
    data = json_body(allowed_fields=("mode",), required={"mode": list(MODES)})
    mode = data["mode"]
    if mode not in MODES:
        raise ApiError(422, f"mode {mode!r:.40} is not allowed: must be \"off\" or \"heat\"", field="mode",
                       allowed=list(MODES))
    controller = ctx().controller
    run(lambda: controller.switch_off(source=source) if mode == "off" else controller.switch_on(source=source))
    return jsonify({"mode": mode, "status": status_payload(controller)})


@bp.post("/api/preset")
@change_required
def apply_preset(*, source: str):
    controller = ctx().controller
    names = [p["name"] for p in controller.status().presets]
    data = json_body(allowed_fields=("name",), required={"name": names})
    setpoint_c = run(lambda: controller.apply_preset(data["name"], source=source))
    return jsonify({"setpoint_c": setpoint_c, "status": status_payload(controller)})


@bp.post("/api/auto-off/extend")
@change_required
def extend_auto_off(*, source: str):
    json_body(allowed_fields=(), empty_ok=True)
    controller = ctx().controller
    auto_off_at = run(lambda: controller.extend(source=source))
    return jsonify({"auto_off_at": auto_off_at, "status": status_payload(controller)})


@bp.post("/api/probe/calibrate")
@change_required
def calibrate(*, source: str):
    data = json_body(allowed_fields=("thermometer_c", "probe_offset_c"))
    if len(data) != 1:
        raise ApiError(422, 'give exactly one of "thermometer_c" (what your thermometer reads) or "probe_offset_c"',
                       field="body", allowed={"fields": ["thermometer_c", "probe_offset_c"]})
    (key,) = data
    value = finite_number(data, key, {"unit": "degC"})
    controller = ctx().controller
    offset_c = run(lambda: controller.calibrate(value, source=source) if key == "thermometer_c"
                   else controller.set_probe_offset(value, source=source))
    return jsonify({"probe_offset_c": offset_c, "status": status_payload(controller)})
