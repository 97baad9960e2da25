"""``stonewarmer run`` without ``--role``: the control process and the web process, started together.

What the two systemd units do on the Pi, for one command (``make run``, ``run --simulate``):
each child is restarted on its own when it dies, and when the control process dies its
relay is driven off at once (``stonewarmer relay-off``, as the unit's ``ExecStopPost=``).
SIGTERM or SIGINT stops the web process, then the control process, then drives the relay off.

The watcher holds nothing but the two children: ``stonewarmer run`` replaces itself (``exec``)
with ``python -m controller.service.pair``, an interpreter that imports this module and the
standard library alone (about 11 MB resident instead of the CLI's 30 MB).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

RESTART_S = 3.0    # as the units' RestartSec=
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WEB_NICE = 10      # as stonewarmer-web.service's Nice=: under load the control process gets the CPU first
STOP_WAIT_S = 10.0  # as the units' TimeoutStopSec=


def command(*args: str) -> list[str]:
    """The stonewarmer command line, run by this Python."""
    return [sys.executable, "-m", "controller", *args]


def start(argv: list[str], *, nice: int = 0, **popen: Any) -> subprocess.Popen[Any]:
    """Start ``argv``, ``nice`` steps below this process's priority, and sent SIGTERM if this process
    dies (even by SIGKILL): a control process never outlives what would drive its relay off."""
    def in_child() -> None:
        _term_with_parent()
        if nice:
            os.nice(nice)

    return subprocess.Popen(argv, preexec_fn=in_child, **popen)  # noqa: PLW1509 - no threads started yet here


def _term_with_parent() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGTERM) (Linux): this process gets SIGTERM when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's own stop covers the ordinary cases
        pass


class Child:
    """One process of the pair, restarted ``RESTART_S`` after it dies."""

    def __init__(self, name: str, argv: list[str], *, after_exit: list[str] | None = None, nice: int = 0) -> None:
        self.name = name
        self.argv = argv
        self.after_exit = after_exit
        self.nice = nice
        self.proc: subprocess.Popen[bytes] | None = None
        self.died_s: float | None = None

    def start(self) -> None:
        self.proc = start(self.argv, nice=self.nice)
        self.died_s = None

    def check(self, now_s: float) -> None:
        """Notice a death (and run ``after_exit`` at once); restart when it is time."""
        if self.proc is not None and self.died_s is None and self.proc.poll() is not None:
            log.error("the %s process exited (status %s); restarting in %.0f s", self.name, self.proc.returncode,
                      RESTART_S)
            self.died_s = now_s
            self.run_after_exit()
        if self.died_s is not None and now_s - self.died_s >= RESTART_S:
            self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.run_after_exit()

    def run_after_exit(self) -> None:
        if self.after_exit is not None:
            subprocess.run(self.after_exit, check=False, stdout=subprocess.DEVNULL)


def exec_watcher(control: list[str], web: list[str], relay_off: list[str]) -> None:
    """Replace this process with a bare interpreter running :func:`run_pair` (same pid, same signals)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", __name__, json.dumps([control, web, relay_off])])


def run_pair(control: list[str], web: list[str], relay_off: list[str]) -> int:
    """Run ``stonewarmer`` with the ``control`` and ``web`` arguments until SIGTERM/SIGINT."""
    import time

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    off = command(*relay_off)
    subprocess.run(off, check=False, stdout=subprocess.DEVNULL)  # as ExecStartPre=
    children = [Child("control", command(*control), after_exit=off), Child("web", command(*web), nice=WEB_NICE)]
    try:
        for child in children:
            child.start()
        while not stop.wait(0.1):
            for child in children:
                child.check(time.monotonic())
    finally:
        for child in reversed(children):  # the web first: it holds nothing
            child.stop()
    return 0


if __name__ == "__main__":  # exec_watcher's interpreter
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_pair(*json.loads(sys.argv[1])))
