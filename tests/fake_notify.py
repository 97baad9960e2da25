"""A stand-in for systemd's end of ``$NOTIFY_SOCKET``: a Unix datagram socket that records.

Shared by the notify and service tests (not a test module itself).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path


def parse(datagram: bytes) -> dict[str, str]:
    """``b"READY=1\\nSTATUS=x"`` -> ``{"READY": "1", "STATUS": "x"}``."""
    fields = {}
    for line in datagram.decode().split("\n"):
        key, _, value = line.partition("=")
        fields[key] = value
    return fields


class FakeNotifySocket:
    """Binds ``path`` (a file path, or ``@name`` for the abstract namespace) and collects messages."""

    def __init__(self, path: str | Path) -> None:
        self.address = str(path)
        bind_to = b"\0" + self.address[1:].encode() if self.address.startswith("@") else self.address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.received: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        """Everything that has arrived so far (never waits)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.received.append(parse(self.sock.recv(65536)))
        except BlockingIOError:
            pass
        return self.received

    def wait_for(self, key: str, *, timeout_s: float = 20.0) -> dict[str, str]:
        """The first message (received or arriving within ``timeout_s``) carrying ``key``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for message in self.drain():
                if key in message:
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {key}= message within {timeout_s:g} s; got {self.received[-5:]}")
            self.sock.settimeout(remaining)
            try:
                self.received.append(parse(self.sock.recv(65536)))
            except TimeoutError:
                pass

    def count(self, key: str) -> int:
        return sum(1 for message in self.drain() if key in message)

    def close(self) -> None:
        self.sock.close()
