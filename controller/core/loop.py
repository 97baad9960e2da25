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
from controller.core import probe as pr
from controller.core.config import Config
from controller.core.interfaces import Clock, ProbeSource
from controller.core.pid import PID, Gains
from controller.core.relay import Relay, TimeProportioner
from controller.core.safety import AckRefused, Fault, FaultKind, Interlock
from controller.core.state import StateError, StateStore
from controller.core.status import Mode, Status

log = logging.getLogger(__name__)

TICK_S = 1.0            # control period
READY_BAND_C = 1.0      # "ready" = within +/- this of the setpoint ...
READY_HOLD_S = 300.0    # ... for this long: the stones lag the water
SAVE_RETRY_MIN_S = 1.0   # a failed state save is retried after this long ...
SAVE_RETRY_MAX_S = 60.0  # ... doubling up to this: a latch must reach the disk, the SD card must not be hammered
# Gains from the bath model (the PID controls the estimated water, ahead of the probe):
CLOSED_LOOP_S = 60.0    # the estimated water closes on the setpoint with this time constant ...
CLOSED_LOOP_DELAYS = 1.0  # ... or this many probe delays, if longer: corrections arrive through the probe
INTEGRAL_TIMES = 8.0    # integral time = this many closed-loop times: it corrects the model's hold duty, slowly
INTEGRAL_BAND_SHARE = 0.2  # ... and only within this share of the proportional band: not on the way there
INTEGRAL_MAX_DUTY = 0.15   # ... and never more than this much duty either way: it corrects the model, it does
                           # not hold an open lid (that would overshoot when the lid goes back on)
SETPOINT_SETTLE_TIMES = 3.0  # no integration for this many closed-loop times after a setpoint change
BUDGET_RATE_SHARE = 0.5  # the budget expects the probe to show half the learned heating: cold stones just
                         # put back soak up to ~40 % of it first (the guard does not rely on the budget)


