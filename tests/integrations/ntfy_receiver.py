"""A stand-in for an ntfy server (or any webhook) on 127.0.0.1: records every POST, answers as told."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Post:
    arrived_s: float          # time.monotonic() when the request was read
    path: str
    headers: dict[str, str]
    body: str


class Receiver:
    """``with Receiver() as r:`` ... ``r.url("topic")``; ``r.statuses``: the answers to the next POSTs
    (then 200); ``r.hang()``: hold every request until :meth:`release` (or the end)."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.statuses: list[int] = []
        self.hanging = threading.Event()   # set while a request is being held
        self._release = threading.Event()
        self._release.set()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8")
                post = Post(time.monotonic(), self.path, dict(self.headers.items()), body)
                if not receiver._release.is_set():
                    receiver.hanging.set()
                    receiver._release.wait(60)
                with receiver._changed:
                    receiver.posts.append(post)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="receiver", daemon=True)

    def url(self, path: str = "room-1") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def hang(self) -> None:
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def wait_for(self, count: int, *, timeout_s: float = 10.0) -> list[Post]:
        """The first ``count`` posts, waiting at most ``timeout_s`` (real seconds) for them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.posts) >= count, timeout=timeout_s):
                raise AssertionError(f"expected {count} POSTs within {timeout_s} s, got {len(self.posts)}")
            return self.posts[:count]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
