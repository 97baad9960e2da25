"""How the PID uses the learned bath model: its gains and the feedforward duty.

The PID controls the bath model's estimate of the water, ahead of the probe's dead time
and lag (docs/control.md). Gains set on purpose (autotune, the config) are left alone:
these apply only while the gains come from the model.
"""

from __future__ import annotations

from controller.core.bath_model import BathModel
from controller.core.bath_observer import Observer
from controller.core.pid import PID, Gains

# Gains from the bath model (the PID controls the estimated water, ahead of the probe):
CLOSED_LOOP_S = 60.0    # the estimated water closes on the setpoint with this time constant ...
CLOSED_LOOP_DELAYS = 1.0  # ... or this many probe delays, if longer: corrections arrive through the probe
INTEGRAL_TIMES = 8.0    # integral time = this many closed-loop times: it corrects the model's hold duty, slowly
INTEGRAL_BAND_SHARE = 0.2  # ... and only within this share of the proportional band: not on the way there
INTEGRAL_MAX_DUTY = 0.15   # ... and never more than this much duty either way: it corrects the model, it does
                           # not hold an open lid (that would overshoot when the lid goes back on)
RIPPLE_CENTRE_SHARE = 0.5  # ... except downward by up to this share of one minimum pulse's rise: where that
                           # pulse lifts the water past the setpoint, the pulse fires below it, centring the ripple


def closed_loop_s(model: BathModel) -> float:
    """The time constant (s) with which the estimated water closes on the setpoint in this bath."""
    return max(CLOSED_LOOP_S, CLOSED_LOOP_DELAYS * model.delay_s)


def apply_model_gains(pid: PID, model: BathModel, *, min_pulse_s: float) -> None:
    """Gains for the estimated water: a proportional band of one closed-loop time of full
    power, the integral INTEGRAL_TIMES slower and only close to the setpoint, no derivative
    (the estimate is ahead of the probe already). ``min_pulse_s``: the relay's shortest pulse (s).

    The integral learns from the probe's mean, so on a bath where one minimum pulse lifts the water
    past the setpoint it may go below cancelling the feed-forward, by up to RIPPLE_CENTRE_SHARE of that
    pulse's rise: the next pulse then waits until the water is that far below, and the ripple centres
    on the setpoint instead of sitting on top of it (docs/control.md, "Control from the model")."""
    band_c = model.heat_rate_c_per_s * closed_loop_s(model)
    kp = 1.0 / band_c
    pid.gains = Gains(kp=kp, ki=kp / (INTEGRAL_TIMES * closed_loop_s(model)), kd=0.0)
    pid.integral_band_c = INTEGRAL_BAND_SHARE * band_c
    pid.integral_max = INTEGRAL_MAX_DUTY
    pid.integral_below_feedforward = kp * RIPPLE_CENTRE_SHARE * model.heat_rate_c_per_s * min_pulse_s


def feedforward_duty(model: BathModel, observer: Observer | None, setpoint_c: float) -> float:
    """The duty (0..1) the learned model says holds ``setpoint_c`` (degC). From the learned losses once they
    were measured, not the missed-heat flow of the moment: what an open lid takes extra is left to the
    proportional term, so nothing stored overshoots when the lid goes back on."""
    if not model.loss_fits and observer is not None:
        return min(1.0, observer.hold_duty(setpoint_c))  # nothing measured yet: what it does now
    return min(1.0, model.hold_duty(setpoint_c))
