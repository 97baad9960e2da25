"""The Flask app factory: one blueprint per feature, all reading one :class:`WebContext`."""

from __future__ import annotations

from flask import Flask, Response, request

from controller.core.config import Config
from controller.core.loop import Controller
from web import api, auth, errors, history_api, metrics, pages, stream
from web.context import EXTENSION, WebContext
from web.credentials import CredentialStore
from web.history import HistoryRecorder

# The page loads nothing from elsewhere; say so to the browser as well.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(controller: Controller, cfg: Config, *, history: HistoryRecorder | None = None,
               history_problem: str | None = None, credentials: CredentialStore | None = None,
               limiter: auth.SignInLimiter | None = None, heartbeat_s: float = 15.0,
               stream_max_s: float = 300.0) -> Flask:
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
        controller=controller, cfg=cfg, credentials=credentials, limiter=limiter or auth.SignInLimiter(),
        feed=feed, streams=streams, history=history,
        history_problem=history_problem if history is None else None,
        heartbeat_s=heartbeat_s, stream_max_s=stream_max_s,
        metrics_registry=metrics.registry_for(controller, streams),
    )
    errors.register(app)
    auth.configure(app, credentials=credentials)
    for blueprint in (api.bp, history_api.bp, auth.bp, stream.bp, metrics.bp, pages.bp):
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
