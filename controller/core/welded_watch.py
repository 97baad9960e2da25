"""The stuck-relay rule: with the relay commanded off, does the reading keep rising by itself beyond the model?

With the relay commanded off the bath model predicts what the probe does: the heat of the last
pulses still arriving through the probe's delay, then the losses. A welded contact keeps the
element on: the water rises at the heating rate less the losses, and the reading departs upward
from that prediction at the full heating rate, and keeps departing at that rate. What it departs
beyond the losses is the reading's own rise: a reading standing still (a frozen probe) departs
at the losses exactly, a lid put back on or stones put back cold at less. Hot water poured in
departs by a bounded step (its heat over the bath's capacity) that the probe shows through its
lag: its departure slows by ``exp(-segment / lag)`` from one segment to the next and stops.

A bath that can pass its setpoint only a little (its losses take nearly full power there), or a
slow one, rises from a weld too slowly for that: a 1/16 degC step in minutes. There the relay, once
held off by the guard, stays commanded off, and the reading, which the losses would cool, keeps
creeping up, evenly (:meth:`WeldedWatch.creep`): only heat does that. A reading standing still is a
frozen probe (its own rule), a lid put back on slows the cooling but never turns it into a rise, and
hot water poured in rises in steps.

:class:`WeldedWatch` keeps the departure (the reading less the model's own change, from
:class:`controller.core.bath_tracker.BathTracker`, with the losses as the bath behaves) and
judges it over three segments of about half the probe's lag each. The thresholds are in
:mod:`controller.core.guards`.

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

from controller.core.bath_model import BathModel
from controller.core.guards import (
    STUCK_AVERAGE_S,
    STUCK_CREEP_RISE_C,
    STUCK_CREEP_S,
    STUCK_CREEP_STEP_MIN_S,
    STUCK_CREEP_UNEVEN,
    STUCK_CREEP_WINDOW_LAGS,
    STUCK_LAG_SHARE,
    STUCK_OWN_RISE_MIN_C,
    STUCK_RATE_SHARE,
    STUCK_RISE_MIN_C,
    STUCK_SEGMENT_MAX_S,
    STUCK_SEGMENT_MIN_S,
    STUCK_STEADY_SHARE,
    STUCK_TAIL_LAGS,
    ReadingHistory,
)

SEGMENTS = 3


class WeldedWatch:
    """The reading's departure from the model, kept for the last few minutes; :meth:`welded` judges it."""

    def __init__(self) -> None:
        self._departures = ReadingHistory(SEGMENTS * STUCK_SEGMENT_MAX_S + STUCK_AVERAGE_S)
        self._readings = ReadingHistory(STUCK_CREEP_S + STUCK_AVERAGE_S)

    @staticmethod
    def segment_s(model: BathModel) -> float:
        """Each of the three segments the departure is judged over (s): half the probe's lag, so that
        heat poured in, seen through the lag, slows by at least exp(-1/2) = 0.61 from one to the next."""
        return min(STUCK_SEGMENT_MAX_S, max(STUCK_SEGMENT_MIN_S, STUCK_LAG_SHARE * model.lag_s))

    def window_s(self, model: BathModel) -> float:
        """How long the relay must have been commanded off for a verdict (s)."""
        return SEGMENTS * self.segment_s(model) + STUCK_AVERAGE_S

    def add(self, now_s: float, departure_c: float) -> None:
        """Record the reading's departure from the model (degC) at ``now_s``."""
        self._departures.add(now_s, departure_c)

    def add_reading(self, now_s: float, temp_c: float) -> None:
        """Record the reading (degC) at ``now_s``."""
        self._readings.add(now_s, temp_c)

    def creep(self, now_s: float, model: BathModel, temp_c: float, *, off_s: float,
              missed_losses_c_per_s: float = 0.0) -> tuple[float, float] | None:
        """(the reading's rise degC, the fall the losses would have given degC) over the last ``STUCK_CREEP_S``,
        on a bath where :meth:`welded` cannot see a weld (``STUCK_RATE_SHARE`` of its rise at the losses is
        under one 1/16 degC step a segment: a weld lifts the water less than ~0.5 degC a minute, a bath that
        can pass its setpoint only a little or a slow one), with the relay commanded off for ``off_s``: when
        that covers the last pulse's tail at the probe (its dead time and 3 lags) and the span, the reading rose
        in both halves of the span and by ``STUCK_CREEP_RISE_C`` in all, spread over it as an element's heat is
        (no window of two probe lags holds more than ``STUCK_CREEP_UNEVEN`` times its even share of it and a
        step: hot water poured in rises there at once), where the losses as the bath behaves
        (``missed_losses_c_per_s`` on top of the model's) would have cooled it at least as much; else None."""
        kept = self._readings.kept
        if off_s < model.dead_time_s + STUCK_TAIL_LAGS * model.lag_s + STUCK_CREEP_S or not kept \
                or now_s - kept[0][0] < STUCK_CREEP_S - 1.5:
            return None
        losses = self._losses_c_per_s(model, temp_c, missed_losses_c_per_s)
        if STUCK_RATE_SHARE * (model.heat_rate_c_per_s - losses) * self.segment_s(model) >= STUCK_OWN_RISE_MIN_C:
            return None  # a weld rises a step a segment here: :meth:`welded` judges it, a slower rise is not one
        fall_c = losses * STUCK_CREEP_S
        if fall_c < STUCK_CREEP_RISE_C:
            return None  # the losses would not cool it a rise's worth: nothing to tell a weld by
        start_c, middle_c, end_c = (self._readings.mean_c(t - STUCK_AVERAGE_S, t)
                                    for t in (now_s - STUCK_CREEP_S, now_s - STUCK_CREEP_S / 2, now_s))
        rise_c = end_c - start_c
        if middle_c <= start_c or end_c <= middle_c or rise_c < STUCK_CREEP_RISE_C:
            return None
        window_s = max(STUCK_CREEP_STEP_MIN_S, STUCK_CREEP_WINDOW_LAGS * model.lag_s)
        if self._largest_rise_c(now_s, window_s) > \
                STUCK_CREEP_UNEVEN * window_s / STUCK_CREEP_S * rise_c + STUCK_OWN_RISE_MIN_C:
            return None  # steps, not a creep: hot water poured in (more than once)
        return rise_c, fall_c

    def _largest_rise_c(self, now_s: float, window_s: float) -> float:
        """The largest rise (degC) of the reading's 10 s means over any ``window_s`` of the creep's span: one
        pass over the kept readings, only when everything else says creep."""
        sums: dict[int, list[float]] = {}
        for t, c in self._readings.kept:
            if t > now_s - STUCK_CREEP_S:
                acc = sums.setdefault(int((t - (now_s - STUCK_CREEP_S)) // STUCK_AVERAGE_S), [0.0, 0.0])
                acc[0] += c
                acc[1] += 1.0
        means = {i: total / n for i, (total, n) in sums.items()}
        lag_bins = max(1, round(window_s / STUCK_AVERAGE_S))
        return max((means[i + lag_bins] - means[i] for i in means if i + lag_bins in means), default=0.0)

    @staticmethod
    def _losses_c_per_s(model: BathModel, temp_c: float, missed_losses_c_per_s: float) -> float:
        """The losses as the bath behaves at ``temp_c`` (degC/s): the model's and what it misses."""
        return model.loss_per_s * max(0.0, temp_c - model.room_c) + missed_losses_c_per_s

    def welded(self, now_s: float, model: BathModel, temp_c: float, *,
               missed_losses_c_per_s: float = 0.0) -> tuple[float, float] | None:
        """(departure over the window degC, its rate degC/s) when, with the reading at ``temp_c``, the reading
        itself rose in every segment beyond what the model's last pulses explain, at least ``STUCK_RATE_SHARE``
        of the rise a welded element gives (the heating rate less the losses), and is not slowing; else None.
        ``missed_losses_c_per_s``: the losses the model misses, which the departure already counts.

        The departure rises at the losses when the reading stands still (the model has the bath cooling),
        and at the heating rate with a welded element; what it rises beyond the losses is the reading's own
        rise, the water's net heating, which a lid put back on, cold stones or a frozen probe never give."""
        kept = self._departures.kept
        segment_s = self.segment_s(model)
        if not kept or now_s - kept[0][0] < SEGMENTS * segment_s + STUCK_AVERAGE_S - 1.5:
            return None
        # 10 s means at the segments' ends: the DS18B20's 1/16 degC steps must not decide.
        ends = [self._departures.mean_c(t - STUCK_AVERAGE_S, t)
                for t in (now_s - i * segment_s for i in range(SEGMENTS, -1, -1))]
        losses = self._losses_c_per_s(model, temp_c, missed_losses_c_per_s)
        own_rises = [b - a - losses * segment_s for a, b in zip(ends, ends[1:])]
        least_c = max(STUCK_RATE_SHARE * (model.heat_rate_c_per_s - losses) * segment_s, STUCK_OWN_RISE_MIN_C)
        total_c = ends[-1] - ends[0]
        if total_c < STUCK_RISE_MIN_C or min(own_rises) < least_c or own_rises[-1] < STUCK_STEADY_SHARE * own_rises[-2]:
            return None
        return total_c, total_c / (SEGMENTS * segment_s)

    def reset(self) -> None:
        """Forget the departures and readings (an acknowledge)."""
        self._departures.kept.clear()
        self._readings.kept.clear()
