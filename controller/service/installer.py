"""``stonewarmer install`` / ``uninstall``: set the warmer up as a service on Raspberry Pi OS.

Every action is a :class:`Step`: what it does, the command it runs (if any),
and whether it is already in place. ``--dry-run`` prints the plan and changes
nothing; running again changes nothing that is already right (idempotent).
``--root DIR`` works on a system image (or a temporary tree in tests): files
go under DIR, and systemctl/useradd get their own root options.

Only the standard library is used here, so ``sudo python3 -m controller
install`` works from a fresh checkout, before anything is installed. The
command line is :mod:`controller.cli.service`.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.atomic import atomic_write

USER = "stonewarmer"
GPIO_GROUP = "gpio"
PREFIX = Path("/opt/stonewarmer")
VENV = PREFIX / "venv"
LINK = Path("/usr/local/bin/stonewarmer")
UNIT_NAME = "stonewarmer.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME
WANTS_LINK = Path("/etc/systemd/system/multi-user.target.wants") / UNIT_NAME
CONFIG_PATH = cfgmod.DEFAULT_PATH
STATE_DIR = Path(cfgmod.StateConfig().dir)
#: Bookworm moved the boot partition to /boot/firmware; older releases use /boot.
BOOT_CONFIGS = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
#: 1-Wire on GPIO4 for the DS18B20; released GPIOs return to inputs (a dead process
#: cannot leave the heater on: docs/field-notes.md "GPIO and relays").
BOOT_LINES = ("dtoverlay=w1-gpio", "dtparam=strict_gpiod")

Runner = Callable[[list[str]], subprocess.CompletedProcess]


class InstallError(Exception):
    """A step failed, or the install cannot start; the message names the step and why."""


def run_command(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


@dataclass
class Host:
    """The system being set up: ``root`` ("/" or an image) and how commands are run."""

    root: Path = Path("/")
    run: Runner = run_command

    @property
    def is_live(self) -> bool:
        """The running system (systemctl can start things), not an image."""
        return self.root == Path("/")

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

    def has_group(self, name: str) -> bool:
        return name in self._names("group")

    def boot_config(self) -> Path | None:
        """The boot config.txt in use (a path on the running system), or None."""
        return next((p for p in BOOT_CONFIGS if self.path(p).is_file()), None)

    def systemctl(self, *args: str) -> list[str]:
        return ["systemctl", *([] if self.is_live else [f"--root={self.root}"]), *args]


@dataclass
class Step:
    what: str
    command: list[str] | None = None
    apply: Callable[[], None] | None = None
    done: bool = False             # already in place: shown, not run
    notes: list[str] = field(default_factory=list)


def boot_lines_missing(text: str) -> list[str]:
    """Which of :data:`BOOT_LINES` are not set (uncommented, with or without parameters)."""
    present = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        for wanted in BOOT_LINES:
            if line == wanted or line.startswith(wanted + ",") or line.startswith(wanted + "="):
                present.add(wanted)
    return [line for line in BOOT_LINES if line not in present]


def _append_boot_lines(path: Path, missing: list[str]) -> None:
    backup = path.with_name(path.name + ".stonewarmer-backup")
    if not backup.exists():
        shutil.copy2(path, backup)
    text = path.read_text()
    # [all]: earlier conditional sections ([pi4], [cm5] ...) must not swallow our lines.
    addition = "\n# Added by stonewarmer install: 1-Wire probe, GPIOs released as inputs\n[all]\n"
    atomic_write(path, text + ("" if text.endswith("\n") or not text else "\n") + addition + "\n".join(missing) + "\n",
                 mode=path.stat().st_mode & 0o7777)


def _copy(source: Path, target: Path, *, mode: int = 0o644) -> Callable[[], None]:
    def apply() -> None:
        atomic_write(target, source.read_bytes(), mode=mode)
    return apply


def install_plan(host: Host, source: Path, *, configure_boot: bool) -> list[Step]:
    steps: list[Step] = []
    if not host.has_group(GPIO_GROUP):
        steps.append(Step(f"create the group {GPIO_GROUP} (Raspberry Pi OS has it: it owns /dev/gpiochip*)",
                          ["groupadd", "--system", *_prefix(host), GPIO_GROUP]))
    steps.append(Step(f"system user {USER} (no login, no home)",
                      ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(STATE_DIR),
                       "--shell", "/usr/sbin/nologin", *_prefix(host), USER],
                      done=host.has_user(USER)))
    venv_python = host.path(VENV / "bin" / "python")
    steps.append(Step(f"virtual environment {VENV} using the system's lgpio (--system-site-packages)",
                      ["python3", "-m", "venv", "--system-site-packages",
                       str(host.path(VENV))],
                      done=venv_python.exists()))
    steps.append(Step(f"install or upgrade stonewarmer from {source} into {VENV}",
                      [str(host.path(VENV / "bin" / "pip")), "install", "--quiet", "--upgrade", str(source)]))
    link = host.path(LINK)
    target = VENV / "bin" / "stonewarmer"
    steps.append(Step(f"command {LINK} -> {target}", apply=lambda: _symlink(link, target),
                      done=link.is_symlink() and Path(os.readlink(link)) == target))
    config = host.path(CONFIG_PATH)
    steps.append(Step(f"config {CONFIG_PATH} (copied only if absent; yours is never overwritten)",
                      apply=_copy(source / "config" / "stonewarmer.toml", config), done=config.exists()))
    unit = host.path(UNIT_PATH)
    unit_source = source / "config" / UNIT_NAME
    unit_current = unit.exists() and filecmp.cmp(unit, unit_source, shallow=False)
    steps.append(Step(f"service unit {UNIT_PATH}", apply=_copy(unit_source, unit), done=unit_current))
    if host.is_live:
        steps.append(Step("reload systemd's unit files", host.systemctl("daemon-reload"), done=unit_current))
    steps.append(Step(f"enable {UNIT_NAME} at boot", host.systemctl("enable", UNIT_NAME),
                      done=host.path(WANTS_LINK).is_symlink()))
    if host.is_live:
        # --no-block: the unit is "activating" until the probe gives a valid reading.
        steps.append(Step(f"start {UNIT_NAME} (restart: runs the version just installed)",
                          host.systemctl("restart", "--no-block", UNIT_NAME)))
    steps += boot_steps(host, configure_boot=configure_boot)
    return steps


def boot_steps(host: Host, *, configure_boot: bool) -> list[Step]:
    boot = host.boot_config()
    if boot is None:
        where = " or ".join(str(p) for p in BOOT_CONFIGS)
        return [Step(f"boot config: none found ({where}); not a Raspberry Pi? add {', '.join(BOOT_LINES)} "
                     "to its boot config yourself", done=True)]
    missing = boot_lines_missing(host.path(boot).read_text())
    if not missing:
        return [Step(f"boot config {boot} has {', '.join(BOOT_LINES)}", done=True)]
    if not configure_boot:
        return [Step(f"boot config {boot} lacks {', '.join(missing)}: run again with --configure-boot "
                     "(or add them yourself), then reboot", done=True)]
    return [Step(f"add {', '.join(missing)} to {boot} (a backup is kept as {boot.name}.stonewarmer-backup)",
                 apply=lambda: _append_boot_lines(host.path(boot), missing),
                 notes=["REBOOT NEEDED for the boot config to take effect: sudo reboot"])]


def uninstall_plan(host: Host, *, purge: bool) -> list[Step]:
    unit = host.path(UNIT_PATH)
    steps = [
        # Stopping runs ExecStopPost=stonewarmer relay-off: the heater is off afterwards.
        Step(f"stop and disable {UNIT_NAME} (the heater is switched off)",
             host.systemctl("disable", *(["--now"] if host.is_live else []), UNIT_NAME),
             done=not unit.exists() and not host.path(WANTS_LINK).is_symlink()),
        Step(f"remove {UNIT_PATH}", apply=unit.unlink, done=not unit.exists()),
    ]
    if host.is_live:
        steps.append(Step("reload systemd's unit files", host.systemctl("daemon-reload"), done=not unit.exists()))
    link = host.path(LINK)
    steps.append(Step(f"remove {LINK}", apply=link.unlink, done=not link.is_symlink()))
    prefix = host.path(PREFIX)
    steps.append(Step(f"remove {PREFIX}", apply=lambda: shutil.rmtree(prefix), done=not prefix.exists()))
    config_dir, state_dir = host.path(CONFIG_PATH.parent), host.path(STATE_DIR)
    if purge:
        steps.append(Step(f"remove {CONFIG_PATH.parent} (config)", apply=lambda: shutil.rmtree(config_dir),
                          done=not config_dir.exists()))
        steps.append(Step(f"remove {STATE_DIR} (setpoint, faults, history)", apply=lambda: shutil.rmtree(state_dir),
                          done=not state_dir.exists()))
        steps.append(Step(f"remove the system user {USER}", ["userdel", *_prefix(host), USER],
                          done=not host.has_user(USER)))
    else:
        steps.append(Step(f"keep {CONFIG_PATH.parent}, {STATE_DIR} and the user {USER} (--purge removes them)",
                          done=True))
    steps.append(Step("keep the boot config lines (1-Wire, strict_gpiod): harmless without stonewarmer",
                      done=True))
    return steps


def _prefix(host: Host) -> list[str]:
    return [] if host.is_live else ["--prefix", str(host.root)]


def _symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def execute(steps: list[Step], host: Host, *, dry_run: bool, out=print) -> None:
    """Print every step; run those not already done, unless ``dry_run``."""
    for step in steps:
        mark = "ok   " if step.done else ("would" if dry_run else "do   ")
        out(f"[{mark}] {step.what}")
        if step.done:
            continue
        if step.command:
            out(f"        $ {' '.join(step.command)}")
        if dry_run:
            continue
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
    for step in steps:
        for note in step.notes:
            if not step.done:
                out(note)


def default_source() -> Path | None:
    """The checkout this code runs from, if it is one (not an installed copy)."""
    here = Path(__file__).resolve().parents[2]  # controller/service/installer.py -> the checkout
    return here if (here / "pyproject.toml").is_file() and (here / "config" / UNIT_NAME).is_file() else None
