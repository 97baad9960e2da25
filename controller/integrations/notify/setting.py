"""The ntfy address set from the phone (``PUT /api/settings``'s ``notify.ntfy_url``).

Kept by the web process in its own state dir (``notify.json``, written with
:func:`~controller.core.atomic.atomic_write`); once set it wins over ``[notify] ntfy_url``,
which stays the default. The address may not carry credentials: an access token stays in
the file of ``[notify] ntfy_token_file``, readable by the service only. Listeners (the running
:class:`~controller.integrations.notify.Notifications`) hear of a change at once: no restart.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.atomic import atomic_write

log = logging.getLogger("stonewarmer.notify")

FILE = "notify.json"


def checked_url(value: object, cfg: cfgmod.Config) -> str:
    """``value`` as an ntfy address ("" for none); raise ValueError naming what is allowed."""
    if value is None:
        return ""
    try:
        url: str = cfgmod.replace(cfg, "notify", ntfy_url=value).notify.ntfy_url
    except cfgmod.ConfigError as exc:
        raise ValueError(str(exc).replace("[notify] ", "notify.", 1)) from None
    if "@" in urllib.parse.urlsplit(url).netloc:
        raise ValueError("notify.ntfy_url is not allowed with a user or password in it: put an access token in "
                         "the file named by [notify] ntfy_token_file instead")
    return url


class NtfySetting:
    """The ntfy address in force (the phone's, else the config's); :meth:`set` keeps a new one."""

    def __init__(self, cfg: cfgmod.Config) -> None:
        self.cfg = cfg
        self.path = Path(cfg.state.dir) / FILE
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._url = cfg.notify.ntfy_url
        try:
            self._url = checked_url(json.loads(self.path.read_text(encoding="utf-8"))["ntfy_url"], cfg)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:  # the config's address goes on working
            log.error("%s is not usable (%s); using [notify] ntfy_url", self.path, exc)

    @property
    def url(self) -> str:
        """The ntfy address in force ("" for none)."""
        return self._url

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(url)`` after every change."""
        self._listeners.append(listener)

    def set(self, value: object) -> str:
        """Check, keep and apply a new address (None or "": none); return it. Raises ValueError
        (refused) or OSError (not written); either way nothing changed."""
        url = checked_url(value, self.cfg)
        with self._lock:
            atomic_write(self.path, json.dumps({"ntfy_url": url}).encode(), mode=0o600)
            self._url = url
        for listener in self._listeners:
            listener(url)
        return url
