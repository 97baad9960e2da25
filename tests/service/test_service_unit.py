"""config/stonewarmer.service (the control process) and config/stonewarmer-web.service (the web
process): valid for systemd, hardened, and wired to our own commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from controller.cli.main import build_parser
from controller.core import config as cfgmod
from tests.helpers import REPO

ROOT = REPO
UNIT = ROOT / "config" / "stonewarmer.service"
WEB_UNIT = ROOT / "config" / "stonewarmer-web.service"
DOCS = ROOT / "docs" / "install.md"
INSTALLED_BIN = "/opt/stonewarmer/venv/bin/stonewarmer"


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        reason = "systemd-analyze is missing (Debian package systemd; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value given (keys such as Environment= repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


@pytest.fixture(scope="module")
def unit() -> dict[str, list[str]]:
    return directives(UNIT.read_text())


@pytest.fixture(scope="module")
def web_unit() -> dict[str, list[str]]:
    return directives(WEB_UNIT.read_text())


def runnable(tmp_path: Path, unit: Path) -> Path:
    """``unit`` with its command rewritten to an executable that exists here.

    systemd-analyze verify checks that every Exec*= binary exists; on a build
    machine /opt/stonewarmer is not installed, so point it at a stand-in script.
    """
    stand_in = tmp_path / "bin" / "stonewarmer"
    stand_in.parent.mkdir(exist_ok=True)
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED_BIN, str(stand_in)))
    return copy


@pytest.fixture
def runnable_unit(tmp_path) -> Path:
    return runnable(tmp_path, UNIT)


def exposure(unit: Path) -> float:
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("shipped", [UNIT, WEB_UNIT], ids=["control", "web"])
def test_unit_passes_systemd_analyze_verify_without_a_single_warning(tmp_path, shipped):
    result = subprocess.run([systemd_analyze(), "verify", str(runnable(tmp_path, shipped))],
                            capture_output=True, text=True, timeout=60)
    # An unknown or misspelt directive is only a warning (exit status 0): demand silence.
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_the_shipped_unit_lacks_nothing_but_the_installed_binary():
    result = subprocess.run([systemd_analyze(), "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    if Path(INSTALLED_BIN).exists():
        assert (result.returncode, result.stderr.strip()) == (0, "")
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "verify should complain that the binary is not installed here"
    assert all(f"{INSTALLED_BIN} is not executable" in line for line in lines), lines


def test_the_control_units_exposure_is_at_most_1_5_and_the_docs_report_it(runnable_unit):
    score = exposure(runnable_unit)
    assert score <= 1.5
    assert f"exposure level {score:.1f}" in DOCS.read_text(), "update the score in docs/install.md"


def test_the_web_units_exposure_is_under_2_and_the_docs_report_it(tmp_path):
    score = exposure(runnable(tmp_path, WEB_UNIT))
    assert score < 2.0
    assert f"web unit's exposure level {score:.1f}" in DOCS.read_text(), "update the score in docs/install.md"


def test_the_control_process_has_no_network_at_all(unit):
    assert unit["Service.RestrictAddressFamilies"] == ["AF_UNIX"]  # its socket, the journal, sd_notify
    assert unit["Service.PrivateNetwork"] == ["yes"]
    assert unit["Service.IPAddressDeny"] == ["any"] and "Service.IPAddressAllow" not in unit
    assert shlex.split(unit["Service.ExecStart"][0])[1:4] == ["run", "--role", "control"]


def test_the_web_process_has_no_gpio_device_and_a_user_of_its_own(web_unit, unit):
    assert web_unit["Service.DevicePolicy"] == ["closed"]
    assert "Service.DeviceAllow" not in web_unit  # no /dev/gpiochip*
    assert web_unit["Service.PrivateDevices"] == ["yes"]
    assert web_unit["Service.User"] == ["stonewarmer-web"] != unit["Service.User"]
    assert "gpio" not in web_unit["Service.SupplementaryGroups"][0].split()
    assert web_unit["Service.SupplementaryGroups"] == ["stonewarmer"]  # the control socket, mode 0660
    assert shlex.split(web_unit["Service.ExecStart"][0])[1:4] == ["run", "--role", "web"]
    assert "Service.ExecStopPost" not in web_unit  # it has no relay to turn off


def test_the_web_unit_may_reach_the_internet_for_the_phone_notifications(web_unit):
    # ntfy.sh and Apprise's services are on the internet, at addresses that change: no IP allow-list.
    assert "Service.IPAddressDeny" not in web_unit and "Service.PrivateNetwork" not in web_unit
    assert set(web_unit["Service.RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_the_web_unit_has_its_own_watchdog_and_restarts_on_its_own(web_unit):
    assert web_unit["Service.Type"] == ["notify"]
    assert web_unit["Service.WatchdogSec"] == ["10"]
    assert web_unit["Service.Restart"] == ["always"]
    assert "Unit.BindsTo" not in web_unit and "Unit.PartOf" not in web_unit  # the control unit never stops with it


def test_unit_is_type_notify_with_an_explicit_watchdog(unit):
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.WatchdogSec"] == ["10"]
    assert unit["Service.WatchdogSignal"] == ["SIGABRT"]  # faulthandler prints the stuck stacks
    assert unit["Service.Restart"] == ["always"]
    assert int(unit["Unit.StartLimitBurst"][0]) >= 3 and int(unit["Unit.StartLimitIntervalSec"][0]) > 0
    # The stop budget: SIGTERM must finish in 5 s; systemd's patience must exceed it.
    assert int(unit["Service.TimeoutStopSec"][0]) > 5


def test_the_relay_is_driven_off_before_every_start_and_after_every_stop(unit):
    for key in ("Service.ExecStartPre", "Service.ExecStopPost"):
        (line,) = unit[key]
        assert shlex.split(line)[1] == "relay-off"


def test_every_command_in_the_unit_is_one_our_cli_accepts(unit):
    parser = build_parser()
    commands = {}
    for key in ("Service.ExecStartPre", "Service.ExecStart", "Service.ExecStopPost"):
        (line,) = unit[key]
        argv = shlex.split(line)
        assert argv[0] == INSTALLED_BIN
        args = parser.parse_args(argv[1:])
        assert Path(args.config) == cfgmod.DEFAULT_PATH
        assert not getattr(args, "simulate", False)
        commands[key] = args.command
    assert commands == {"Service.ExecStartPre": "relay-off", "Service.ExecStart": "run",
                        "Service.ExecStopPost": "relay-off"}


def test_directories_match_the_config_defaults(unit):
    assert Path("/var/lib") / unit["Service.StateDirectory"][0] == Path(cfgmod.StateConfig().dir)
    assert Path("/etc") / unit["Service.ConfigurationDirectory"][0] == cfgmod.DEFAULT_PATH.parent
    # lgpio's FIFO needs a writable working directory under ProtectSystem=strict.
    runtime = Path("/run") / unit["Service.RuntimeDirectory"][0]
    assert unit["Service.WorkingDirectory"] == [str(runtime)]
    assert f"LG_WD={runtime}" in unit["Service.Environment"]


def test_hardening_leaves_gpio_and_one_wire_reachable(unit):
    assert unit["Service.User"] == ["stonewarmer"]
    assert unit["Service.SupplementaryGroups"] == ["gpio"]
    assert unit["Service.DevicePolicy"] == ["closed"]
    assert unit["Service.DeviceAllow"] == ["char-gpiochip rw"]
    assert "Service.PrivateDevices" not in unit  # it would hide /dev/gpiochip*
    assert "Service.PrivateUsers" not in unit  # it would break the gpio supplementary group
    assert unit.get("Service.ProcSubset", ["all"]) == ["all"]  # gpiozero reads the board revision
    for key in ("InaccessiblePaths", "TemporaryFileSystem"):
        assert not any("/sys" in v for v in unit.get(f"Service.{key}", [])), "/sys/bus/w1 must stay readable"
    assert "W1THERMSENSOR_NO_KERNEL_MODULE=1" in unit["Service.Environment"]
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert unit[f"Service.{key}"] == ["strict" if key == "ProtectSystem" else "yes"], key


def test_the_system_call_filter_keeps_what_lgpio_and_the_notify_socket_need(unit):
    analyze = systemd_analyze()

    def group(name: str) -> set[str]:
        out = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True, timeout=60).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            word = line.strip()
            if word and not word.startswith("#"):
                calls |= group(word) if word.startswith("@") else {word}
        return calls

    allowed = set()
    for entry in unit["Service.SystemCallFilter"]:
        if entry.startswith("~"):
            for name in entry[1:].split():
                allowed -= group(name) if name.startswith("@") else {name}
        else:
            for name in entry.split():
                allowed |= group(name) if name.startswith("@") else {name}
    # ioctl: GPIO line requests; mknodat: lgpio's FIFO; sendto: sd_notify; the rest: a web server.
    for call in ("ioctl", "mknodat", "openat", "sendto", "socket", "bind", "listen", "accept4", "clone3"):
        assert call in allowed, call
    for call in ("reboot", "init_module", "settimeofday", "mount", "ptrace", "setuid"):
        assert call not in allowed, call
