"""What every blueprint needs from the app: the controller and the web's own services.

The web layer never touches GPIO: it reads :class:`~controller.core.status.Status`
snapshots and sends commands through the controller's command interface
(``set_setpoint``, ``acknowledge_fault``). Everything else it owns lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:  # the blueprints import ctx() from here: their types are for annotations only
    from prometheus_client import CollectorRegistry

    from controller.core.config import Config
    from controller.core.interfaces import ControllerView
    from controller.integrations.notify.setting import NtfySetting
    from web.credentials import CredentialStore
    from web.history import HistoryRecorder
    from web.sessions import SessionStore
    from web.signin_limit import SignInLimiter
    from web.snapshot import StatusJson
    from web.stream import StatusFeed, StreamSlots

#: Key under ``app.extensions``.
EXTENSION = "stonewarmer"


@dataclass(slots=True)
class WebContext:
    controller: ControllerView
    cfg: Config
    credentials: CredentialStore
    limiter: SignInLimiter           # how many passwords may be tried
    sessions: SessionStore           # the signed-in browsers
    feed: StatusFeed                 # wakes the live-update streams after each tick
    streams: StreamSlots             # live-update streams open, and the limit
    history: HistoryRecorder | None  # None when the database is unusable
    metrics_registry: CollectorRegistry  # this app's own Prometheus registry
    status_json: StatusJson          # GET /api/status's body, serialised once per status
    ntfy: NtfySetting                # the ntfy address set from the phone (notify.json in the web's dir)
    history_problem: str | None = None  # why there is no history, in words
    heartbeat_s: float = 15.0    # idle live-update streams send a ping this often (real seconds)
    stream_max_s: float = 300.0  # a stream ends after this long; the browser reconnects by itself


def ctx() -> WebContext:
    """The :class:`WebContext` of the current app."""
    context: WebContext = current_app.extensions[EXTENSION]
    return context
