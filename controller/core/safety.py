"""The safety interlock: the only code that switches the heater relay.

Evaluated every tick, before the relay is written, independent of the PID (it
sees the PID's proposed duty, never its internals). The rules are modelled on
Marlin's and Klipper's heater guards scaled to a water bath (docs/field-notes.md,
"How trusted heater controllers guard against runaway"); docs/safety.md holds
the one table of them, each with its test. Each rule says what it does at its
own code below; its numbers, with their units and reasons, are in :mod:`controller.core.guards`.

The rules that keep the water from burning (cutoff, guard, over target) judge the
hotter of the reading and the bath model's estimate of the water
(:mod:`controller.core.bath_observer`): the probe runs behind the water by its dead
time and lag, several degC during a warm-up. The energy budget replaces fixed
heating-watch constants: heat the probe did not confirm, in degC of this bath's water.

A latched fault keeps the relay off until :meth:`Interlock.acknowledge`, which
is refused unless the probe reads valid and below the setpoint. Every trip and
acknowledge becomes an event; the latch is persisted by the controller.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.core import events as ev
from controller.core.bath_model import DEAD_MAX_S, LAG_MAX_S, BathModel
from controller.core.faults import SEVERITY, AckRefused, Fault, FaultKind
from controller.core.guards import (
    BUDGET_MIN_C,
    BUDGET_OBSERVER_C,
    BUDGET_PULSE_SHARE,
    BUDGET_SAFE_ABOVE_C,
    DISAGREE_C,
    DISAGREE_S,
    GUARD_ABOVE_C,
    LIFTED_DELAYS,
    LIFTED_HEAT_C,
    MAX_BAD_IN_A_ROW,
    OVER_TARGET_C,
    OVER_TARGET_S,
    PROOF_WAIT_S,
    STALE_S,
    STUCK_CREEP_S,
    STUCK_PERIOD_S,
    STUCK_TAIL_LAGS,
    SUSPECT_MAX_S,
    HeldFor,
    ProbeWatch,
    ReadingHistory,
)
from controller.core.heating_watch import HeatingWatch
from controller.core.probe import DESCRIPTIONS, Reading
from controller.core.relay import Relay, TimeProportioner
from controller.core.welded_watch import WeldedWatch

#: Why the relay is held off when the water is at or above setpoint + GUARD_ABOVE_C.
GUARD_REASON = f"guard: at or above setpoint + {GUARD_ABOVE_C:g} degC"


class Interlock:
    """Owns the relay. :meth:`tick` decides, every tick, whether the heater may run."""

    def __init__(self, *, relay: Relay, proportioner: TimeProportioner, cutoff_c: float,
                 events: ev.EventLog, start_s: float, wall: Callable[[], float],
                 has_safety_probe: bool = False, latched: Fault | None = None,
                 on_latch_change: Callable[[], None] = lambda: None) -> None:
        self.relay = relay
        self.proportioner = proportioner
        self.cutoff_c = cutoff_c
        self.events = events
        self.wall = wall
        self.has_safety_probe = has_safety_probe
        self.latched = latched
        self._tripped: set[FaultKind] = {latched.kind} if latched else set()
        self._on_latch_change = on_latch_change
        self.primary = ProbeWatch(start_s)
        self.secondary = ProbeWatch(start_s)
        self.sensor_errors = 0
        self.faults_total: dict[FaultKind, int] = {}
        self.blocked_reason: str | None = None  # why the relay is held off this tick
        self.guarded = False  # held off this tick by the guard (not by a fault, a bad reading or a person)
        self.model = BathModel()                 # the bath as learned (the controller keeps it current)
        self.rate_known = False                  # its heating rate fitted from this warm-up already
        self.water_c: float | None = None        # the water as the heat says, this tick (None: no estimate yet)
        self.estimate_c: float | None = None     # the estimate following the reading
        # rule state
        self._relay_off = HeldFor(STUCK_PERIOD_S, since_s=start_s)  # relay commanded off
        self._last_tick_s: float | None = None
        self._history = ReadingHistory(STUCK_PERIOD_S)         # the hottest valid reading
        self.heating = HeatingWatch(history=self._history, trip=self._trip, notice=self._notice)
        self.welded = WeldedWatch()
        self._over_target = HeldFor(OVER_TARGET_S)
        self._disagree = HeldFor(DISAGREE_S)
        self._cooling_low_c: float | None = None               # lowest temp of a cool-down
        self._seen_temp = False

    # -- public -------------------------------------------------------------------------
    def tick(self, now_s: float, primary: Reading | None, secondary: Reading | None,
             duty: float, setpoint_c: float, *, water_c: float | None = None,
             estimate_c: float | None = None, unconfirmed_c: float = 0.0, suspect_s: float = 0.0,
             departure_c: float | None = None, missed_losses_c_per_s: float = 0.0, unseen_heat_s: float = 0.0,
             unproven_heat_s: float = 0.0, guard_water_c: float | None = None, held_off: bool = False) -> bool:
        """Evaluate every rule, then drive the relay. Return whether it is on.

        ``held_off``: a person switched the warmer off: the relay opens at once (not at the end of
                       its minimum on-time) and stays open; every rule is still evaluated.

        ``water_c``: the water as the bath model says the heat left it (a suspect fall of the
        reading not believed), for the rules; ``estimate_c``: the model's estimate following
        the reading, for an acknowledge (None: no estimate yet); ``unconfirmed_c``: the energy
        budget's heat the probe has not confirmed (degC of water); ``suspect_s``: how long the reading
        has been suspect (fell away, not risen with heat since); ``departure_c``: the reading less the
        model's own change (it departs upward at the heating rate from a welded relay), counting
        ``missed_losses_c_per_s``: losses the model misses (degC/s); ``unseen_heat_s``: how long ago heat went in
        that a probe in the water would have shown, a suspect reading standing still since
        (:mod:`controller.core.lifted_watch`); ``unproven_heat_s``: the same before the heating rate is fitted, for
        a reading that has not proven itself in the water since the start or since it fell
        (:mod:`controller.core.probe_proof`); ``guard_water_c``: the hottest the water may be, for the guard alone: a
        bound, not an estimate, for the cutoff or the over-target rule (a suspect reading's water until it stands
        still, and the water while the probe has not proven it is in it before the first fit:
        :attr:`controller.core.bath_tracker.BathTracker.guard_water_c`).
        """
        bad = self.primary.see(primary)
        if self.has_safety_probe:
            bad = self.secondary.see(secondary) or bad
        if bad:
            self.sensor_errors += 1
        self.water_c = water_c
        self.estimate_c = estimate_c
        temp_c = self.primary.fresh_c(now_s)
        probe_c = self._hottest_c(now_s)
        hottest_c = self._judged_c(now_s)  # the hotter of the probe(s) and the estimated water

        self._check_sensors(now_s)
        if hottest_c is not None and probe_c is not None:
            if not self._seen_temp and hottest_c > setpoint_c + GUARD_ABOVE_C:
                self._cooling_low_c = hottest_c  # started hot: a cool-down, not an over-target
            self._seen_temp = True
            self._history.add(now_s, probe_c)
            if hottest_c >= self.cutoff_c:  # cutoff: the hottest probe (or the water) reached it, latch at once
                self._trip(FaultKind.OVERTEMP, f"water at {hottest_c:.1f} degC reached the cutoff "
                           f"{self.cutoff_c:.1f} degC", now_s)
            self._check_over_target(now_s, hottest_c, setpoint_c)
            self._check_stuck(now_s, probe_c, setpoint_c, departure_c, missed_losses_c_per_s)
        if temp_c is not None:
            since_last_s = now_s - self._last_tick_s if self._last_tick_s is not None else 0.0
            self.heating.update(now_s, temp_c, since_last_s=since_last_s, duty=duty, setpoint_c=setpoint_c,
                                model=self.model, rate_known=self.rate_known, relay_on=self.relay.is_on,
                                latched=self.latched is not None, blocked=self.blocked_reason is not None)
        self._check_budget(now_s, unconfirmed_c)
        if unseen_heat_s >= LIFTED_DELAYS * self.model.delay_s:
            self._trip(FaultKind.SENSOR, f"the probe reading fell away and showed nothing of the {LIFTED_HEAT_C:g} "
                       f"degC of heat the water got {unseen_heat_s:.0f} s ago: is the probe in the water?", now_s)
        if unproven_heat_s >= PROOF_WAIT_S:
            # A dead element and a probe out of the water look the same here: nothing shows of the heat.
            self._trip(FaultKind.HEATING, f"the reading has not risen with the heat given {unproven_heat_s:.0f} s "
                       "ago, enough for any heater's water to show by now, or since the fastest heater could "
                       "have warmed the water to the guard: is the probe in the water, and does the element "
                       "heat?", now_s)
        if suspect_s >= SUSPECT_MAX_S:
            self._trip(FaultKind.SENSOR, f"the probe reading fell away {suspect_s / 60:.0f} min ago and has not "
                       "risen with the heat since: is the probe in the water?", now_s)
        self._check_disagree(now_s)

        guard_c = hottest_c if hottest_c is None or guard_water_c is None else max(hottest_c, guard_water_c)
        reason = self._block_reason(bad, temp_c, guard_c, setpoint_c, held_off=held_off)
        self.blocked_reason = reason
        self.guarded = reason == GUARD_REASON
        if reason is not None:
            self.relay.off(now_s)
            if self.latched:
                self.proportioner.reset()
            else:
                # A guard or a bad reading keeps the proportioner's schedule: the next pulse of a
                # small duty comes when it is due, not as a fresh minimum pulse at once.
                self.proportioner.interrupt(now_s)
        else:
            want = self.proportioner.want_on(now_s, duty, self.relay.is_on)
            self.relay.drive(want, now_s)
        self._relay_off.update(not self.relay.is_on, now_s)
        self._last_tick_s = now_s
        return self.relay.is_on

    def acknowledge(self, now_s: float, setpoint_c: float, *, source: str = "controller") -> Fault:
        """Clear the latched fault, if the bath is safe to heat again."""
        fault = self.latched
        if fault is None:
            raise AckRefused("there is no fault to acknowledge")
        temp_c = self.primary.fresh_c(now_s)
        if temp_c is None or self.primary.bad_in_a_row:
            raise AckRefused("the probe has no valid reading: fix the probe first")
        hottest_c = temp_c
        if self.has_safety_probe:
            second_c = self.secondary.fresh_c(now_s)
            if second_c is None or self.secondary.bad_in_a_row:
                raise AckRefused("the second probe has no valid reading: fix it first")
            if abs(second_c - temp_c) > DISAGREE_C:
                raise AckRefused(f"the probes still disagree ({temp_c:.1f} and {second_c:.1f} degC): "
                                 "put both in the water first")
            hottest_c = max(temp_c, second_c)
        if self.estimate_c is not None:
            hottest_c = max(hottest_c, self.estimate_c)  # the estimated water must have cooled too
        if hottest_c >= setpoint_c:
            raise AckRefused(f"the water ({hottest_c:.1f} degC) must cool below the set "
                             f"temperature ({setpoint_c:.1f} degC) first")
        self.latched = None
        self._tripped.clear()
        self._reset_rules()
        self.events.record(monotonic_s=now_s, wall_time_s=self.wall(), kind=ev.EventKind.ACK,
                           message=f"fault acknowledged: {fault.kind}", fault=fault.kind,
                           temperature_c=temp_c, setpoint_c=setpoint_c, source=source)
        self._on_latch_change()
        return fault

    def latch(self, kind: FaultKind, message: str, now_s: float) -> None:
        """Latch a fault found outside the interlock (e.g. a corrupt state file)."""
        self._trip(kind, message, now_s)

    def reading_age_s(self, now_s: float) -> float | None:
        return self.primary.age_s(now_s) if self.primary.last else None

    def warming_rate_c_per_s(self, now_s: float, *, since_s: float, half_s: float = 45.0) -> float | None:
        """How fast the bath warms, degC/s, over the last ``2 * half_s`` s since ``since_s`` (when warming
        began), for the time-to-ready estimate. None until the rates of the two halves agree within 25 %:
        while the element warms up the rate still climbs, and a rate from before the heater came on (a
        fault, Off) would promise hours. Even then it can be 0 or below on a flat reading: on a real clock
        the halves share no reading at their boundary, and the noise there can make both halves rise
        while the window's two ends read the same."""
        start_s = max(since_s, now_s - 2 * half_s)
        earlier = self._rate_c_per_s(start_s, now_s - half_s, min_span_s=half_s * 2 / 3)
        later = self._rate_c_per_s(now_s - half_s, now_s, min_span_s=half_s * 2 / 3)
        if earlier is None or later is None or earlier <= 0 or abs(later - earlier) > 0.25 * earlier:
            return None
        return self._rate_c_per_s(start_s, now_s, min_span_s=half_s)

    def _rate_c_per_s(self, from_s: float, to_s: float, *, min_span_s: float) -> float | None:
        """The change over the kept readings between ``from_s`` and ``to_s``; None over less than ``min_span_s``."""
        kept = [(t, c) for t, c in self._history.kept if from_s <= t <= to_s]
        if len(kept) < 2 or kept[-1][0] - kept[0][0] < min_span_s:
            return None
        (t0, c0), (t1, c1) = kept[0], kept[-1]
        return (c1 - c0) / (t1 - t0)

    def setpoint_lowered(self, now_s: float, setpoint_c: float) -> None:
        """A lower setpoint starts a cool-down: over-target is judged from its lowest point; and the
        guard applies at once, not at the next tick."""
        self._cooling_low_c = self._judged_c(now_s)
        if self._cooling_low_c is not None and self._cooling_low_c >= setpoint_c + GUARD_ABOVE_C:
            self.relay.off(now_s)
            self.proportioner.interrupt(now_s)

    # -- rules ------------------------------------------------------------------------
    def _judged_c(self, now_s: float) -> float | None:
        """The hotter of the probe(s) and the estimated water."""
        probe_c = self._hottest_c(now_s)
        if probe_c is None or self.water_c is None:
            return probe_c
        return max(probe_c, self.water_c)

    def _hottest_c(self, now_s: float) -> float | None:
        temps = [t for t in (self.primary.fresh_c(now_s),
                             self.secondary.fresh_c(now_s) if self.has_safety_probe else None)
                 if t is not None]
        return max(temps) if temps else None

    def _check_sensors(self, now_s: float) -> None:
        """Sensor: MAX_BAD_IN_A_ROW bad reads in a row, or no valid read for STALE_S, latches."""
        watches = [("probe", self.primary)]
        if self.has_safety_probe:
            watches.append(("second probe", self.secondary))
        for name, watch in watches:
            if watch.bad_in_a_row >= MAX_BAD_IN_A_ROW:
                what = DESCRIPTIONS.get(watch.last_bad, watch.last_bad) if watch.last_bad else "bad reading"
                self._trip(FaultKind.SENSOR, f"{name}: {what}, {watch.bad_in_a_row} bad readings in a row", now_s)
            elif watch.age_s(now_s) >= STALE_S:
                what = DESCRIPTIONS.get(watch.last_bad, watch.last_bad) if watch.last_bad else "no reading"
                self._trip(FaultKind.SENSOR, f"{name}: no valid reading for {watch.age_s(now_s):.0f} s ({what})", now_s)

    @property
    def budget_c(self) -> float:
        """Unconfirmed heat (degC of water) that latches: the water must stay below setpoint +
        BUDGET_SAFE_ABOVE_C with the observer's allowance and half a minimum pulse's rise on top."""
        pulse_c = self.model.heat_rate_c_per_s * self.proportioner.min_switch_s
        return max(BUDGET_MIN_C, BUDGET_SAFE_ABOVE_C - BUDGET_OBSERVER_C - BUDGET_PULSE_SHARE * pulse_c)

    def heater_at_limit(self, now_s: float) -> bool:
        """Whether the last heater check, within its quiet time, found a working element at its limit."""
        return self.heating.at_limit(now_s)

    def _notice(self, now_s: float, temp_c: float, message: str) -> None:
        self.events.record(monotonic_s=now_s, wall_time_s=self.wall(), kind=ev.EventKind.NOTICE,
                           source="interlock", temperature_c=temp_c, message=message)

    def _check_budget(self, now_s: float, unconfirmed_c: float) -> None:
        """Energy budget: heat the probe did not confirm reaching :attr:`budget_c` latches a HEATING
        fault (a probe stuck, lifted or dead, or an element that does not heat)."""
        if unconfirmed_c >= self.budget_c:
            self._trip(FaultKind.HEATING, f"the heater delivered heat for {unconfirmed_c:.1f} degC of water that "
                       "the probe did not show: probe out of the water or stuck, or the element not heating", now_s)

    def _check_stuck(self, now_s: float, temp_c: float, setpoint_c: float, departure_c: float | None,
                     missed_losses_c_per_s: float) -> None:
        """Stuck relay, with the reading above the setpoint (:mod:`controller.core.welded_watch`): the relay
        commanded off for the welded watch's window and the reading rising steadily beyond what the model's last
        pulses explain latches; so does the relay commanded off for many minutes and the reading creeping up
        where the losses would cool it (a bath that can pass its setpoint only a little)."""
        self.welded.add_reading(now_s, temp_c)
        if departure_c is None:
            return
        self.welded.add(now_s, departure_c)
        off_s = self._relay_off.held_s(now_s)
        if temp_c <= setpoint_c:
            return
        window_s = self.welded.window_s(self.model)
        if not (self.model.learned or self.rate_known):
            # The probe's delay not learned yet: the last pulses' heat may arrive for the longest one, and a laggy
            # bath's tail, judged by the default model's delay, rose "by itself" (a false welded relay).
            window_s = max(window_s, DEAD_MAX_S + STUCK_TAIL_LAGS * LAG_MAX_S)
        welded = self.welded.welded(now_s, self.model, temp_c, missed_losses_c_per_s=missed_losses_c_per_s) \
            if off_s >= window_s else None
        if welded is not None:
            rise_c, rate = welded
            self._trip(FaultKind.STUCK_RELAY, f"with the heater switched off the water rose {rise_c:.1f} degC above "
                       f"what the bath does by itself, {rate * 60:.2f} degC/min (now {temp_c:.1f} degC)", now_s)
            return
        creep = self.welded.creep(now_s, self.model, temp_c, off_s=off_s, missed_losses_c_per_s=missed_losses_c_per_s)
        if creep is not None:
            rise_c, fall_c = creep
            self._trip(FaultKind.STUCK_RELAY, f"with the heater switched off for {off_s / 60:.0f} min the water kept "
                       f"rising ({rise_c:+.2f} degC in {STUCK_CREEP_S / 60:.0f} min) where the bath's losses alone "
                       f"would have cooled it {fall_c:.1f} degC (now {temp_c:.1f} degC)", now_s)

    def _check_over_target(self, now_s: float, temp_c: float, setpoint_c: float) -> None:
        """Over target: more than OVER_TARGET_C above the setpoint (or above the lowest point of a
        cool-down) for OVER_TARGET_S latches."""
        if self._cooling_low_c is not None:
            if temp_c <= setpoint_c + GUARD_ABOVE_C:
                self._cooling_low_c = None  # cool-down finished
            else:
                self._cooling_low_c = min(self._cooling_low_c, temp_c)
        reference_c = max(setpoint_c, self._cooling_low_c or setpoint_c)
        if self._over_target.update(temp_c > reference_c + OVER_TARGET_C, now_s):
            self._trip(FaultKind.OVER_TARGET, f"water at {temp_c:.1f} degC, more than {OVER_TARGET_C:g} degC "
                       f"above {reference_c:.1f} degC for {self._over_target.held_s(now_s):.0f} s", now_s)

    def _check_disagree(self, now_s: float) -> None:
        """Probe disagree: two fresh probes more than DISAGREE_C apart for DISAGREE_S latches."""
        a = self.primary.fresh_c(now_s)
        b = self.secondary.fresh_c(now_s) if self.has_safety_probe else None
        apart = a is not None and b is not None and abs(a - b) > DISAGREE_C
        if self._disagree.update(apart, now_s):
            self._trip(FaultKind.PROBE_DISAGREE, f"probes read {a:.1f} and {b:.1f} degC for "
                       f"{self._disagree.held_s(now_s):.0f} s", now_s)

    def _block_reason(self, bad: bool, temp_c: float | None, hottest_c: float | None,
                      setpoint_c: float, *, held_off: bool = False) -> str | None:
        """Why the relay stays off this tick (None: the duty may drive it): a latched fault;
        switched off by a person; no valid reading yet since start; a bad read this tick; the
        guard at setpoint + GUARD_ABOVE_C."""
        if self.latched:
            return f"fault: {self.latched.kind}"
        if held_off:
            return "switched off"
        if self.primary.last is None:
            return "waiting for the first valid reading"
        if bad:
            return "bad reading this tick"
        if temp_c is None or hottest_c is None:
            return "no fresh reading"
        if hottest_c >= setpoint_c + GUARD_ABOVE_C:
            return GUARD_REASON
        if self.heating.checking:
            return "heater check: held off to see whether the element heats"
        return None

    def _trip(self, kind: FaultKind, message: str, now_s: float) -> None:
        if kind in self._tripped:
            return
        self._tripped.add(kind)
        self.relay.off(now_s)  # off in the same tick, before anything else happens
        self.proportioner.reset()
        self.faults_total[kind] = self.faults_total.get(kind, 0) + 1
        fault = Fault(kind, message, now_s, self.wall())
        if self.latched is None or SEVERITY.index(kind) < SEVERITY.index(self.latched.kind):
            self.latched = fault
        self.events.record(monotonic_s=now_s, wall_time_s=fault.wall_time_s, kind=ev.EventKind.FAULT,
                           message=message, fault=kind,
                           temperature_c=self.primary.last.celsius if self.primary.last else None,
                           source="interlock")
        self._on_latch_change()

    def _reset_rules(self) -> None:
        self.heating.reset()
        self._over_target.reset()
        self._disagree.reset()
        self.welded.reset()
        self._cooling_low_c = None
