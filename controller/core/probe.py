"""DS18B20 probe reading on w1thermsensor, and the classification of every reading.

Layers, bottom up:

* :class:`W1Probe` reads one sensor through the real w1thermsensor library from
  any 1-Wire directory (the kernel's, or a fake tree in tests and simulation).
* :class:`SyncProbeSource` / :class:`ThreadedProbeSource` decide *where* the
  blocking read runs: inline (simulation: deterministic), or on a worker thread
  with a timeout (the Pi: a hung bus must never stall the control loop).
* :class:`ReadingClassifier` turns raw reads into valid readings or a named fault
  class, adding the checks that need history (jump, frozen).

Facts from docs/field-notes.md ("DS18B20 on the Linux 1-Wire bus").
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

# Off a Pi the import of w1thermsensor would run modprobe and fail: the Pi's
# overlay loads the modules, and tests use a fake tree, so never let it try.
os.environ.setdefault("W1THERMSENSOR_NO_KERNEL_MODULE", "1")
from w1thermsensor import (  # noqa: E402
    NoSensorFoundError,
    ResetValueError,
    SensorNotReadyError,
    W1ThermSensor,
    W1ThermSensorError,
)
from w1thermsensor import Sensor as _SensorType  # noqa: E402

from controller.core.interfaces import Clock  # noqa: E402

VALID_MIN_C = 0.0     # below: out of range (a bath of ice water is no stone bath)
VALID_MAX_C = 100.0   # above: out of range (boiling water is not plausible here)
JUMP_C = 5.0          # a change larger than this ...
JUMP_WINDOW_S = 2.0   # ... within this time is not physical for a water bath
# Frozen: an identical raw value while the bath model expected the water to move this
# much in all (degC, up and down added): 24 steps of 1/16 degC; the probe in it shows them.
# Weighed by the model, not by the duty: a probe frozen while the bath cools (at or above
# the setpoint) is caught too. At full power on the reference bath: ~50 s.
FROZEN_EXPECTED_C = 1.5
# The 85.0 degC power-on value is a real reading when the water came there gradually.
RESET85_NEAR_C = 1.0

READ_INTERVAL_S = 1.0      # the worker starts a read at most this often (one per control tick)


class ReadingKind(StrEnum):
    """The class of a reading. Everything but VALID is a bad reading (a str: JSON shows the word)."""

    VALID = "valid"
    MISSING = "missing"        # no w1_slave file: unplugged (or the bus died)
    CRC = "crc"                # the kernel's CRC check said NO
    EMPTY = "empty"            # the kernel gave up after 5 CRC retries: empty file
    RESET85 = "reset85"        # exactly 85.0 degC: the power-on value of a browned-out sensor
    ZERO = "zero"              # all-zero scratchpad (passes the CRC)
    GARBLED = "garbled"        # a file the library cannot parse
    OUT_OF_RANGE = "out_of_range"
    JUMP = "jump"
    FROZEN = "frozen"
    TIMEOUT = "timeout"        # the read did not return within read_timeout_s
    NONE = "none"              # no read has completed yet (a status before the first read)


#: Therapist-readable names of the reading classes.
DESCRIPTIONS = {
    ReadingKind.VALID: "reading normally",
    ReadingKind.MISSING: "probe not found (unplugged or broken cable)",
    ReadingKind.CRC: "probe data corrupted (CRC error)",
    ReadingKind.EMPTY: "probe did not answer (repeated CRC errors)",
    ReadingKind.RESET85: "probe reset itself (85.0 degC power-on value)",
    ReadingKind.ZERO: "probe returned all zeros",
    ReadingKind.GARBLED: "probe data unreadable",
    ReadingKind.OUT_OF_RANGE: "probe reading impossible for a water bath",
    ReadingKind.JUMP: "probe reading jumped implausibly",
    ReadingKind.FROZEN: "probe reading frozen while heating",
    ReadingKind.TIMEOUT: "probe read hung (1-Wire bus not answering)",
    ReadingKind.NONE: "no reading yet",
}


@dataclass(frozen=True, slots=True)
class RawRead:
    """One read of the sensor file. ``celsius`` is set only when the library accepted it."""

    kind: ReadingKind
    celsius: float | None
    raw: str | None  # the temperature line, to spot a frozen sensor
    t_s: float       # monotonic time the read completed


@dataclass(frozen=True, slots=True)
class Reading:
    """A classified reading: ``kind == VALID`` with its ``celsius``, or the name of what is wrong
    and ``celsius = None``: a bad reading carries no temperature anything could act on."""

    kind: ReadingKind
    celsius: float | None
    t_s: float

    def __post_init__(self) -> None:
        if (self.kind == ReadingKind.VALID) != (self.celsius is not None):
            raise ValueError(f"a {self.kind} reading with celsius={self.celsius!r}: only a valid one has a value")

    @property
    def valid(self) -> bool:
        return self.kind == ReadingKind.VALID


class _RecordingPath:
    """Stands in for the sensor's ``w1_slave`` Path inside w1thermsensor.

    The library refuses a bad file with one exception for three causes (CRC NO,
    empty, all zeros). Recording the text it read lets us name the cause
    without a second read, which on a real bus would start another conversion.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = ""

    def exists(self) -> bool:
        return self.path.exists()

    def open(self, mode: str = "r") -> IO[str]:
        self.text = self.path.read_text()
        return io.StringIO(self.text)

    def __str__(self) -> str:
        return str(self.path)


