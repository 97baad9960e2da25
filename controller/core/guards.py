"""The interlock's rules as numbers, and the timers it judges them with.

Each constant is one rule's threshold, with its unit and reason; docs/safety.md holds the
one table of the rules, each with its test. :class:`HeldFor` times "held for N s" conditions,
:class:`ProbeWatch` keeps one probe's freshness. The interlock (:mod:`controller.core.safety`) applies them.
"""

from __future__ import annotations

from collections import deque

from controller.core.probe import Reading, ReadingKind

STALE_S = 10.0              # no valid reading for this long latches (Klipper: 7 s)
MAX_BAD_IN_A_ROW = 4        # Klipper shuts down after 4 DS18B20 errors in a row
# Energy budget: the water may take no more than this much unconfirmed heat (degC) ...
BUDGET_SAFE_ABOVE_C = 1.5   # ... so that it stays below setpoint + this, allowing for
BUDGET_OBSERVER_C = 0.3     # ... what the observer may follow a wrong probe (bath_observer.BIAS_SHIFT_C)
BUDGET_PULSE_SHARE = 0.5    # ... and half the rise of one minimum relay pulse (the hold's own ripple)
BUDGET_MIN_C = 0.4          # a budget below this would trip on the DS18B20's noise
SUSPECT_MAX_S = 900.0       # a reading that fell away and has not risen with heat for this long is not
                            # in the water (cold water poured in shows the heat within minutes)
# Heating watch: with the relay on, the reading must rise this much ...
HEATING_MIN_DUTY = 0.8
HEATING_BELOW_C = 5.0       # watched this far below the setpoint: closer, a lid taken off may hold it
HEATING_RISE_C = 1.0
HEATING_RATE_SHARE = 0.5    # ... within the probe's delay plus the time half the learned heating rate
                            # (net of the losses) takes for it (the weakest heater's rate before learning)
HEATING_DELAY_MARGIN = 1.5  # ... the probe's delay counted this many times (learned from one warm-up)
HEATING_MAX_S = 1800.0      # a bath that needs longer than this for it is at its limit: not watched
HEATER_CHECK_DELAYS = 1.5   # before the watch latches, the heater is held off this many probe delays
HEATER_CHECK_SLOPE_S = 60.0 # ... plus this long, and the probe's slope over this long compared with before:
HEATER_CHECK_SHARE = 0.3    # ... if it fell by this share of the heating rate, the element heats and the
HEATER_QUIET_S = 1800.0     # ... bath is at its limit (a lid off): said plainly, not watched for this long,
HEATER_STILL_S = 300.0      # ... unless the reading has not moved a single 1/16 degC step for this long: water at
                            # its limit still drifts (the room, the stones) and a live probe's noise crosses
                            # steps; a probe stuck or frozen does not (the next check finds it)
HEATER_STEADY_SHARE = 0.15  # ... it starts once the reading's slope over the last minute and the minute before
                            # agree within this share of the heating rate (half what the check looks for)
HEATER_CHECK_DIP_C = 0.25   # ... it passes early once the reading fell this far (4 steps of 1/16 degC) below
                            # where its slope was taking it: the element heated, the relay opened, the probe lives
HEATER_LIMIT_S = 1200.0     # full power this long (relay-on s) without a rise of HEATING_RISE_C, even near the
                            # setpoint or at the bath's limit, is checked too: there a steady reading shows
                            # nothing of the element, the relay or the probe
HEATER_STUCK_SHARE = 0.5    # ... the water where its losses take at least this share of full power (the limit)
                            # that does not cool with the heater off: the relay is stuck on (or the probe frozen)
HEATING_FALL_C = 0.15       # a reading falling this much in one tick (more than noise, more than any
                            # bath cools by itself) is cold water poured in: the watch starts afresh
STUCK_PERIOD_S = 120.0      # the readings kept for the trend rules (the heater check's two slopes)
# Stuck relay (controller/core/welded_watch.py): with the relay commanded off and the reading above the setpoint,
STUCK_LAG_SHARE = 0.5       # ... judged over 3 segments of half the probe's learned lag (hot water poured in,
STUCK_SEGMENT_MIN_S = 20.0  # ... seen through the lag, slows by exp(-1/2) = 0.61 from one to the next) but
STUCK_SEGMENT_MAX_S = 40.0  # ... no shorter than this (noise) nor longer than this (a welded relay is alarmed
                            # within 3 min, after the probe's delay)
STUCK_RATE_SHARE = 0.35     # the reading itself rises in each segment, beyond what the model's last pulses
                            # explain (the departure less the losses: a reading standing still departs at
                            # the losses), at least this share of a welded element's rise: the learned heating
                            # rate (within 20 %) less the losses as the bath behaves ...
STUCK_OWN_RISE_MIN_C = 0.0625  # ... and by at least one of the DS18B20's 1/16 degC steps (in 10 s means)
STUCK_STEADY_SHARE = 0.75   # ... and in the last segment at >= this share of the one before (not slowing)
STUCK_RISE_MIN_C = 0.25     # ... and departs by at least this over the window (10 s means: ~10 sigma of the noise)
STUCK_AVERAGE_S = 10.0      # departures in the rule are 10 s means
STUCK_CREEP_S = 600.0       # a weld lifting the water too slowly for the segments (a bath at its limit): the relay
                            # commanded off for the probe's dead time and 3 lags (the last pulse's tail) and
                            # this long, the reading above the setpoint rose in both halves of it ...
