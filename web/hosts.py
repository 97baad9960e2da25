"""Answer only to the warmer's own names: the defence against DNS rebinding.

A web page the therapist visits can point its own name at the warmer's LAN address
and then talk to the dashboard from her browser; the browser then sends the page's
name in ``Host`` (docs/field-notes.md, "More facts: ..., web, ..."). The dashboard
answers only when ``Host`` is an IP literal, ``localhost``, this machine's host name,
``<host name>.local`` (mDNS) or a name in ``[web] allowed_hosts``; anything else gets
421 Misdirected Request, before any view runs.
"""

from __future__ import annotations

import ipaddress
import socket

from flask import Flask, request

from web.errors import error_response

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


def register(app: Flask, *, extra: tuple[str, ...]) -> None:
    """Refuse, with 421, every request whose ``Host`` is not one of this warmer's."""
    names = own_names(extra)
    known: dict[str, bool] = {}  # Host header -> allowed; a handful of names in practice

    @app.before_request
    def _check_host():
        host = request.headers.get("Host", "")
        if not host:  # HTTP/1.0 without Host: no browser sends it, so no page can rebind it
            return None
        allowed = known.get(host)
        if allowed is None:
            allowed = is_allowed(host, names)
            if len(known) < KNOWN_HOSTS_KEPT:
                known[host] = allowed
        if allowed:
            return None
        return error_response(421, f"this warmer does not answer to the name {split_port(host)[:80]!r}: "
                                   "open it by its address or its own name", field="Host",
                              allowed="an IP address, localhost, this warmer's host name (also .local) "
                                      "or a name in [web] allowed_hosts")
