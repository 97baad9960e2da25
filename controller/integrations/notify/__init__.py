"""Notifications on the phone, without Home Assistant; :func:`attach` is the service's part.

ntfy by default (``[notify] ntfy_url``: an HTTP POST to the topic, standard
library only), other services through Apprise (``[notify] apprise_urls``, the
``notify`` extra). What is sent when: :mod:`.messages` (the one table of
texts). Every destination has its own :class:`~.worker.Worker` thread with a
bounded queue, a rate limit and retries; the thread that records an event
(often the control thread) only queues it: it never waits on the network.

The parts: :mod:`.messages` (events to texts), :mod:`.outbox` (the queue and
the rate limit), :mod:`.senders` (ntfy, Apprise), :mod:`.worker` (the thread).
"""

from __future__ import annotations

import logging
import time
import urllib.parse

from controller.core import config as cfgmod
from controller.core.events import Event
from controller.core.interfaces import ControllerView
from controller.integrations import ha_discovery as ha
from controller.integrations.notify.messages import wanted
from controller.integrations.notify.senders import AppriseSender, NtfySender, read_token
from controller.integrations.notify.setting import NtfySetting
from controller.integrations.notify.worker import Sender, Worker

log = logging.getLogger("stonewarmer.notify")

STOP_TIMEOUT_S = 1.0  # how long stopping waits for the attempts under way (all destinations together)


class Notifications:
    """The workers of every configured destination (maybe none). :meth:`on_event` is the event sink."""

    def __init__(self, workers: list[Worker], *, cfg: cfgmod.Config | None = None) -> None:
        self.workers = workers
        self.cfg = cfg or cfgmod.Config()
        self.started = False

    def on_event(self, event: Event) -> None:
        """Queue ``event`` on every destination if it is worth a notification. Never waits."""
        if wanted(event):
            for worker in self.workers:
                worker.put(event)

    def start(self) -> None:
        self.started = True
        for worker in self.workers:
            worker.start()
            log.info("notify: notifications to %s", worker.sender.where)

    def use_ntfy_url(self, url: str) -> None:
        """Send to the ntfy address ``url`` from now on ("": to none), without a restart."""
        try:
            sender = ntfy_sender(self.cfg, url=url)  # self.cfg keeps [notify] ntfy_url: the token's server
        except cfgmod.ConfigError as exc:  # the token file went unreadable: say so, send without ntfy
            log.error("notify: %s", exc)
            sender = None
        fresh = [_worker(sender, self.cfg)] if sender is not None else []
        old = [w for w in self.workers if w.sender.kind == NtfySender.kind]
        self.workers = [w for w in self.workers if w.sender.kind != NtfySender.kind] + fresh  # one swap
        for worker in old:
            worker.request_stop()
        if self.started:
            for worker in fresh:
                worker.start()
        log.info("notify: ntfy %s", fresh[0].sender.where if fresh else "off")

    def stop(self) -> None:
        for worker in self.workers:
            worker.request_stop()
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers:
            worker.stop(max(0.0, deadline_s - time.monotonic()))


def senders(cfg: cfgmod.Config, *, ntfy_url: str | None = None) -> list[Sender]:
    """The destinations ``[notify]`` names; raise :class:`~controller.core.config.ConfigError` for a token
    file that cannot be read, an Apprise URL Apprise refuses, or Apprise not installed."""
    ntfy = ntfy_sender(cfg, url=ntfy_url)
    return ([ntfy] if ntfy is not None else []) + \
        [AppriseSender(url, index=i) for i, url in enumerate(cfg.notify.apprise_urls)]


def ntfy_sender(cfg: cfgmod.Config, *, url: str | None = None) -> NtfySender | None:
    """The ntfy destination: ``url`` (the address set from the phone) or ``[notify] ntfy_url``; None for none.

    The access token of ``[notify] ntfy_token_file`` goes only to the server of ``[notify] ntfy_url``
    (same scheme, host and port): an address typed on the phone cannot carry it anywhere else.
    """
    n = cfg.notify
    url = n.ntfy_url if url is None else url
    if not url:
        return None
    token = None
    if n.ntfy_token_file:
        if same_server(url, n.ntfy_url):
            token = read_token(n.ntfy_token_file)
        else:
            log.warning("notify: the access token of [notify] ntfy_token_file is only for %s; sending to %s "
                        "without it", _server(n.ntfy_url) or "the server of [notify] ntfy_url", _server(url))
    return NtfySender(url, token=token, click_url=n.dashboard_url or ha.dashboard_url(cfg), timeout_s=n.timeout_s)


def same_server(url: str, other: str) -> bool:
    """Whether two addresses name one server: the same scheme, host and port."""
    return bool(url and other) and _server(url) == _server(other)


def _server(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def _worker(sender: Sender, cfg: cfgmod.Config) -> Worker:
    return Worker(sender, queue_size=cfg.notify.queue_size, burst=cfg.notify.burst, interval_s=cfg.notify.interval_s)


def attach(controller: ControllerView, cfg: cfgmod.Config, *, ntfy: NtfySetting | None = None) -> Notifications:
    """The notification side of ``stonewarmer run``, before anything starts.

    Events recorded before this call (the start, a fault latched across the
    restart, a state problem) are queued too; nothing is sent until :meth:`start`.
    ``ntfy``: the address set from the phone, which wins over ``[notify] ntfy_url`` and
    is followed when it changes.
    """
    notes = Notifications([_worker(sender, cfg) for sender in senders(cfg, ntfy_url=ntfy.url if ntfy else None)],
                          cfg=cfg)
    if ntfy is not None:
        ntfy.add_listener(notes.use_ntfy_url)
    if notes.workers or ntfy is not None:
        for event in controller.events.since(0):
            notes.on_event(event)
        controller.events.add_sink(notes.on_event)
    return notes
