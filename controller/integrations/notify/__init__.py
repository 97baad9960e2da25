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

from controller.core import config as cfgmod
from controller.core.events import Event
from controller.core.interfaces import ControllerView
from controller.integrations import ha_discovery as ha
from controller.integrations.notify.messages import wanted
from controller.integrations.notify.senders import AppriseSender, NtfySender, read_token
from controller.integrations.notify.worker import Sender, Worker

log = logging.getLogger("stonewarmer.notify")

STOP_TIMEOUT_S = 1.0  # how long stopping waits for the attempts under way (all destinations together)


class Notifications:
    """The workers of every configured destination (maybe none). :meth:`on_event` is the event sink."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    def on_event(self, event: Event) -> None:
        """Queue ``event`` on every destination if it is worth a notification. Never waits."""
        if wanted(event):
            for worker in self.workers:
                worker.put(event)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
            log.info("notify: notifications to %s", worker.sender.where)

    def stop(self) -> None:
        for worker in self.workers:
            worker.request_stop()
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for worker in self.workers:
            worker.stop(max(0.0, deadline_s - time.monotonic()))


def senders(cfg: cfgmod.Config) -> list[Sender]:
    """The destinations ``[notify]`` names; raise :class:`~controller.core.config.ConfigError` for a token
    file that cannot be read, an Apprise URL Apprise refuses, or Apprise not installed."""
    n = cfg.notify
    found: list[Sender] = []
    if n.ntfy_url:
        token = read_token(n.ntfy_token_file) if n.ntfy_token_file else None
        found.append(NtfySender(n.ntfy_url, token=token, click_url=n.dashboard_url or ha.dashboard_url(cfg),
                                timeout_s=n.timeout_s))
    found += [AppriseSender(url, index=i) for i, url in enumerate(n.apprise_urls)]
    return found


def attach(controller: ControllerView, cfg: cfgmod.Config) -> Notifications:
    """The notification side of ``stonewarmer run``, before anything starts.

    Events recorded before this call (the start, a fault latched across the
    restart, a state problem) are queued too; nothing is sent until :meth:`start`.
    """
    notes = Notifications([Worker(sender, queue_size=cfg.notify.queue_size, burst=cfg.notify.burst,
                                  interval_s=cfg.notify.interval_s) for sender in senders(cfg)])
    if notes.workers:
        for event in controller.events.since(0):
            notes.on_event(event)
        controller.events.add_sink(notes.on_event)
    return notes
