"""Helpers for driving stonewarmer processes from another process: benches, the fault
matrix and the tests start real ``stonewarmer run`` processes and watch them."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from controller.core import config as cfgmod
from controller.service.pair import command
from controller.service.supervisor import SIM_PIN_DIR
from controller.sim.simpins import read_pin_file

__all__ = ["command", "free_port", "relay_pin", "relay_pin_name", "stop", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relay_pin_name(relay: cfgmod.RelayConfig) -> str:
    """The name gpiozero's mock pins (and the simulated pin files) give the relay's pin: ``GPIO17``."""
    return f"GPIO{relay.pin}"


def relay_pin(state_dir: Path, *, relay: cfgmod.RelayConfig | None = None) -> bool | None:
    """The simulated relay pin of the warmer whose state dir is ``state_dir`` (None: never claimed).

    ``relay``: the warmer's relay settings (default: the built-in config's).
    """
    return read_pin_file(Path(state_dir) / SIM_PIN_DIR, relay_pin_name(relay or cfgmod.RelayConfig()))


def wait_until(predicate, *, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll another process's observable state, bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen, *, timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout_s``; return the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=timeout_s)
