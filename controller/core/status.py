"""The immutable snapshot the control loop publishes after every tick.

Everything outside the control thread (web, CLI, MQTT, systemd STATUS=) reads
these snapshots and nothing else: it never reaches into the live controller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: a status consumer need not import the probe and the interlock
    from controller.core.faults import FaultKind
    from controller.core.probe import ReadingKind


class Mode(StrEnum):
    """The warmer's mode, in the words the dashboard shows (a str: JSON shows the word)."""

    STARTING = "starting"  # no valid reading yet: heater off
    WARMING = "warming"    # below the setpoint band, heating
    HOLDING = "holding"    # inside +/-1 degC, not yet long enough to call the stones ready
    READY = "ready"        # inside +/-1 degC for READY_HOLD_S: the stones are at temperature
    COOLING = "cooling"    # above the setpoint band (e.g. after lowering it), heater off
    FAULT = "fault"        # a latched fault: heater off until acknowledged
    OFF = "off"            # switched off by a person: heater held off, readings and rules go on



@dataclass(frozen=True, slots=True)
class Status:
    """One tick's view of the warmer. Temperatures in degC, times in seconds."""

    tick: int
    monotonic_s: float          # controller clock at this tick (never jumps)
    wall_time_s: float          # time.time() at this tick, for display only
    temperature_c: float | None  # last valid primary probe reading
    safety_temperature_c: float | None  # last valid second-probe reading, if fitted
    reading_age_s: float | None  # seconds since the last valid reading (None: never)
    reading_kind: ReadingKind    # classification of the latest primary read
    setpoint_c: float
    min_setpoint_c: float
    max_setpoint_c: float
    cutoff_c: float
    duty: float                  # what the PID proposes, 0..1
    relay_on: bool               # what the interlock actually drives
    mode: Mode
    fault: FaultKind | None      # latched fault kind, None when healthy
    fault_message: str | None    # the fault in a therapist's words, with what to do
    ready_in_s: float | None     # estimate while warming, 0 when ready, None unknown
    relay_switches: int          # switch-ons since start
    sensor_errors: int           # bad readings since start
    faults_total: dict[FaultKind, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. autotune progress
    bath: dict[str, Any] = field(default_factory=dict)    # what the warmer learned about its bath
    switched_off: bool = False   # switched off by a person or the schedule (also while a fault shows)
    probe_offset_c: float = 0.0  # [probe] offset_c: temperature_c is the reading plus this
    raw_temperature_c: float | None = None  # the probe's own fresh reading, before the offset (calibration)
    presets: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "setpoint_c"}], the config's order
    auto_off_at: float | None = None  # wall time (s since the epoch) auto-off switches off; None: off or never
    next_start: float | None = None   # wall time of the next start by the schedule; None: none planned
    clock_synced: bool = False        # the wall clock is synchronised (the schedule waits until it is)
    time_zone: str = ""               # the warmer's time zone, of the schedule's HH:MM ("Europe/Berlin")
    utc_offset_s: float = 0.0         # that zone's offset from UTC now (s): +3600 in CET, +7200 in CEST

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
