"""A stand-in for systemd's end of ``$NOTIFY_SOCKET``: a Unix datagram socket that records.

Shared by the notify and service tests (not a test module itself). Like
systemd it reads promptly, on a thread of its own, so the short kernel queue of
a datagram socket never fills; ``reading=False`` leaves the queue unread.
"""

from __future__ import annotations

import socket
import threading
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

    def __init__(self, path: str | Path, *, reading: bool = True) -> None:
        self.address = str(path)
        bind_to = b"\0" + self.address[1:].encode() if self.address.startswith("@") else self.address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self._received: list[dict[str, str]] = []
        self._arrived = threading.Condition()
        self._closed = False
        self._reader = None
        if reading:
            self.sock.settimeout(0.05)
            self._reader = threading.Thread(target=self._read, name="fake-systemd", daemon=True)
            self._reader.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                datagram = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                self._received.append(parse(datagram))
                self._arrived.notify_all()

    def drain(self) -> list[dict[str, str]]:
        """Every message received so far, in order."""
        if self._reader is None:
            self.sock.setblocking(False)
            try:
                while True:
                    self._received.append(parse(self.sock.recv(65536)))
            except BlockingIOError:
                pass
        with self._arrived:
            return list(self._received)

    def settle(self, *, count: int, timeout_s: float = 5.0) -> list[dict[str, str]]:
        """Wait (bounded) until at least ``count`` messages have been read; return them all."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while len(self._received) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
            return list(self._received)

    def wait_for(self, key: str, *, timeout_s: float = 20.0) -> dict[str, str]:
        """The first message (received or arriving within ``timeout_s``) carrying ``key``."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                for message in self._received:
                    if key in message:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {key}= message within {timeout_s:g} s; got {self._received[-5:]}")
                self._arrived.wait(remaining)

    def count(self, key: str) -> int:
        return sum(1 for message in self.drain() if key in message)

    def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.join(1)
        self.sock.close()
