"""Live updates by Server-Sent Events: ``GET /api/stream``.

Each open stream holds one waitress thread (docs/field-notes.md, "Web"), so their
number is bounded (``[web] max_streams``, at most threads - 2): beyond it the
answer is 503 and the page polls ``/api/status`` instead. An idle stream sends
a ``ping`` every ``heartbeat_s`` so proxies and phones keep it open and the
page can tell a quiet warmer from a dead connection. A stream ends after
``stream_max_s`` and the browser reconnects by itself, so a vanished client
cannot hold a thread for long.

Messages: ``status`` (the same object as ``GET /api/status``), ``event`` (one
new event), ``ping`` (``{"tick_age_s": ...}``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from flask import Blueprint, Response

from web.api import status_payload
from web.auth import may_read, view_required
from web.context import ctx
from web.errors import ApiError

bp = Blueprint("stream", __name__)

RETRY_MS = 3000          # the browser reconnects this long after a stream ends
MIN_INTERVAL_S = 0.5     # at most two status messages a second (a sped-up simulation ticks faster)


class StatusFeed:
    """Wakes the streams when the controller publishes a status (a listener on the control thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.version = 0
        self.closed = False

    def publish(self, _status=None) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()

    def wait(self, seen: int | None, timeout_s: float) -> None:
        """Return when a status newer than version ``seen`` is published (``None``: only on close),
        on close, or after ``timeout_s``."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or (seen is not None and self.version != seen), timeout_s)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class StreamSlots:
    """At most ``limit`` streams open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def try_open(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


def sse(kind: str, data) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def messages(controller, feed: StatusFeed, *, heartbeat_s: float, stream_max_s: float,
             min_interval_s: float = MIN_INTERVAL_S, with_events: bool = True, now=time.monotonic) -> Iterator[str]:
    """The text of one stream, until the feed closes or ``stream_max_s`` (real seconds) pass.

    ``with_events`` False: status messages only (a viewer who may not read ``/api/events``).
    """
    yield f"retry: {RETRY_MS}\n\n"
    known = controller.events.since(0)
    last_event_id = known[-1].id if known else 0
    sent_tick = None
    last_status_s = last_write_s = -float("inf")
    start_s = now()
    while not feed.closed and now() - start_s < stream_max_s:
        version = feed.version
        status = controller.status()
        t = now()
        out = []
        if status.tick != sent_tick and t - last_status_s >= min_interval_s:
            out.append(sse("status", status_payload(controller, status)))
            sent_tick, last_status_s = status.tick, t
        for event in controller.events.since(last_event_id):
            if with_events:
                out.append(sse("event", event.to_dict()))
            last_event_id = event.id
        if not out and t - last_write_s >= heartbeat_s:
            out.append(sse("ping", {"tick_age_s": controller.clock.monotonic() - status.monotonic_s}))
        if out:
            last_write_s = t
            yield "".join(out)  # raises in waitress once the client has gone: the stream ends
        if status.tick != sent_tick:  # a newer status waits for the throttle
            timeout_s = min_interval_s - (now() - last_status_s)
        else:
            timeout_s = heartbeat_s - (now() - last_write_s)
        feed.wait(version if status.tick == sent_tick else None, max(0.01, timeout_s))


@bp.get("/api/stream")
@view_required
def stream():
    c = ctx()
    if not c.streams.try_open():
        raise ApiError(503, f"too many live streams are open (at most {c.streams.limit}): "
                            "poll GET /api/status instead", allowed={"max_streams": c.streams.limit},
                       headers={"Retry-After": "10"})
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            c.streams.release()

    try:
        response = Response(messages(c.controller, c.feed, heartbeat_s=c.heartbeat_s,
                                     stream_max_s=c.stream_max_s, with_events=may_read("open_events")),
                            mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        response.call_on_close(release)
    except BaseException:
        release()
        raise
    return response
