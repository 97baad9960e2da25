"""The owner's view of who can change things: ``/api/sessions`` and ``/api/tokens``.

Lists the signed-in browsers and the API tokens (names only), and ends any of them.
Reading needs a sign-in or a token; ending one is a change (CSRF token from a browser).
New tokens are made on the Pi (``stonewarmer token``): a token is shown only once.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from web.auth import change_required, current_session, owner_required
from web.context import ctx
from web.errors import ApiError

bp = Blueprint("access", __name__)


@bp.get("/api/sessions")
@owner_required
def list_sessions():
    c = ctx()
    mine = current_session()
    return jsonify({"sessions": [{**s.public(), "current": mine is not None and s.key == mine.key}
                                 for s in c.sessions.list(generation=c.credentials.password_generation())]})


@bp.delete("/api/sessions/<session_id>")
@change_required
def end_session(session_id: str, *, source: str):
    if not ctx().sessions.revoke(session_id):
        raise ApiError(404, f"there is no session {session_id[:40]!r}", field="id",
                       allowed="an id from GET /api/sessions")
    return jsonify({"ended": session_id})


@bp.get("/api/tokens")
@owner_required
def list_tokens():
    return jsonify({"tokens": ctx().credentials.tokens()})


@bp.delete("/api/tokens/<name>")
@change_required
def revoke_token(name: str, *, source: str):
    try:
        removed = ctx().credentials.revoke_token(name)
    except OSError as exc:
        raise ApiError(503, f"cannot write the credentials file: {exc.strerror or exc}") from None
    if not removed:
        raise ApiError(404, f"there is no API token called {name[:40]!r}", field="name",
                       allowed="a name from GET /api/tokens")
    return jsonify({"revoked": name})
