"""How many passwords anyone may try: per client, for everyone together, and at once.

Three bounds, each for its own attack:

- **per client**: ``max_failures`` wrong passwords per ``window_s`` from one address, then
  429 until the oldest leaves the window. The attempt is counted *before* its password is
  checked, so 40 requests in parallel from one address check at most ``max_failures``;
  a right password takes its own attempt back and clears the address's failures.
- **everyone together**: beyond ``global_failures`` wrong passwords per window from all
  addresses (a guesser with several addresses), at most one attempt per ``global_spacing_s``
  is checked. It is a slow-down, not a lock: whoever asks next after the spacing gets a check,
  so the owner waits seconds, never the whole window.
- **at once**: at most ``max_concurrent`` password checks run at the same time (argon2id
  takes 19 MiB each: a Pi Zero 2 W has 512 MB; web/credentials.py); one that cannot start
  within ``wait_s`` is answered 429 as well, and not counted (nothing was checked).

Times are real seconds from ``now`` (``time.monotonic`` by default).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
GLOBAL_FAILURES = 20          # four addresses' worth of guesses, then the slow-down
GLOBAL_SPACING_S = 3.0        # one check per this, for everyone, during the slow-down
MAX_CONCURRENT_CHECKS = 2
CHECK_WAIT_S = 2.0            # how long an attempt may wait for a free check (real s)
CLIENTS_TRACKED = 1000        # bound the memory


class TooManyAttempts(Exception):
    """Refused before checking; ``retry_after_s`` says when to try again (s)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Attempt:
    """One counted attempt; call :meth:`succeeded` when the password was right."""

    def __init__(self, limiter: SignInLimiter, client: str, stamp: float) -> None:
        self._limiter, self._client, self._stamp = limiter, client, stamp

    def succeeded(self) -> None:
        self._limiter._succeeded(self._client, self._stamp)


@dataclass(kw_only=True)
class SignInLimiter:
    """The three bounds of the module docstring, for one dashboard."""

    max_failures: int = MAX_FAILURES
    window_s: float = FAILURE_WINDOW_S
    global_failures: int = GLOBAL_FAILURES
    global_spacing_s: float = GLOBAL_SPACING_S
    max_concurrent: int = MAX_CONCURRENT_CHECKS
    wait_s: float = CHECK_WAIT_S
    now: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()  # address -> its failures' times
        self._all: deque[float] = deque()                              # everyone's failures' times
        self._next_global_s = -float("inf")
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.max_concurrent)

    def _prune(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def _count(self, client: str) -> float:
        """Count an attempt of ``client`` as a failure now; raise :class:`TooManyAttempts` instead if over a bound."""
        with self._lock:
            now = self.now()
            mine = self._clients.setdefault(client, deque())
            self._clients.move_to_end(client)
            while len(self._clients) > CLIENTS_TRACKED:
                self._clients.popitem(last=False)
            self._prune(mine, now)
            if len(mine) >= self.max_failures:
                wait_s = mine[0] + self.window_s - now
                raise TooManyAttempts(f"too many wrong passwords: try again in {wait_s:.0f} s", wait_s)
            self._prune(self._all, now)
            if len(self._all) >= self.global_failures:
                if now < self._next_global_s:
                    wait_s = self._next_global_s - now
                    raise TooManyAttempts(f"many wrong passwords from several devices: sign-ins are slowed "
                                          f"down, try again in {wait_s:.0f} s", wait_s)
                self._next_global_s = now + self.global_spacing_s
            mine.append(now)
            self._all.append(now)
            return now

    @contextmanager
    def attempt(self, client: str) -> Iterator[Attempt]:
        """Count an attempt of ``client``, then hold one of the password checks while the body runs.

        Raises :class:`TooManyAttempts` (nothing checked) when a bound is reached.
        """
        stamp = self._count(client)
        if not self._checks.acquire(timeout=self.wait_s):
            self._forget(client, stamp)  # nothing was checked: not a guess
            raise TooManyAttempts("the warmer is busy checking other sign-ins: try again in a moment", 1.0)
        try:
            yield Attempt(self, client, stamp)
        finally:
            self._checks.release()

    def _succeeded(self, client: str, stamp: float) -> None:
        """The right password: the address's failures are forgiven, and this attempt is no failure."""
        with self._lock:
            self._clients.pop(client, None)
            self._discard(self._all, stamp)

    def _forget(self, client: str, stamp: float) -> None:
        """An attempt that was counted but never checked."""
        with self._lock:
            self._discard(self._clients.get(client, deque()), stamp)
            self._discard(self._all, stamp)

    @staticmethod
    def _discard(times: deque[float], stamp: float) -> None:
        try:
            times.remove(stamp)
        except ValueError:
            pass  # already out of the window
