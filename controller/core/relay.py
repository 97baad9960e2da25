"""The heater relay: a gpiozero output, and time-proportioning of a duty onto it.

Only the safety interlock (:mod:`controller.core.safety`) calls :meth:`Relay.drive`;
the PID only proposes a duty. Facts from docs/field-notes.md ("GPIO and
relays on a Raspberry Pi"): ``initial_value=False`` claims the pin in the off
state; a mechanical relay wants a 60 s window and >= 10 s on/off (wear); an SSR
a 10 s window.
"""

from __future__ import annotations

import math

from gpiozero import DigitalOutputDevice, Factory

#: The most a cycle may swing the water (peak to peak), as a share of one minimum pulse's rise. The
#: hold band allows half a swing plus the centring of the ripple on the setpoint within 0.6 x one
#: pulse's rise: at 0.8 the half swing (0.4 x) leaves a third of it for the centring. A minimum
#: pulse at low duty swings the water ~1 x and leaves a sixth: mid duties are no worse than that.
RIPPLE_SHARE = 0.8


class Relay:
    """The heater relay on ``pin`` (BCM numbering).

    Switching *on* always waits out ``min_switch_s`` since the last switch, so a
    relay is never chattered. Switching *off* waits out the minimum on-time too,
    except when ``force`` is set: a safety trip turns the heater off at once.
    """

    def __init__(self, *, pin: int, active_high: bool = True, min_switch_s: float,
                 pin_factory: Factory | None = None, now_s: float = -math.inf) -> None:
        self.device = DigitalOutputDevice(pin, active_high=active_high, initial_value=False,
                                          pin_factory=pin_factory)
        self.min_switch_s = min_switch_s
        self.is_on = False
        # Claiming the pin drove it off: for all we know (a restart) it was on a moment ago.
        self.last_switch_s = now_s
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

    def release(self, *, close: bool = True) -> None:
        """Drive off (shutdown), and release the pin unless ``close`` is False. Safe to call twice.

        A process about to exit passes ``close=False``: gpiozero's close turns the line into an
        input with no pull (floating); left claimed and driven off, the kernel keeps it off after
        the exit (or, with ``dtparam=strict_gpiod``, returns it to its default pull-down).
        """
        if self.device.closed:
            return
        self.device.off()
        self.is_on = False
        if close:
            self.device.close()


