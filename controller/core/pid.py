"""PID controller proposing a heater duty (0..1). It never touches the relay.

Why not simple-pid (which the benchmark uses for its textbook PID): its
derivative is unfiltered, so the 0.0625 degC steps of a DS18B20 turn into duty
spikes, and its anti-windup clamps the integral to the whole output range, so
during an 18-minute warm-up the integral is free to sit at full duty and the
bath overshoots. A stone bath where overshoot burns needs both fixed; that is
twenty lines, here.

* derivative on the measurement (a setpoint change gives no derivative kick),
  low-pass filtered with time constant ``derivative_tau_s``;
* conditional integration: the integral only moves when the output is not
  saturated in the direction the error pushes (downward, with a feed-forward:
  when the feed-forward and the integral are not at 0 already), and only within
  ``integral_band_c`` of the setpoint, and stays within 0..1;
* time comes from the caller (``now_s``), so simulation runs faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass

DERIVATIVE_TAU_S = 20.0  # filter: a few samples of 1 s, shorter than the bath's 10 s probe lag x 2
INTEGRAL_BAND_C = 3.0    # integrate only this close to the setpoint (no windup while warming)


@dataclass(frozen=True, slots=True)
class Gains:
    kp: float  # duty per degC of error
    ki: float  # duty per degC*s
    kd: float  # duty per (degC/s)


class PID:
    def __init__(self, gains: Gains, *, derivative_tau_s: float = DERIVATIVE_TAU_S,
                 integral_band_c: float = INTEGRAL_BAND_C, integral_max: float = 1.0,
                 integral_below_feedforward: float = 0.0) -> None:
        self.gains = gains
        self.derivative_tau_s = derivative_tau_s
        self.integral_band_c = integral_band_c
        self.integral_max = integral_max  # the most duty the integral may add (or, with a feed-forward, take)
        # ... and how far below cancelling the feed-forward it may go (duty): where one minimum relay pulse
        # lifts the water past the setpoint, the next pulse then fires that much (/ kp) below it
        self.integral_below_feedforward = integral_below_feedforward
        self.reset()

    def reset(self) -> None:
        """Forget history: the next update starts from this measurement."""
        self.integral = 0.0
        self._last_c: float | None = None
        self._last_s: float | None = None
        self._rate_c_per_s = 0.0
        self.p = self.i = self.d = 0.0

    def update(self, measured_c: float, setpoint_c: float, now_s: float, *, feedforward: float = 0.0,
               integrate: bool = True, integrate_up: bool = True, integral_c: float | None = None) -> float:
        """Return the duty for this step.

        ``feedforward``: the duty the bath model says holds the setpoint, added to the output;
        ``integrate=False`` holds the integral where it is (the heater is blocked, or the
        setpoint just moved: neither is an error the integral should learn); ``integrate_up=False``
        lets it move only down (the stones still soak up heat: a reading below the setpoint may be
        theirs, one above never is); ``integral_c``:
        integrate the error of this temperature instead (an estimate corrected by the measurement,
        while the others act on the estimate).
        """
        g = self.gains
        error = setpoint_c - measured_c
        dt = 0.0
        if self._last_c is not None and self._last_s is not None:  # not the first update
            dt = max(0.0, now_s - self._last_s)
            if dt > 0:
                raw_rate = (measured_c - self._last_c) / dt
                alpha = dt / (self.derivative_tau_s + dt)
                self._rate_c_per_s += alpha * (raw_rate - self._rate_c_per_s)
        self._last_c, self._last_s = measured_c, now_s

        self.p = g.kp * error
        self.d = -g.kd * self._rate_c_per_s
        unclamped = feedforward + self.p + self.integral + self.d
        pushing_up = error > 0 and unclamped >= 1.0
        # Downward, only the slow part of the output counts: with a feed-forward the proportional term
        # swings through 0 with every relay pulse (a pulse-limited bath), and an integral frozen there
        # would leave the ripple on top of the setpoint instead of around it. The integral's own bound
        # keeps it from winding up.
        below = self.integral_below_feedforward if feedforward > 0 else 0.0
        pushing_down = error < 0 and (feedforward + self.integral + below if feedforward > 0 else unclamped) <= 0.0
        i_error = error if integral_c is None else setpoint_c - integral_c
        near = abs(error) <= self.integral_band_c and abs(i_error) <= self.integral_band_c
        if integrate and dt > 0 and near and not (pushing_up or pushing_down) and (integrate_up or i_error < 0):
            # The integral corrects the feed-forward: it may not take more than the whole range.
            high = min(1.0 - feedforward, self.integral_max)
            low = -min(feedforward, self.integral_max) - below
            self.integral = min(high, max(low, self.integral + g.ki * i_error * dt))
        self.i = self.integral
        return min(1.0, max(0.0, feedforward + self.p + self.integral + self.d))
