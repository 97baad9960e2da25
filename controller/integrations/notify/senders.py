"""Where a notification goes: an ntfy topic (standard library only) or an Apprise URL (the notify extra).

Each sender makes one attempt per :meth:`send` and raises :class:`SendError`
when it failed; the worker decides about retrying. Nothing here logs a token
or a whole URL: an ntfy topic on a public server is as good as a password, and
Apprise URLs carry their services' keys. :attr:`where` is the safe name.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from controller.core.config import ConfigError
from controller.integrations.notify.messages import Message, Priority

#: Apprise's notification types for ntfy's priorities.
APPRISE_TYPES = {Priority.MIN: "info", Priority.LOW: "info", Priority.DEFAULT: "success",
                 Priority.HIGH: "warning", Priority.URGENT: "failure"}


class SendError(Exception):
    """One attempt failed. ``retry``: worth another (network, HTTP 5xx, 408, 429); else refused for good."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def read_token(path: str) -> str:
    """The ntfy access token: the first line of ``[notify] ntfy_token_file``."""
    where = f"[notify] ntfy_token_file = {path!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not a text file") from None
    token = text.splitlines()[0].strip() if text.strip() else ""
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError(f"{where}: put the access token (e.g. tk_...) alone on the file's first line")
    return token


def header_value(text: str) -> str:
    """``text`` as an HTTP header value: ASCII as it is, anything else as an RFC 2047
    encoded word, which ntfy decodes (docs/field-notes.md, "More facts")."""
    text = " ".join(text.split())  # no line breaks in a header
    if text.isascii():
        return text
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="  # one word: never folded


class NtfySender:
    """An HTTP POST of the message to ``url`` (``https://server/topic``), as ntfy's publish API takes it."""

    kind = "ntfy"

    def __init__(self, url: str, *, token: str | None = None, click_url: str = "", timeout_s: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.click_url = click_url
        self.timeout_s = timeout_s
        parts = urllib.parse.urlsplit(url)
        self.where = f"ntfy at {parts.scheme}://{parts.netloc}"

    def request(self, message: Message) -> urllib.request.Request:
        headers = {
            "Title": header_value(message.title),
            "Priority": str(int(message.priority)),
            "Tags": ",".join(message.tags),
            "Content-Type": "text/plain; charset=utf-8",
        }
        if self.click_url:
            headers["Click"] = self.click_url
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(self.url, data=message.body.encode("utf-8"), headers=headers, method="POST")

    def send(self, message: Message) -> None:
        try:
            with urllib.request.urlopen(self.request(message), timeout=self.timeout_s) as answer:
                answer.read()
        except urllib.error.HTTPError as exc:
            retry = exc.code >= 500 or exc.code in (408, 429)
            raise SendError(f"{self.where} answered HTTP {exc.code} {exc.reason}", retry=retry) from None
        except urllib.error.URLError as exc:
            raise SendError(f"{self.where}: {exc.reason}", retry=True) from None
        except (OSError, http.client.HTTPException) as exc:  # a timeout, a connection reset mid-answer
            raise SendError(f"{self.where}: {exc or type(exc).__name__}", retry=True) from None


class AppriseSender:
    """One Apprise URL (``tgram://...``, ``mailto://...``); raise :class:`ConfigError` if it cannot work."""

    kind = "apprise"

    def __init__(self, url: str, *, index: int) -> None:
        where = f"[notify] apprise_urls[{index}]"
        try:
            import apprise
        except ImportError:
            raise ConfigError(f"{where} needs Apprise, which is not installed: install the notify extra "
                              "(on the Pi: sudo stonewarmer install --with notify; from a checkout: make venv)"
                              ) from None
        self._apprise: Any = apprise.Apprise()
        scheme = url.partition("://")[0]
        self.where = f"Apprise {scheme}:// (apprise_urls[{index}])"
        if not self._apprise.add(url):
            raise ConfigError(f"{where}: Apprise does not accept this {scheme}:// URL; "
                              "see Apprise's list of services for the form it takes")

    def send(self, message: Message) -> None:
        ok = self._apprise.notify(body=message.body, title=message.title,
                                  notify_type=APPRISE_TYPES[message.priority])
        if not ok:  # Apprise logs the service's own answer (warning level, secrets masked)
            raise SendError(f"{self.where}: not delivered", retry=True)
