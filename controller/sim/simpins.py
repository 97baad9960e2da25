"""gpiozero mock pins that keep simulated time, and can be watched from another process.

:class:`ClockedMockFactory` is a real :class:`gpiozero.pins.mock.MockFactory`;
its pins record every change with the *controller's* clock, so a test of a
4-hour session can assert when the relay switched, to the simulated second.
With ``mirror_dir`` each pin's level is also written to ``mirror_dir/GPIO<n>``
("1" or "0"): the simulated heater's relay is then observable across processes,
as a real pin is (``stonewarmer relay-off`` after a SIGKILL, tests of systemd).
"""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPin, PinState

from controller.core.atomic import atomic_write
from controller.core.interfaces import Clock


class ClockedMockPin(MockPin):
    """A MockPin whose ``states`` use the factory's clock; ``changes`` holds absolute times."""

    def clear_states(self):
        clock = getattr(self.factory, "clock", None)
        self._last_change = clock.monotonic() if clock else 0.0
        self.states = [PinState(0.0, self._state)]
        self.changes = [(self._last_change, self._state)]

    def _change_state(self, value):
        if self._state == value:
            return False
        t = self.factory.clock.monotonic()
        self._state = value
        self.states.append(PinState(t - self._last_change, value))
        self.changes.append((t, value))
        self._last_change = t
        self.factory.mirror(self)
        return True


class ClockedMockFactory(MockFactory):
    """MockFactory for simulation: pins keep ``clock`` time and may mirror to files."""

    def __init__(self, clock: Clock, *, mirror_dir: str | Path | None = None, revision=None) -> None:
        self.clock = clock
        self.mirror_dir = Path(mirror_dir) if mirror_dir else None
        super().__init__(revision=revision, pin_class=ClockedMockPin)

    def mirror(self, pin: MockPin) -> None:
        if self.mirror_dir is None:
            return
        self.mirror_dir.mkdir(parents=True, exist_ok=True)
        write_pin_file(self.mirror_dir, pin.info.name, bool(pin.state))


def write_pin_file(mirror_dir: Path, name: str, level: bool) -> None:
    """Atomically record a pin level as ``mirror_dir/name`` ("1" or "0")."""
    atomic_write(mirror_dir / name, "1" if level else "0", mode=0o644, durable=False)


def read_pin_file(mirror_dir: Path, name: str) -> bool | None:
    try:
        return (Path(mirror_dir) / name).read_text().strip() == "1"
    except FileNotFoundError:
        return None
