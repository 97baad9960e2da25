"""stonewarmer's web layer: the phone dashboard and the HTTP API.

``attach(controller, cfg)`` builds it; ``stonewarmer run`` then calls
``.start(host, port)`` and, when stopping, ``.stop()`` (which writes the last
history batch). Served by waitress in the same process; the control loop runs
on its own thread and never waits on the web, and the web never touches GPIO.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from waitress import wasyncore

from controller.core.config import Config
from controller.core.interfaces import ControllerView
from web.app import create_app
from web.context import EXTENSION
from web.guard import create_guarded_server
from web.history import HistoryRecorder

__all__ = ["STATE_SUBDIR", "WebRuntime", "attach", "create_app", "web_state_dir"]

log = logging.getLogger(__name__)

#: The web process keeps its own files (password, tokens, sessions, history) here, under the
#: warmer's state dir: a directory of its own, owned by the web process's user.
STATE_SUBDIR = "web"

STOP_WAIT_S = 1.0  # for the worker threads, then for the server loop, when stopping

# waitress's defaults let a few idle sockets shut the dashboard out: 100 connections at most
# (100 half-open ones and nobody else gets in), idle ones dropped only after 120 s, and bodies
# up to 1 GiB read (to disk) before the app can refuse them. web/guard.py adds what waitress
# has no setting for: connections per client address, and the time to send one request.
CONNECTION_LIMIT = 400         # open connections; well under select()'s 1024 descriptors
CHANNEL_TIMEOUT_S = 30         # an idle connection is dropped after this ...
CLEANUP_INTERVAL_S = 2         # ... checked this often (as is the guard's request time)
#: waitress refuses larger bodies unread; up to it the app answers its own JSON 413 beyond 4096 bytes.
MAX_REQUEST_BODY_BYTES = 64 * 1024


def web_state_dir(state_dir: str | Path) -> Path:
    """Where the web process of the warmer whose state dir is ``state_dir`` keeps its files."""
    return Path(state_dir) / STATE_SUBDIR


class WebRuntime:
    """The waitress server and the history writer of one app."""

    def __init__(self, app: Flask, cfg: Config, *, history: HistoryRecorder | None) -> None:
        self.app = app
        self.cfg = cfg
        self.history = history
        self.server: Any = None  # waitress's server, once started (waitress has no type information)
        self.url = ""
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> None:
        self.server = create_guarded_server(self.app, host=host, port=port, threads=self.cfg.web.threads,
                                            ident="stonewarmer", connection_limit=CONNECTION_LIMIT,
                                            channel_timeout=CHANNEL_TIMEOUT_S, cleanup_interval=CLEANUP_INTERVAL_S,
                                            max_request_body_size=MAX_REQUEST_BODY_BYTES,
                                            per_client=self.cfg.web.connections_per_client)
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        self.url = f"http://{shown}:{self.server.effective_port}/"
        if self.history is not None:
            self.history.start()
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the live streams, stop serving, write the last history batch."""
        self.app.extensions[EXTENSION].feed.close()
        if self.server is not None:
            server = self.server
            # First let the worker threads finish (the streams end with the feed), then close
            # the listening socket and every connection on the server's own loop thread
            # (closing them from here would pull them out from under its select()); the loop
            # then has nothing left to watch and returns.
            # Bounded: `stonewarmer run` must exit within 5 s of SIGTERM (the heater is already
            # off by now); a server thread that does not return in time is a daemon and dies with us.
            server.task_dispatcher.shutdown(timeout=STOP_WAIT_S)
            try:
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            except OSError:  # the loop has ended and closed its trigger already: nothing is left to close
                log.debug("web server loop already closed")
            if self._thread is not None:
                self._thread.join(timeout=STOP_WAIT_S)
        if self.history is not None:
            self.history.stop()


def attach(controller: ControllerView, cfg: Config) -> WebRuntime:
    """The dashboard of ``controller``, with its history database in ``[state] dir``."""
    history, problem = None, None
    try:
        history = HistoryRecorder.open(cfg.state.dir)
        history.follow(controller)
    except (sqlite3.Error, OSError) as exc:
        # The warmer must still run (and be watched) without its history.
        problem = f"cannot open the history database in {cfg.state.dir}: {exc}"
        log.error("%s", problem)
    app = create_app(controller, cfg, history=history, history_problem=problem)
    return WebRuntime(app, cfg, history=history)
