"""The interlock's faults: what can trip, how severe it is, and what the therapist should do.

A :class:`Fault` is latched by the interlock (:mod:`controller.core.safety`) and keeps the
relay off until acknowledged; :class:`AckRefused` says why an acknowledge was refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    """What tripped, most severe first: a later, more severe trip replaces the shown one.

    A str: JSON, the state file and the history database show the word.
    """

    STUCK_RELAY = "stuck_relay"
    OVERTEMP = "overtemp"
    OVER_TARGET = "over_target"
    PROBE_DISAGREE = "probe_disagree"
    SENSOR = "sensor"
    HEATING = "heating"
    STATE = "state"


SEVERITY = tuple(FaultKind)  # most severe first

#: What each fault means for the therapist, and what to do.
ADVICE = {
    FaultKind.STUCK_RELAY: "The heater will not switch off (relay stuck on). UNPLUG THE HEATER NOW and "
                           "do not use the stones. Have the relay replaced before using the warmer again.",
    FaultKind.OVERTEMP: "The water got too hot and the heater was switched off. Do not use the stones "
                        "until the water has cooled; then acknowledge.",
    FaultKind.OVER_TARGET: "The water stayed well above the set temperature, so the heater was switched "
                           "off. Let it cool, check the relay, then acknowledge.",
    FaultKind.PROBE_DISAGREE: "The two temperature probes disagree. Check that both are in the water, "
                              "then acknowledge.",
    FaultKind.SENSOR: "The temperature probe is not giving good readings, so the heater was switched off. "
                      "Check the probe cable and that the probe is in the water, then acknowledge.",
    FaultKind.HEATING: "The water is not warming up although the heater is on. Check the water level, "
                       "that the heater is plugged in and that the probe is in the water, then acknowledge.",
    FaultKind.STATE: "The warmer's saved settings could not be read or saved (see above), so the heater "
                     "stays off. Check the set temperature and the storage, then acknowledge.",
}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    message: str          # what happened, with the numbers
    monotonic_s: float
    wall_time_s: float

    @property
    def advice(self) -> str:
        return ADVICE.get(self.kind, "")


class AckRefused(Exception):
    """An acknowledge that the interlock will not accept; the message says why."""