class TimeProportioner:
    """Turns a duty (0..1) into relay on/off: one pulse per cycle.

    A duty ``d`` gives a pulse of ``d * cycle`` every cycle (:meth:`cycle_s`). The cycle is
    ``window_s`` but at mid duties, where one cycle swings the water by ``(P/C) * d(1-d) * cycle``
    peak to peak: there it shortens until that swing is no more than RIPPLE_SHARE of what one
    minimum pulse puts into the water, ``(P/C) * min_switch_s``, the least ripple the relay can
    make at all. The heater's power and the bath cancel out: only the duty and the relay's own
    limits set the cycle, so no bath has to be known. Where the pulse (or the gap after it) would
    be shorter than ``min_switch_s``, the cycle is stretched instead of rounded: the pulse (or gap)
    is held at the minimum and the cycle lengthened so the average is still exactly ``d``.
    A bath holding 52 degC needs ~15 % duty, under the 10 s / 60 s a mechanical relay allows: it
    gets 10 s pulses every ~65 s (~55 switch-ons an hour); a lid-off bath at 50 % gets 16 s pulses
    every 32 s (docs/control.md, "Time-proportioning", has the wear).

    The duty is re-read every tick, so a pulse in progress follows the PID.
    """

    def __init__(self, *, window_s: float, min_switch_s: float) -> None:
        self.window_s = window_s
        self.min_switch_s = min_switch_s
        self.reset()

    def reset(self) -> None:
        """Start afresh: the next positive duty starts a pulse at once."""
        self._cycle_start_s: float | None = None  # when the current pulse began
        self._ideal_start_s = 0.0                 # when it was due (ticks round it late)
        self._pulse_s: float | None = None        # its length, once it ended
        self._pulse_cycle_s = self.window_s        # the cycle it was sized for (the duty then)

    def interrupt(self, now_s: float) -> None:
        """The relay was held off (a guard, a bad reading): a pulse in progress ends here and
        counts as delivered, so the schedule goes on instead of starting a fresh pulse."""
        if self._cycle_start_s is not None and self._pulse_s is None:
            self._pulse_s = max(0.0, now_s - self._cycle_start_s)

    def cycle_s(self, duty: float) -> float:
        """The cycle for ``duty`` (s): :meth:`ripple_cycle_s`, longer where the pulse or the gap would
        be under ``min_switch_s``; ``inf`` at 0 and 1 (no cycle)."""
        if duty <= 0.0 or duty >= 1.0:
            return math.inf
        m = self.min_switch_s
        return max(self.ripple_cycle_s(duty), m / duty, m / (1.0 - duty))

    def ripple_cycle_s(self, duty: float) -> float:
        """The cycle ``duty`` asks for before the minimum on/off times stretch it (s): ``window_s``,
        shorter at mid duties so one cycle's ripple stays within RIPPLE_SHARE of one minimum pulse's."""
        spread = duty * (1.0 - duty)
        return self.window_s if spread <= 0.0 else min(self.window_s, RIPPLE_SHARE * self.min_switch_s / spread)

    def on_time_s(self, duty: float) -> float:
        """Pulse length for ``duty`` (s); ``inf`` means stay on."""
        if duty <= 0.0:
            return 0.0
        if duty >= 1.0:
            return float("inf")
        return duty * self.cycle_s(duty)

    def want_on(self, now_s: float, duty: float, relay_on: bool) -> bool:
        """Whether the relay should be on now. ``relay_on`` is its actual state."""
        if relay_on:
            if self._cycle_start_s is None or duty >= 1.0:
                # Full power is a run of full windows: a cycle starts when it ends.
                self._cycle_start_s = self._ideal_start_s = now_s
                self._pulse_s = None
            if now_s - self._cycle_start_s < self.on_time_s(duty):
                self._pulse_s = None  # running (again, if the duty rose before the relay could open)
                self._pulse_cycle_s = self.ripple_cycle_s(duty)
                return True
            # The pulse is what the relay delivered: a relay that holds its minimum on-time past a
            # duty that fell to 0 delivered all of it, and the next pulse waits for that too.
            self._pulse_s = now_s - self._cycle_start_s
            return False
        if duty <= 0.0:
            return False
        if duty >= 1.0:
            # Full power wanted: now, not when the schedule of a smaller duty says.
            return self._start(now_s, now_s, duty)
        ideal_s = now_s
        # _pulse_s is None here only if the relay refused the last start (its
        # minimum off-time): then simply ask again.
        if self._cycle_start_s is not None and self._pulse_s is not None:
            # Next pulse once this cycle has delivered its share: pulse / period = duty; and not
            # before the shorter of the cycle the pulse was sized for (the duty it ended on) and the
            # cycle the duty asks for now. Either keeps the ripple within RIPPLE_SHARE; the longer
            # would give a mid-duty pulse a high duty's gap, or a duty that rose (cold stones put
            # back, the water dipping) the long wait of the small pulse before.
            cycle_s = min(self._pulse_cycle_s, self.ripple_cycle_s(duty))
            due_s = self._ideal_start_s + max(cycle_s, self._pulse_s / duty)
            if now_s < due_s:
                return False
            if now_s - due_s < cycle_s:
                ideal_s = due_s  # keep the schedule: a start a tick late is made up next cycle
        return self._start(now_s, ideal_s, duty)

    def _start(self, now_s: float, ideal_s: float, duty: float) -> bool:
        self._cycle_start_s, self._ideal_start_s, self._pulse_s = now_s, ideal_s, None
        self._pulse_cycle_s = self.ripple_cycle_s(duty)
        return True
