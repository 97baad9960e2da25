"""Autotune on the real probe and relay: claim them, and step one control tick per second of wall time."""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.core import config as cfgmod
from controller.core.loop import Controller


class ClaimError(Exception):
    """The probe or the relay cannot be claimed (most often: the service still drives them)."""


def claim(cfg: cfgmod.Config) -> tuple[Controller, Callable[[], None]]:
    """The hardware controller of ``cfg`` and its ``step()``: wait for the next second, then tick.

    The caller closes the controller (heater off, pin released). Raises :class:`ClaimError`.
    """
    from controller.service.supervisor import build

    try:
        controller = build(cfg, simulate=False).controller
    except Exception as exc:  # noqa: BLE001 - e.g. GPIO busy: the service is still running
        raise ClaimError(f"cannot claim the probe and relay ({exc}); is the service still running?") from None
    stop = threading.Event()
    next_s = controller.clock.monotonic()

    def step() -> None:
        nonlocal next_s
        next_s += 1.0
        controller.clock.sleep_until(next_s, stop)
        controller.tick()

    return controller, step
