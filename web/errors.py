"""JSON errors and request bodies for the API.

Every refusal is a 4xx JSON object ``{"error": words, "field": name, "allowed": ...}``
that says what was wrong and what is allowed; nothing is changed.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from controller.core.numbers import finite_float

#: Largest request body accepted (bytes): a setpoint or a password fits many times over.
MAX_BODY_BYTES = 4096


class ApiError(Exception):
    """A refused request; turned into a JSON answer by :func:`register`."""

    def __init__(self, status: int, message: str, *, field: str | None = None, allowed: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.allowed = allowed
        self.headers = headers or {}


def error_response(status: int, message: str, *, field: str | None = None, allowed: Any = None,
                   headers: dict[str, str] | None = None):
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if allowed is not None:
        body["allowed"] = allowed
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    """JSON answers for :class:`ApiError` and for HTTP errors under ``/api``."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, field=exc.field, allowed=exc.allowed,
                              headers=exc.headers)

    @app.errorhandler(413)
    def _too_large(_exc):
        return error_response(413, f"the request body is too large: at most {MAX_BODY_BYTES} bytes",
                              field="body", allowed={"max_bytes": MAX_BODY_BYTES})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        allowed = None
        if exc.code == 405:
            allowed = {"methods": sorted(m for m in exc.valid_methods or ())} if hasattr(exc, "valid_methods") \
                else None
        return error_response(exc.code or 500, exc.description or exc.name, allowed=allowed)


#: No request of the API nests deeper than 2; deeper bodies are refused the same way on every Python.
MAX_NESTING = 32


def _nesting(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((child, depth + 1) for child in children)
    return deepest


def json_body(*, allowed_fields: tuple[str, ...], required: dict[str, Any] | None = None,
              empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object, checked; raise :class:`ApiError` (415/400/422) otherwise.

    ``required`` maps each required field to what is allowed in it (named in the error).
    """
    raw = request.get_data(cache=True)  # raises 413 beyond MAX_CONTENT_LENGTH
    if not raw and empty_ok:
        return {}
    if request.mimetype != "application/json":
        raise ApiError(415, f"the body must be JSON (Content-Type: application/json), "
                            f"got {request.mimetype or 'no Content-Type'}",
                       field="Content-Type", allowed="application/json")
    try:
        data = request.get_json(silent=True)
        too_deep = _nesting(data) > MAX_NESTING  # Python 3.13's json parses nesting that 3.11's gives up on
    except RecursionError:  # 3.11's json gives up with this, not with a ValueError
        too_deep = True
    if too_deep:
        raise ApiError(400, "the body is nested too deeply", field="body",
                       allowed="a JSON object such as " + _example(allowed_fields))
    if data is None:
        raise ApiError(400, "the body is not valid JSON", field="body",
                       allowed="a JSON object such as " + _example(allowed_fields))
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", field="body",
                       allowed="a JSON object such as " + _example(allowed_fields))
    for key in data:
        if key not in allowed_fields:
            raise ApiError(422, f"unknown field {key!r}", field=key, allowed={"fields": list(allowed_fields)})
    for key, allowed in (required or {}).items():
        if key not in data:
            raise ApiError(422, f"missing field {key!r}", field=key, allowed=allowed)
    return data


def finite_number(data: dict[str, Any], key: str, allowed: Any) -> float:
    """``data[key]`` as a finite float; raise a 422 naming ``key`` and what is allowed otherwise."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(422, f"{key} must be a number, got {value!r}"[:200], field=key, allowed=allowed)
    number = finite_float(value)  # None: NaN, inf, or an integer with hundreds of digits
    if number is None:
        raise ApiError(422, f"{key} must be a finite number", field=key, allowed=allowed)
    return number


def _example(fields: tuple[str, ...]) -> str:
    return "{" + ", ".join(f'"{f}": ...' for f in fields) + "}" if fields else "{}"


def number_arg(name: str, *, default: float, low: float, high: float, integer: bool = False) -> float:
    """Query argument ``name`` as a number within ``low..high``; raise a 422 naming it otherwise."""
    text = request.args.get(name)
    if text is None or text == "":
        return default
    allowed = {"min": low, "max": high}
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ApiError(422, f"{name} must be a {'whole ' if integer else ''}number, got {text[:40]!r}",
                       field=name, allowed=allowed) from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ApiError(422, f"{name} = {text[:40]} is outside {low:g}..{high:g}", field=name, allowed=allowed)
    return value


def choice_arg(name: str, *, default: str, choices: tuple[str, ...]) -> str:
    value = request.args.get(name) or default
    if value not in choices:
        raise ApiError(422, f"{name} = {value[:40]!r} is not allowed", field=name, allowed=list(choices))
    return value
