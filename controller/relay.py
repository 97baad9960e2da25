"""The heater relay: a gpiozero output, and time-proportioning of a duty onto it.

Only the safety interlock (:mod:`controller.safety`) calls :meth:`Relay.drive`;
the PID only proposes a duty. Facts from ../shared/FIELD-NOTES.md ("GPIO and
relays on a Raspberry Pi"): ``initial_value=False`` claims the pin in the off
state; a mechanical relay wants a 60 s window and >= 10 s on/off (wear); an SSR
a 10 s window.
"""

from __future__ import annotations

import math

from gpiozero import DigitalOutputDevice


class Relay:
    """The heater relay on ``pin`` (BCM numbering).

    Switching *on* always waits out ``min_switch_s`` since the last switch, so a
    relay is never chattered. Switching *off* waits out the minimum on-time too,
    except when ``force`` is set: a safety trip turns the heater off at once.
    """

    def __init__(self, *, pin: int, active_high: bool = True, min_switch_s: float,
                 pin_factory=None) -> None:
        self.device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False,
                                          pin_factory=pin_factory)
        self.min_switch_s = min_switch_s
        self.is_on = False
        self.last_switch_s = -math.inf
        self.switch_ons = 0

    def drive(self, want_on: bool, now_s: float, *, force: bool = False) -> bool:
        """Move toward ``want_on`` as far as the timing rules allow; return the new state."""
        if want_on != self.is_on:
            settled = now_s - self.last_switch_s >= self.min_switch_s
            if settled or (force and not want_on):
                if want_on:
                    self.device.on()
                    self.switch_ons += 1
                else:
                    self.device.off()
                self.is_on = want_on
                self.last_switch_s = now_s
        return self.is_on

    def off(self, now_s: float) -> None:
        """Off now, whatever the timing rules (safety)."""
        self.drive(False, now_s, force=True)

    def release(self) -> None:
        """Drive off and release the pin (shutdown)."""
        self.device.off()
        self.is_on = False
        self.device.close()


class TimeProportioner:
    """Turns a duty (0..1) into on/off over fixed windows of ``window_s``.

    Each window starts with one pulse of ``duty * window_s``. A pulse shorter
    than ``min_switch_s`` is skipped and a gap shorter than it is filled, and
    the difference is carried into the next window, so the average energy
    still equals the duty (a bath holding 52 degC needs ~15 % duty, below the
    10 s / 60 s a mechanical relay allows in one window).
    """

    def __init__(self, *, window_s: float, min_switch_s: float) -> None:
        self.window_s = window_s
        self.min_switch_s = min_switch_s
        self._window_start_s: float | None = None
        self._owed_s = 0.0        # duty-seconds asked for minus on-seconds delivered
        self._carry_s = 0.0       # what the previous windows still owe this one
        self._pulse_done = False  # at most one pulse per window (limits relay wear)
        self._last_s: float | None = None
        self._last_duty = 0.0

    def reset(self) -> None:
        """Forget the carry: after a safety block nothing is owed."""
        self._window_start_s = None
        self._owed_s = self._carry_s = 0.0
        self._pulse_done = False
        self._last_s = None
        self._last_duty = 0.0

    def want_on(self, now_s: float, duty: float, relay_on: bool) -> bool:
        """Whether the relay should be on now.

        ``relay_on`` is the relay's actual state since the previous call: what
        was delivered, which may differ from what was asked (timing rules).
        """
        if self._last_s is not None:
            dt = now_s - self._last_s
            self._owed_s += (self._last_duty - (1.0 if relay_on else 0.0)) * dt
        self._last_s = now_s
        self._last_duty = duty
        if self._window_start_s is None or now_s - self._window_start_s >= self.window_s:
            # Close the old window: carry only what quantisation left owing.
            if self._window_start_s is not None:
                limit = self.min_switch_s
                self._carry_s = max(-limit, min(limit, self._owed_s))
            self._window_start_s = now_s
            self._owed_s = self._carry_s
            self._pulse_done = False
        target = duty * self.window_s + self._carry_s
        if target < self.min_switch_s:
            target = 0.0
        elif self.window_s - target < self.min_switch_s:
            target = self.window_s
        on = now_s - self._window_start_s < target and not self._pulse_done
        if relay_on and not on:
            self._pulse_done = True
        return on
