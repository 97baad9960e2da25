"""Answer only to the warmer's own names: the defence against DNS rebinding.

A web page the therapist visits can point its own name at the warmer's LAN address
and then talk to the dashboard from her browser; the browser then sends the page's
name in ``Host`` (docs/field-notes.md, "More facts: heater range, systemd, strict_gpiod,
notifications, passwords, web, Home Assistant"). The dashboard
answers only when ``Host`` is an IP literal, ``localhost``, this machine's host name,
``<host name>.local`` (mDNS) or a name in ``[web] allowed_hosts``; anything else gets
421 Misdirected Request, at the WSGI layer: before Flask, a session or a view sees it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

KNOWN_HOSTS_KEPT = 256  # answers remembered (every request checks Host; most repeat one name)


def split_port(host: str) -> str:
    """``host`` without its ``:port``, brackets of an IPv6 literal removed; lower case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def own_names(extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The names this warmer answers to (lower case), besides IP literals."""
    names = {"localhost", *(n.lower().rstrip(".") for n in extra)}
    for name in {socket.gethostname(), socket.gethostname().split(".")[0]}:
        if name:
            names |= {name.lower(), f"{name.lower()}.local"}
    return frozenset(names)


def is_allowed(host: str, names: frozenset[str]) -> bool:
    bare = split_port(host)
    if bare in names:
        return True
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])  # an IPv6 literal may carry a zone
    except ValueError:
        return False
    return True


def wrap(wsgi_app: WSGIApplication, *, extra: tuple[str, ...]) -> WSGIApplication:
    """``wsgi_app`` answering 421, before Flask sees the request, when ``Host`` is not one of this warmer's."""
    names = own_names(extra)
    known: dict[str, bool] = {}  # Host header -> allowed; a handful of names in practice

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "")
        if not host:  # HTTP/1.0 without Host: no browser sends it, so no page can rebind it
            return wsgi_app(environ, start_response)
        allowed = known.get(host)
        if allowed is None:
            allowed = is_allowed(host, names)
            if len(known) < KNOWN_HOSTS_KEPT:
                known[host] = allowed
        if allowed:
            return wsgi_app(environ, start_response)
        body = json.dumps({
            "error": f"this warmer does not answer to the name {split_port(host)[:80]!r}: "
                     "open it by its address or its own name",
            "field": "Host",
            "allowed": "an IP address, localhost, this warmer's host name (also .local) or a name in "
                       "[web] allowed_hosts"}).encode()
        start_response("421 Misdirected Request", [("Content-Type", "application/json"),
                                                   ("Content-Length", str(len(body)))])
        return [body]

    return app
