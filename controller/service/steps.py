"""The installer's plan: :class:`Step` s on a :class:`Host`, printed and run by :func:`execute`.

Every action of ``stonewarmer install`` / ``uninstall`` is a step: what it does,
the command it runs (if any), whether it is already in place, and how to undo
it. ``--dry-run`` prints the plan and changes nothing. A step that fails stops
the plan; the undo steps of the steps run so far (the failed one included) are
run newest first, so an upgrade that cannot start puts the previous version
back (:mod:`controller.service.upgrade`).

Standard library only: ``sudo python3 -m controller install`` runs from a fresh
checkout, before anything is installed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Runner = Callable[[list[str]], subprocess.CompletedProcess]


class InstallError(Exception):
    """A step failed, or the install cannot start; the message names the step and why."""


def run_command(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


@dataclass
class Host:
    """The system being set up: ``root`` ("/" or an image) and how commands are run.

    ``services``: whether a running systemd can stop and start the service (the live
    system; by default only when ``root`` is "/"). On an image the plan only places
    files and enables the unit.
    """

    root: Path = Path("/")
    run: Runner = run_command
    services: bool | None = None

    @property
    def is_live(self) -> bool:
        """The running system, not an image: commands need no root options."""
        return self.root == Path("/")

    @property
    def manages_services(self) -> bool:
        return self.is_live if self.services is None else self.services

    def path(self, path: Path) -> Path:
        return self.root / path.relative_to("/")

    def _names(self, table: str) -> set[str]:
        try:
            lines = self.path(Path("/etc") / table).read_text().splitlines()
        except FileNotFoundError:
            return set()
        return {line.split(":", 1)[0] for line in lines if line and not line.startswith("#")}

    def has_user(self, name: str) -> bool:
        return name in self._names("passwd")

    def user_ids(self, name: str) -> tuple[int, int]:
        """(uid, gid) of the user ``name`` in this system's /etc/passwd (an image's own, with ``--root``)."""
        for line in self.path(Path("/etc/passwd")).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name and len(fields) > 3:
                return int(fields[2]), int(fields[3])
        raise InstallError(f"no user {name} in {self.path(Path('/etc/passwd'))}")

    def has_group(self, name: str) -> bool:
        return name in self._names("group")

    def systemctl(self, *args: str) -> list[str]:
        return ["systemctl", *([] if self.is_live else [f"--root={self.root}"]), *args]

    def unit_state(self, unit: str) -> str:
        """``systemctl is-active``'s answer ("active", "inactive", "failed" ...); "" without services."""
        if not self.manages_services:
            return ""
        return self.run(["systemctl", "is-active", unit]).stdout.strip()


@dataclass
class Step:
    what: str
    command: list[str] | None = None
    apply: Callable[[], None] | None = None
    done: bool = False             # already in place: shown, not run
    notes: list[str] = field(default_factory=list)
    #: Run when this step or a later one fails, once this step has started (newest step first).
    undo: list[Step] = field(default_factory=list)


def _run_step(step: Step, host: Host) -> None:
    if step.command:
        result = host.run(step.command)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
            raise InstallError(f"{step.what}: `{' '.join(step.command)}` failed (exit {result.returncode})"
                               + (": " + " / ".join(detail) if detail else ""))
    if step.apply:
        try:
            step.apply()
        except OSError as exc:
            raise InstallError(f"{step.what}: {exc}") from None


def execute(steps: list[Step], host: Host, *, dry_run: bool, out=print) -> None:
    """Print every step; run those not already done, unless ``dry_run``.

    On a failure the undo steps collected so far run (the steps' undos newest step
    first, each step's own list in its order), each printed as ``[undo ]``; then
    :class:`InstallError` names what failed and what was undone.
    """
    undo: list[list[Step]] = []
    for step in steps:
        mark = "ok   " if step.done else ("would" if dry_run else "do   ")
        out(f"[{mark}] {step.what}")
        if step.done:
            continue
        if step.command:
            out(f"        $ {' '.join(step.command)}")
        if dry_run:
            continue
        if step.undo:
            undo.append(step.undo)
        try:
            _run_step(step, host)
        except InstallError as exc:
            if not undo:
                raise
            raise InstallError(f"{exc}; {_roll_back([s for group in reversed(undo) for s in group], host, out)}") \
                from None
    for step in steps:
        for note in step.notes:
            if not step.done:
                out(note)


def _roll_back(undo: list[Step], host: Host, out) -> str:
    failed = []
    for step in undo:
        out(f"[undo ] {step.what}")
        if step.command:
            out(f"        $ {' '.join(step.command)}")
        try:
            _run_step(step, host)
        except InstallError as exc:
            out(f"        failed: {exc}")
            failed.append(step.what)
    if failed:
        return "undoing it failed too (" + "; ".join(failed) + ")"
    return "undone: " + "; ".join(step.what for step in undo)
