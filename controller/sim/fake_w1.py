"""A fake Linux 1-Wire tree: ``w1_slave`` files exactly as the kernel writes them.

The simulator and the tests write the probe temperature here and read it back
through the real w1thermsensor library, so the code path is the Pi's. Format
(docs/field-notes.md, "DS18B20 on the Linux 1-Wire bus")::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

The nine bytes are the scratchpad (temperature LSB and MSB in 1/16 degC, TH, TL,
config = 12-bit, reserved, CRC-8 of the first eight).
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from controller.core.atomic import atomic_write

DS18B20_FAMILY = "28"
RESOLUTION_C = 0.0625  # 12 bit


def crc8(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8 (polynomial x^8 + x^5 + x^4 + 1)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def scratchpad(celsius: float) -> bytes:
    """The nine scratchpad bytes a 12-bit DS18B20 holds after converting ``celsius``."""
    count = round(celsius / RESOLUTION_C) & 0xFFFF
    body = bytes([count & 0xFF, count >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
    return body + bytes([crc8(body)])


def w1_slave_text(celsius: float, *, crc_ok: bool = True) -> str:
    """The kernel's ``w1_slave`` text for a reading of ``celsius`` (quantised to 1/16 degC)."""
    return _text_for_count(round(celsius / RESOLUTION_C), crc_ok)


@lru_cache(maxsize=4096)  # a bath spans a few hundred distinct counts
def _text_for_count(count: int, crc_ok: bool) -> str:
    pad = scratchpad(count * RESOLUTION_C)
    if not crc_ok:
        pad = pad[:8] + bytes([pad[8] ^ 0x5A])
    hexes = " ".join(f"{b:02x}" for b in pad)
    count = int.from_bytes(pad[:2], "little", signed=True)
    millideg = int(count * 1000 / 16)  # the kernel's integer arithmetic truncates toward zero
    return f"{hexes} : crc={pad[8]:02x} {'YES' if crc_ok else 'NO'}\n{hexes} t={millideg}\n"


ZERO_TEXT = ("00 00 00 00 00 00 00 00 00 : crc=00 YES\n"
             "00 00 00 00 00 00 00 00 00 t=0\n")


class FakeW1Tree:
    """A directory laid out like ``/sys/bus/w1/devices``, with DS18B20 slaves in it."""

    def __init__(self, root: str | Path, *, atomic: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # A lone simulation reads between writes and may write in place (fast);
        # a reader on another thread or process needs atomic replacement.
        self.atomic = atomic
        self._made: set[str] = set()

    def path(self, sensor_id: str) -> Path:
        return self.root / f"{DS18B20_FAMILY}-{sensor_id}" / "w1_slave"

    def write_text(self, sensor_id: str, text: str) -> None:
        """Replace a sensor's file."""
        path = os.path.join(self.root, f"{DS18B20_FAMILY}-{sensor_id}", "w1_slave")
        if path not in self._made:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._made.add(path)
        if not self.atomic:
            with open(path, "w") as f:
                f.write(text)
            return
        atomic_write(path, text, durable=False)  # a fake: atomic for its readers, no fsync per tick

    def write(self, sensor_id: str, celsius: float) -> None:
        self.write_text(sensor_id, w1_slave_text(celsius))

    def unplug(self, sensor_id: str) -> None:
        shutil.rmtree(self.path(sensor_id).parent, ignore_errors=True)
        self._made.discard(str(self.path(sensor_id)))
