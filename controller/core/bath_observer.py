"""The bath model run alongside the bath: an observer and an energy budget.

* :class:`Observer`: predicts the water and the probe from the heater's known input;
  the probe corrects the prediction at a bounded rate, so a probe that jumps away from
  the water (stuck, lifted) cannot drag the estimate with it at once.
* :class:`EnergyBudget`: heat the model says should already show at the probe but that
  the probe does not show. It catches a stuck, lifted or dead probe and a dead element.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

from collections import deque

from controller.core.bath_model import LOSS_MAX_PER_S, BathModel, clamp

# Observer.
CORRECTION_S = 20.0         # the probe pulls the estimate toward itself with this time constant ...
BIAS_RATE_OF_HEAT = 0.5     # ... at most at this share of the heater's full-power rate ...
BIAS_SHIFT_C = 0.3          # ... and no faster than this much per probe delay (dead time + lag),
LID_OFF_LOSS_FACTOR = 6.0   # ... plus, downward, the bath's losses with the lid off (up to 6 x lid on)
DRIFT_S = 300.0             # a steady correction becomes a heat flow the model missed (a lid off, a
                            # draught) with this time constant; the next hold window moves it into k
DRIFT_UP_S = 60.0           # ... and a correction upward (the lid back on) five times as fast: the safe side
TREND_S = 60.0              # ... which way judged on the correction's mean over this long: a noisy probe's
                            # readings scatter both ways, and two speeds chosen by each reading would turn
                            # that scatter into a heat flow (0.2 degC of noise: as much as the losses)
WATER_FIRST_SHARE = 0.3     # while suspect, the guard adds this share of the heat delivered since: the water
                            # takes it before the stones do (stones are up to 40 % of a bath's capacity)
CONFIRM_RISE_C = 0.3        # a reading that fell away is believed again once it rises this much with heat

# Energy budget.
BUDGET_FORGET_S = 1200.0    # unconfirmed heat is forgotten with this time constant (model error must not add up)
SMOOTH_S = 10.0             # the budget compares 10 s means: the DS18B20's 1/16 degC steps must not decide


# -- the observer ----------------------------------------------------------------------------------
class Observer:
    """The model run alongside the bath: the water and probe predicted from the relay, corrected by the probe.

    The correction is an offset (``bias_c``) added to the model's water and probe, moved
    toward the reading with time constant CORRECTION_S but never faster than the bath can
    change by itself (:attr:`max_bias_rate_c_per_s` up, :attr:`max_fall_rate_c_per_s` down).

    A reading that falls away faster than that is *suspect* (cold water poured in, or a
    probe stuck, lifted or dead: the heat cannot tell them apart yet). The estimate follows
    it, so control heats a bath that really went cold; but :attr:`guard_water_c` keeps the
    water as the heat delivered since says it is, until the reading rises CONFIRM_RISE_C
    with heat: a probe in the water has confirmed it. One tick is O(1) (the dead time is a
    delay line of one entry per tick).
    """

    def __init__(self, model: BathModel, reading_c: float) -> None:
        self.model = model
        self._water_c = self._probe_c = reading_c
        self._delay: deque[float] = deque()
        self.bias_c = 0.0
        self.predicted_change_c = 0.0  # the model's probe change in the last step (no correction)
        self.predicted_water_change_c = 0.0  # ... and the water's
        self.predicted_own_change_c = 0.0  # ... the probe's without the missed heat flow (learned from the probe)
        self._flow_c = self._flow_probe_c = 0.0  # that flow's heat in the water, and at the probe (delayed, lagged)
        self._flow_delay: deque[float] = deque()
        self.departing = False         # the last reading fell away from the model faster than allowed
        self.suspect = False           # a reading fell away and has not risen with heat since
        self.suspect_s = 0.0           # ... for this long
        self._anchor_c = 0.0           # the bias before the reading fell away
        self._high_c = 0.0             # the highest bias of about the last probe delay (see correct)
        self._low_c = 0.0              # the lowest reading since
        self._suspect_heat_c = 0.0     # the heat delivered since (degC of the whole bath)
        self.drift_c_per_s = 0.0       # heat flow the model misses (negative: more losses), degC/s
        self._trend_c_per_s = 0.0      # the correction's recent mean (degC/s): what the drift learns from
        self.rebase(model, reading_c)

    @property
    def water_c(self) -> float:
        """The estimated water temperature now."""
        return self._water_c + self.bias_c

    @property
    def loss_per_s(self) -> float:
        """The loss rate as the bath behaves now: the model's, with the missed heat flow in it."""
        m = self.model
        return max(0.0, m.loss_per_s - self.drift_c_per_s / max(1.0, self.water_c - m.room_c))

    def take_model(self, model: BathModel) -> None:
        """Use ``model`` from now on, keeping the losses as the bath behaves now: what the missed
        heat flow held that the new loss rate now explains leaves the flow."""
        excess = max(1.0, self.water_c - model.room_c)
        self.drift_c_per_s += (model.loss_per_s - self.model.loss_per_s) * excess
        self.model = model

    def hold_duty(self, setpoint_c: float) -> float:
        """Share of full power that holds ``setpoint_c`` as the bath behaves now."""
        return self.model.hold_duty(setpoint_c, loss_per_s=self.loss_per_s)

    @property
    def guard_water_c(self) -> float:
        """The water as the heat delivered says it is: the estimate without a suspect reading's fall."""
        return self._water_c + max(self.bias_c, self._anchor_c) + WATER_FIRST_SHARE * self._suspect_heat_c

    @property
    def probe_c(self) -> float:
        """What the probe should read now."""
        return self._probe_c + self.bias_c

    @property
    def max_bias_rate_c_per_s(self) -> float:
        """How fast model error may move the estimate (degC/s), either way."""
        m = self.model
        return min(BIAS_RATE_OF_HEAT * m.heat_rate_c_per_s, BIAS_SHIFT_C / m.delay_s)

    @property
    def max_rise_rate_c_per_s(self) -> float:
        """How fast the reading may pull the estimate up (degC/s): model error plus full power
        (a lid put back on, hot water poured in). Up is the safe side: the heater holds back."""
        return self.max_bias_rate_c_per_s + self.model.heat_rate_c_per_s

    @property
    def max_fall_rate_c_per_s(self) -> float:
        """How fast the reading may pull the estimate down (degC/s): model error, and the lid
        taken off (the fastest a bath cools by itself). Faster is a probe leaving the water.

        The lid-off factor multiplies the losses as learned, not as the bath behaves now: those hold the
        missed heat flow, learned from this very reading. A probe lifted into air, cooling over minutes, fell
        no faster than allowed, was learned as losses, and widened what it was allowed six times over each
        time: 0.07 -> 0.5 degC/s, never suspect, the heater at full power (docs/safety.md). A bath that
        already loses more than that (losses not measured yet) may go on losing what it shows."""
        m = self.model
        loss = max(LID_OFF_LOSS_FACTOR * m.loss_per_s, self.loss_per_s)
        return self.max_bias_rate_c_per_s + loss * max(0.0, self.water_c - m.room_c)

    def rebase(self, model: BathModel, reading_c: float, *, slope_c_per_s: float = 0.0,
               water_c: float | None = None) -> None:
        """Start from ``reading_c`` with ``model``: the probe reads it, the water leads it by the
        ramp ``slope_c_per_s`` over the delay (0: settled), unless ``water_c`` says where it is."""
        self.model = model
        self.suspect, self.suspect_s, self._anchor_c, self._suspect_heat_c = False, 0.0, self.bias_c, 0.0
        self._high_c = self.bias_c
        self.drift_c_per_s = self._trend_c_per_s = 0.0
        ahead_c = slope_c_per_s * model.delay_s
        self._water_c = (reading_c + ahead_c if water_c is None else water_c) - self.bias_c
        self._probe_c = reading_c - self.bias_c
        n = max(1, round(model.dead_time_s))
        # oldest first: the water as it was dead_time ago .. now
        self._delay = deque(self._water_c - slope_c_per_s * (n - i) for i in range(n))
        self._flow_delay = deque(self._flow_c for _ in range(n))
        self._flow_probe_c = self._flow_c

    def step(self, dt_s: float, heater_on_s: float, reading_c: float | None) -> None:
        """Advance by ``dt_s`` with the heater on for ``heater_on_s`` of it; correct from a valid reading."""
        self.predict(dt_s, heater_on_s)
        self.correct(dt_s, reading_c)

    def predict(self, dt_s: float, heater_on_s: float) -> None:
        """Advance the model by ``dt_s`` with the heater on for ``heater_on_s`` of it."""
        m = self.model
        u = heater_on_s / dt_s if dt_s > 0 else 0.0
        water_before = self._water_c
        self._water_c += (m.heat_rate_c_per_s * u - m.loss_per_s * (self.water_c - m.room_c)
                          + self.drift_c_per_s) * dt_s
        if self.suspect:
            self._suspect_heat_c += m.heat_rate_c_per_s * u * dt_s
        self._delay.append(self._water_c)
        delayed = self._delay.popleft()
        before = self._probe_c
        self._probe_c += (delayed - self._probe_c) * dt_s / (m.lag_s + dt_s)
        self.predicted_change_c = self._probe_c - before
        # The missed heat flow's share of that, through the same delay: a welded relay's heat would be learned
        # into the flow (up to the losses) and hide from the stuck-relay rule.
        self._flow_c += self.drift_c_per_s * dt_s
        self._flow_delay.append(self._flow_c)
        flow_before = self._flow_probe_c
        self._flow_probe_c += (self._flow_delay.popleft() - self._flow_probe_c) * dt_s / (m.lag_s + dt_s)
        self.predicted_own_change_c = self.predicted_change_c - (self._flow_probe_c - flow_before)
        self.predicted_water_change_c = self._water_c - water_before

    def correct(self, dt_s: float, reading_c: float | None) -> None:
        """Move the estimate toward a valid reading, at a bounded rate."""
        m = self.model
        self.departing = False
        if reading_c is not None and dt_s > 0:
            up = self.max_rise_rate_c_per_s * dt_s
            down = self.max_fall_rate_c_per_s * dt_s
            pull = (reading_c - self.probe_c) * dt_s / (CORRECTION_S + dt_s)
            # Below the model faster than the bath can cool by itself: not the water (yet).
            self.departing = pull < -down
            step = clamp(pull, -down, up)
            self.bias_c += step
            self._trend_c_per_s += (step / dt_s - self._trend_c_per_s) * dt_s / (TREND_S + dt_s)
            if -down < pull < up and not self.suspect:
                # A correction that keeps going one way is heat the model misses: learn it as a flow, no
                # larger than the lid taking off once the losses were measured (the lossiest bath's before):
                # a dead element must not be learned away.
                # Never a heat source of its own: at most it cancels the losses (a step, hot water poured
                # in, saturates the correction and teaches nothing).
                excess = max(1.0, self.water_c - m.room_c)
                loss = (LID_OFF_LOSS_FACTOR - 1.0) * m.loss_per_s if m.loss_fits else LOSS_MAX_PER_S
                # Warmer than thought: heat less, soon. Which way is judged on the trend, not on this
                # reading: noise scatters both ways and must not be learned faster one way than the other.
                drift_s = DRIFT_UP_S if self._trend_c_per_s > 0 else DRIFT_S
                self.drift_c_per_s = clamp(self.drift_c_per_s + step / drift_s, -loss * excess,
                                           m.loss_per_s * excess)
            elif pull >= up and self.drift_c_per_s < 0 and not self.suspect:
                # The water rises faster than the model can follow at all: a heat loss it still counts (a lid
                # put back on) is not there. Forget it as fast as a correction upward; a saturated correction
                # teaches nothing else (hot water poured in), and left alone the loss kept the estimate
                # degrees below the water for an hour, the heater on at full power against the guard.
                self.drift_c_per_s = min(0.0, self.drift_c_per_s + step / DRIFT_UP_S)
            if self.departing and not self.suspect:
                self.suspect, self.suspect_s, self._low_c, self._suspect_heat_c = True, 0.0, reading_c, 0.0
                self._anchor_c = max(self._anchor_c, self._high_c)
            if self.suspect:
                if self._suspect_heat_c > 0:  # "not risen with the heat" counts once heat went in: a warmer
                    self.suspect_s += dt_s    # held off in a cold bath (1/16 degC steps) never confirms it
                self._low_c = min(self._low_c, reading_c)
                if not self.departing and reading_c - self._low_c >= CONFIRM_RISE_C:
                    self.suspect, self._suspect_heat_c = False, 0.0  # it rose with the heat: a probe in the water
        if not self.suspect:
            self._anchor_c = self.bias_c
            # A probe leaving the water drags the estimate down for a few ticks (through its lag) before its
            # fall is fast enough to tell from a lossy bath cooling: the suspect reading's anchor is the highest
            # bias of about the last probe delay, not the one of the tick before (a 1 degC gap on a lid-off bath).
            self._high_c = max(self.bias_c, self._high_c + (self.bias_c - self._high_c) * dt_s / (m.delay_s + dt_s))

    def add_heat(self, rise_c: float) -> None:
        """Count ``rise_c`` of heat the probe never confirmed as real (it went into the water)."""
        self.bias_c += rise_c
        self._anchor_c += rise_c
        self._high_c += rise_c


