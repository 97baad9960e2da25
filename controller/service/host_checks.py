"""The doctor's checks of the Pi as a host: its clock, the systemd service, the hardware
watchdog, and its name on the network."""

from __future__ import annotations

import re
from pathlib import Path

from controller.core.clock import TIME_ERROR, TIMESYNC_FLAG
from controller.service.installer import UNIT_NAMES, WATCHDOG_DROPIN, hostname_advice
from controller.service.system_view import Finding, System

#: Where systemd reads its manager settings: the main file, then the drop-ins of these
#: directories, all sorted by file name (the last setting wins; a name in an earlier directory
#: of this list hides the same name in a later one).
SYSTEM_CONF = Path("/etc/systemd/system.conf")
SYSTEM_CONF_DIRS = (Path("/etc/systemd/system.conf.d"), Path("/run/systemd/system.conf.d"),
                    Path("/usr/local/lib/systemd/system.conf.d"), Path("/usr/lib/systemd/system.conf.d"))
_UNITS_S = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0, "": 1.0,
            "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0}


def clock_findings(system: System) -> list[Finding]:
    synced = None
    result = system.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if result is not None and result.returncode == 0 and result.stdout.strip() in ("yes", "no"):
        synced = result.stdout.strip() == "yes"
    elif system.is_live:
        state = system.clock_state()
        synced = None if state is None else state != TIME_ERROR
    if synced and system.is_live and not system.path(TIMESYNC_FLAG).exists():
        # The service's sandbox (ProtectClock=yes) refuses even a read-only adjtimex(2): inside it,
        # only systemd-timesyncd's flag file tells that the clock is right.
        return [Finding("warn", "clock synchronised, but not by systemd-timesyncd (chrony or ntpd?): the service "
                                f"cannot see it from its sandbox (it reads {TIMESYNC_FLAG}), so the ready-by "
                                "schedule never starts the warmer",
                        "use systemd-timesyncd for NTP: sudo apt install systemd-timesyncd "
                        "(it replaces chrony and ntp), then check: timedatectl timesync-status")]
    if synced:
        return [Finding("ok", "clock synchronised (NTP)")]
    what = "clock not synchronised" if synced is False else "cannot tell whether the clock is synchronised"
    return [Finding("warn", f"{what}: the Pi has no battery clock, so event and history times may be wrong and "
                            "the ready-by schedule waits for it (heater timing does not depend on it)",
                    "connect the Pi to a network with internet access for NTP "
                    "(check: timedatectl timesync-status)")]


def service_findings(system: System) -> list[Finding]:
    """Both units: the control process and the web process."""
    if system.is_live and not system.systemd_running():
        return [Finding("warn", "systemd is not running here (a container?): the service cannot be checked",
                        "on the Pi: sudo stonewarmer install")]
    return [finding for name in UNIT_NAMES for finding in _unit_findings(system, name)]


def _unit_findings(system: System, unit: str) -> list[Finding]:
    root = [] if system.is_live else [f"--root={system.root}"]
    enabled = system.run(["systemctl", *root, "is-enabled", unit])
    if enabled is None:
        return [Finding("warn", "systemctl not found: the service cannot be checked", "")]
    state = enabled.stdout.strip()
    if enabled.returncode != 0 and state in ("", "not-found"):
        return [Finding("error", f"{unit} is not installed", "sudo stonewarmer install")]
    out = []
    if state != "enabled":
        out.append(Finding("error", f"{unit} is {state or 'not enabled'}: it will not start at boot",
                           f"sudo systemctl enable --now {unit}"))
    if not system.is_live:
        return out or [Finding("ok", f"{unit} enabled")]
    shown = system.run(["systemctl", "show", unit, "--property=ActiveState,SubState,Result,NRestarts,StatusText"])
    props = dict(line.split("=", 1) for line in (shown.stdout if shown else "").splitlines() if "=" in line)
    active, status = props.get("ActiveState", "unknown"), props.get("StatusText", "")
    logs = f"journalctl -u {unit} -b"
    if active == "active":
        out.append(Finding("ok", f"{unit} running: {status}"))
    elif active == "activating":
        out.append(Finding("warn", f"{unit} starting: {status or props.get('SubState', '')}",
                           "it is ready once the probe gives a valid reading: see the probe findings above"))
    else:
        out.append(Finding("error", f"{unit} is {active} (result: {props.get('Result', '?')})",
                           f"see why: {logs}; then sudo systemctl restart {unit}"))
    restarts = int(props.get("NRestarts", "0") or 0)
    if restarts:
        out.append(Finding("warn", f"{unit} restarted {restarts} times since it was started",
                           f"see why: {logs} (a watchdog abort prints every thread's stack there)"))
    return out


