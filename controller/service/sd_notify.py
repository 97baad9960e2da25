"""systemd's notify protocol (sd_notify) in a few lines of socket code.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: the path of a
Unix datagram socket (or ``@name`` for one in the abstract namespace). Each
message is one datagram of newline-separated ``KEY=value`` lines, e.g.
``READY=1``, ``WATCHDOG=1``, ``STATUS=...``, ``STOPPING=1``. Without the
variable (a shell, a test, a container without systemd) every call does
nothing, so the service code never asks "am I under systemd?".
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(text: str) -> str | bytes:
    """The ``socket.sendto`` address for a ``$NOTIFY_SOCKET`` value.

    ``@name`` is Linux's abstract namespace: a leading NUL byte, no file.
    """
    if text.startswith("@"):
        return b"\0" + text[1:].encode()
    return text


class Notifier:
    """Sends sd_notify messages to ``address`` (default: ``$NOTIFY_SOCKET``), if there is one."""

    def __init__(self, address: str | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        text = address if address is not None else environ.get("NOTIFY_SOCKET", "")
        self.address = socket_address(text) if text else None
        self._sock: socket.socket | None = None
        self._warned = False
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: object) -> bool:
        """Send one datagram ``KEY=value`` per field (``READY=1`` is ``send(READY=1)``).

        Return whether it was sent. A failure is logged once and never raised:
        a missing supervisor must not stop the heater controller.
        """
        if self._sock is None or self.address is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value)
            if "\n" in text:  # one line per field: a newline would start a new (forged) field
                text = text.replace("\n", " ")
            lines.append(f"{key}={text}")
        try:
            # Never block: this runs on the control thread, and a full queue at the
            # receiver must not stall the heater's loop. A dropped ping is resent next tick.
            self._sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def watchdog(self, **extra: object) -> bool:
        return self.send(WATCHDOG=1, **extra)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ=None) -> float | None:
    """``WatchdogSec=`` as seen by this process (``$WATCHDOG_USEC``), or None when not asked.

    Like sd_watchdog_enabled(3): ``$WATCHDOG_PID``, when set, must be our pid.
    """
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6