def _sensor_class(w1_dir: str | Path) -> type[W1ThermSensor]:
    """w1thermsensor's sensor class reading ``w1_dir``.

    A subclass per directory, so two trees (or tests) never share the library's
    class-level BASE_DIRECTORY; one attempt only, so a missing sensor costs no
    second of retries.
    """
    return type("W1ThermSensorAt", (W1ThermSensor,), {"BASE_DIRECTORY": Path(w1_dir), "RETRY_ATTEMPTS": 1})


class W1Probe:
    """One DS18B20 read through w1thermsensor from the 1-Wire tree at ``w1_dir``."""

    def __init__(self, *, w1_dir: str | Path, sensor_id: str = "") -> None:
        self._cls = _sensor_class(w1_dir)
        self.w1_dir = Path(w1_dir)
        self.sensor_id = sensor_id
        self._sensor: W1ThermSensor | None = None
        self._path: _RecordingPath | None = None

    def _open(self) -> W1ThermSensor:
        if self._sensor is None:
            if self.sensor_id:
                sensor = self._cls(_SensorType.DS18B20, self.sensor_id)
            else:
                sensor = self._cls(_SensorType.DS18B20)
            self._path = _RecordingPath(sensor.sensorpath)
            sensor.sensorpath = self._path
            self._sensor = sensor
            if not self.sensor_id:
                self.sensor_id = sensor.id
        return self._sensor

    def read(self, now_s: float) -> RawRead:
        """Read once (a conversion on real hardware: up to 750 ms)."""
        try:
            sensor = self._open()
            celsius = sensor.get_temperature()
        except NoSensorFoundError:
            self._sensor = None  # look again next time: it may be plugged back in
            return RawRead(ReadingKind.MISSING, None, None, now_s)
        except ResetValueError:
            return RawRead(ReadingKind.RESET85, None, self._line(1), now_s)
        except SensorNotReadyError:
            text = self._path.text if self._path else ""
            if not text.strip():
                kind = ReadingKind.EMPTY
            elif "00 00 00 00 00 00 00 00 00" in text.splitlines()[0]:
                kind = ReadingKind.ZERO
            else:
                kind = ReadingKind.CRC
            return RawRead(kind, None, None, now_s)
        except (W1ThermSensorError, ValueError, IndexError):
            return RawRead(ReadingKind.GARBLED, None, None, now_s)
        except OSError:
            self._sensor = None
            return RawRead(ReadingKind.MISSING, None, None, now_s)
        return RawRead(ReadingKind.VALID, celsius, self._line(1), now_s)

    def resolution_bits(self) -> int | None:
        try:
            return int(self._open().get_resolution())
        except (W1ThermSensorError, ValueError, IndexError, OSError):
            return None

    def _line(self, index: int) -> str | None:
        lines = self._path.text.splitlines() if self._path else []
        return lines[index] if len(lines) > index else None


def list_probes(w1_dir: str | Path) -> list[str]:
    """Ids of the DS18B20 sensors present in ``w1_dir``."""
    try:
        return [s.id for s in _sensor_class(w1_dir).get_available_sensors([_SensorType.DS18B20])]
    except OSError:
        return []


