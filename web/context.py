"""What every blueprint needs from the app: the controller and the web's own services.

The web layer never touches GPIO: it reads :class:`~controller.core.status.Status`
snapshots and sends commands through the controller's command interface
(``set_setpoint``, ``acknowledge_fault``). Everything else it owns lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

#: Key under ``app.extensions``.
EXTENSION = "stonewarmer"


@dataclass(slots=True)
class WebContext:
    controller: object           # controller.core.loop.Controller
    cfg: object                  # controller.core.config.Config
    credentials: object          # web.credentials.CredentialStore
    limiter: object              # web.auth.SignInLimiter
    feed: object                 # web.stream.StatusFeed
    streams: object              # web.stream.StreamSlots
    history: object | None       # web.history.HistoryRecorder, None when the database is unusable
    metrics_registry: object = None  # prometheus_client.CollectorRegistry of this app
    history_problem: str | None = None  # why there is no history, in words
    heartbeat_s: float = 15.0    # idle live-update streams send a ping this often (real seconds)
    stream_max_s: float = 300.0  # a stream ends after this long; the browser reconnects by itself


def ctx() -> WebContext:
    """The :class:`WebContext` of the current app."""
    return current_app.extensions[EXTENSION]
