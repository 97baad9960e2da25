"""``stonewarmer install`` / ``uninstall``: set the warmer up as a service on Raspberry Pi OS.

Every action is a :class:`~controller.service.steps.Step`: what it does, the
command it runs (if any), whether it is already in place, how to undo it.
``--dry-run`` prints the plan and changes nothing; running again changes nothing
that is already right (idempotent: the second plan is all "ok"). ``--root DIR``
works on a system image (or a temporary tree in tests): files go under DIR, and
systemctl/useradd get their own root options. How a new version replaces the
running one (built beside it, config checked, stop, switch, start, READY, back on
failure) is :mod:`controller.service.upgrade`.

Only the standard library is used here, so ``sudo python3 -m controller
install`` works from a fresh checkout, before anything is installed. The
command line is :mod:`controller.cli.service`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.atomic import atomic_write
from controller.service import upgrade, web_files
from controller.service.control import WEB_USER  # the web process (in the group stonewarmer: the control socket)
from controller.service.steps import Host, InstallError, Step, execute, run_command
from controller.service.upgrade import PREFIX, UNIT_NAME, UNIT_NAMES, VENV, WEB_UNIT_NAME

USER = "stonewarmer"          # the control process (in the group gpio)
GPIO_GROUP = "gpio"
LINK = Path("/usr/local/bin/stonewarmer")
UNITS_DIR = Path("/etc/systemd/system")
UNIT_PATH = UNITS_DIR / UNIT_NAME
WANTS_LINK = UNITS_DIR / "multi-user.target.wants" / UNIT_NAME
CONFIG_PATH = cfgmod.DEFAULT_PATH
STATE_DIR = Path(cfgmod.StateConfig().dir)
WEB_DIR = web_files.web_dir(STATE_DIR)  # the web process's own files
#: Bookworm moved the boot partition to /boot/firmware; older releases use /boot.
BOOT_CONFIGS = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
#: 1-Wire on GPIO4 for the DS18B20; released GPIOs return to inputs (a dead process
#: cannot leave the heater on: docs/field-notes.md "GPIO and relays").
BOOT_LINES = ("dtoverlay=w1-gpio", "dtparam=strict_gpiod")
#: systemd reads the drop-ins of every system.conf.d/ in the order of their names and the last
#: setting wins; Raspberry Pi OS ships its own RuntimeWatchdogSec in /usr/lib/systemd/system.conf.d/,
#: which overrides /etc/systemd/system.conf (docs/field-notes.md, "More facts": systemd ordering).
#: "zz-" sorts after it.
WATCHDOG_DROPIN = Path("/etc/systemd/system.conf.d/zz-stonewarmer-watchdog.conf")
WATCHDOG_S = 15  # the most the Raspberry Pi's watchdog timer accepts
WATCHDOG_CONF = f"""\
# Written by `stonewarmer install`: the SoC's hardware watchdog reboots a Pi whose systemd hangs.
# After a reboot every GPIO is an input: the heater is off until stonewarmer has a valid reading.
# Named zz-... so that it is read after every other drop-in (the last setting wins).
[Manager]
RuntimeWatchdogSec={WATCHDOG_S}s
RebootWatchdogSec=2min
"""
#: Host names that several Pis share out of the box or by following the guide: on one network the
#: second one becomes <name>-2.local (avahi), and which warmer answers the plain name is luck.
SHARED_HOSTNAMES = ("raspberrypi", "stonewarmer")
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

__all__ = ["BOOT_CONFIGS", "BOOT_LINES", "CONFIG_PATH", "LINK", "PREFIX", "UNIT_NAME", "UNIT_NAMES", "UNIT_PATH",
           "USER", "VENV", "WATCHDOG_DROPIN", "WEB_UNIT_NAME", "WEB_USER", "Host", "InstallError", "Step", "execute",
           "install_plan", "run_command", "uninstall_plan"]


def boot_config(host: Host) -> Path | None:
    """The boot config.txt in use (a path on the running system), or None."""
    return next((p for p in BOOT_CONFIGS if host.path(p).is_file()), None)


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


def _copy(source: Path, target: Path) -> Callable[[], None]:
    return lambda: _write(target, source.read_bytes())


def install_plan(host: Host, source: Path, *, configure_boot: bool, extras: tuple[str, ...] = (),
                 hostname: str | None = None) -> list[Step]:
    """Every step of ``stonewarmer install`` from the checkout ``source``, in order."""
    steps: list[Step] = []
    if not host.has_group(GPIO_GROUP):
        steps.append(Step(f"create the group {GPIO_GROUP} (Raspberry Pi OS has it: it owns /dev/gpiochip*)",
                          ["groupadd", "--system", *_prefix(host), GPIO_GROUP]))
    steps.append(Step(f"system user {USER} (no login, no home)",
                      ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(STATE_DIR),
                       "--shell", "/usr/sbin/nologin", *_prefix(host), USER],
                      done=host.has_user(USER)))
    steps.append(Step(f"system user {WEB_USER} for the dashboard (no login, no home; in the group {USER}: "
                      "the control socket)",
                      ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(WEB_DIR),
                       "--groups", USER, "--shell", "/usr/sbin/nologin", *_prefix(host), WEB_USER],
                      done=host.has_user(WEB_USER)))
    steps += state_dir_steps(host)
    config = host.path(CONFIG_PATH)
    steps.append(Step(f"config {CONFIG_PATH} (copied only if absent; yours is never overwritten)",
                      apply=_copy(source / "config" / "stonewarmer.toml", config), done=config.exists()))
    build, venv = upgrade.build_steps(host, source, extras, config=CONFIG_PATH)
    steps += build
    link = host.path(LINK)
    target = VENV / "bin" / "stonewarmer"
    steps.append(Step(f"command {LINK} -> {target}", apply=lambda: _symlink(link, target),
                      done=link.is_symlink() and Path(os.readlink(link)) == target))
    steps += watchdog_steps(host) + hostname_steps(host, hostname)
    steps += service_steps(host, source, venv)
    steps += boot_steps(host, configure_boot=configure_boot)
    return steps


def state_dir_steps(host: Host) -> list[Step]:
    """The state dir (the control process's) and in it the web process's own directory, each owned by its
    user, made before the units start (so systemd finds their owners right and changes nothing)."""
    steps = []
    for path, user, mode in ((STATE_DIR, USER, "0750"), (WEB_DIR, WEB_USER, "0700")):
        steps.append(Step(f"directory {path} ({user}, {mode})",
                          ["install", "-d", "-o", user, "-g", user, "-m", mode, str(host.path(path))],
                          done=host.path(path).is_dir()))
    return steps


def service_steps(host: Host, source: Path, venv: Path) -> list[Step]:
    """Put ``venv`` and the units in place. With a running systemd: stop the services first
    (heater off), start them after and wait for READY, and on a failure undo it all, starting
    the previous version again."""
    units = {name: (host.path(UNITS_DIR / name), source / "config" / name) for name in UNIT_NAMES}
    old = {name: (unit.read_bytes() if unit.exists() else None) for name, (unit, _) in units.items()}
    current = {name: old[name] == unit_source.read_bytes() for name, (_, unit_source) in units.items()}
    switch, cleanup = upgrade.switch_steps(host, venv)
    changing = bool(switch) or not all(current.values())
    services = host.manages_services
    states = {name: host.unit_state(name) for name in UNIT_NAMES}
    steps = []
    for name in reversed(UNIT_NAMES):  # the web first: it holds nothing
        if services and changing and states[name] in ("active", "activating", "reloading"):
            why = " (its ExecStopPost drives the relay off: heater off)" if name == UNIT_NAME else ""
            steps.append(Step(f"stop {name}{why}", host.systemctl("stop", name),
                              undo=[Step(f"start {name} again", host.systemctl("start", name))]))
    steps.append(web_files_step(host))
    steps += switch
    reload = Step("reload systemd's unit files", host.systemctl("daemon-reload"))
    for name, (unit, unit_source) in units.items():
        restore = [_restore_step(unit, old[name])] + ([reload] if services else [])
        steps.append(Step(f"service unit {UNITS_DIR / name}", apply=_copy(unit_source, unit), done=current[name],
                          undo=restore))
    if services:
        steps.append(Step(reload.what, reload.command, done=all(current.values())))
    for name in UNIT_NAMES:
        steps.append(Step(f"enable {name} at boot", host.systemctl("enable", name),
                          done=host.path(UNITS_DIR / "multi-user.target.wants" / name).is_symlink()))
    if services:
        for name in UNIT_NAMES:
            running = states[name] == "active" and not changing
            steps.append(Step(f"start {name} and wait for READY=1 (systemctl start returns when it reports ready)",
                              host.systemctl("start", name), done=running,
                              undo=[Step(f"stop {name}", host.systemctl("stop", name))]))
        for name in UNIT_NAMES:
            running = states[name] == "active" and not changing
            steps.append(Step(f"{name} is running", host.systemctl("is-active", name), done=running))
    return steps + cleanup


def web_files_step(host: Host) -> Step:
    """Move the web's files of a one-process install into the web dir, owned by the web user; moved back
    (owned by the control user) if the new version does not start. Run while both services are stopped."""
    state_dir = host.path(STATE_DIR)
    names = web_files.old_layout(state_dir)
    if not names:
        return Step(f"the dashboard's files (password, sessions, history, MQTT record) are in {WEB_DIR}", done=True)
    moved: list[web_files.Moved] = []

    def apply() -> None:
        moved.extend(web_files.move_into_web_dir(state_dir, owner=host.user_ids(WEB_USER)))

    def undo() -> None:
        web_files.move_back(state_dir, moved, owner=host.user_ids(USER))

    return Step(f"move the dashboard's files {', '.join(names)} from {STATE_DIR} into {WEB_DIR} (owner {WEB_USER}, "
                "mode 0600; one that is already there is kept, the old one renamed beside it)", apply=apply,
                undo=[Step(f"move the dashboard's files back into {STATE_DIR} (owner {USER})", apply=undo)])


def _restore_step(unit: Path, previous: bytes | None) -> Step:
    """Undo the copy of a unit file: the previous one back, or none."""
    if previous is None:
        return Step(f"remove {unit.name}", apply=lambda: unit.unlink(missing_ok=True))
    return Step(f"put the previous {UNITS_DIR / unit.name} back", apply=lambda: _write(unit, previous))


def watchdog_steps(host: Host) -> list[Step]:
    dropin = host.path(WATCHDOG_DROPIN)
    current = dropin.is_file() and dropin.read_text() == WATCHDOG_CONF
    steps = [Step(f"hardware watchdog: {WATCHDOG_DROPIN} (RuntimeWatchdogSec={WATCHDOG_S}s: a hung Pi reboots)",
                  apply=lambda: _write(dropin, WATCHDOG_CONF), done=current)]
    if host.manages_services:
        steps.append(Step("let systemd read it now", host.systemctl("daemon-reexec"), done=current))
    return steps


def current_hostname(host: Host) -> str:
    try:
        return host.path(Path("/etc/hostname")).read_text().strip()
    except OSError:
        return ""


def check_hostname(name: str) -> str:
    if not HOSTNAME.fullmatch(name):
        raise InstallError(f"--hostname {name}: use 1-63 lowercase letters, digits and '-' (not first or last), "
                           "e.g. stonewarmer-room1")
    if name in SHARED_HOSTNAMES:
        raise InstallError(f"--hostname {name}: every Pi set up by the guide or out of the box has that name; "
                           "choose one for this warmer alone, e.g. stonewarmer-room1")
    return name


def hostname_advice(name: str) -> str | None:
    """What to do when ``name`` is one that other Pis on the network probably have too."""
    if name not in SHARED_HOSTNAMES:
        return None
    return (f"this Pi is called {name!r}, like every other Pi set up the same way: with a second warmer on the "
            f"network one of them becomes {name}-2.local (mDNS). Give each warmer a name of its own: "
            "sudo stonewarmer install --hostname stonewarmer-<room>")


def hostname_steps(host: Host, name: str | None) -> list[Step]:
    """Name this Pi (``--hostname``): /etc/hostname, the 127.0.1.1 line of /etc/hosts, and the
    running system's name (hostnamectl; avahi announces it as NAME.local)."""
    current = current_hostname(host)
    if name is None:
        advice = hostname_advice(current)
        return [Step(f"host name {current!r}" + (f": {advice}" if advice else ""), done=True)] if current else []
    if name == current:
        return [Step(f"host name {name} ({name}.local on the network)", done=True)]
    hosts = host.path(Path("/etc/hosts"))

    def apply() -> None:
        _write(host.path(Path("/etc/hostname")), name + "\n")
        lines = hosts.read_text().splitlines() if hosts.exists() else []
        kept = [line for line in lines if not line.startswith("127.0.1.1")]
        _write(hosts, "\n".join([*kept, f"127.0.1.1\t{name}"]) + "\n")

    steps = [Step(f"host name {name} (was {current or 'unset'}): /etc/hostname and /etc/hosts", apply=apply)]
    if host.manages_services:
        steps.append(Step(f"apply it now; avahi announces {name}.local", ["hostnamectl", "set-hostname", name],
                          notes=[f"The dashboard is now at http://{name}.local:8080/"]))
        steps.append(Step("restart avahi so that it takes the new name", host.systemctl("try-restart",
                                                                                        "avahi-daemon.service")))
    return steps


def boot_steps(host: Host, *, configure_boot: bool) -> list[Step]:
    boot = boot_config(host)
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
    steps = []
    for name in reversed(UNIT_NAMES):
        unit = host.path(UNITS_DIR / name)
        wants = host.path(UNITS_DIR / "multi-user.target.wants" / name)
        why = " (the heater is switched off)" if name == UNIT_NAME else ""
        steps += [
            # Stopping runs ExecStopPost=stonewarmer relay-off: the heater is off afterwards.
            Step(f"stop and disable {name}{why}", host.systemctl("disable", *(["--now"] if host.is_live else []), name),
                 done=not unit.exists() and not wants.is_symlink()),
            Step(f"remove {UNITS_DIR / name}", apply=unit.unlink, done=not unit.exists()),
        ]
    if host.is_live:
        steps.append(Step("reload systemd's unit files", host.systemctl("daemon-reload"),
                          done=not host.path(UNIT_PATH).exists()))
    link = host.path(LINK)
    steps.append(Step(f"remove {LINK}", apply=link.unlink, done=not link.is_symlink()))
    dropin = host.path(WATCHDOG_DROPIN)
    steps.append(Step(f"remove {WATCHDOG_DROPIN} (the hardware watchdog is off after the next boot)",
                      apply=dropin.unlink, done=not dropin.exists()))
    prefix = host.path(PREFIX)
    steps.append(Step(f"remove {PREFIX}", apply=lambda: shutil.rmtree(prefix), done=not prefix.exists()))
    config_dir, state_dir = host.path(CONFIG_PATH.parent), host.path(STATE_DIR)
    if purge:
        steps.append(Step(f"remove {CONFIG_PATH.parent} (config)", apply=lambda: shutil.rmtree(config_dir),
                          done=not config_dir.exists()))
        steps.append(Step(f"remove {STATE_DIR} (setpoint, faults, history)", apply=lambda: shutil.rmtree(state_dir),
                          done=not state_dir.exists()))
        for user in (WEB_USER, USER):
            steps.append(Step(f"remove the system user {user}", ["userdel", *_prefix(host), user],
                              done=not host.has_user(user)))
    else:
        steps.append(Step(f"keep {CONFIG_PATH.parent}, {STATE_DIR} and the users {USER}, {WEB_USER} "
                          "(--purge removes them)", done=True))
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


def _write(target: Path, data: str | bytes) -> None:
    """Files the installer places are readable by all (the service user reads them)."""
    atomic_write(target, data, mode=0o644)


def running_from() -> Path:
    """The directory this code runs from: a checkout (``python3 -m controller``) or site-packages."""
    return Path(__file__).resolve().parents[2]  # controller/service/installer.py -> the checkout
