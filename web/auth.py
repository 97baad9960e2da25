"""Sign-in: sessions, CSRF tokens, API tokens and the sign-in rate limit.

Modelled on OctoPrint (docs/field-notes.md, "Web"): access control is always on for
changes, a script uses an API token in a header (``Authorization: Bearer
sw_...``), a browser signs in with the password and gets a session cookie
(HttpOnly, SameSite=Strict; not Secure, because the dashboard is plain HTTP on a
LAN and a Secure cookie would never be sent back).

Flask has no CSRF protection of its own: every state-changing request from a
browser (sign-in included) must carry the session's CSRF token in the
``X-CSRF-Token`` header. A request with an API token carries no cookie, so it
needs none.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from datetime import timedelta

from flask import Blueprint, Flask, jsonify, request, session

from web.context import ctx
from web.credentials import HOW_TO_SET, MAX_PASSWORD_CHARS
from web.errors import ApiError, json_body

bp = Blueprint("auth", __name__)

CSRF_HEADER = "X-CSRF-Token"
SESSION_DAYS = 30  # a therapist should not have to sign in between clients
#: Sign-in attempts: this many failures per client within the window, then wait.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
CLIENTS_TRACKED = 1000  # bound the limiter's memory


def configure(app: Flask, *, credentials) -> None:
    """Cookie settings and the session key (kept in the credentials file, so restarts keep sessions)."""
    app.secret_key = credentials.session_key()
    app.config.update(
        SESSION_COOKIE_NAME="stonewarmer_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # plain HTTP on a LAN (see the module docstring)
        PERMANENT_SESSION_LIFETIME=timedelta(days=SESSION_DAYS),
    )


class SignInLimiter:
    """At most ``max_failures`` failed sign-ins per client per ``window_s`` (real seconds)."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S,
                 now=time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.now = now
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, client: str) -> float | None:
        """Seconds this client must wait before trying again, or None."""
        with self._lock:
            times = self._failures.get(client)
            if not times:
                return None
            now = self.now()
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.max_failures:
                return None
            return times[0] + self.window_s - now

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(self.now())
            self._failures.move_to_end(client)
            while len(self._failures) > CLIENTS_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


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


def signed_in() -> bool:
    creds = ctx().credentials
    return bool(session.get("signed_in")) and creds.password_set \
        and session.get("pw") == creds.password_generation()


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    sent = request.headers.get(CSRF_HEADER, "").encode("utf-8", "surrogatepass")
    wanted = session.get("csrf", "").encode()
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


def view_required(view):
    """Viewing is open on the LAN unless ``[web] open_viewing = false``."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not ctx().cfg.web.open_viewing and _token_name() is None and not signed_in():
            raise ApiError(401, "sign in to view the warmer ([web] open_viewing = false)",
                           field="session", allowed="POST /api/session")
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
    client = request.remote_addr or "unknown"
    limiter = ctx().limiter
    wait_s = limiter.retry_after_s(client)
    if wait_s is not None:
        raise ApiError(429, f"too many wrong passwords: try again in {wait_s:.0f} s", field="password",
                       headers={"Retry-After": str(max(1, round(wait_s)))})
    _check_csrf()
    creds = ctx().credentials
    if not creds.password_set:
        raise ApiError(403, f"no password is set yet: {HOW_TO_SET}", field="password")
    data = json_body(allowed_fields=("password",), required={"password": "a string"})
    password = data["password"]
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
        raise ApiError(422, "password must be a string", field="password",
                       allowed=f"a string of at most {MAX_PASSWORD_CHARS} characters")
    if not creds.check_password(password):
        limiter.failed(client)
        raise ApiError(401, "wrong password", field="password")
    limiter.succeeded(client)
    session.clear()  # a fresh session (and CSRF token) after signing in
    session.permanent = True
    session["signed_in"] = True
    session["pw"] = creds.password_generation()
    return jsonify(_session_state())


@bp.delete("/api/session")
def sign_out():
    _check_csrf()
    session.clear()
    return jsonify(_session_state())