class SyncProbeSource:
    """Reads inline, every poll. Used by the simulator, where reads are instant."""

    def __init__(self, probe: W1Probe) -> None:
        self.probe = probe

    def poll(self, now_s: float) -> RawRead | None:
        return self.probe.read(now_s)

    def close(self) -> None:
        pass


class ThreadedProbeSource:
    """Reads on a worker thread; :meth:`poll` never blocks.

    ``poll`` returns the read that completed since the last poll, ``None`` when
    the worker is still converting, or a :attr:`ReadingKind.TIMEOUT` read when the current
    read has taken longer than ``timeout_s`` (a hung 1-Wire bus). The worker
    keeps reading back to back, so readings are as fresh as the bus allows.
    """

    def __init__(self, probe: W1Probe, *, clock: Clock, timeout_s: float) -> None:
        self.probe = probe
        self.clock = clock
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._done: RawRead | None = None
        self._started_s: float | None = clock.monotonic()  # None: no read in progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"probe-{probe.sensor_id or 'first'}",
                                        daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.is_set():
            started = self.clock.monotonic()
            with self._lock:
                self._started_s = started
            result = self.probe.read(self.clock.monotonic())
            with self._lock:
                self._done = result
                self._started_s = None
            # One read per control tick is all the loop uses: don't keep the bus (and a
            # Pi Zero's CPU) busy in between; a missing sensor answers at once.
            self._stop.wait(max(0.0, READ_INTERVAL_S - (self.clock.monotonic() - started)))

    def poll(self, now_s: float) -> RawRead | None:
        with self._lock:
            done, self._done = self._done, None
            started = self._started_s
        if done is not None:
            return done
        if started is not None and now_s - started > self.timeout_s:
            return RawRead(ReadingKind.TIMEOUT, None, None, now_s)
        return None

    def close(self) -> None:
        self._stop.set()


class ReadingClassifier:
    """Adds the checks that need history: range, implausible jump, frozen value."""

    def __init__(self) -> None:
        self._last_valid_t_s: float | None = None
        self._last_valid_c = 0.0
        self._same_raw: str | None = None
        self._expected_since_change_c = 0.0  # probe change the model expected since the raw value changed

    def classify(self, raw: RawRead, expected_change_c: float) -> Reading:
        """Classify ``raw``; ``expected_change_c``: how much the bath model expected the probe to
        move since the last read (degC, either way)."""
        last_t_s = self._last_valid_t_s
        if (raw.kind == ReadingKind.RESET85 and last_t_s is not None and raw.t_s - last_t_s <= JUMP_WINDOW_S
                and abs(85.0 - self._last_valid_c) <= RESET85_NEAR_C):
            raw = RawRead(ReadingKind.VALID, 85.0, raw.raw, raw.t_s)  # came there gradually: real water
        if raw.kind != ReadingKind.VALID:
            return Reading(raw.kind, None, raw.t_s)
        c = raw.celsius
        if c is None:  # the library accepted the file yet gave no value: unreadable
            return Reading(ReadingKind.GARBLED, None, raw.t_s)
        if not VALID_MIN_C <= c <= VALID_MAX_C:
            return Reading(ReadingKind.OUT_OF_RANGE, None, raw.t_s)
        if last_t_s is not None and raw.t_s - last_t_s <= JUMP_WINDOW_S and abs(c - self._last_valid_c) > JUMP_C:
            return Reading(ReadingKind.JUMP, None, raw.t_s)
        if self._is_frozen(raw, expected_change_c):
            return Reading(ReadingKind.FROZEN, None, raw.t_s)
        self._last_valid_t_s, self._last_valid_c = raw.t_s, c
        return Reading(ReadingKind.VALID, c, raw.t_s)

    def _is_frozen(self, raw: RawRead, expected_change_c: float) -> bool:
        # A healthy probe in a bath that the model says is moving must see its value change.
        if raw.raw != self._same_raw:
            self._same_raw = raw.raw
            self._expected_since_change_c = 0.0
            return False
        self._expected_since_change_c += abs(expected_change_c)
        return self._expected_since_change_c >= FROZEN_EXPECTED_C
