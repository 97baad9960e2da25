"""The warmer's status and commands: ``/api/status``, ``/api/setpoint``, ``/api/fault/ack``,
``/api/events`` and the API's own description, ``/api/openapi.json``.

Commands go through :meth:`Controller.set_setpoint` and
:meth:`Controller.acknowledge_fault`, which validate everything (no path can set
a setpoint above the ceiling); this layer only checks the shape of the request.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from controller.core.interfaces import UNAVAILABLE_FIELD
from controller.core.loop import CommandError
from web.auth import change_required, read_required, view_required
from web.context import ctx
from web.errors import ApiError, finite_number, json_body, number_arg
from web.openapi import spec

bp = Blueprint("api", __name__)

EVENTS_DEFAULT, EVENTS_MAX = 50, 500
_EVENT_FIELDS = ("wall_time_s", "kind", "message", "fault", "temperature_c", "setpoint_c", "source")


def status_payload(controller, status=None) -> dict[str, Any]:
    """``Status.to_dict()`` plus ``tick_age_s``: controller-clock seconds since that tick."""
    status = status or controller.status()
    payload = status.to_dict()
    payload["tick_age_s"] = round(controller.clock.monotonic() - status.monotonic_s, 3)
    return payload


@bp.get("/api/status")
@view_required
def get_status():
    return Response(ctx().status_json.body(), mimetype="application/json")  # web/snapshot.py


def _refused(exc: CommandError, status: int) -> int:
    """The HTTP status of a refused command: 503 when no controller answered (nothing changed)."""
    return 503 if exc.field == UNAVAILABLE_FIELD else status


@bp.post("/api/setpoint")
@change_required
def set_setpoint(*, source: str):
    controller = ctx().controller
    status = controller.status()
    allowed = {"min": status.min_setpoint_c, "max": status.max_setpoint_c, "unit": "degC"}
    data = json_body(allowed_fields=("setpoint_c",), required={"setpoint_c": allowed})
    value = finite_number(data, "setpoint_c", allowed)
    try:
        new_c = controller.set_setpoint(value, source=source)
    except CommandError as exc:
        raise ApiError(_refused(exc, 422), str(exc), field=exc.field, allowed=exc.allowed) from None
    return jsonify({"setpoint_c": new_c, "status": status_payload(controller)})


@bp.post("/api/fault/ack")
@change_required
def acknowledge_fault(*, source: str):
    json_body(allowed_fields=(), empty_ok=True)
    controller = ctx().controller
    try:
        fault = controller.acknowledge_fault(source=source)
    except CommandError as exc:
        raise ApiError(_refused(exc, 409), str(exc), field=exc.field) from None
    return jsonify({"acknowledged": fault.kind, "status": status_payload(controller)})


@bp.get("/api/events")
@read_required("open_events")
def get_events():
    c = ctx()
    limit = int(number_arg("limit", default=EVENTS_DEFAULT, low=1, high=EVENTS_MAX, integer=True))
    if c.history is not None:
        events = c.history.events(limit=limit)
    else:  # no database: what this process remembers
        events = [{k: e.to_dict()[k] for k in _EVENT_FIELDS} for e in reversed(c.controller.events.since(0))]
    return jsonify({"events": events[:limit]})


@bp.get("/api/openapi.json")
@read_required("open_api_doc")
def openapi():
    return jsonify(spec())
