"""The settings from the phone, as one document: ``/api/settings`` (GET, PUT), its backup
``/api/settings/export`` and restore ``/api/settings/import``.

The document (``controller/core/settings.py``) plus ``notify``::

    {"version": 1, "presets": [...], "schedule": {"auto_off_h": 10, "days": {...}}, "probe_offset_c": 0.0,
     "notify": {"ntfy_url": "https://ntfy.example/your-topic" | null}}

A PUT (or an import) is the whole document: the web checks the notify part and its shape, the
controller validates the rest as a whole (either all of it applies or none of it), then the
ntfy address is kept in the web's own dir and the running notifications follow it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from controller.core.settings import KEYS
from controller.integrations.notify.setting import checked_url
from web.auth import change_required, owner_required
from web.commands_api import run
from web.context import ctx
from web.errors import ApiError, json_body

bp = Blueprint("settings", __name__)

FIELDS = (*KEYS, "notify")
EXPORT_NAME = "stonewarmer-settings.json"


def _document() -> dict[str, Any]:
    c = ctx()
    doc = run(c.controller.settings)
    return {**doc, "notify": {"ntfy_url": c.ntfy.url or None}}


@bp.get("/api/settings")
@owner_required
def get_settings():
    return jsonify(_document())


@bp.get("/api/settings/export")
@owner_required
def export_settings():
    response = jsonify(_document())
    response.headers["Content-Disposition"] = f'attachment; filename="{EXPORT_NAME}"'
    return response


@bp.put("/api/settings")
@change_required
def put_settings(*, source: str):
    return _replace(source)


@bp.post("/api/settings/import")
@change_required
def import_settings(*, source: str):
    return _replace(source)


def _replace(source: str):
    c = ctx()
    data = json_body(allowed_fields=FIELDS, required={key: "the whole settings document" for key in FIELDS})
    notify = data.pop("notify")
    if not isinstance(notify, dict) or set(notify) != {"ntfy_url"}:
        raise ApiError(422, 'notify must be {"ntfy_url": "https://ntfy.example/your-topic"} or {"ntfy_url": null}',
                       field="notify", allowed={"fields": ["ntfy_url"]})
    try:
        checked_url(notify["ntfy_url"], c.cfg)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="notify.ntfy_url",
                       allowed="an http:// or https:// address ending in the topic, without a user or password, "
                               "or null") from None
    run(lambda: c.controller.apply_settings(data, source=source))
    try:
        c.ntfy.set(notify["ntfy_url"])
    except OSError as exc:
        raise ApiError(503, f"the settings apply, but the ntfy address could not be kept: {exc.strerror or exc}",
                       field="notify.ntfy_url") from None
    return jsonify(_document())
