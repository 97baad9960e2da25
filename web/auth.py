"""Sign-in: sessions, CSRF tokens, API tokens, and who may read what.

Modelled on OctoPrint (docs/field-notes.md, "Web"): access control is always on for
changes, a script uses an API token in a header (``Authorization: Bearer
sw_...``), a browser signs in with the password and gets a session cookie
(HttpOnly, SameSite=Strict; not Secure, because the dashboard is plain HTTP on a
LAN and a Secure cookie would never be sent back). The cookie holds only a
random session id; the session itself lives on the warmer (web/sessions.py), so
signing out ends it for good.

Flask has no CSRF protection of its own: every state-changing request from a
browser (sign-in included) must carry the session's CSRF token in the
``X-CSRF-Token`` header. A request with an API token carries no cookie, so it
needs none. How many passwords may be tried is web/signin_limit.py's.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from datetime import timedelta

from flask import Blueprint, Flask, Request, Response, g, jsonify, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from web.context import ctx
from web.credentials import HOW_TO_SET, MAX_PASSWORD_CHARS
from web.errors import ApiError, json_body
from web.sessions import MAX_AGE_S, Session
from web.signin_limit import TooManyAttempts

bp = Blueprint("auth", __name__)

CSRF_HEADER = "X-CSRF-Token"


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, without building a signer for a request that sends no cookie
    (a poll of /api/status, a script with a token): a measurable share of such a request."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return  # nothing to send, nothing to delete, nothing read: no cookie header at all
        super().save_session(app, session, response)


def configure(app: Flask, *, credentials) -> None:
    """Cookie settings and the key that signs the cookie (kept in the credentials file)."""
    app.session_interface = _CookieSessions()
    app.secret_key = credentials.session_key()
    app.config.update(
        SESSION_COOKIE_NAME="stonewarmer_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain HTTP on a LAN (see the module docstring)
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=MAX_AGE_S),  # the server ends it sooner when idle
    )


# -- who is asking ----------------------------------------------------------------------
def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _token_name() -> str | None:
    """The API token's name; raise 401 for a token that is not valid."""
    token = _bearer()
    if token is None:
        return None
    name = ctx().credentials.check_token(token)
    if name is None:
        raise ApiError(401, "the API token is not valid (create one with: stonewarmer token --name NAME)",
                       field="Authorization", allowed="Bearer <token from `stonewarmer token`>")
    return name


def current_session() -> Session | None:
    """This browser's live session on the warmer, or None (looked up once per request)."""
    if "sw_session" not in g:
        c = ctx()
        session_id = session.get("sid")
        found = None
        if isinstance(session_id, str) and c.credentials.password_set:
            found = c.sessions.get(session_id, generation=c.credentials.password_generation())
        g.sw_session = found
    current: Session | None = g.sw_session
    return current


def signed_in() -> bool:
    return current_session() is not None


def _csrf_token() -> str:
    current = current_session()
    if current is not None:
        return current.csrf
    if not isinstance(session.get("csrf"), str):  # before sign-in: a token in the cookie, for the sign-in itself
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def _check_csrf() -> None:
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogatepass")
    current = current_session()
    wanted = (current.csrf if current is not None else str(session.get("csrf", ""))).encode()
    if not wanted or not hmac.compare_digest(sent, wanted):
        raise ApiError(403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header from GET /api/session",
                       field=CSRF_HEADER, allowed="the csrf_token of GET /api/session")


def change_source() -> str:
    """Who may change things: ``web`` (a signed-in browser) or ``token:NAME``; raise 401/403 otherwise."""
    name = _token_name()
    if name is not None:
        return f"token:{name}"
    creds = ctx().credentials
    if not creds.password_set:
        raise ApiError(403, f"changes are switched off until a password is set: {HOW_TO_SET}"
                       + (f" ({creds.problem})" if creds.problem else ""), field="password")
    if not signed_in():
        raise ApiError(401, "sign in to make changes", field="session", allowed="POST /api/session")
    _check_csrf()
    return "web"


def change_required(view):
    """Run ``view(source=...)`` only for a signed-in browser with its CSRF token, or an API token."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, source=change_source(), **kwargs)

    return wrapper


def may_read(open_key: str | None = None) -> bool:
    """Whether this request may read: signed in, an API token, or open to all by ``[web]``.

    ``open_key`` None: the live status (``open_viewing``); otherwise the ``[web]`` key that
    opens it to everyone as well (``open_history``, ...), only ever with ``open_viewing``.
    """
    web = ctx().cfg.web
    if web.open_viewing and (open_key is None or getattr(web, open_key)):
        return True
    return _token_name() is not None or signed_in()


def view_required(view):
    """The live status: open on the LAN unless ``[web] open_viewing = false``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not may_read():
            raise ApiError(401, "sign in to view the warmer ([web] open_viewing = false)",
                           field="session", allowed="POST /api/session")
        return view(*args, **kwargs)

    return wrapper


def read_required(open_key: str):
    """History, events, metrics, the API description: a sign-in or an API token, unless ``[web] open_key``."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if not may_read(open_key):
                raise ApiError(401, f"sign in or send an API token to read this (or set [web] {open_key} = true)",
                               field="session", allowed="POST /api/session, or Authorization: Bearer <token>")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def owner_required(view):
    """Listing sessions and tokens: a signed-in browser or an API token (no CSRF token needed to read)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if _token_name() is None and not signed_in():
            raise ApiError(401, "sign in or send an API token to see this", field="session",
                           allowed="POST /api/session, or Authorization: Bearer <token>")
        return view(*args, **kwargs)

    return wrapper


# -- routes -----------------------------------------------------------------------------
def _session_state():
    creds = ctx().credentials
    return {
        "signed_in": signed_in(),
        "password_set": creds.password_set,
        "csrf_token": _csrf_token(),
        "open_viewing": ctx().cfg.web.open_viewing,
        "how_to_set_password": None if creds.password_set else HOW_TO_SET,
        "problem": creds.problem,
    }


@bp.get("/api/session")
def get_session():
    """Whether this browser is signed in, and the CSRF token for its changes."""
    return jsonify(_session_state())


@bp.post("/api/session")
def sign_in():
    _check_csrf()
    c = ctx()
    creds = c.credentials
    if not creds.password_set:
        raise ApiError(403, f"no password is set yet: {HOW_TO_SET}", field="password")
    data = json_body(allowed_fields=("password",), required={"password": "a string"})
    password = data["password"]
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        raise ApiError(422, "password must be a string", field="password",
                       allowed=f"a string of at most {MAX_PASSWORD_CHARS} characters")
    client = request.remote_addr or "unknown"
    try:
        with c.limiter.attempt(client) as attempt:  # counted before the check (a race checks no more)
            if not creds.check_password(password):
                raise ApiError(401, "wrong password", field="password")
            attempt.succeeded()
    except TooManyAttempts as exc:
        raise ApiError(429, str(exc), field="password",
                       headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) from None
    session.clear()  # a fresh session (and CSRF token) after signing in
    session_id, _new = c.sessions.create(generation=creds.password_generation(), client=client,
                                         user_agent=request.headers.get("User-Agent", ""))
    session.permanent = True
    session["sid"] = session_id
    g.pop("sw_session", None)
    return jsonify(_session_state())


@bp.delete("/api/session")
def sign_out():
    """End this browser's session on the warmer; a copy of its cookie no longer works."""
    _check_csrf()
    if signed_in():
        ctx().sessions.end(session["sid"])
    session.clear()
    g.pop("sw_session", None)
    return jsonify(_session_state())