STUCK_CREEP_RISE_C = 0.125  # ... by two 1/16 degC steps in all (10 s means), where the losses as the bath behaves
                            # would have cooled it at least as much: heat the relay was told not to give
STUCK_CREEP_UNEVEN = 2.0    # ... spread over the span as an element's heat is: no window of two probe lags (at
STUCK_CREEP_STEP_MIN_S = 60.0  # least this long) holds more than this many times its even share of the rise and
                            # a 1/16 degC step (hot water poured in rises at once, in both halves if twice)
STUCK_CREEP_WINDOW_LAGS = 2.0  # (the window of that spread, in probe lags)
STUCK_TAIL_LAGS = 3.0       # the last pulse's heat has reached the probe after its dead time and this many lags
# Lifted probe (controller/core/lifted_watch.py): a suspect reading (fallen away faster than the bath cools) ...
LIFTED_FALL_C = 0.25        # ... at least this below its warmest of the probe delay before (4 steps of 1/16 degC:
                            # it fell, not a dead element's reading that the model expected to rise) ...
LIFTED_HEAT_C = 0.5         # ... after this much net heat (degC of the bath: the water rises CONFIRM_RISE_C = 0.3
                            # with it even if stones put back cold take 40 % first) ...
LIFTED_DELAYS = 3.0         # ... that has not risen for this many probe delays since (a probe in the water shows
                            # heat one delay later: 3 for the learned delay's error and the lag's tail) ...
LIFTED_STILL_C = 0.0625     # ... and now fell less than one 1/16 degC step over the last probe delay (a probe in
                            # cold water poured in is still falling through its lag) is not in the water
LIFTED_TEST_C = 1.0         # until a suspect reading stands still, the guard holds the water as the heat says it is
                            # this much lower (GUARD_ABOVE_C less this above the setpoint: at it); then this much more
                            # may go in, all at once: the heat that tells a probe in the water (it rises) from one
                            # out of it, given where a rise can show (cold stones put back soak up heat until the
                            # reading stands still)
# Before the first fit (controller/core/probe_proof.py): heat a probe in the water shows, given while the reading
# has not proven itself in the water, must show within this long (the slowest probe: dead time 90 s + lag 60 s)
PROOF_WAIT_S = 150.0
OVER_TARGET_C = 3.0
OVER_TARGET_S = 60.0
DISAGREE_C = 3.0
DISAGREE_S = 30.0
GUARD_ABOVE_C = 1.0


class HeldFor:
    """Whether a condition has held, without a break, for ``hold_s`` seconds.

    The timer behind the rules "too hot for 60 s", "probes apart for 30 s", "relay off
    for 120 s": :meth:`update` with the condition every tick; a tick without it restarts
    the count.
    """

    def __init__(self, hold_s: float, *, since_s: float | None = None) -> None:
        self.hold_s = hold_s
        self.since_s = since_s  # when the condition began to hold; None: it does not hold

    def update(self, holding: bool, now_s: float) -> bool:
        """Record whether the condition holds at ``now_s``; return :meth:`done`."""
        if not holding:
            self.since_s = None
        elif self.since_s is None:
            self.since_s = now_s
        return self.done(now_s)

    def held_s(self, now_s: float) -> float:
        """Seconds the condition has held (0 when it does not)."""
        return 0.0 if self.since_s is None else now_s - self.since_s

    def done(self, now_s: float) -> bool:
        """True once the condition has held for ``hold_s``."""
        return self.since_s is not None and now_s - self.since_s >= self.hold_s

    def reset(self) -> None:
        self.since_s = None


class ReadingHistory:
    """The hottest valid reading of the last ``keep_s`` seconds, for the rules that judge a trend."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.kept: deque[tuple[float, float]] = deque()  # (t_s, degC), oldest first

    def add(self, now_s: float, temp_c: float) -> None:
        self.kept.append((now_s, temp_c))
        while self.kept and self.kept[0][0] < now_s - self.keep_s:
            self.kept.popleft()

    def mean_c(self, from_s: float, to_s: float) -> float:
        """The mean reading between ``from_s`` and ``to_s`` (the latest when none is kept there)."""
        temps = [c for t, c in self.kept if from_s <= t <= to_s]
        return sum(temps) / len(temps) if temps else self.kept[-1][1]

    def slope_c_per_s(self, now_s: float, span_s: float, average_s: float) -> float:
        """The slope over the last ``span_s`` (degC/s), between ``average_s`` means at both ends."""
        early = self.mean_c(now_s - span_s, now_s - span_s + average_s)
        late = self.mean_c(now_s - average_s, now_s)
        return (late - early) / (span_s - average_s)


class ProbeWatch:
    """Per-probe freshness: last valid reading and bad reads in a row."""

    def __init__(self, start_s: float) -> None:
        self.last: Reading | None = None
        self.bad_in_a_row = 0
        self.since_s = start_s  # age counts from start until the first valid reading
        self.last_bad: ReadingKind | None = None

    def see(self, reading: Reading | None) -> bool:
        """Record a new reading; return True if it was a bad one."""
        if reading is None:
            return False
        if reading.valid:
            self.last = reading
            self.bad_in_a_row = 0
            return False
        self.bad_in_a_row += 1
        self.last_bad = reading.kind
        return True

    def age_s(self, now_s: float) -> float:
        return now_s - (self.last.t_s if self.last else self.since_s)

    def fresh_c(self, now_s: float) -> float | None:
        if self.last is None or self.age_s(now_s) > STALE_S:
            return None
        return self.last.celsius
