"""The API's contract as OpenAPI 3 (served at ``/api/openapi.json``).

Written by hand and kept honest by a test that compares its paths and methods
with the app's routes.
"""

from __future__ import annotations

from typing import Any

from controller import __version__
from controller.core.status import Mode

_ERROR = {"$ref": "#/components/schemas/Error"}
_NUMBER_OR_NULL = {"type": ["number", "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "The body is not a JSON object", 401: "Not signed in, or a wrong API token",
             403: "No CSRF token, or no password set yet", 404: "No such session or token",
             409: "The warmer refuses now (the error says why)",
             413: "The body is too large", 415: "The body is not JSON", 422: "A field or argument is not allowed",
             429: "Too many wrong passwords: wait (Retry-After)", 503: "Not available now"}
    return {str(c): _json(_ERROR, words[c]) for c in codes}


def _range_params() -> list[dict[str, Any]]:
    return [
        {"name": "since", "in": "query", "schema": {"type": "number", "default": -3600},
         "description": "Unix seconds, or negative: seconds before now (by the warmer's clock)"},
        {"name": "until", "in": "query", "schema": {"type": "number"},
         "description": "Unix seconds, or negative: seconds before now. Default: now"},
        {"name": "resolution", "in": "query",
         "schema": {"type": "string", "enum": ["auto", "1s", "1m"], "default": "auto"},
         "description": "1s: raw readings (kept 48 h); 1m: 1-minute aggregates (kept 90 days); "
                        "auto: 1s up to a 2 h span"},
    ]


_STATUS = {
    "type": "object",
    "required": ["temperature_c", "setpoint_c", "min_setpoint_c", "max_setpoint_c", "duty", "relay_on",
                 "mode", "fault", "ready_in_s", "reading_age_s"],
    "properties": {
        "tick": {"type": "integer"},
        "monotonic_s": {"type": "number", "description": "controller clock at this tick"},
        "wall_time_s": {"type": "number", "description": "Unix time of this tick (display only)"},
        "tick_age_s": {"type": "number", "description": "controller-clock seconds since this tick"},
        "temperature_c": {**_NUMBER_OR_NULL, "description": "bath temperature; null: no valid reading"},
        "safety_temperature_c": _NUMBER_OR_NULL,
        "reading_age_s": {**_NUMBER_OR_NULL, "description": "seconds since the last valid reading"},
        "reading_kind": {"type": "string"},
        "setpoint_c": {"type": "number"},
        "min_setpoint_c": {"type": "number"},
        "max_setpoint_c": {"type": "number"},
        "cutoff_c": {"type": "number"},
        "duty": {"type": "number", "minimum": 0, "maximum": 1},
        "relay_on": {"type": "boolean"},
        "mode": {"type": "string", "enum": [str(m) for m in Mode]},
        "fault": {"type": ["string", "null"]},
        "fault_message": {"type": ["string", "null"], "description": "the fault in words, with what to do"},
        "ready_in_s": {**_NUMBER_OR_NULL, "description": "estimate; 0 when ready; null unknown"},
        "relay_switches": {"type": "integer"},
        "sensor_errors": {"type": "integer"},
        "faults_total": {"type": "object", "additionalProperties": {"type": "integer"}},
        "detail": {"type": "object"},
        "bath": {"type": "object", "description": "what the warmer learned about its bath: `summary` in words, "
                 "`too_weak` (a sentence, or null), the learned figures and the estimated water"},
        "switched_off": {"type": "boolean", "description": "switched off by a person (true also under a fault)"},
        "probe_offset_c": {"type": "number", "description": "[probe] offset_c: temperature_c is the reading plus this"},
        "raw_temperature_c": {**_NUMBER_OR_NULL, "description": "the probe's own fresh reading, before the offset"},
        "presets": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "setpoint_c": {"type": "number"}}}},
        "auto_off_at": {**_NUMBER_OR_NULL, "description": "when auto-off will switch the warmer off (seconds since "
                        "the epoch); null: switched off, or [schedule] auto_off_h = 0"},
        "next_start": {**_NUMBER_OR_NULL, "description": "when the schedule will next switch the warmer on to be "
                       "ready in time (seconds since the epoch); null: none planned, or the clock is not synchronised"},
        "clock_synced": {"type": "boolean", "description": "the wall clock is synchronised (NTP): the schedule "
                         "starts and stops nothing until it is"},
        "time_zone": {"type": "string", "description": "the warmer's time zone, of the schedule's HH:MM "
                      '(an IANA name such as "Europe/Berlin", else its abbreviation)'},
        "utc_offset_s": {"type": "number", "description": "that zone's offset from UTC now (seconds)"},
    },
}

