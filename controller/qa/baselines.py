"""The controllers stonewarmer is compared with: what people heat stones with today.

Both are duty overrides (``Controller.set_duty_override``): the benchmark runs
them through the same probe, relay timing and safety interlock as stonewarmer's
own PID, so the only difference is the control law.

* :class:`BangBang` is a dial (capillary) thermostat: heater on below
  ``setpoint - hysteresis``, off above ``setpoint + hysteresis``.
* :class:`TextbookPID` is simple-pid with Ziegler-Nichols gains from the relay
  experiment (Kp = 0.6 Ku, Ti = Pu / 2, Td = Pu / 8) and no anti-windup: the
  integral is not limited, only the duty it proposes is cut to 0..1 (a heater
  cannot do more than full power). That is the PID of many tutorials. simple-pid
  is the optional ``bench`` extra (``controller.qa.bench.require_baselines``).
"""

from __future__ import annotations

from controller.core.pid import Gains

DIAL_HYSTERESIS_C = 1.0  # a dial thermostat's switching differential, +/- degC


class BangBang:
    """On/off with hysteresis (+/- ``hysteresis_c`` around the setpoint). Returns duty 0 or 1."""

    def __init__(self, *, hysteresis_c: float = DIAL_HYSTERESIS_C) -> None:
        self.hysteresis_c = hysteresis_c
        self.heating = True

    def __call__(self, now_s: float, temp_c: float, setpoint_c: float) -> float:
        if temp_c <= setpoint_c - self.hysteresis_c:
            self.heating = True
        elif temp_c >= setpoint_c + self.hysteresis_c:
            self.heating = False
        return 1.0 if self.heating else 0.0


class TextbookPID:
    """simple-pid with the given gains, no anti-windup; time from the caller (s)."""

    def __init__(self, gains: Gains) -> None:
        from simple_pid import PID as SimplePID  # the `bench` extra: imported only where it is used

        self.gains = gains
        self._now_s = 0.0
        # output_limits=(None, None): simple-pid then leaves its integral unclamped (no anti-windup)
        self.pid = SimplePID(gains.kp, gains.ki, gains.kd, sample_time=None,
                             output_limits=(None, None), time_fn=lambda: self._now_s)
        self._last_s: float | None = None

    def __call__(self, now_s: float, temp_c: float, setpoint_c: float) -> float:
        dt = 1.0 if self._last_s is None else max(1e-3, now_s - self._last_s)
        self._last_s = self._now_s = now_s
        self.pid.setpoint = setpoint_c
        output = self.pid(temp_c, dt=dt)
        if output is None:  # simple-pid skips a call within its sample_time; there is none here
            return 0.0
        return min(1.0, max(0.0, output))
