"""Restoring and saving the controller's state: the setpoint, the gains, the learned bath, the planner's
memory (controller/core/planner.py), a latched fault.

:func:`restore` checks a saved file key by key and says what it could not use;
:class:`StateSaver` writes the latest state off the control tick's lock, retrying a
failed save with a backoff. The file itself (format, atomic replace) is
:mod:`controller.core.state`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.core import config as cfgmod
from controller.core import settings
from controller.core.bath_model import BathModel
from controller.core.config import Config
from controller.core.faults import Fault, FaultKind
from controller.core.interfaces import Clock
from controller.core.planner import Planner
from controller.core.state import StateError, StateStore

log = logging.getLogger(__name__)

SAVE_RETRY_MIN_S = 1.0   # a failed state save is retried after this long ...
SAVE_RETRY_MAX_S = 60.0  # ... doubling up to this: a latch must reach the disk, the SD card must not be hammered


def restore(store: StateStore, cfg: Config, clock: Clock) -> tuple[dict[str, Any], Fault | None, str | None]:
    """The saved state, checked key by key: ``(restored, fault, problem)``; ``({}, None, None)`` when there is none.

    Whatever cannot be used is named in ``problem`` (the caller latches a STATE fault:
    heater off until acknowledged) and replaced by the config's value. A saved fault is
    never dropped, even a malformed one. Nothing here raises: a bad file must never
    become a crash loop.
    """
    try:
        data = store.load()
    except StateError as exc:
        moved = store.set_aside()
        unreadable = f"{exc}; " + (f"moved to {moved.name}, " if moved else "") + \
            "using the config defaults"
        log.error("%s", unreadable)
        return {}, None, unreadable
    c = cfg.control
    problems: list[str] = []
    restored: dict[str, Any] = {}
    sp = data.get("setpoint_c")
    if sp is not None:
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) \
                or not c.min_setpoint_c <= sp <= c.max_setpoint_c:
            problems.append(f"saved setpoint {sp!r} is outside {c.min_setpoint_c:g}.."
                            f"{c.max_setpoint_c:g} degC; using {c.setpoint_c:g} degC")
        elif c.resume_after_power_cut:
            restored["setpoint_c"] = float(sp)
    gains = data.get("gains")
    if gains is not None:
        try:  # the config's own checks: types and allowed ranges
            checked = cfgmod.checked_gains(cfg, kp=gains["kp"], ki=gains["ki"], kd=gains["kd"])
            restored["gains"] = {"kp": checked.kp, "ki": checked.ki, "kd": checked.kd}
        except (cfgmod.ConfigError, KeyError, TypeError) as exc:
            problems.append(f"saved gains {gains!r} are not usable ({exc}); using the config's")
    if data.get("bath") is not None:
        try:
            restored["bath"] = BathModel.from_dict(data["bath"])
        except ValueError as exc:
            problems.append(f"saved {exc}; learning the bath afresh")
        except OverflowError:  # an int too large for a float
            problems.append("saved bath model has a number out of range; learning the bath afresh")
    switched_off = data.get("switched_off", False)
    if isinstance(switched_off, bool):
        restored["switched_off"] = switched_off
    else:  # unreadable: the safe side is off
        restored["switched_off"] = True
        problems.append(f"saved switched_off {switched_off!r} is not true/false; staying off")
    restored["planner"], planner_problems = Planner.restore(data.get("planner"))
    problems += planner_problems
    restored["settings"], settings_problems = settings.restore(data.get("settings"), cfg)
    problems += settings_problems
    fault = _restore_fault(data.get("fault"), clock)
    problem: str | None = None
    if problems:
        problem = f"{store.path}: " + "; ".join(problems)
        log.error("%s", problem)
    return restored, fault, problem


def _restore_fault(saved: Any, clock: Clock) -> Fault | None:
    """A saved fault as it was latched; an unreadable one as a STATE fault (never dropped)."""
    if saved is None:
        return None
    now = clock.monotonic()
    try:
        wall = float(saved.get("wall_time_s"))
    except (AttributeError, TypeError, ValueError):
        wall = clock.wall()
    if isinstance(saved, dict) and saved.get("kind") in tuple(FaultKind):
        return Fault(FaultKind(saved["kind"]), str(saved.get("message", "")), now, wall)
    # Unknown or damaged: still latched (never cleared by a restart), as a STATE fault.
    return Fault(FaultKind.STATE, f"a saved fault could not be read ({saved!r}); it stays latched", now, wall)


class StateSaver:
    """Writes the controller's latest queued state, one writer at a time, never under the tick's wait.

    ``lock`` is the controller's own lock: the queue and the backoff are read and changed
    under it. ``on_failed(exc)`` and ``on_saved()`` are called under it too, after each
    failed and each successful write.
    """

    def __init__(self, store: StateStore, *, clock: Clock, lock: threading.RLock,
                 on_failed: Callable[[OSError], None], on_saved: Callable[[], None]) -> None:
        self.store = store
        self.clock = clock
        self._lock = lock
        self._on_failed = on_failed
        self._on_saved = on_saved
        self._save_lock = threading.Lock()
        self._pending_state: dict[str, Any] | None = None
        self._save_retry_at_s: float | None = None  # after a failed save: no retry from the tick before this
        self._save_retry_s = SAVE_RETRY_MIN_S

    def queue(self, data: dict[str, Any]) -> None:
        """Queue ``data`` for saving, replacing anything not yet written (call under the lock)."""
        self._pending_state = data

    def save_pending(self, *, wait: bool = True) -> None:
        """Write the latest queued state, if any (call without holding the lock).

        ``wait=False`` (the control tick): if another thread is saving right now, leave
        the state queued for the next tick rather than wait for that thread's fsyncs.
        A failed save stays queued (unless a newer state replaced it) and is reported
        while unsaved; the tick retries it after a backoff of 1, 2, 4 ... up to 60 s, so a
        latched fault reaches the disk once the disk takes it.
        """
        if not self._save_lock.acquire(blocking=wait):
            return
        try:  # one writer at a time, always the newest state
            with self._lock:
                if not wait and self._save_retry_at_s is not None \
                        and self.clock.monotonic() < self._save_retry_at_s:
                    return  # backing off after a failed save
                data, self._pending_state = self._pending_state, None
            if data is None:
                return
            try:
                self.store.save(data)
            except OSError as exc:
                with self._lock:
                    if self._pending_state is None:  # nothing newer queued meanwhile: retry this one
                        self._pending_state = data
                    self._save_retry_at_s = self.clock.monotonic() + self._save_retry_s
                    self._save_retry_s = min(2 * self._save_retry_s, SAVE_RETRY_MAX_S)
                    self._on_failed(exc)
            else:
                with self._lock:
                    if self._save_retry_at_s is not None:
                        log.info("state saved to %s after an earlier failure", self.store.path)
                    self._save_retry_at_s = None
                    self._save_retry_s = SAVE_RETRY_MIN_S
                    self._on_saved()
        finally:
            self._save_lock.release()
