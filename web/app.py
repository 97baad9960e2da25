"""The Flask app factory: one blueprint per feature, all reading one :class:`WebContext`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from controller.core.config import Config
from controller.core.interfaces import ControllerView
from controller.integrations.notify.setting import NtfySetting
from web import access_api, api, auth, commands_api, errors, history_api, hosts, metrics, pages, settings_api, stream
from web.context import EXTENSION, WebContext
from web.credentials import CredentialStore
from web.history import HistoryRecorder
from web.sessions import SessionStore
from web.signin_limit import SignInLimiter
from web.snapshot import StatusJson

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The page loads nothing from elsewhere; say so to the browser as well.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
PAGE_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                ("Content-Security-Policy", CONTENT_SECURITY_POLICY)]
# An API answer is never a page: nothing in it may load or be framed (OWASP's REST advice), and no cache keeps it.
API_HEADERS = [("X-Content-Type-Options", "nosniff"),
               ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")]


def create_app(controller: ControllerView, cfg: Config, *, history: HistoryRecorder | None = None,
               history_problem: str | None = None, credentials: CredentialStore | None = None,
               limiter: SignInLimiter | None = None, sessions: SessionStore | None = None,
               heartbeat_s: float = 15.0, stream_max_s: float = 300.0) -> Flask:
    """The dashboard and API of ``controller``.

    ``history`` is a :class:`~web.history.HistoryRecorder` already following the
    controller (None: no history endpoints). ``heartbeat_s`` and ``stream_max_s``
    are real seconds (live-update streams).
    """
    app = Flask(__name__)
    feed = stream.StatusFeed()
    controller.add_listener(feed.publish)
    streams = stream.StreamSlots(cfg.web.max_streams)
    credentials = credentials or CredentialStore(cfg.state.dir)
    app.extensions[EXTENSION] = WebContext(
        controller=controller, cfg=cfg, credentials=credentials, limiter=limiter or SignInLimiter(),
        sessions=sessions or SessionStore(cfg.state.dir, idle_s=cfg.web.session_idle_h * 3600.0),
        feed=feed, streams=streams, history=history, ntfy=NtfySetting(cfg),
        history_problem=history_problem if history is None else None,
        heartbeat_s=heartbeat_s, stream_max_s=stream_max_s,
        metrics_registry=metrics.registry_for(controller, streams), status_json=StatusJson(controller),
    )
    errors.register(app)
    auth.configure(app, credentials=credentials)
    for blueprint in (api.bp, commands_api.bp, settings_api.bp, history_api.bp, auth.bp, access_api.bp, stream.bp,
                      metrics.bp, pages.bp):
        app.register_blueprint(blueprint)

    # In front of Flask: the Host check (web/hosts.py), then the security headers on every answer.
    front = hosts.wrap(app.wsgi_app, extra=cfg.web.allowed_hosts)
    app.wsgi_app = _with_headers(front)  # type: ignore[method-assign,assignment]
    return app


def _with_headers(wsgi_app: WSGIApplication) -> WSGIApplication:
    """``wsgi_app`` with the security headers on every answer (errors and 421 too), and ``no-store``
    on the API's unless the view chose its own caching. Plain list work at the WSGI layer: an
    ``after_request`` doing the same cost a measurable share of a ``GET /api/status``."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        api = path.startswith("/api/") or path in ("/healthz", "/metrics")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if api:
                for name, _value in headers:
                    if name == "Cache-Control":  # the view chose (werkzeug keeps the views' spelling)
                        break
                else:
                    headers.append(("Cache-Control", "no-store"))
                headers += API_HEADERS
            else:
                headers += PAGE_HEADERS
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app
