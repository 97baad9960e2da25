"""Persisted state: setpoint, tuned gains, latched fault. One small JSON file.

Written atomically (write a temporary file, fsync, rename, fsync the
directory) so a power cut leaves either the old or the new file, never half of
one. A corrupt or unreadable file is reported, never a crash loop: the caller
starts from safe defaults with the heater off until acknowledged.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from controller.core.atomic import atomic_write, temp_prefix

STATE_FILE = "state.json"
VERSION = 1


class StateError(Exception):
    """The state file exists but cannot be used; the message says why."""


class StateStore:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / STATE_FILE

    def load(self) -> dict[str, Any]:
        """The saved state, ``{}`` when there is none; raise :class:`StateError` when unusable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"{self.path}: cannot read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"{self.path}: corrupt ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise StateError(f"{self.path}: not a stonewarmer state file of version {VERSION}")
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the state file atomically; raise OSError when the disk refuses."""
        payload = json.dumps({**data, "version": VERSION}, indent=2, sort_keys=True)
        atomic_write(self.path, payload)

    def check_writable(self) -> None:
        """Raise OSError unless a state-sized file can be written and synced in the state dir
        (an empty file can be created on a full disk too). The state file is untouched."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(self.path), dir=self.dir)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)

    def set_aside(self) -> Path | None:
        """Move an unusable state file out of the way (kept for inspection)."""
        if not self.path.exists():
            return None
        target = self.path.with_suffix(".corrupt")
        try:
            os.replace(self.path, target)
        except OSError:
            return None
        return target
