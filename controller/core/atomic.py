"""Write a file atomically: readers see the old content or the new, never half of either.

The one way every stonewarmer writer replaces a file (state, credentials, MQTT records,
autotune results, installed files, the simulator's fakes). The temporary file is named
after its target (``.state.json.tmp-XXXXXXXX``), so a writer sweeps up only what an
earlier write *of the same file* left behind after a power cut, never another writer's
file in flight in the same directory.

``durable=True`` (the default) also fsyncs the file before the rename and the directory
after it, so the new content survives a power cut. The simulator's fakes pass
``durable=False``: they need atomicity (a reader never sees a half-written file), not
durability, and an fsync per tick would cost the simulator most of its speed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TMP_INFIX = ".tmp-"


def temp_prefix(target: Path) -> str:
    """The prefix of the temporary files written for *target* (and only for it)."""
    return f".{target.name}{TMP_INFIX}"


def sweep_temps(target: Path) -> None:
    """Remove temporary files an interrupted write of *target* left behind."""
    for stale in target.parent.glob(temp_prefix(target) + "*"):
        stale.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in *directory* durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: str | Path, data: str | bytes, *, mode: int | None = None,
                 durable: bool = True) -> None:
    """Replace *target* with *data* atomically.

    *mode*: the file's permission bits (default: 0600 from :func:`tempfile.mkstemp`, which
    suits secrets and state). Raises ``OSError`` when the disk refuses; the target is then
    unchanged and no temporary file is left.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temps(target)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)
