"""The Flask app factory: one blueprint per feature, all reading one :class:`WebContext`."""

from __future__ import annotations

from flask import Flask, Response, request

from controller.core.config import Config
from controller.core.loop import Controller
from web import access_api, api, auth, errors, history_api, hosts, metrics, pages, stream
from web.context import EXTENSION, WebContext
from web.credentials import CredentialStore
from web.history import HistoryRecorder
from web.sessions import SessionStore
from web.signin_limit import SignInLimiter
from web.snapshot import StatusJson

# The page loads nothing from elsewhere; say so to the browser as well.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(controller: Controller, cfg: Config, *, history: HistoryRecorder | None = None,
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
        feed=feed, streams=streams, history=history,
        history_problem=history_problem if history is None else None,
        heartbeat_s=heartbeat_s, stream_max_s=stream_max_s,
        metrics_registry=metrics.registry_for(controller, streams), status_json=StatusJson(controller),
    )
    errors.register(app)
    hosts.register(app, extra=cfg.web.allowed_hosts)
    auth.configure(app, credentials=credentials)
    for blueprint in (api.bp, history_api.bp, auth.bp, access_api.bp, stream.bp, metrics.bp, pages.bp):
        app.register_blueprint(blueprint)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if request.path.startswith("/api/") or request.path in ("/healthz", "/metrics"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
