"""What the doctor looks at and what it says: :class:`System` (a root, and how to ask the
OS) and :class:`Finding` (ok / warn / error, with what to do)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.clock import kernel_clock_state


@dataclass(frozen=True, slots=True)
class Finding:
    level: str   # "ok", "warn", "error"
    what: str
    todo: str = ""

    def __str__(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "error": "FAIL"}[self.level]
        return f"[{mark}] {self.what}" + (f"\n       -> {self.todo}" if self.todo else "")


def _run(argv: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def import_lgpio() -> None:
    """Import lgpio as the service does, in a process of its own whose working directory and
    ``$LG_WD`` are a temporary directory: lgpio creates its notification FIFO there (not in the
    caller's directory, where root would leave it; a read-only one would fail the import).
    Raises ImportError with lgpio's own last line."""
    with tempfile.TemporaryDirectory(prefix="stonewarmer-lgpio-") as wd:
        try:
            result = subprocess.run([sys.executable, "-c", "import lgpio"], cwd=wd, env={**os.environ, "LG_WD": wd},
                                    capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImportError(f"importing lgpio: {exc}") from None
    if result.returncode != 0:
        raise ImportError((result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1])


@dataclass
class System:
    """Where the doctor looks: ``root`` ("/" or an image), and how it asks the OS.

    ``live``: whether the running system can be asked (systemctl show, avahi); by
    default when ``root`` is "/".
    """

    root: Path = Path("/")
    run: Callable[[list[str]], subprocess.CompletedProcess | None] = _run
    clock_state: Callable[[], int | None] = kernel_clock_state
    import_lgpio: Callable[[], object] = import_lgpio
    systemd_running: Callable[[], bool] = field(default=lambda: Path("/run/systemd/system").is_dir())
    live: bool | None = None

    @property
    def is_live(self) -> bool:
        return self.root == Path("/") if self.live is None else self.live

    def path(self, path: str | Path) -> Path:
        return self.root / Path(path).relative_to("/")