_EVENT = {
    "type": "object",
    "properties": {
        "wall_time_s": {"type": "number"}, "kind": {"type": "string"}, "message": {"type": "string"},
        "fault": {"type": ["string", "null"]}, "temperature_c": _NUMBER_OR_NULL,
        "setpoint_c": _NUMBER_OR_NULL, "source": {"type": "string"},
    },
}

_SESSION = {
    "type": "object",
    "properties": {
        "signed_in": {"type": "boolean"}, "password_set": {"type": "boolean"},
        "csrf_token": {"type": "string", "description": "send as X-CSRF-Token with every change"},
        "open_viewing": {"type": "boolean"},
        "how_to_set_password": {"type": ["string", "null"]}, "problem": {"type": ["string", "null"]},
    },
}

_HHMM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
_SETTINGS = {
    "type": "object", "required": ["version", "presets", "schedule", "probe_offset_c", "notify"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "presets": {"type": "array", "maxItems": 12, "items": {
            "type": "object", "required": ["name", "setpoint_c"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9 _-]{0,23}$"},
                           "setpoint_c": {"type": "number", "description": "within min_setpoint_c..max_setpoint_c"}}}},
        "schedule": {"type": "object", "required": ["auto_off_h", "days"], "additionalProperties": False,
                     "properties": {
                         "auto_off_h": {"type": "number", "minimum": 0, "maximum": 48, "description": "0: never"},
                         "days": {"type": "object", "additionalProperties": False, "properties": {
                             day: {"type": "object", "additionalProperties": False, "properties": {
                                 "ready_by": _HHMM, "preset": {"type": "string"}, "off_at": _HHMM}}
                             for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}}},
        "probe_offset_c": {"type": "number", "minimum": -3, "maximum": 3},
        "notify": {"type": "object", "required": ["ntfy_url"], "additionalProperties": False,
                   "properties": {"ntfy_url": {"type": ["string", "null"],
                                               "description": "https://server/topic, no user or password"}}},
    },
}


def _command(summary: str, body: dict[str, Any] | None, answer: dict[str, Any], *codes: int) -> dict[str, Any]:
    """``POST`` of a person's command: a change, answered with what it did and the status."""
    op: dict[str, Any] = {"summary": summary, "security": _CHANGE_SECURITY, "responses": {
        "200": _json({"type": "object", "properties": {**answer, "status": {"$ref": "#/components/schemas/Status"}}},
                     "Done"),
        **_errors(400, 401, 403, 413, 415, 422, 503, *codes)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, **body}}}}
    return {"post": op}


def _settings_ops() -> dict[str, Any]:
    settings = {"$ref": "#/components/schemas/Settings"}
    replace = {"security": _CHANGE_SECURITY,
               "requestBody": {"required": True, "content": {"application/json": {"schema": settings}}},
               "responses": {"200": _json(settings, "In force now"), **_errors(400, 401, 403, 413, 415, 422, 503)}}
    read = {"security": _READ_SECURITY, "responses": {"200": _json(settings, "In force now"), **_errors(401, 503)}}
    return {
        "/api/settings": {
            "get": {"summary": "The settings: presets, schedule and auto-off, probe offset, ntfy address", **read},
            "put": {"summary": "Replace all the settings (validated whole: all apply or none)", **replace}},
        "/api/settings/export": {"get": {"summary": "The settings as a file to keep (stonewarmer-settings.json)",
                                         **read}},
        "/api/settings/import": {"post": {"summary": "Restore exported settings (as PUT /api/settings)",
                                          **replace}},
        "/api/mode": _command("Switch the warmer off (heater held off, all else goes on) or on (heat)",
                              {"required": ["mode"], "properties": {"mode": {"enum": ["off", "heat"]}}},
                              {"mode": {"type": "string"}}),
        "/api/preset": _command("Apply a preset (its setpoint)",
                                {"required": ["name"], "properties": {"name": {"type": "string"}}},
                                {"setpoint_c": {"type": "number"}}),
        "/api/auto-off/extend": _command("Push auto-off back auto_off_h hours from now (409: nothing to push back)",
                                         None, {"auto_off_at": {"type": "number"}}, 409),
        "/api/probe/calibrate": _command(
            "Correct the probe: to what a thermometer reads now (409: no fresh reading), or an offset directly",
            {"minProperties": 1, "maxProperties": 1, "properties": {
                "thermometer_c": {"type": "number", "description": "what a calibrated thermometer in the bath reads"},
                "probe_offset_c": {"type": "number", "minimum": -3, "maximum": 3}}},
            {"probe_offset_c": {"type": "number"}}, 409),
    }