# -- the energy budget -----------------------------------------------------------------------------
class EnergyBudget:
    """Heat the model says should show at the probe by now and does not, in degC of water.

    Each tick the model predicts how much the probe should rise from the heat it got
    (``expected_rise_c``, from a conservative, low heating rate); the probe's own change is
    compared with what it must show of the model's prediction (``predicted_change_c``: the
    caller gives a rise at the budget's share, a fall whole). While the reading is
    departing from the model faster than the bath can change (the observer's correction
    is at its limit), the shortfall, never more than the expected rise, adds up; a probe
    that follows, or does better, pays it back; anything left is forgotten over
    BUDGET_FORGET_S. Slow model error (stones still soaking up heat) never departs that
    fast, so it costs nothing; a cold top-up costs only while its reading falls or stalls
    (then it rises again at nearly the full rate: more than the share, so it pays back).
    A stuck, lifted or dead probe, or a dead element, shows nothing for the heat: the
    whole expected rise adds up.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Empty (at start and after every acknowledge)."""
        self.unconfirmed_c = 0.0
        self._reading_c: float | None = None
        self._predicted_c = 0.0

    def step(self, dt_s: float, *, reading_c: float | None, predicted_change_c: float,
             expected_rise_c: float, departing: bool = True) -> float:
        """Account one tick; return the unconfirmed heat (degC)."""
        if dt_s <= 0:
            return self.unconfirmed_c
        alpha = dt_s / (SMOOTH_S + dt_s)
        self._predicted_c += predicted_change_c
        if reading_c is None:
            return self.unconfirmed_c
        if self._reading_c is None:
            self._reading_c, self._predicted_c = reading_c, 0.0
            return self.unconfirmed_c
        # Both sides through the same 10 s mean: predicted and observed change comparably.
        observed = alpha * (reading_c - self._reading_c)
        self._reading_c += observed
        predicted = alpha * self._predicted_c
        self._predicted_c -= predicted
        rise = max(0.0, expected_rise_c)
        shortfall = clamp(predicted - observed, -rise, rise if departing else 0.0)
        forget = self.unconfirmed_c * dt_s / BUDGET_FORGET_S
        self.unconfirmed_c = max(0.0, self.unconfirmed_c + shortfall - forget)
        return self.unconfirmed_c
