"""waitress, with two guards it lacks: connections per client address, and time to send a request.

waitress caps the open connections in total (``connection_limit``) and drops a
connection idle for ``channel_timeout``, but a connection that trickles one header
line every few seconds is never idle: 400 of them from one host held every slot, and
the owner's phone got no answer for as long as they were held. So:

- **per address**: a client address may hold at most ``per_client`` connections; one
  more is answered 503 and closed at once, so one host cannot take the capacity that
  the others need;
- **request time**: a request (its headers and body) must arrive complete within
  ``request_time_s`` of its first byte, or the connection is closed. A phone on weak
  Wi-Fi sends a request in well under a second.

Both act on waitress's own server loop (``handle_accept`` and the periodic
``maintenance``), so nothing here runs on the worker threads.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

REQUEST_TIME_S = 10.0         # from a request's first byte to its last
_REFUSAL_TEXT = b"too many connections from this address: close some, or try again in a few seconds\n"
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_REFUSAL_TEXT), _REFUSAL_TEXT))


class TimedChannel(HTTPChannel):  # waitress has no type information: Any
    """An HTTP connection that remembers when its unfinished request began (``time.time``, waitress's clock)."""

    request_started_s: float | None = None

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.request_started_s = time.time()
        done: bool = super().received(data)
        if self.request is None:  # every request received so far is complete
            self.request_started_s = None
        return done


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server with the per-address cap and the request time bound."""

    channel_class = TimedChannel

    def __init__(self, *args: Any, per_client: int, request_time_s: float, **kwargs: Any) -> None:
        self.per_client = per_client
        self.request_time_s = request_time_s
        self.refused = 0  # connections refused for the per-address cap (for tests and logs)
        super().__init__(*args, **kwargs)

    def _open_from(self, address: str) -> int:
        return Counter(ch.addr[0] for ch in list(self.active_channels.values()) if ch.addr)[address]

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        if self._open_from(addr[0]) >= self.per_client:
            self.refused += 1
            try:
                conn.send(REFUSAL, socket.MSG_DONTWAIT)
            except OSError:
                pass
            conn.close()
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff_s = now - self.request_time_s
        for channel in list(self.active_channels.values()):
            started_s = getattr(channel, "request_started_s", None)
            if started_s is not None and started_s < cutoff_s and not channel.requests:
                channel.will_close = True  # the server loop closes it on its next pass


def create_guarded_server(app: Any, *, host: str, port: int, threads: int, per_client: int,
                          request_time_s: float = REQUEST_TIME_S, **adjustments: Any) -> GuardedServer:
    """A :class:`GuardedServer` for ``app`` on every address ``host`` resolves to (one shared loop).

    ``per_client``: connections one client address may hold (``[web] connections_per_client``).

    ``adjustments`` are waitress's own settings (``connection_limit``, ``channel_timeout``, ...).
    Returns the last server made; its ``run()`` serves them all.
    """
    adj = Adjustments(host=host, port=port, threads=threads, **adjustments)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    shared_map: dict[int, Any] = {}
    server = None
    for sockinfo in adj.listen:
        server = GuardedServer(app, shared_map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo,
                               per_client=per_client, request_time_s=request_time_s)
    if server is None:
        raise OSError(f"no address to listen on for host {host!r}")
    return server
