"""Before this bath's heating rate is fitted: the hottest the water may be until the probe proves it is in it.

Until the first warm-up's fit the warmer does not know how fast its heater warms the bath:
anything from 0.004 degC/s (350 W into 15 L of water and 10 kg of stones) to 0.16 degC/s
(1800 W into 3 L and 1 kg). The observer counts the heat at the default model's rate
(0.03 degC/s), so a probe that never went into the water, or came out of it before the fit,
hid a faster heater's heat: 56.4 degC at setpoint 50 on 1800 W into 3 L (docs/safety.md).

So while the reading has not *proven* it is in the water, the water is taken as hot as the
fastest heater (HEAT_RATE_MAX_C_PER_S) could have made it. The guard holds the relay off once
that reaches the setpoint + 1 degC: whatever the heater, a probe out of the water lets it warm
the water no further.

* **Proof**: with heat given since the proof was lost, the reading's 10 s mean rises two
  1/16 degC steps, and six times that mean's scatter (from the probe's own successive readings,
  taken as a noisy probe's until they show less), above its lowest since. Only heat makes water
  rise; a noisy probe's scatter must not prove it.
* **Lost** at the start, the water taken from the first reading (while no heat went in, from the
  reading now) plus the fastest heater's heat since. A first reading warmer than any room
  (ROOM_MAX_C) is a probe in warm water (on the counter it reads the room): proven, but the heat
  given must show all the same (below). Lost again
  when the reading *really* falls: its mean FALL_C and six scatters below its highest since the
  proof, beyond what the lossiest bath (LOSS_MAX_PER_S) cools while the heater was off within the
  probe's delay (a lagging probe shows the cooling for its delay after the heater comes back on).
  The water is then taken from that highest, plus the fastest heater's heat in the probe's delay
  before it (the water's lead on a lagging probe; the delay is what the reading's first rise took
  after the first heat, DELAY_MAX_S until then) and since.
* **Overdue** (:meth:`ProbeProof.unseen_s`, latched by the interlock after PROOF_WAIT_S): heat that
  would lift the weakest heater's water PROOF_HEAT_RISES proofs' rises, given since the reading last
  fell as far as a proof's rise, has not shown (a reading still falling shows something: stones put
  back cold soak up the heat for minutes, a lifted probe cools in the air for a minute or two); or the
  bound has held the relay off, and nothing proved the probe since.

The cost on a weak heater: it must prove its probe before the fastest heater could have reached the
setpoint + 1 degC from where it started; its probe's delay plus a two-step rise at 0.004 degC/s
(31 s) is 2-3 min on the slowest probe (dead time 60 s, lag 30 s), about what the strongest heater
takes for 20 degC. A cold start closer to its setpoint than that latches (docs/safety.md, the rule
table's "probe not proven" and "Known limits").

Stdlib only: this module is part of the heater's own code.
"""

from __future__ import annotations

import math
from collections import deque

from controller.core.bath_model import (
    DEAD_MAX_S,
    HEAT_RATE_MAX_C_PER_S,
    HEAT_RATE_MIN_C_PER_S,
    LAG_MAX_S,
    LOSS_MAX_PER_S,
    ROOM_MAX_C,
)

PROOF_RISE_C = 0.125   # the proof: the reading's mean rises two of the DS18B20's 1/16 degC steps ...
FALL_C = 0.125         # ... a real fall: it falls two steps ...
SCATTER_SIGMAS = 6.0   # ... and either at least this many times the scatter of that mean
MEAN_S = 10.0          # the reading is judged on its mean over about this long (an exponential mean)
SCATTER_S = 120.0      # the probe's scatter is learned from its successive readings over about this long ...
SCATTER_PRIOR_C = 0.2  # ... starting from this (1 sigma): as noisy as a long unshielded cable, until it shows less
DELAY_MAX_S = DEAD_MAX_S + LAG_MAX_S  # the probe's delay (the water's lead on it) until the first proof measures it
PROOF_HEAT_RISES = 2.0  # heat for this many proofs' rises at the weakest heater's rate must show at the probe
                        # (within the interlock's PROOF_WAIT_S)