_CHANGE_SECURITY: list[dict[str, list[str]]] = [{"session": [], "csrf": []}, {"token": []}]
_READ_SECURITY: list[dict[str, list[str]]] = [{"session": []}, {"token": []}]

_SESSION_INFO = {
    "type": "object", "required": ["id", "created_wall_s", "last_seen_wall_s", "client", "current"],
    "properties": {
        "id": {"type": "string", "description": "names the session here; cannot sign anyone in"},
        "created_wall_s": {"type": "number"}, "last_seen_wall_s": {"type": "number"},
        "client": {"type": "string", "description": "the address it signed in from"},
        "user_agent": {"type": "string"}, "current": {"type": "boolean", "description": "this browser's own"},
    },
}
_TOKEN_INFO = {"type": "object", "required": ["name"],
               "properties": {"name": {"type": "string"}, "created_wall_s": {"type": ["number", "null"]}}}


def _list_op(summary: str, key: str, item: dict[str, Any]) -> dict[str, Any]:
    """``GET`` of a list of the owner's things (sessions, tokens): a sign-in or a token."""
    return {"get": {"summary": summary, "security": _READ_SECURITY, "responses": {
        "200": _json({"type": "object", "properties": {key: {"type": "array", "items": item}}}, key.title()),
        **_errors(401)}}}


def _delete_op(summary: str, param: str, description: str, answer_key: str, *more_codes: int) -> dict[str, Any]:
    """``DELETE`` of one of them by the path parameter ``param``: a change."""
    return {"delete": {
        "summary": summary, "security": _CHANGE_SECURITY,
        "parameters": [{"name": param, "in": "path", "required": True, "schema": {"type": "string"},
                        "description": description}],
        "responses": {"200": _json({"type": "object", "properties": {answer_key: {"type": "string"}}},
                                   answer_key.title()),
                      **_errors(401, 403, 404, *more_codes)}}}


def _sse_message(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["event", "data"], "additionalProperties": False, "properties": {
        "event": {"const": kind},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}}}


# Before OpenAPI 3.2 (``itemSchema``) the schema of text/event-stream describes ONE message.
_STREAM_MESSAGE = {"oneOf": [
    {"type": "object", "required": ["retry"], "additionalProperties": False,
     "properties": {"retry": {"type": "integer", "description": "reconnect delay (ms); the first message"}}},
    _sse_message("status", {"$ref": "#/components/schemas/Status"}),
    _sse_message("event", {"$ref": "#/components/schemas/Event"}),
    _sse_message("ping", {"type": "object", "required": ["tick_age_s"],
                          "properties": {"tick_age_s": {"type": "number"}}}),
]}


def spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "stonewarmer",
            "version": __version__,
            "description": "A hot-stone warmer's status, history and commands. Temperatures in degC, "
                           "times in seconds. The live status is open on the LAN unless [web] open_viewing = "
                           "false; the history, the events, /metrics and this document need a sign-in or an API "
                           "token unless [web] open_history, open_events, open_metrics, open_api_doc = true; "
                           "changes need a signed-in session with its CSRF token, or an API token. A Host header "
                           "that is not the warmer's own name or address gets 421.",
        },
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "stonewarmer_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "token": {"type": "http", "scheme": "bearer",
                          "description": "created with `stonewarmer token --name NAME`"},
            },
            "schemas": {
                "Status": _STATUS,
                "Event": _EVENT,
                "Session": _SESSION,
                "Settings": _SETTINGS,
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "field": {"type": "string"}, "allowed": {}}},
            },
        },
        "paths": {
            "/api/status": {"get": {
                "summary": "The latest status snapshot",
                "responses": {"200": _json({"$ref": "#/components/schemas/Status"}, "Status"), **_errors(401)}}},
            "/api/setpoint": {"post": {
                "summary": "Set the target temperature",
                "security": _CHANGE_SECURITY,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["setpoint_c"], "additionalProperties": False,
                    "properties": {"setpoint_c": {"type": "number",
                                                  "description": "within min_setpoint_c..max_setpoint_c"}}}}}},
                "responses": {
                    "200": _json({"type": "object", "properties": {
                        "setpoint_c": {"type": "number"}, "status": {"$ref": "#/components/schemas/Status"}}},
                        "Set"),
                    **_errors(400, 401, 403, 413, 415, 422)}}},
            "/api/fault/ack": {"post": {
                "summary": "Acknowledge the latched fault (refused until the bath is safe)",
                "security": _CHANGE_SECURITY,
                "responses": {
                    "200": _json({"type": "object", "properties": {
                        "acknowledged": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"}}},
                        "Acknowledged"),
                    **_errors(401, 403, 409, 415, 422)}}},
            "/api/events": {"get": {
                "summary": "Recent events (faults, acknowledges, setpoint changes), newest first",
                "security": _READ_SECURITY,
                "parameters": [{"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}}],
                "responses": {"200": _json({"type": "object", "properties": {"events": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}, "Events"),
                    **_errors(401, 422)}}},
            "/api/history": {"get": {
                "summary": "Temperature, setpoint and duty over time, one array per column",
                "security": _READ_SECURITY,
                "parameters": _range_params(),
                "responses": {"200": _json({"type": "object", "properties": {
                    "since_s": {"type": "number"}, "until_s": {"type": "number"},
                    "resolution": {"type": "string", "enum": ["1s", "1m"]}, "count": {"type": "integer"},
                    "truncated": {"type": "boolean"},
                    "series": {"type": "object", "additionalProperties": {"type": "array"},
                               "description": "1s: t_s, temperature_c, setpoint_c, duty, relay_on, mode; "
                                              "1m: t_s, temperature_c, temperature_min_c, temperature_max_c, "
                                              "setpoint_c, duty, relay_on_ratio"}}}, "History"),
                    **_errors(401, 422, 503)}}},
            "/api/history.csv": {"get": {
                "summary": "The same as /api/history, as CSV with a time_utc column",
                "security": _READ_SECURITY,
                "parameters": _range_params(),
                "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                              **_errors(401, 422, 503)}}},
            "/api/stream": {"get": {
                "summary": "Live updates (Server-Sent Events): status, event and ping messages",
                "responses": {"200": {"description": "text/event-stream",
                                      "content": {"text/event-stream": {"schema": _STREAM_MESSAGE}}},
                              **_errors(401, 503)}}},
            "/api/session": {
                "get": {"summary": "Sign-in state and the CSRF token",
                        "responses": {"200": _json({"$ref": "#/components/schemas/Session"}, "Session")}},
                "post": {"summary": "Sign in (needs the CSRF token of GET /api/session)",
                         "security": [{"csrf": []}],
                         "requestBody": {"required": True, "content": {"application/json": {"schema": {
                             "type": "object", "required": ["password"],
                             "properties": {"password": {"type": "string"}}}}}},
                         "responses": {"200": _json({"$ref": "#/components/schemas/Session"}, "Signed in"),
                                       **_errors(400, 401, 403, 413, 415, 422, 429)}},
                "delete": {"summary": "Sign out: the session ends on the warmer too", "security": [{"csrf": []}],
                           "responses": {"200": _json({"$ref": "#/components/schemas/Session"}, "Signed out"),
                                         **_errors(403)}},
            },
            "/api/openapi.json": {"get": {"summary": "This document", "security": _READ_SECURITY,
                                          "responses": {"200": {"description": "OpenAPI 3"}, **_errors(401)}}},
            "/api/sessions": _list_op("The signed-in browsers, most recently seen first", "sessions",
                                      _SESSION_INFO),
            "/api/sessions/{session_id}": _delete_op("End a session: that browser must sign in again", "session_id",
                                                     "an id from GET /api/sessions", "ended"),
            "/api/tokens": _list_op("The API tokens' names (a token itself is shown only once, on the Pi)", "tokens",
                                    _TOKEN_INFO),
            "/api/tokens/{name}": _delete_op("Revoke an API token", "name", "a name from GET /api/tokens", "revoked",
                                             503),
            **_settings_ops(),
            "/healthz": {"get": {
                "summary": "200 while the control loop ticks on time, else 503",
                "responses": {"200": _json({"type": "object"}, "Ticking on time"),
                              "503": _json({"type": "object"}, "The control loop is late or not running")}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (stonewarmer_temperature_celsius, ...)",
                "security": _READ_SECURITY,
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_errors(401)}}},
        },
    }
