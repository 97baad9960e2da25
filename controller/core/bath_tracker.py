"""What the control loop knows about its bath, tick by tick: the model, its learner, the observer and the budget.

:class:`BathTracker` is the loop's bath bookkeeping: it runs the observer alongside the
bath (:meth:`predict` before the reading, :meth:`learn` after it), accounts the energy
budget, learns the model and says what was learned in a therapist's words
(:meth:`summary`). The loop hands what changed to the interlock and the PID.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from controller.core import model_control
from controller.core.bath_learning import Learner
from controller.core.bath_model import HEAT_RATE_MIN_C_PER_S, BathModel
from controller.core.bath_observer import EnergyBudget, Observer
from controller.core.guards import GUARD_ABOVE_C, LIFTED_TEST_C
from controller.core.lifted_watch import LiftedWatch
from controller.core.probe_proof import ProbeProof

BUDGET_RATE_SHARE = 0.5  # the budget expects the probe to show half the rise the model predicts: cold stones
                         # just put back soak up to ~40 % of the heat first, cold water poured in stalls the
                         # reading for a probe lag (the guard does not rely on the budget)
MISSED_LOSSES_FORGET_S = 1200.0  # losses the model misses (a lid off, losses not measured yet) are kept in the
                                 # departure at once but forgotten only over 20 min: a welded relay's heat, which
                                 # the observer learns as fewer losses within a minute or two, must not hide


class Learned(NamedTuple):
    """A model that changed this tick."""

    model: BathModel
    counted: bool      # a warm-up or a loss fit was added: worth saving
    rate_fitted: bool  # the heating rate was fitted from this bath


class BathTracker:
    """The model as learned so far, the observer (from the first valid reading on) and the energy budget."""

    def __init__(self, model: BathModel) -> None:
        self.model = model
        self.learner = Learner(model)
        self.observer: Observer | None = None
        self.budget = EnergyBudget()
        self.fitted = model.learned  # the heating rate comes from this bath (a warm-up seen now or before)
        self._flows_c = 0.0  # the water's change in the last step from the heater and the learned losses alone
        self._model_probe_c: float | None = None  # the probe as the model alone moves it from the first reading
        self.departure_c: float | None = None     # the last valid reading less that (degC): for the stuck relay
        self.missed_losses_c_per_s = 0.0  # losses the model misses, as the bath behaved lately (degC/s, >= 0)
        self._missed_water_c = self._missed_probe_c = 0.0  # their heat taken from the water, and at the probe
        self._missed_delay: deque[float] = deque()          # ... through the probe's dead time (one entry a tick)
        self.lifted = LiftedWatch()
        self._guard_reached = False  # the guard held the heater back since the reading became suspect
        self.proof: ProbeProof | None = None if self.fitted else ProbeProof()  # until the heating rate is fitted

    @property
    def rate_share(self) -> float:
        """1 once this bath's heating rate is known; before, the weakest heater's share of the model's."""
        return 1.0 if self.fitted else HEAT_RATE_MIN_C_PER_S / self.model.heat_rate_c_per_s

    @property
    def expected_water_change_c(self) -> float:
        """How much the water should have moved this tick (degC): the heater's heat less the learned
        losses, scaled down to the weakest heater's until this bath's heating rate is known. Each heater
        pulse stirs the water, and a bath with the heater off cools: a probe whose raw value does not
        change through that is frozen. Without the observer's missed heat flow, which is learned from the
        probe itself: a frozen probe would teach it that the bath does not cool."""
        return self._flows_c * self.rate_share

    @property
    def guard_water_c(self) -> float | None:
        """The water for the guard alone (degC; None: no reading yet), a bound, not an estimate, the hotter of:

        * the water as the heat delivered says it is (:attr:`Observer.guard_water_c`, which the over-temperature
          rules judge), and while a suspect reading has not stood still LIFTED_TEST_C warmer: the heat that tests
          whether the probe is in the water goes in once its reading can show it
          (:mod:`controller.core.lifted_watch`), and a probe out of the water never lets the water past the guard;
        * before this bath's heating rate is fitted, while the probe has not proven it is in the water, the hottest
          the fastest heater could have made the water (:mod:`controller.core.probe_proof`)."""
        water_c = self._guard_water_c(self.observer) if self.observer is not None else None
        proof_c = self.proof.water_max_c if self.proof is not None else None
        return max((c for c in (water_c, proof_c) if c is not None), default=None)

    def _guard_water_c(self, obs: Observer) -> float:
        return obs.guard_water_c + (LIFTED_TEST_C if obs.suspect and not self.lifted.stood_still else 0.0)

    def predict(self, dt_s: float, heater_on_s: float) -> None:
        """Advance the observer by ``dt_s`` with the heater on for ``heater_on_s`` of it."""
        obs = self.observer
        if obs is not None:
            m = self.model
            self._flows_c = m.heat_rate_c_per_s * heater_on_s - m.loss_per_s * (obs.water_c - m.room_c) * dt_s
            obs.predict(dt_s, heater_on_s)
            # The losses the observer's missed flow holds: more at once, fewer only slowly.
            missed = max(0.0, -obs.drift_c_per_s)
            forget = min(1.0, dt_s / MISSED_LOSSES_FORGET_S)
            self.missed_losses_c_per_s = max(missed, self.missed_losses_c_per_s
                                             + (missed - self.missed_losses_c_per_s) * forget)
            if self._model_probe_c is not None:
                # Without the flow learned from the probe (a welded relay's heat would hide in it), with the
                # losses it held before: a bath whose losses were not measured yet cools at its true rate.
                self._model_probe_c += obs.predicted_own_change_c + self._missed_at_probe_c(dt_s)

    def _missed_at_probe_c(self, dt_s: float) -> float:
        """The missed losses' change at the probe this step (degC): through its dead time and lag, as the
        model's own losses reach it."""
        m = self.model
        self._missed_water_c -= self.missed_losses_c_per_s * dt_s
        self._missed_delay.append(self._missed_water_c)
        while len(self._missed_delay) > max(1, round(m.dead_time_s)):
            self._missed_delay.popleft()
        before = self._missed_probe_c
        self._missed_probe_c += (self._missed_delay[0] - self._missed_probe_c) * dt_s / (m.lag_s + dt_s)
        return self._missed_probe_c - before

    def learn(self, now_s: float, dt_s: float, heater_on_s: float, reading_c: float | None, *,
              setpoint_c: float, account: bool) -> Learned | None:
        """Correct the observer, account the energy budget (if ``account``: no fault latched) and learn,
        from this tick's reading (None: no valid one). Return what changed, if the model did."""
        if self.proof is not None:
            self.proof.update(now_s, dt_s, reading_c, heater_on_s=heater_on_s, room_c=self.learner.model.room_c,
                              guard_c=setpoint_c + GUARD_ABOVE_C)
        obs = self.observer
        if obs is None:
            if reading_c is not None:
                self.observer = Observer(self.model, reading_c)
            return None
        obs.correct(dt_s, reading_c)
        if reading_c is not None:
            if self._model_probe_c is None:
                self._model_probe_c = reading_c
            self.departure_c = reading_c - self._model_probe_c
        m = self.model
        # Heat that should show at the probe by now: the model's rise plus the losses it made up for.
        rise = max(0.0, obs.predicted_change_c + obs.loss_per_s * max(0.0, obs.probe_c - m.room_c) * dt_s)
        self.lifted.update(now_s, dt_s, reading_c, heat_c=m.heat_rate_c_per_s * heater_on_s * self.rate_share,
                           loss_per_s=obs.loss_per_s, suspect=obs.suspect, model=m)
        if account:
            # The probe must show the budget's share of the rise the model predicts; the rest cold water poured
            # in or stones put back cold may take: a reading rising at more than that share pays back.
            share = BUDGET_RATE_SHARE * self.rate_share
            predicted_c = obs.predicted_change_c * (share if obs.predicted_change_c > 0 else 1.0)
            # A suspect reading's shortfall counts until the guard first holds the heater back, then only while
            # the reading stands still: from then on the guard bounds the heat, and stones put back cold soak up
            # what it lets in while the water still falls (a dead element's reading falls as well).
            self._guard_reached = obs.suspect and (self._guard_reached
                                                   or self._guard_water_c(obs) >= setpoint_c + GUARD_ABOVE_C)
            self.budget.step(dt_s, reading_c=reading_c, predicted_change_c=predicted_c, expected_rise_c=rise * share,
                             departing=obs.suspect and (not self._guard_reached or self.lifted.still))
        model = self.learner.observe(now_s, reading_c, obs.water_c, heater_on_s > 0, setpoint_c, dt_s,
                                     suspect=obs.suspect)
        if model is None:
            return None
        counted = (model.warmups, model.loss_fits) != (m.warmups, m.loss_fits)
        rate_fitted = model.heat_rate_c_per_s != m.heat_rate_c_per_s and reading_c is not None and heater_on_s > 0
        if rate_fitted:
            assert reading_c is not None
            obs.rebase(model, reading_c, slope_c_per_s=self.learner.ramp_slope_c_per_s)
            self.fitted = True
            if self.proof is not None and self.proof.proven:
                self.proof = None  # a fit made as the probe left the water keeps the bound until the next one
        else:
            obs.take_model(model)
        # Losses the new loss rate now explains are no longer missed; a lower rate leaves more of what the bath
        # lately lost unexplained (the observer's flow moves the same way, take_model): model and missed together
        # stay the losses as the bath behaved.
        excess_c = max(1.0, obs.water_c - model.room_c)
        self.missed_losses_c_per_s = max(0.0, self.missed_losses_c_per_s
                                         - (model.loss_per_s - m.loss_per_s) * excess_c)
        self.model = model
        return Learned(model, counted, rate_fitted)

    def unproven_heat_s(self, now_s: float) -> float:
        """Before the heating rate is fitted: how long ago heat went in that a probe in the water would have
        shown by now, the reading not having proven itself in the water since (0: not so)."""
        return self.proof.unseen_s(now_s) if self.proof is not None else 0.0

    def unseen_heat_s(self, now_s: float) -> float:
        """How long ago heat went in that a probe in the water would have shown by now (0: none)."""
        return self.lifted.unseen_s(now_s, self.model)

    def take_unconfirmed_heat(self) -> None:
        """A fault latched: heat the probe never showed is taken as real (it went into the water)."""
        if self.budget.unconfirmed_c > 0 and self.observer is not None:
            self.observer.add_heat(self.budget.unconfirmed_c)
            self.budget.reset()

    def feedforward_duty(self, setpoint_c: float) -> float:
        """The model's hold duty for ``setpoint_c`` (degC)."""
        return model_control.feedforward_duty(self.model, self.observer, setpoint_c)

    def summary(self, *, power_w: float, setpoint_c: float, at_limit: bool) -> dict[str, Any]:
        """What was learned, in a therapist's words and in numbers (for the status and `check`); ``at_limit``:
        the interlock sees the heater at full power and not gaining (a lid off?)."""
        m = self.model
        weak = m.too_weak_message(setpoint_c)
        return {"summary": m.describe(power_w=power_w),
                "too_weak": weak or (
                    "the heater works but cannot warm this bath to the set temperature now: is the lid off?"
                    if at_limit else None),
                "too_weak_kind": "limit" if weak else "lid" if at_limit else None,
                "power_w": power_w or None, "litres": round(m.litres(power_w)) if power_w and m.learned else None,
                "learned": m.learned, "heat_rate_c_per_min": round(m.heat_rate_c_per_s * 60.0, 2),
                "probe_delay_s": round(m.delay_s), "max_water_c": round(m.max_water_c, 1),
                "water_c": round(self.observer.water_c, 2) if self.observer is not None else None,
                "unconfirmed_heat_c": round(self.budget.unconfirmed_c, 2)}