def network_name_findings(system: System, *, port: int = 8080) -> list[Finding]:
    """This Pi's name on the network (mDNS): unique, and the one avahi really announces."""
    try:
        name = system.path("/etc/hostname").read_text().strip()
    except OSError:
        return []
    advice = hostname_advice(name)
    out = [Finding("warn", f"host name {name}: {advice.split(': ', 1)[0]}", advice.split(": ", 1)[1])] if advice \
        else [Finding("ok", f"host name {name}")]
    if not system.is_live:
        return out
    answer = system.run(["busctl", "call", "org.freedesktop.Avahi", "/", "org.freedesktop.Avahi.Server",
                         "GetHostName"])
    if answer is None or answer.returncode != 0:
        return out + [Finding("warn", f"avahi is not running: phones cannot find the dashboard as {name}.local",
                              "sudo apt install avahi-daemon && sudo systemctl enable --now avahi-daemon")]
    announced = answer.stdout.strip().removeprefix("s ").strip('"')
    if announced != name:
        out.append(Finding("warn", f"another device on the network already is {name}.local: avahi announces this Pi "
                                   f"as {announced}.local (and may pick another name after a reboot)",
                           "give each warmer a name of its own: sudo stonewarmer install --hostname "
                           "stonewarmer-<room>"))
    else:
        out.append(Finding("ok", f"dashboard at http://{name}.local:{port}/ (mDNS)"))
    return out


def parse_timespan_s(text: str) -> float | None:
    """A systemd time span ("15s", "2min", "1min 30s", "10") in seconds; 0 for off; None if unreadable."""
    text = text.strip().lower()
    if text in ("", "0", "off", "infinity"):
        return 0.0
    if not re.fullmatch(r"([0-9.]+\s*[a-z]*\s*)+", text):
        return None
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", text):
        if unit not in _UNITS_S:
            return None
        total += float(number) * _UNITS_S[unit]
    return total


def configured_manager_setting(system: System, key: str) -> tuple[str, Path] | None:
    """The value of ``[Manager] key=`` that systemd reads from its files, and the file it comes from."""
    dropins: dict[str, Path] = {}
    for directory in reversed(SYSTEM_CONF_DIRS):  # an earlier directory hides the same name in a later one
        for path in sorted(system.path(directory).glob("*.conf")):
            dropins[path.name] = directory / path.name
    found = None
    for path in [SYSTEM_CONF, *(dropins[name] for name in sorted(dropins))]:
        try:
            lines = system.path(path).read_text().splitlines()
        except OSError:
            continue
        section = ""
        for raw in lines:
            line = raw.strip()
            if line.startswith("["):
                section = line
            elif section == "[Manager]" and line.startswith(f"{key}="):
                found = (line.split("=", 1)[1].strip(), path)
    return found


def watchdog_findings(system: System) -> list[Finding]:
    """The hardware watchdog that reboots a hung Pi: configured, and (live) in effect."""
    todo = f"sudo stonewarmer install (writes {WATCHDOG_DROPIN}), then sudo systemctl daemon-reexec"
    configured = configured_manager_setting(system, "RuntimeWatchdogSec")
    if configured is None or not parse_timespan_s(configured[0]):
        where = f" ({configured[1]})" if configured else ""
        return [Finding("warn", f"the hardware watchdog is off{where}: a Pi that hangs stays hung, its GPIOs as "
                                "they were (the heater's relay too) until someone pulls the plug", todo)]
    value, path = configured
    if system.is_live:
        shown = system.run(["systemctl", "show", "--property=RuntimeWatchdogUSec", "--value"])
        effective = parse_timespan_s(shown.stdout) if shown is not None and shown.returncode == 0 else None
        if shown is not None and effective is not None and effective != parse_timespan_s(value):
            return [Finding("warn", f"{path} sets RuntimeWatchdogSec={value}, but systemd runs with "
                                    f"{shown.stdout.strip()} (it reads its files when it starts)",
                            "sudo systemctl daemon-reexec (or reboot)")]
    return [Finding("ok", f"hardware watchdog RuntimeWatchdogSec={value} ({path})")]