class CommandError(ValueError):
    """A refused command. ``field`` and ``allowed`` say what was wrong and what is allowed."""

    def __init__(self, message: str, *, field: str | None = None, allowed: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed


class Controller:
    """The warmer. Built by :func:`controller.service.supervisor.build` for the service, directly in tests."""

    def __init__(self, cfg: Config, *, clock: Clock, primary: ProbeSource, secondary: ProbeSource | None = None,
                 pin_factory: Factory | None = None, store: StateStore | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.primary_source = primary
        self.secondary_source = secondary
        self.store = store if store is not None else StateStore(cfg.state.dir)
        self.events = ev.EventLog()
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._pending_state: dict[str, Any] | None = None
        self._save_retry_at_s: float | None = None  # after a failed save: no retry from the tick before this
        self._save_retry_s = SAVE_RETRY_MIN_S
        self._classifiers = (pr.ReadingClassifier(), pr.ReadingClassifier())
        self._tick = 0
        self._duty = 0.0
        self._last_reading: pr.Reading | None = None
        self._in_band_since_s: float | None = None
        self._warming_since_s: float | None = None  # for the time-to-ready estimate
        self._ready_announced = False
        self._listeners: list[Callable[[Status], None]] = []
        self.detail: dict[str, Any] = {}  # extra status, e.g. autotune progress
        self._duty_override: Callable[[float, float, float], float] | None = None
        self.state_problem: str | None = None

        saved, fault = self._restore()
        self.setpoint_c: float = saved.get("setpoint_c", cfg.control.setpoint_c)
        # Switched off by a person: the PID proposes nothing, so the interlock holds the relay
        # off while every rule keeps watching. Kept across restarts and power cuts.
        self.switched_off: bool = saved.get("switched_off", False)
        gains = saved.get("gains") or {}
        self.bath: bm.BathModel = saved.get("bath", bm.BathModel())
        self.learner = bm.Learner(self.bath)
        self.observer: bm.Observer | None = None   # from the first valid reading on
        self.budget = bm.EnergyBudget()
        self._fitted = self.bath.learned  # the heating rate comes from this bath (a warm-up seen now or before)
        # Gains: set on purpose (autotune, the config) or derived from the bath model.
        c, default = cfg.control, cfgmod.ControlConfig()
        defaults = (default.kp, default.ki, default.kd)
        # Earlier versions saved the default gains in every state file: those were never set on purpose.
        saved_on_purpose = bool(gains) and (gains.get("kp"), gains.get("ki"), gains.get("kd")) != defaults
        self._model_gains = not saved_on_purpose and (c.kp, c.ki, c.kd) == defaults
        self.pid = PID(Gains(kp=gains.get("kp", c.kp), ki=gains.get("ki", c.ki), kd=gains.get("kd", c.kd)))
        if self._model_gains:
            self._apply_model_gains()
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
        self._save_pending()

    # -- persistence ----------------------------------------------------------------------
    def _restore(self) -> tuple[dict[str, Any], Fault | None]:
        """The saved state, checked key by key; ``({}, None)`` when there is none.

        Whatever cannot be used is named in ``state_problem`` (the caller latches a
        STATE fault: heater off until acknowledged) and replaced by the config's
        value. A saved fault is never dropped, even a malformed one. Nothing here
        raises: a bad file must never become a crash loop.
        """
        try:
            data = self.store.load()
        except StateError as exc:
            moved = self.store.set_aside()
            self.state_problem = f"{exc}; " + (f"moved to {moved.name}, " if moved else "") + \
                "using the config defaults"
            log.error("%s", self.state_problem)
            return {}, None
        c = self.cfg.control
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
                checked = cfgmod.replace(self.cfg, "control", kp=gains["kp"], ki=gains["ki"],
                                         kd=gains["kd"]).control
                restored["gains"] = {"kp": checked.kp, "ki": checked.ki, "kd": checked.kd}
            except (cfgmod.ConfigError, KeyError, TypeError) as exc:
                problems.append(f"saved gains {gains!r} are not usable ({exc}); using the config's")
        if data.get("bath") is not None:
            try:
                restored["bath"] = bm.BathModel.from_dict(data["bath"])
            except ValueError as exc:
                problems.append(f"saved {exc}; learning the bath afresh")
        switched_off = data.get("switched_off", False)
        if isinstance(switched_off, bool):
            restored["switched_off"] = switched_off
        else:  # unreadable: the safe side is off
            restored["switched_off"] = True
            problems.append(f"saved switched_off {switched_off!r} is not true/false; staying off")
        fault = self._restore_fault(data.get("fault"))
        if problems:
            self.state_problem = f"{self.store.path}: " + "; ".join(problems)
            log.error("%s", self.state_problem)
        return restored, fault

    def _restore_fault(self, saved: Any) -> Fault | None:
        if saved is None:
            return None
        now = self.clock.monotonic()
        try:
            wall = float(saved.get("wall_time_s"))
        except (AttributeError, TypeError, ValueError):
            wall = self.clock.wall()
        if isinstance(saved, dict) and saved.get("kind") in tuple(FaultKind):
            return Fault(FaultKind(saved["kind"]), str(saved.get("message", "")), now, wall)
        # Unknown or damaged: still latched (never cleared by a restart), as a STATE fault.
        return Fault(FaultKind.STATE, f"a saved fault could not be read ({saved!r}); it stays latched", now, wall)

    def state_dict(self) -> dict[str, Any]:
        latched = self.interlock.latched
        return {
            "setpoint_c": self.setpoint_c,
            "switched_off": self.switched_off,
            "gains": None if self._model_gains else
            {"kp": self.pid.gains.kp, "ki": self.pid.gains.ki, "kd": self.pid.gains.kd},
            "bath": self.bath.to_dict(),
            "fault": None if latched is None else
            {"kind": latched.kind, "message": latched.message, "wall_time_s": latched.wall_time_s},
        }

    def _persist(self) -> None:
        """Queue the current state for saving (called under the lock).

        :meth:`_save_pending` writes it once the lock is released: a save is two
        fsyncs on an SD card, and the control tick must never wait for them.
        """
        self._pending_state = self.state_dict()

    def _save_pending(self, *, wait: bool = True) -> None:
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
                    self._report_unsaved(exc)
            else:
                with self._lock:
                    if self._save_retry_at_s is not None:
                        log.info("state saved to %s after an earlier failure", self.store.path)
                    self._save_retry_at_s = None
                    self._save_retry_s = SAVE_RETRY_MIN_S
                    self.detail.pop("state_problem", None)
        finally:
            self._save_lock.release()

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
        primary_raw = self.primary_source.poll(self.clock.monotonic())
        secondary_raw = (self.secondary_source.poll(self.clock.monotonic())
                         if self.secondary_source else None)
        with self._lock:
            now = self.clock.monotonic()
            self._tick += 1
            dt = max(0.0, now - self._last_tick_s)
            self._last_tick_s = now
            heater_on_s = dt if self.interlock.relay.is_on else 0.0  # the relay as it was since the last tick
            if self.observer is not None:
                self.observer.predict(dt, heater_on_s)
            # How much the water should have moved (each heater pulse stirs it, even at a steady hold): the
            # model's prediction, scaled down to the weakest heater's until this bath's heating rate is
            # known. A probe whose raw value does not change through that is frozen.
            expected_c = 0.0 if self.observer is None else self.observer.predicted_water_change_c * self._rate_share
            primary = (self._classifiers[0].classify(primary_raw, expected_c)
                       if primary_raw else None)
            secondary = (self._classifiers[1].classify(secondary_raw, expected_c)
                         if secondary_raw else None)
            if primary is not None:
                self._last_reading = primary
            reading_c = primary.celsius if primary is not None else None  # only a valid reading has a value
            self._learn(now, dt, heater_on_s, reading_c)
            obs = self.observer
            if self.interlock.latched or self.switched_off or \
                    (primary is None and self.interlock.primary.fresh_c(now) is None):
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
                    settling = now - self._setpoint_moved_s < SETPOINT_SETTLE_TIMES * self._closed_loop_s
                    guarded = (self.interlock.blocked_reason or "").startswith("guard")
                    self._duty = self.pid.update(obs.water_c, self.setpoint_c, now, feedforward=self._feedforward(),
                                                 integrate=not (settling or guarded or obs.suspect
                                                                or self.learner.stones_settling(now)),
                                                 integral_c=reading_c
                                                 if self._model_gains else None)
            # A bad reading has no temperature to act on: the interlock holds the relay off this
            # tick (and from the first tick until a valid reading); the PID keeps its state.
            self.interlock.tick(now, primary, secondary, self._duty, self.setpoint_c,
                                water_c=obs.guard_water_c if obs is not None else None,
                                estimate_c=obs.water_c if obs is not None else None,
                                unconfirmed_c=self.budget.unconfirmed_c,
                                suspect_s=obs.suspect_s if obs is not None and obs.suspect else 0.0)
            if self.interlock.latched and self.budget.unconfirmed_c > 0 and obs is not None:
                # Heat the probe never showed is taken as real: it went into the water.
                obs.add_heat(self.budget.unconfirmed_c)
                self.budget.reset()
            self._status = self._snapshot(now)
            status = self._status
        self._save_pending(wait=False)  # a trip this tick: the relay is already off, now remember it
        for listener in self._listeners:
            listener(status)
        return status

    # -- the bath model -----------------------------------------------------------------
    def _learn(self, now: float, dt: float, heater_on_s: float, reading_c: float | None) -> None:
        """Correct the observer, account the energy budget and learn, from this tick's reading."""
        obs = self.observer
        if obs is None:
            if reading_c is not None:
                self.observer = bm.Observer(self.bath, reading_c)
            return
        obs.correct(dt, reading_c)
        m = self.bath
        # Heat that should show at the probe by now: the model's rise plus the losses it made up for.
        rise = max(0.0, obs.predicted_change_c + obs.loss_per_s * max(0.0, obs.probe_c - m.room_c) * dt)
        if not self.interlock.latched:
            self.budget.step(dt, reading_c=reading_c, predicted_change_c=obs.predicted_change_c,
                             expected_rise_c=rise * BUDGET_RATE_SHARE * self._rate_share, departing=obs.suspect)
        model = self.learner.observe(now, reading_c, obs.water_c, heater_on_s > 0, self.setpoint_c, dt)
        if model is None:
            return
        counted = (model.warmups, model.loss_fits) != (m.warmups, m.loss_fits)
        if model.heat_rate_c_per_s != m.heat_rate_c_per_s and reading_c is not None and heater_on_s > 0:
            obs.rebase(model, reading_c, slope_c_per_s=self.learner.ramp_slope_c_per_s)
            self._fitted = self.interlock.rate_known = True
        else:
            obs.take_model(model)
        self.bath = model
        self.interlock.model = model
        if self._model_gains:
            self._apply_model_gains()
        if counted:
            self._persist()

    @property
    def _rate_share(self) -> float:
        """1 once this bath's heating rate is known; before, the weakest heater's share of the model's."""
        return 1.0 if self._fitted else bm.HEAT_RATE_MIN_C_PER_S / self.bath.heat_rate_c_per_s

    @property
    def _closed_loop_s(self) -> float:
        return max(CLOSED_LOOP_S, CLOSED_LOOP_DELAYS * self.bath.delay_s)

    def _apply_model_gains(self) -> None:
        """Gains for the estimated water: a proportional band of one closed-loop time of full
        power, the integral INTEGRAL_TIMES slower and only close to the setpoint, no derivative
        (the estimate is ahead of the probe already)."""
        band_c = self.bath.heat_rate_c_per_s * self._closed_loop_s
        kp = 1.0 / band_c
        self.pid.gains = Gains(kp=kp, ki=kp / (INTEGRAL_TIMES * self._closed_loop_s), kd=0.0)
        self.pid.integral_band_c = INTEGRAL_BAND_SHARE * band_c
        self.pid.integral_max = INTEGRAL_MAX_DUTY

    def _feedforward(self) -> float:
        """The duty the learned model says holds the setpoint (0 with gains set on purpose: they were tuned
        without). From the learned losses once they were measured, not the missed-heat flow of the moment:
        what an open lid takes extra is left to the proportional term, so nothing stored overshoots when
        the lid goes back on."""
        if not self._model_gains:
            return 0.0
        if not self.bath.loss_fits and self.observer is not None:
            return min(1.0, self.observer.hold_duty(self.setpoint_c))  # nothing measured yet: what it does now
        return min(1.0, self.bath.hold_duty(self.setpoint_c))

    def bath_summary(self) -> dict[str, Any]:
        """What was learned, in a therapist's words and in numbers (for the status and `check`)."""
        m = self.bath
        limited = self.interlock.heater_at_limit(self.clock.monotonic())
        power_w = self.cfg.heater.power_w
        return {"summary": m.describe(power_w=power_w),
                "too_weak": m.too_weak_message(self.setpoint_c) or (
                    "the heater works but cannot warm this bath to the set temperature now: is the lid off?"
                    if limited else None),
                "too_weak_kind": "limit" if m.too_weak_message(self.setpoint_c) else "lid" if limited else None,
                "power_w": power_w or None, "litres": round(m.litres(power_w)) if power_w and m.learned else None,
                "learned": m.learned, "heat_rate_c_per_min": round(m.heat_rate_c_per_s * 60.0, 2),
                "probe_delay_s": round(m.delay_s), "max_water_c": round(m.max_water_c, 1),
                "water_c": round(self.observer.water_c, 2) if self.observer is not None else None,
                "unconfirmed_heat_c": round(self.budget.unconfirmed_c, 2)}

    def status(self) -> Status:
        """The latest published snapshot (cheap, any thread)."""
        return self._status

    def add_listener(self, listener: Callable[[Status], None]) -> None:
        """Call ``listener(status)`` after every tick, on the control thread. Keep it quick."""
        self._listeners.append(listener)

    # -- commands (any thread) ----------------------------------------------------------
    def set_setpoint(self, value: Any, *, source: str = "api") -> float:
        """Set the target temperature (degC). Raise :class:`CommandError` if not allowed."""
        c = self.cfg.control
        allowed = {"min": c.min_setpoint_c, "max": c.max_setpoint_c, "unit": "degC"}
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CommandError(f"setpoint_c must be a number of degC, got {value!r}",
                               field="setpoint_c", allowed=allowed)
        try:
            setpoint_c = float(value)
        except OverflowError:  # an int too large for a float: certainly out of range
            setpoint_c = math.inf
        if not math.isfinite(setpoint_c) or not c.min_setpoint_c <= setpoint_c <= c.max_setpoint_c:
            raise CommandError(f"setpoint_c {setpoint_c!r} is outside the allowed range "
                               f"{c.min_setpoint_c:g} to {c.max_setpoint_c:g} degC",
                               field="setpoint_c", allowed=allowed)
        with self._lock:
            now = self.clock.monotonic()
            old = self.setpoint_c
            if setpoint_c == old:  # nothing changes: no event, no save (a client repeating itself floods no log)
                return setpoint_c
            self.setpoint_c = setpoint_c
            self._setpoint_moved_s = now
            if setpoint_c < old:
                self.interlock.setpoint_lowered(now, setpoint_c)
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(), kind=ev.EventKind.SETPOINT,
                               message=f"setpoint {old:.1f} -> {setpoint_c:.1f} degC", setpoint_c=setpoint_c,
                               temperature_c=self.interlock.primary.fresh_c(now), source=source)
            self._persist()
            self._status = self._snapshot(now)
        self._save_pending()
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
            self._in_band_since_s = None
            self.budget.reset()  # every acknowledge starts an empty budget
            self._status = self._snapshot(now)
        self._save_pending()
        return fault

    def switch_off(self, *, source: str = "api") -> bool:
        """Hold the heater off (readings, rules, history and alarms go on). Returns whether
        anything changed: switching off a warmer that is off records nothing."""
        return self._switch(off=True, source=source)

    def switch_on(self, *, source: str = "api") -> bool:
        """Heat to the setpoint again after :meth:`switch_off`. Returns whether anything changed."""
        return self._switch(off=False, source=source)

    def _switch(self, *, off: bool, source: str) -> bool:
        with self._lock:
            if self.switched_off == off:
                return False
            now = self.clock.monotonic()
            self.switched_off = off
            self.pid.reset()  # nothing carried over from before the switch
            self._in_band_since_s = None
            self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(),
                               kind=ev.EventKind.OFF if off else ev.EventKind.ON, source=source,
                               message="switched off: heater held off" if off else
                               f"switched on, setpoint {self.setpoint_c:.1f} degC",
                               setpoint_c=self.setpoint_c, temperature_c=self.interlock.primary.fresh_c(now))
            self._persist()
            self._status = self._snapshot(now)
        self._save_pending()
        return True

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
            self.pid.reset()
            self.events.record(monotonic_s=self.clock.monotonic(), wall_time_s=self.clock.wall(),
                               kind=ev.EventKind.NOTICE, source=source,
                               message=f"gains set: kp={gains.kp:g} ki={gains.ki:g} kd={gains.kd:g}")
            self._persist()
        self._save_pending()

    def close(self, *, release_pin: bool = True) -> None:
        """Heater off; the pin released (or, ``release_pin=False``, left driven off for the
        process's exit: a released lgpio line becomes a floating input); probe workers stopped."""
        with self._lock:
            self.interlock.relay.release(close=release_pin)
        self._save_pending()
        self.primary_source.close()
        if self.secondary_source:
            self.secondary_source.close()

    # -- status ---------------------------------------------------------------------
    def _mode(self, now: float, temp_c: float | None) -> Mode:
        if self.interlock.latched:
            self._in_band_since_s = None
            return Mode.FAULT
        if self.switched_off:
            return Mode.OFF
        if temp_c is None:
            self._in_band_since_s = None
            return Mode.STARTING
        error = temp_c - self.setpoint_c
        if abs(error) <= READY_BAND_C:
            if self._in_band_since_s is None:
                self._in_band_since_s = now
            if now - self._in_band_since_s >= READY_HOLD_S:
                if not self._ready_announced:
                    self._ready_announced = True
                    self.events.record(monotonic_s=now, wall_time_s=self.clock.wall(),
                                       kind=ev.EventKind.READY, message="stones ready",
                                       temperature_c=temp_c, setpoint_c=self.setpoint_c)
                return Mode.READY
            return Mode.HOLDING
        self._in_band_since_s = None
        self._ready_announced = False
        return Mode.WARMING if error < 0 else Mode.COOLING

    def _ready_in_s(self, now: float, mode: Mode, temp_c: float | None) -> float | None:
        if mode == Mode.READY:
            return 0.0
        if mode == Mode.HOLDING and self._in_band_since_s is not None:
            return max(0.0, READY_HOLD_S - (now - self._in_band_since_s))
        if mode != Mode.WARMING or temp_c is None:
            self._warming_since_s = None  # the rate counts from when warming (re)starts, not a fault's flat line
            return None
        self._warming_since_s = now if self._warming_since_s is None else self._warming_since_s
        rate = self.interlock.warming_rate_c_per_s(now, since_s=self._warming_since_s)
        if rate is None:
            return None
        return (self.setpoint_c - READY_BAND_C - temp_c) / rate + READY_HOLD_S

    def _snapshot(self, now: float) -> Status:
        il = self.interlock
        temp_c = il.primary.fresh_c(now)
        mode = self._mode(now, temp_c)
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
            ready_in_s=self._ready_in_s(now, mode, temp_c),
            relay_switches=il.relay.switch_ons,
            sensor_errors=il.sensor_errors,
            faults_total=dict(il.faults_total),
            detail=dict(self.detail),
            bath=self.bath_summary(),
        )
