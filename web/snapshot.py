"""The latest status as JSON, serialised once per status rather than once per request.

The control loop publishes a new immutable :class:`~controller.core.status.Status`
once per tick (and after a command); every ``GET /api/status`` until the next one
answers the same bytes, plus ``tick_age_s``, which changes with every request and
is appended to the cached text. Serialising on the first request after a tick (not
on the control thread) keeps the tick free of web work.
"""

from __future__ import annotations

import json

from controller.core.interfaces import ControllerView
from controller.core.status import Status


class StatusJson:
    """``GET /api/status``'s body for ``controller``: ``Status.to_dict()`` plus ``tick_age_s``."""

    def __init__(self, controller: ControllerView) -> None:
        self.controller = controller
        self._cached: tuple[Status | None, bytes] = (None, b"")

    def body(self) -> bytes:
        status = self.controller.status()
        cached_status, head = self._cached  # one tuple: read and replaced whole, safe across threads
        if cached_status is not status:
            # The object without its closing brace; tick_age_s goes after it.
            head = json.dumps(status.to_dict(), separators=(",", ":")).encode()[:-1]
            self._cached = (status, head)
        age_s = self.controller.clock.monotonic() - status.monotonic_s
        return head + b',"tick_age_s":%.3f}' % age_s  # a finite number: valid JSON as it is
