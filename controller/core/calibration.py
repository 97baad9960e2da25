"""Probe calibration: ``[probe] offset_c``, added to what the probe reads.

A DS18B20 is accurate to +/-0.5 degC between -10 and 85 degC (docs/field-notes.md,
"DS18B20 on the Linux 1-Wire bus"); a therapist who checks it against a calibrated
thermometer can correct it by up to +/-3 degC. The control (PID, bath model, the
mode, the dashboard) uses the corrected reading. The safety interlock is handed
the hotter of the raw and the corrected reading, so every over-temperature rule
(cutoff, guard, over target, stuck relay) judges that: an offset can make the
rules stricter, never looser (docs/safety.md, "Probe calibration").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config imports this module: it must load without w1thermsensor (the installer)
    from controller.core.probe import Reading

#: The largest correction allowed either way (degC).
MAX_OFFSET_C = 3.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """The probe's correction: true water = raw reading + ``offset_c`` (degC)."""

    offset_c: float = 0.0

    def corrected(self, reading: Reading | None) -> Reading | None:
        """The reading the control uses (a bad reading passes unchanged: it has no value)."""
        if reading is None or reading.celsius is None or not self.offset_c:
            return reading
        return replace(reading, celsius=reading.celsius + self.offset_c)

    def judged(self, reading: Reading | None) -> Reading | None:
        """The reading the interlock judges: the hotter of the raw and the corrected one."""
        return self.corrected(reading) if self.offset_c > 0 else reading

    def raw_from_judged_c(self, judged_c: float | None) -> float | None:
        """The raw temperature (degC) from the interlock's judged one (None stays None)."""
        return None if judged_c is None else judged_c - max(0.0, self.offset_c)

    def from_judged_c(self, judged_c: float | None) -> float | None:
        """The corrected temperature (degC) from the interlock's judged one (None stays None)."""
        return None if judged_c is None else judged_c + min(0.0, self.offset_c)
