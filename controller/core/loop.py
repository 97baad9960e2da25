"""The control loop: read, propose, guard, drive, publish. Once per second.

One :meth:`Controller.tick`:

1. poll the probe(s) (never blocks on the Pi: reads run on worker threads);
2. classify the reading (valid, or what is wrong with it);
3. the PID proposes a duty from a valid reading;
4. the interlock evaluates every safety rule and drives the relay;
5. an immutable :class:`~controller.core.status.Status` is published.

The command interface (:meth:`set_setpoint`, :meth:`acknowledge_fault`,
:meth:`switch_off`, :meth:`switch_on`) is thread-safe and validates everything: it is
what the web, the CLI and MQTT use.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import Factory

from controller.core import bath_model as bm
from controller.core import config as cfgmod
from controller.core import events as ev
from controller.core import model_control, persistence
from controller.core import probe as pr
from controller.core.bath_tracker import BathTracker
from controller.core.calibration import Calibration
from controller.core.commands import CommandError as CommandError  # where the web, MQTT and the CLI import it
from controller.core.commands import PersonCommands
from controller.core.config import Config
from controller.core.faults import AckRefused, Fault, FaultKind
from controller.core.interfaces import Clock, ProbeSource
from controller.core.numbers import finite_float
from controller.core.pid import PID, Gains
from controller.core.readiness import Readiness
from controller.core.relay import Relay, TimeProportioner
from controller.core.safety import Interlock
from controller.core.settings import SettingsCommands
from controller.core.state import StateStore
from controller.core.status import Status

log = logging.getLogger(__name__)

TICK_S = 1.0            # control period
SETPOINT_SETTLE_TIMES = 3.0  # no integration for this many closed-loop times after a setpoint change


class Controller(PersonCommands, SettingsCommands):
    """The warmer. Built by :func:`controller.service.supervisor.build` for the service, directly in tests."""

    def __init__(self, cfg: Config, *, clock: Clock, primary: ProbeSource, secondary: ProbeSource | None = None,
                 pin_factory: Factory | None = None, store: StateStore | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.primary_source = primary
        self.secondary_source = secondary
        self.events = ev.EventLog()
        self._lock = threading.RLock()
        self._saver = persistence.StateSaver(store if store is not None else StateStore(cfg.state.dir),
                                             clock=clock, lock=self._lock, on_failed=self._report_unsaved,
                                             on_saved=lambda: self.detail.pop("state_problem", None))
        self._classifiers = (pr.ReadingClassifier(), pr.ReadingClassifier())
        self.calibration = Calibration(cfg.probe.offset_c)
        self._tick = 0
        self._duty = 0.0
        self._last_reading: pr.Reading | None = None
        self._readiness = Readiness(events=self.events, wall=clock.wall)
        self._listeners: list[Callable[[Status], None]] = []
        self.detail: dict[str, Any] = {}  # extra status, e.g. autotune progress
        self._duty_override: Callable[[float, float, float], float] | None = None

        saved, fault, self.state_problem = persistence.restore(self.store, cfg, clock)
        self._start_settings(saved.get("settings", {}))  # presets and probe offset set from the phone win
        self.setpoint_c: float = saved.get("setpoint_c", cfg.control.setpoint_c)
        # Switched off by a person: the PID proposes nothing, so the interlock holds the relay
        # off while every rule keeps watching. Kept across restarts and power cuts.
        self.switched_off: bool = saved.get("switched_off", False)
        self._start_day(saved.get("planner", {}))  # the ready-by schedule and auto-off (controller/core/planner.py)
        gains = saved.get("gains") or {}
        self.tracker = BathTracker(saved.get("bath", bm.BathModel()))
        # Gains: set on purpose (autotune, the config) or derived from the bath model.
        c, default = cfg.control, cfgmod.ControlConfig()
        defaults = (default.kp, default.ki, default.kd)
        # Earlier versions saved the default gains in every state file: those were never set on purpose.
        saved_on_purpose = bool(gains) and (gains.get("kp"), gains.get("ki"), gains.get("kd")) != defaults
        self._model_gains = not saved_on_purpose and (c.kp, c.ki, c.kd) == defaults
        self.pid = PID(Gains(kp=gains.get("kp", c.kp), ki=gains.get("ki", c.ki), kd=gains.get("kd", c.kd)))
        if self._model_gains:
            model_control.apply_model_gains(self.pid, self.bath, min_pulse_s=cfg.relay.effective_min_switch_s)
        now = clock.monotonic()
        self._last_tick_s = now
        self._setpoint_moved_s = -math.inf
        relay = Relay(pin=cfg.relay.pin, active_high=cfg.relay.active_high,
                      min_switch_s=cfg.relay.effective_min_switch_s, pin_factory=pin_factory, now_s=now)
        self.interlock = Interlock(
            relay=relay,
            proportioner=TimeProportioner(window_s=cfg.relay.effective_window_s,
                                          min_switch_s=cfg.relay.effective_min_switch_s),
            cutoff_c=cfg.control.cutoff_c, events=self.events, start_s=now, wall=clock.wall,
            has_safety_probe=secondary is not None, latched=fault, on_latch_change=self._persist)
        self.interlock.model = self.bath
        self.events.record(monotonic_s=now, wall_time_s=clock.wall(), kind=ev.EventKind.START,
                           message=f"started, setpoint {self.setpoint_c:.1f} degC"
                           + (f", fault still latched: {fault.kind}" if fault else ""),
                           setpoint_c=self.setpoint_c, fault=fault.kind if fault else None)
        if not self.state_problem:
            try:  # a state dir that cannot be written cannot remember a fault either
                self.store.check_writable()
            except OSError as exc:
                self._report_unsaved(exc)
        if self.state_problem:
            # Heater off until someone has looked: unusable saved state, or a state dir
            # that cannot remember a latched fault across the next power cut.
            self.interlock.latch(FaultKind.STATE, self.state_problem, now)
        self._status = self._snapshot(now)
        self._saver.save_pending()

    # -- persistence ----------------------------------------------------------------------
    @property
    def store(self) -> StateStore:
        """Where the state is saved (the saver writes there; replaceable, e.g. by a test's slow disk)."""
        return self._saver.store

    @store.setter
    def store(self, store: StateStore) -> None:
        self._saver.store = store

    def state_dict(self) -> dict[str, Any]:
        latched = self.interlock.latched
        return {
            "setpoint_c": self.setpoint_c,
            "switched_off": self.switched_off,
            "planner": self.planner.to_state(),
            "settings": self.settings_state(),
            "gains": None if self._model_gains else
            {"kp": self.pid.gains.kp, "ki": self.pid.gains.ki, "kd": self.pid.gains.kd},
            "bath": self.bath.to_dict(),
            "fault": None if latched is None else
            {"kind": latched.kind, "message": latched.message, "wall_time_s": latched.wall_time_s},
        }

    def _persist(self) -> None:
        """Queue the current state for saving (called under the lock).

        The saver writes it once the lock is released: a save is two
        fsyncs on an SD card, and the control tick must never wait for them.
        """
        self._saver.queue(self.state_dict())

    def _report_unsaved(self, exc: OSError) -> None:
        # The latch still holds in memory; the state dir problem is shown to the user
        # (Status.detail, one event per distinct problem) and checked by `stonewarmer check`.
        problem = f"cannot save state to {self.store.path}: {exc.strerror or exc}"
        if self.detail.get("state_problem") != problem:
            log.error("%s", problem)
            self.events.record(monotonic_s=self.clock.monotonic(), wall_time_s=self.clock.wall(),
                               kind=ev.EventKind.NOTICE, message=problem, source="state")
        self.state_problem = problem
        self.detail["state_problem"] = problem

    # -- the tick ---------------------------------------------------------------------
    def tick(self) -> Status:
        """Run one control step and publish its status."""
        self.follow_plan()  # the schedule and auto-off: through switch_on/switch_off, never the relay
        primary_raw = self.primary_source.poll(self.clock.monotonic())
        secondary_raw = (self.secondary_source.poll(self.clock.monotonic())
                         if self.secondary_source else None)
        with self._lock:
            now = self.clock.monotonic()
            self._tick += 1
            dt = max(0.0, now - self._last_tick_s)
            self._last_tick_s = now
            heater_on_s = dt if self.interlock.relay.is_on else 0.0  # the relay as it was since the last tick
            self.tracker.predict(dt, heater_on_s)
            expected_c = self.tracker.expected_water_change_c  # a probe that does not change through this: frozen
            judged = self._classifiers[0].classify(primary_raw, expected_c) if primary_raw else None
            primary = self.calibration.corrected(judged)  # the interlock judges the hotter of raw and corrected
            secondary = (self._classifiers[1].classify(secondary_raw, expected_c)
                         if secondary_raw else None)
            if primary is not None:
                self._last_reading = primary
            reading_c = primary.celsius if primary is not None else None  # only a valid reading has a value
            self._learn(now, dt, heater_on_s, reading_c)
            obs = self.tracker.observer
            if self.interlock.latched or self.switched_off or \
                    (primary is None and self.fresh_c(now) is None):
                # Faulted, switched off, or the last valid reading went stale: start afresh later.
                self.pid.reset()
                self._duty = 0.0
            elif reading_c is not None and obs is not None:
                if self._duty_override is not None:
                    self._duty = min(1.0, max(0.0, self._duty_override(now, reading_c, self.setpoint_c)))
                else:
                    # The PID controls the estimated water, ahead of the probe's dead time and lag; its
                    # integral sees the estimate moved by what the probe says it is off (its mean ends on
                    # the setpoint whatever the model's bias, and the probe's lag winds nothing up).
                    settle_s = SETPOINT_SETTLE_TIMES * model_control.closed_loop_s(self.bath)
                    settling = now - self._setpoint_moved_s < settle_s
                    guarded = self.interlock.guarded
                    self._duty = self.pid.update(obs.water_c, self.setpoint_c, now, feedforward=self._feedforward(),
                                                 integrate=not (settling or guarded or obs.suspect),
                                                 integrate_up=not self.tracker.learner.stones_settling(now),
                                                 integral_c=reading_c
                                                 if self._model_gains else None)
            # A bad reading has no temperature to act on: the interlock holds the relay off this
            # tick (and from the first tick until a valid reading); the PID keeps its state.
            self.interlock.tick(now, self.calibration.judged(judged), secondary, self._duty, self.setpoint_c,
                                held_off=self.switched_off, departure_c=self.tracker.departure_c,
                                missed_losses_c_per_s=self.tracker.missed_losses_c_per_s,
                                unseen_heat_s=self.tracker.unseen_heat_s(now),
                                unproven_heat_s=self.tracker.unproven_heat_s(now),
                                guard_water_c=self.tracker.guard_water_c,
                                water_c=obs.guard_water_c if obs is not None else None,
                                estimate_c=obs.water_c if obs is not None else None,
                                unconfirmed_c=self.tracker.budget.unconfirmed_c,
                                suspect_s=obs.suspect_s if obs is not None and obs.suspect else 0.0)
            if self.interlock.latched:
                self.tracker.take_unconfirmed_heat()
            self._status = self._snapshot(now)
            status = self._status
        self._saver.save_pending(wait=False)  # a trip this tick: the relay is already off, now remember it
        for listener in self._listeners:
            listener(status)
        return status

    # -- the bath model -----------------------------------------------------------------
    @property
    def bath(self) -> bm.BathModel:
        """The bath model as learned so far."""
        return self.tracker.model

    def _learn(self, now: float, dt: float, heater_on_s: float, reading_c: float | None) -> None:
        """Learn from this tick's reading; hand a changed model to the interlock and the PID."""
        learned = self.tracker.learn(now, dt, heater_on_s, reading_c, setpoint_c=self.setpoint_c,
                                     account=not self.interlock.latched)
        if learned is None:
            return
        self.interlock.model = learned.model
        if learned.rate_fitted:
            self.interlock.rate_known = True
        if self._model_gains:
            model_control.apply_model_gains(self.pid, learned.model,
                                            min_pulse_s=self.cfg.relay.effective_min_switch_s)
        if learned.counted:
            self._persist()

    def _feedforward(self) -> float:
        """The model's hold duty (0 with gains set on purpose: they were tuned without)."""
        return self.tracker.feedforward_duty(self.setpoint_c) if self._model_gains else 0.0

    def bath_summary(self) -> dict[str, Any]:
        """What was learned, in a therapist's words and in numbers (for the status and `check`)."""
        return self.tracker.summary(power_w=self.cfg.heater.power_w, setpoint_c=self.setpoint_c,
                                    at_limit=self.interlock.heater_at_limit(self.clock.monotonic()))

    def status(self) -> Status:
        """The latest published snapshot (cheap, any thread)."""
        return self._status

    def add_listener(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener(status)`` after every tick, on the control thread. Keep it quick."""
        self._listeners.append(listener)

    # -- commands (any thread) ----------------------------------------------------------
    def set_setpoint(self, value: Any, *, source: str = "api", wait: bool = True) -> float:
        """Set the target temperature (degC). Raise :class:`CommandError` if not allowed. ``wait=False``
        (the control thread): leave the save queued rather than wait for another thread's."""
        c = self.cfg.control
        allowed = {"min": c.min_setpoint_c, "max": c.max_setpoint_c, "unit": "degC"}
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CommandError(f"setpoint_c must be a number of degC, got {value!r}",
                               field="setpoint_c", allowed=allowed)
        setpoint_c = finite_float(value)  # None: NaN, inf, or an int too large for a float: out of range
        if setpoint_c is None or not c.min_setpoint_c <= setpoint_c <= c.max_setpoint_c:
            shown = value if setpoint_c is None else setpoint_c
            raise CommandError(f"setpoint_c {shown!r:.40} is outside the allowed range "
                               f"{c.min_setpoint_c:g} to {c.max_setpoint_c:g} degC",
                               field="setpoint_c", allowed=allowed)
        with self._lock:
            now = self.clock.monotonic()
            old = self.setpoint_c
            if setpoint_c == old:  # nothing changes: no event, no save (a client repeating itself floods no log)
                return self._touched(now, source, setpoint_c)  # but a person's tap still counts for auto-off
            self.setpoint_c = setpoint_c
            self._setpoint_moved_s = now
            if setpoint_c < old:
                self.interlock.setpoint_lowered(now, setpoint_c)
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=ev.EventKind.SETPOINT,
                               message=f"setpoint {old:.1f} -> {setpoint_c:.1f} degC", setpoint_c=setpoint_c,
                               temperature_c=self.fresh_c(now), source=source)
            self._persist()
            self._status = self._snapshot(now)
        self._saver.save_pending(wait=wait)
        return setpoint_c

    def acknowledge_fault(self, *, source: str = "api") -> Fault:
        """Clear the latched fault. Raise :class:`CommandError` if it cannot be cleared yet."""
        with self._lock:
            now = self.clock.monotonic()
            try:
                fault = self.interlock.acknowledge(now, self.setpoint_c, source=source)
            except AckRefused as exc:
                raise CommandError(f"cannot acknowledge: {exc}", field="fault") from None
            self.state_problem = None
            self._readiness.restart()
            self.tracker.budget.reset()  # every acknowledge starts an empty budget
            self._status = self._snapshot(now)
        self._saver.save_pending()
        return fault

    def set_duty_override(self, source: Callable[[float, float, float], float] | None) -> None:
        """Let ``source(now_s, temp_c, setpoint_c) -> duty`` propose the duty instead of the PID.

        For experiments such as autotune. The interlock still judges every tick;
        ``None`` hands control back to the PID (reset, so nothing is carried over).
        """
        with self._lock:
            self._duty_override = source
            self.pid.reset()

    def set_detail(self, **detail: Any) -> None:
        """Extra fields for the next status snapshots (``None`` removes a field)."""
        with self._lock:
            for key, value in detail.items():
                if value is None:
                    self.detail.pop(key, None)
                else:
                    self.detail[key] = value

    def set_gains(self, gains: Gains, *, source: str = "autotune") -> None:
        with self._lock:
            self._model_gains = False
            self.pid.gains = gains
            default = PID(gains)
            self.pid.integral_band_c, self.pid.integral_max = default.integral_band_c, default.integral_max
            self.pid.integral_below_feedforward = default.integral_below_feedforward
            self.pid.reset()
            self.events.record(monotonic_s=self.clock.monotonic(), wall_time_s=self.clock.wall(),
                               kind=ev.EventKind.NOTICE, source=source,
                               message=f"gains set: kp={gains.kp:g} ki={gains.ki:g} kd={gains.kd:g}")
            self._persist()
        self._saver.save_pending()

    def close(self, *, release_pin: bool = True) -> None:
        """Heater off; the pin released (or, ``release_pin=False``, left driven off for the
        process's exit: a released lgpio line becomes a floating input); probe workers stopped."""
        with self._lock:
            self.interlock.relay.release(close=release_pin)
        self._saver.save_pending()
        self.primary_source.close()
        if self.secondary_source:
            self.secondary_source.close()

    # -- status ---------------------------------------------------------------------
    def _snapshot(self, now: float) -> Status:
        il = self.interlock
        temp_c = self.fresh_c(now)
        mode = self._readiness.mode(now, temp_c, setpoint_c=self.setpoint_c, latched=il.latched is not None,
                                    switched_off=self.switched_off)
        latched = il.latched
        return Status(
            tick=self._tick,
            monotonic_s=now,
            wall_time_s=self.clock.wall(),
            temperature_c=temp_c,
            safety_temperature_c=il.secondary.fresh_c(now) if il.has_safety_probe else None,
            reading_age_s=il.reading_age_s(now),
            reading_kind=self._last_reading.kind if self._last_reading else pr.ReadingKind.NONE,
            setpoint_c=self.setpoint_c,
            min_setpoint_c=self.cfg.control.min_setpoint_c,
            max_setpoint_c=self.cfg.control.max_setpoint_c,
            cutoff_c=self.cfg.control.cutoff_c,
            duty=self._duty,
            relay_on=il.relay.is_on,
            mode=mode,
            fault=latched.kind if latched else None,
            fault_message=f"{latched.message}. {latched.advice}" if latched else None,
            ready_in_s=self._readiness.ready_in_s(now, mode, temp_c, setpoint_c=self.setpoint_c,
                                                  warming_rate_c_per_s=il.warming_rate_c_per_s),
            relay_switches=il.relay.switch_ons,
            sensor_errors=il.sensor_errors,
            faults_total=dict(il.faults_total),
            detail=dict(self.detail),
            bath=self.bath_summary(),
            **self.day_status(),
        )
