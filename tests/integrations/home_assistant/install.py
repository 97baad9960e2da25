"""A real Home Assistant in its own virtualenv, built once and cached outside the repository.

    python3 tests/integrations/home_assistant/install.py     build it (or find it built); print its path

Home Assistant 2025.4.4 is the newest release that installs on Python 3.13.0 (pyenv's, on the CI
machine); paho-mqtt and the frontend are pinned as HA's mqtt and frontend manifests pin them, so
HA installs nothing at start-up (docs/field-notes.md, "Home Assistant"). The venv lives in
``$STONEWARMER_HA_CACHE`` (default /var/cache/stonewarmer/ha-<version>); a stamp written last
says it is complete: a half-built venv has none and is built again. Standard library only.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

HA_VERSION = "2025.4.4"
REQUIREMENTS = (f"homeassistant=={HA_VERSION}", "paho-mqtt==2.1.0", "home-assistant-frontend==20250411.0")
PYTHON_VERSION = "3.13"
CACHE = Path(os.environ.get("STONEWARMER_HA_CACHE", f"/var/cache/stonewarmer/ha-{HA_VERSION}"))
STAMP = CACHE / ".stonewarmer-complete"  # holds REQUIREMENTS, one a line


def python313() -> str | None:
    """A working Python 3.13: ``$STONEWARMER_HA_PYTHON``, pyenv's, or ``python3.13`` on PATH.

    pyenv's shim for python3.13 is on PATH even when another version is selected, and then
    fails: every candidate is tried before it is chosen.
    """
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("STONEWARMER_HA_PYTHON"),
                  *sorted(glob.glob(f"{root}/versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"), reverse=True),
                  shutil.which(f"python{PYTHON_VERSION}")]
    for candidate in filter(None, candidates):
        try:
            if subprocess.run([candidate, "-c", "import venv, ssl"], capture_output=True).returncode == 0:
                return candidate
        except OSError:  # not there, not executable
            continue
    return None


def installed() -> Path | None:
    """The complete venv's ``bin/`` directory, or None (absent, half-built, other versions)."""
    try:
        complete = STAMP.read_text().split() == list(REQUIREMENTS)
    except OSError:
        return None
    return CACHE / "bin" if complete else None


def build() -> Path:
    """Build the venv unless a complete one is cached; return its ``bin/``. One builder at a time."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f".{CACHE.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (bin_dir := installed()) is not None:
            return bin_dir
        python = python313()
        if python is None:
            raise SystemExit(f"Home Assistant needs Python {PYTHON_VERSION}: none found "
                             f"(set STONEWARMER_HA_PYTHON, or install it with pyenv)")
        shutil.rmtree(CACHE, ignore_errors=True)  # half-built or another version: from scratch
        subprocess.run([python, "-m", "venv", str(CACHE)], check=True)
        pip = [str(CACHE / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, REQUIREMENTS[0]], check=True)  # about 3.5 min
        subprocess.run([*pip, *REQUIREMENTS[1:]], check=True)
        STAMP.write_text("\n".join(REQUIREMENTS) + "\n")
        return CACHE / "bin"


if __name__ == "__main__":
    if "--if-possible" in sys.argv[1:] and python313() is None and installed() is None:
        print(f"Home Assistant not built: no Python {PYTHON_VERSION} on this machine; its test will be skipped")
        raise SystemExit(0)
    print(build())
