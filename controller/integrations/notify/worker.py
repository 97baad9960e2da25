"""One destination's sending thread: take from the outbox, merge, send, retry with backoff.

The rules, in order:

* a fault goes out at once, whatever the rate limit (with any other fault
  waiting, merged into one notification), and is retried until it is sent
  (backoff up to ``BACKOFF_S[-1]``) or the server refuses it for good;
* anything else waits for a token of the :class:`~.outbox.RateLimit`; what
  piled up meanwhile goes out merged into one notification; it is given up
  after ``GIVE_UP_AFTER`` failed attempts (an old "stones ready" is no use);
* a fault that arrives while another notification waits out its backoff
  joins it and goes at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from controller.core.clock import MonotonicClock
from controller.core.events import Event
from controller.core.interfaces import Clock
from controller.integrations.notify.messages import Message, merge, message_for
from controller.integrations.notify.outbox import Outbox, RateLimit
from controller.integrations.notify.senders import SendError

log = logging.getLogger("stonewarmer.notify")

#: Seconds between attempts: after the first failure, the second, ...; the last repeats.
BACKOFF_S = (2.0, 5.0, 15.0, 30.0, 60.0)
GIVE_UP_AFTER = 5     # failed attempts after which a non-fault notification is dropped
IDLE_WAKE_S = 60.0    # an idle worker looks at the outbox at least this often
SENT, RETRY, REFUSED = "sent", "retry", "refused"  # the outcomes of one attempt


class Sender(Protocol):
    kind: str   # "ntfy", "apprise": names the thread
    where: str  # for the log: never a token, a topic or a service's key

    def send(self, message: Message) -> None: ...


class Worker:
    """Sends one destination's notifications from its own thread; :meth:`put` is all other threads call."""

    def __init__(self, sender: Sender, *, queue_size: int, burst: int, interval_s: float,
                 clock: Clock | None = None, backoff_s: Sequence[float] = BACKOFF_S) -> None:
        self.sender = sender
        self.clock = clock or MonotonicClock()
        self.outbox = Outbox(size=queue_size)
        self.limit = RateLimit(burst=burst, interval_s=interval_s, now_s=self.clock.monotonic())
        self.backoff_s = tuple(backoff_s)
        self.sent = 0        # notifications delivered
        self.failed = 0      # attempts that failed
        self.given_up = 0    # events never delivered: retries used up, refused, or still waiting at stop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify-{sender.kind}",
                                        daemon=True)
        self._outage_logged = False

    @property
    def dropped(self) -> int:
        """Non-fault events dropped because the queue was full."""
        return self.outbox.dropped

    def put(self, event: Event) -> None:
        """Queue an event for sending. O(1), never waits: safe on the control thread."""
        self.outbox.put(event)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Tell the thread to stop after the attempt under way (returns at once)."""
        self._stop.set()
        self.outbox.arrived.set()
        self.outbox.urgent_arrived.set()

    def stop(self, timeout_s: float) -> None:
        """Stop; wait at most ``timeout_s`` for an attempt under way (the thread is a daemon)."""
        self.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        left = sum(self.outbox.waiting())
        if left:
            self.given_up += left
            log.warning("notify: %d notification(s) to %s not sent before stopping", left, self.sender.where)

    # -- the worker thread --------------------------------------------------------------------
    def _run(self) -> None:
        batch: list[Event] = []
        attempts = 0
        while not self._stop.is_set():
            if not batch:
                self.outbox.arrived.clear()
                self.outbox.urgent_arrived.clear()
                now = self.clock.monotonic()
                batch = (self.outbox.take_all() if self.limit.available(now) else self.outbox.take_urgent())
                attempts = 0
                if not batch:
                    _faults, others = self.outbox.waiting()
                    self.outbox.arrived.wait(self.limit.wait_s(now) if others else IDLE_WAKE_S)
                    continue
            else:
                batch += self.outbox.take_urgent()  # a fault that came meanwhile goes with this attempt
            message = merge([message_for(event) for event in batch])
            outcome = self._attempt(message)
            if outcome == SENT:
                self.limit.spend(self.clock.monotonic())
                batch = []
                continue
            attempts += 1
            if outcome == REFUSED or (not message.urgent and attempts >= GIVE_UP_AFTER):
                if outcome != REFUSED:
                    log.warning("notify: gave up %r to %s after %d attempts", message.title, self.sender.where,
                                attempts)
                self.given_up += len(batch)
                batch = []
                continue
            delay_s = self.backoff_s[min(attempts, len(self.backoff_s)) - 1]
            # A fault batch waits its backoff out; any other wakes early for an arriving fault.
            (self._stop if message.urgent else self.outbox.urgent_arrived).wait(delay_s)
            self.outbox.urgent_arrived.clear()

    def _attempt(self, message: Message) -> str:
        """One try: SENT, RETRY (worth another) or REFUSED (the server said no for good)."""
        try:
            self.sender.send(message)
        except SendError as exc:
            self.failed += 1
            if not exc.retry:
                log.error("notify: %s; %r not sent: check [notify]", exc, message.title)
                return REFUSED
            if not self._outage_logged:  # once per outage, not once per retry
                self._outage_logged = True
                log.warning("notify: %s; retrying (control carries on)", exc)
            return RETRY
        except Exception:  # noqa: BLE001 - a bug in a sender must not end notifications for good
            self.failed += 1
            log.exception("notify: sending to %s failed", self.sender.where)
            return RETRY
        if self._outage_logged:
            log.info("notify: %s reachable again", self.sender.where)
            self._outage_logged = False
        self.sent += 1
        return SENT
