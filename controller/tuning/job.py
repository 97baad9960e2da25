"""Autotune as a job of the running service (``sudo stonewarmer autotune`` with the service up).

The experiment belongs to the service: its control thread keeps ticking, judging
every tick through the interlock and feeding systemd's watchdog, while the job
follows each published status from a tick listener. So a dropped SSH session
leaves nothing behind, a hung loop is killed by the watchdog with
``ExecStopPost=`` driving the relay off, and the results are written by the
service user. However the experiment ends, control goes back to the PID (with the
tuned gains when it finished).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.core.loop import CommandError, Controller
from controller.core.status import Status
from controller.service.control import CommandRefused, Commands
from controller.tuning.autotune import AutotuneError, Session
from controller.tuning.experiment import Phase
from controller.tuning.results import apply
from controller.tuning.rules import DEFAULT_RULE, RULES, Result

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # how often a watching client hears how the experiment goes


class JobError(Exception):
    """The job cannot start (one is running, a fault is latched, a bad option); the message says why."""


class AutotuneJob:
    """At most one relay experiment at a time on the service's ``controller``."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.outcome: dict[str, Any] | None = None  # how the last experiment ended: phase, message
        self.finished = threading.Event()           # set once the last experiment ended and was saved
        self.finished.set()
        self._session: Session | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        controller.add_listener(self._on_status)

    @property
    def running(self) -> bool:
        return not self.finished.is_set()

    def start(self, *, setpoint_c: float | None = None, rule: str = DEFAULT_RULE, source: str = "autotune") -> None:
        """Start the experiment, around ``setpoint_c`` (degC) if given. Raises :class:`JobError`."""
        if rule not in RULES:
            raise JobError(f"rule {rule!r} is not allowed: one of {', '.join(RULES)}")
        with self._lock:
            if self.running:
                raise JobError("an autotune is running already (stonewarmer autotune --cancel stops it)")
            latched = self.controller.interlock.latched
            if latched:
                raise JobError(f"a fault is latched ({latched.kind}): acknowledge it first")
            if setpoint_c is not None:
                try:
                    self.controller.set_setpoint(setpoint_c, source=source)
                except CommandError as exc:
                    raise JobError(f"setpoint: {exc}") from None
            self.outcome = None
            self._cancel.clear()
            self.finished.clear()
            self._session = Session(self.controller, rule=rule)
        log.info("autotune started (%s rule), target %.1f degC", rule, self.controller.setpoint_c)

    def cancel(self) -> bool:
        """Cancel the running experiment (it ends at the next tick). Returns whether one was running."""
        self._cancel.set()
        return self.running

    def stop(self) -> None:
        """The service is stopping: cancel, without waiting (the heater is switched off anyway)."""
        self._cancel.set()

    def _on_status(self, status: Status) -> None:
        """After every tick, on the control thread: quick bookkeeping only."""
        session = self._session
        if session is None:
            return
        try:
            result = self._observe(session, status)
        except AutotuneError as exc:
            session.failed(exc)
            self._end({"phase": exc.phase, "message": str(exc)})
            log.warning("autotune ended: %s: %s", exc.phase, exc)
            return
        if result is not None:
            self._session = None
            # Saving is two fsyncs: never on the control thread. The PID takes over at once.
            self.controller.set_duty_override(None)
            threading.Thread(target=self._save, args=(result,), name="autotune-save", daemon=True).start()

    def _observe(self, session: Session, status: Status) -> Result | None:
        """The session's bookkeeping of one tick. Raises :class:`AutotuneError`, whatever went wrong: an
        exception out of a tick listener would end the control loop, and with it the warmer."""
        if self._cancel.is_set():
            raise AutotuneError("cancelled", phase=Phase.CANCELLED)
        try:
            return session.observe(status)
        except AutotuneError:
            raise
        except Exception as exc:  # noqa: BLE001 - the experiment's arithmetic fails: the experiment ends, not the warmer
            log.exception("autotune: the measurement could not be evaluated")
            raise AutotuneError(f"the measurement could not be evaluated ({type(exc).__name__}: {exc}); "
                                "gains unchanged", phase=Phase.FAILED) from exc

    def _save(self, result: Result) -> None:
        try:
            path = apply(self.controller, result)
        except OSError as exc:
            self._end({"phase": Phase.FAILED, "message": f"measured, but the gains could not be saved: {exc}"})
            return
        g = result.gains
        self._end({"phase": Phase.DONE, "gains": {"kp": g.kp, "ki": g.ki, "kd": g.kd},
                   "message": f"gains ({result.rule}) kp={g.kp:.4g} ki={g.ki:.4g} kd={g.kd:.4g} saved to "
                              f"{self.controller.store.path} and used from now on; measurement in {path}"})
        log.info("autotune done: %s", self.outcome and self.outcome["message"])

    def _end(self, outcome: dict[str, Any]) -> None:
        self._session = None
        self.controller.set_duty_override(None)  # back to the PID
        self.outcome = outcome
        self.finished.set()


def commands(controller: Controller) -> Commands:
    """The control socket's autotune commands on the service's ``controller``.

    ``autotune`` (``setpoint_c``, ``rule``) starts the job and streams its progress;
    ``autotune-watch`` follows a running one; ``autotune-cancel`` cancels it. A client
    that goes away stops only its watching.
    """
    job = AutotuneJob(controller)

    def start(request: dict[str, Any], send: Callable[[dict[str, Any]], bool]) -> None:
        try:
            job.start(setpoint_c=request.get("setpoint_c"), rule=str(request.get("rule", DEFAULT_RULE)),
                      source=str(request.get("source", "autotune")))
        except JobError as exc:
            raise CommandRefused(str(exc)) from None
        send({"started": {"setpoint_c": controller.setpoint_c}})
        follow(job, send)

    def watch(_request: dict[str, Any], send: Callable[[dict[str, Any]], bool]) -> None:
        if not job.running and job.outcome is None:
            raise CommandRefused("no autotune has run since the service started")
        follow(job, send)

    def cancel(_request: dict[str, Any], send: Callable[[dict[str, Any]], bool]) -> None:
        send({"cancelled": job.cancel()})

    return Commands({"autotune": start, "autotune-watch": watch, "autotune-cancel": cancel}, stop=job.stop)


def follow(job: AutotuneJob, send: Callable[[dict[str, Any]], bool]) -> None:
    """Send the experiment's progress (``detail.autotune`` and the temperature) until it ends, then its outcome."""
    while not job.finished.wait(PROGRESS_EVERY_S):
        status = job.controller.status()
        if not send({"progress": {**status.detail.get("autotune", {}), "temperature_c": status.temperature_c}}):
            return  # the client went away; the experiment goes on
    send({"done": job.outcome})
