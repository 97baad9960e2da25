"""Autotune on the real probe and relay: claim them, step one control tick per second of wall time.

``sudo stonewarmer autotune`` runs as root, over SSH, for up to hours, with the
service stopped. So: every state file it writes is given to the owner of the state
dir (the service user), or the service could no longer read its own state; a
hang-up, SIGTERM or Ctrl-C cancels the experiment with the heater off
(:func:`cancel_on_signals`); and the caller leaves the pin driven off at exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from controller.core import config as cfgmod
from controller.core.loop import Controller
from controller.core.state import StateStore

#: Signals that end an autotune with the heater off: the SSH session hung up, systemd or
#: kill stopped it, Ctrl-C.
CANCEL_SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


class ClaimError(Exception):
    """The probe or the relay cannot be claimed (most often: the service still drives them)."""


def give_to_dir_owner(path: Path) -> None:
    """Make ``path`` belong to the owner of its directory (root writing into the service's state dir).

    A state file written by root with mode 0600 cannot be read by the service user, which
    would then latch a ``state`` fault and lose what was saved. Nothing to do when not root.
    """
    if os.geteuid() != 0:
        return
    owner = path.parent.stat()
    os.chown(path, owner.st_uid, owner.st_gid)


class ServiceOwnedStore(StateStore):
    """The state store, each save handed to the state dir's owner (see :func:`give_to_dir_owner`)."""

    def save(self, data: dict[str, Any]) -> None:
        super().save(data)
        give_to_dir_owner(self.path)


@contextlib.contextmanager
def cancel_on_signals(cancel: threading.Event) -> Iterator[list[int]]:
    """While inside: :data:`CANCEL_SIGNALS` set ``cancel`` (and are listed in the yielded list).

    A dropped SSH session sends SIGHUP; unhandled, it would kill the process with the
    relay as it was, and a Raspberry Pi kernel keeps a dead process's output driven.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        cancel.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in CANCEL_SIGNALS}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def claim(cfg: cfgmod.Config, *, cancel: threading.Event) -> tuple[Controller, Callable[[], None]]:
    """The hardware controller of ``cfg`` and its ``step()``: wait for the next second, then tick.

    ``cancel`` cuts the wait short. The caller closes the controller (heater off, pin
    left driven off). Raises :class:`ClaimError`.
    """
    from controller.service.supervisor import build

    try:
        controller = build(cfg, simulate=False, store=ServiceOwnedStore(cfg.state.dir)).controller
    except Exception as exc:  # noqa: BLE001 - e.g. GPIO busy: the service is still running
        raise ClaimError(f"cannot claim the probe and relay ({exc}); is the service still running?") from None
    next_s = controller.clock.monotonic()

    def step() -> None:
        nonlocal next_s
        next_s += 1.0
        controller.clock.sleep_until(next_s, cancel)
        controller.tick()

    return controller, step