class ProbeProof:
    """The hottest the water may be while the reading has not proven it is in the water.

    :meth:`update` once a tick; :attr:`water_max_c` is None while the reading is proven.
    """

    def __init__(self) -> None:
        self.water_max_c: float | None = None  # degC; None: proven (or no reading yet)
        self.proven = False
        self.delay_s = DELAY_MAX_S  # the water's lead on the probe: seconds of heat not shown yet
        self._mean_c: float | None = None      # the reading's exponential mean (MEAN_S)
        self._last_c = 0.0                      # the last valid reading
        self._alpha = 1.0 / (MEAN_S + 1.0)      # the mean's weight of the last reading (its tick)
        self._step_c = 0.0                      # successive readings' difference: its mean ...
        self._step_sq = 2.0 * SCATTER_PRIOR_C ** 2  # ... and mean square (twice the scatter's variance)
        self._recent: deque[tuple[float, float]] = deque()  # (t_s, relay-on s) over the last delay_s ...
        self._recent_on_s = 0.0                 # ... and their sum
        self._heat_from_s: float | None = None  # the first heat given: the delay is measured from it ...
        self._heat_low_c = math.inf             # ... to the mean's first rise of a proof's rise above its lowest since
        self._delay_measured = False
        # Proven: the highest mean since, lowered as the lossiest bath cools; the fastest
        # heater's heat in the probe's delay before it (the lead); relay-on seconds since.
        self._top_c = self._top_lead_c = self._on_since_top_s = 0.0
        # Unproven: the water when the proof was lost (at the start: it follows the reading until heat goes in),
        # relay-on seconds since, the lowest mean since.
        self._at_start = False
        self._warm_start = False  # proven by a first reading warmer than any room: its heat must still show ...
        self._warm_on_s = 0.0     # ... (relay-on seconds since) until its mean first rises a proof's rise with heat
        self._base_c = self._on_since_loss_s = self._low_c = 0.0
        # ... the heat that must show: relay-on seconds since the mean last fell a proof's rise below _still_c,
        # when they became enough, and since when the bound holds the relay off.
        self._still_c = self._still_on_s = 0.0
        self._enough_s: float | None = None
        self._held_s: float | None = None

    @property
    def rise_c(self) -> float:
        """The rise that proves the probe in the water (degC)."""
        return max(PROOF_RISE_C, self._scatter_term_c())

    @property
    def fall_c(self) -> float:
        """The fall that loses the proof (degC)."""
        return max(FALL_C, self._scatter_term_c())

    def _scatter_term_c(self) -> float:
        # The exponential mean of white noise scatters sqrt(alpha / (2 - alpha)) of one reading.
        scatter_c = math.sqrt(max(0.0, self._step_sq - self._step_c ** 2) / 2.0)
        return SCATTER_SIGMAS * scatter_c * math.sqrt(self._alpha / (2.0 - self._alpha))

    def update(self, now_s: float, dt_s: float, reading_c: float | None, *, heater_on_s: float,
               room_c: float, guard_c: float) -> None:
        """Account one tick: ``heater_on_s`` of relay-on time in the ``dt_s`` before ``reading_c``; the guard
        holds the relay off from ``guard_c`` (degC) on."""
        self._on_since_top_s += heater_on_s
        self._on_since_loss_s += heater_on_s
        self._still_on_s += heater_on_s
        self._add_recent(now_s, heater_on_s)
        if heater_on_s > 0 and self._heat_from_s is None:
            self._heat_from_s = now_s - heater_on_s
        if reading_c is not None and dt_s > 0:
            self._observe(now_s, dt_s, reading_c, heater_on_s, room_c)
        self._bound(now_s, guard_c)

    def unseen_s(self, now_s: float) -> float:
        """How long ago heat that a probe in the water shows went in unshown, or the bound began to hold the
        relay off, the reading not proven since (0: neither)."""
        since = [t for t in (self._enough_s, self._held_s) if t is not None]
        return now_s - min(since) if since else 0.0

    def _observe(self, now_s: float, dt_s: float, reading_c: float, heater_on_s: float, room_c: float) -> None:
        if self._mean_c is None:
            self._mean_c = self._last_c = reading_c
            self._start(reading_c)
            return
        step = reading_c - self._last_c
        self._last_c = reading_c
        share = min(1.0, dt_s / SCATTER_S)
        self._step_c += (step - self._step_c) * share
        self._step_sq += (step * step - self._step_sq) * share
        self._alpha = dt_s / (MEAN_S + dt_s)
        mean_c = self._mean_c = self._mean_c + (reading_c - self._mean_c) * self._alpha
        if self._heat_from_s is not None and not self._delay_measured:
            self._heat_low_c = min(self._heat_low_c, mean_c)
            if mean_c - self._heat_low_c >= self.rise_c:
                self.delay_s, self._delay_measured = min(DELAY_MAX_S, now_s - self._heat_from_s), True
        if self.proven:
            if self._warm_start:
                self._watch_warm_start(mean_c, heater_on_s)
            self._watch_fall(mean_c, dt_s, room_c)
        else:
            self._watch_rise(mean_c)

    def _start(self, reading_c: float) -> None:
        """At power-on: a probe on the counter reads the room, and from a room's temperature the water is taken
        as hot as the fastest heater could make it. Warmer than any room, the probe is in warm water: proven (a
        fall loses it), but the heat given must show all the same (a probe stuck at 45 degC reads as warm).
        Bounded, hot tap water on a first start was held off after a second of heat and cooled to the room."""
        if reading_c > ROOM_MAX_C:
            self._prove(reading_c)
            self._warm_start, self._warm_on_s = True, 0.0
            self._low_c = self._still_c = reading_c
            self._still_on_s, self._enough_s = 0.0, None
        else:
            self._lose(reading_c, low_c=reading_c)
            self._at_start = True

    def _watch_warm_start(self, mean_c: float, heater_on_s: float) -> None:
        self._warm_on_s += heater_on_s
        if self._rose(mean_c, self._warm_on_s):
            self._warm_start, self._enough_s = False, None  # it rose with the heat: in the water

    def _watch_rise(self, mean_c: float) -> None:
        if self._at_start and self._on_since_loss_s <= 0:
            self._base_c = mean_c  # no heat given yet: the water is where the reading says
        if self._rose(mean_c, self._on_since_loss_s):
            self._prove(mean_c)

    def _rose(self, mean_c: float, on_s: float) -> bool:
        """Whether the mean rose a proof's rise above its lowest, ``on_s`` of heat given since it was lost (or the
        warm start); a mean still falling restarts the count of the heat that must show."""
        self._low_c = min(self._low_c, mean_c)
        if mean_c <= self._still_c - self.rise_c:
            self._still_c, self._still_on_s, self._enough_s = mean_c, 0.0, None
        return on_s > 0 and mean_c - self._low_c >= self.rise_c

    def _watch_fall(self, mean_c: float, dt_s: float, room_c: float) -> None:
        # The lossiest bath cools this fast with the heater off, and a lagging probe goes on showing that cooling for
        # its delay after the heater comes back on; after a whole delay at full power it shows no cooling at all. A
        # probe lifted into the air falls faster at any excess (its lag in the air is well under 1 / LOSS_MAX_PER_S).
        cooling = self._recent_on_s < self.delay_s - dt_s
        cooled_c = self._top_c - LOSS_MAX_PER_S * max(0.0, self._top_c - room_c) * dt_s * cooling
        if mean_c >= cooled_c:
            self._prove(mean_c)  # a new highest
            return
        self._top_c = cooled_c
        if self._top_c - mean_c >= self.fall_c:
            self._lose(self._top_c + self._top_lead_c, low_c=mean_c, on_s=self._on_since_top_s)

    def _prove(self, top_c: float) -> None:
        self.proven, self._at_start = True, False
        self._top_c, self._on_since_top_s = top_c, 0.0
        self._top_lead_c = HEAT_RATE_MAX_C_PER_S * self._recent_on_s

    def _lose(self, base_c: float, *, low_c: float, on_s: float = 0.0) -> None:
        self.proven, self._warm_start = False, False
        self._base_c, self._on_since_loss_s = base_c, on_s
        self._low_c = self._still_c = low_c
        self._still_on_s, self._enough_s, self._held_s = 0.0, None, None

    def _bound(self, now_s: float, guard_c: float) -> None:
        watched = not self.proven or self._warm_start  # the heat given must show
        if watched and self._enough_s is None and self._mean_c is not None \
                and HEAT_RATE_MIN_C_PER_S * self._still_on_s >= PROOF_HEAT_RISES * self.rise_c:
            self._enough_s = now_s
        elif not watched:
            self._enough_s = None
        if self.proven or self._mean_c is None:
            self.water_max_c, self._held_s = None, None
            return
        self.water_max_c = self._base_c + HEAT_RATE_MAX_C_PER_S * self._on_since_loss_s
        if self.water_max_c < guard_c:
            self._held_s = None
        elif self._held_s is None:
            self._held_s = now_s

    def _add_recent(self, now_s: float, on_s: float) -> None:
        """Keep the relay-on seconds of the last delay_s (one entry a tick: O(1) amortized)."""
        if on_s > 0:
            self._recent.append((now_s, on_s))
            self._recent_on_s += on_s
        while self._recent and now_s - self._recent[0][0] > self.delay_s:
            self._recent_on_s -= self._recent.popleft()[1]
