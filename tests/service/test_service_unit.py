"""config/stonewarmer.service: valid for systemd, hardened, and wired to our own commands."""

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


@pytest.fixture
def runnable_unit(tmp_path) -> Path:
    """The unit with its command rewritten to an executable that exists here.

    systemd-analyze verify checks that every Exec*= binary exists; on a build
    machine /opt/stonewarmer is not installed, so point it at a stand-in script.
    """
    stand_in = tmp_path / "bin" / "stonewarmer"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    copy = tmp_path / "stonewarmer.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_BIN, str(stand_in)))
    return copy


def test_unit_passes_systemd_analyze_verify_without_a_single_warning(runnable_unit):
    result = subprocess.run([systemd_analyze(), "verify", str(runnable_unit)],
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


def test_security_exposure_is_well_under_3_and_the_docs_report_it(runnable_unit):
    result = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--no-pager", str(runnable_unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    score = float(match.group(1))
    assert score < 2.0
    assert f"exposure level {score:.1f}" in DOCS.read_text(), "update the score in docs/install.md"


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
    assert "Service.PrivateNetwork" not in unit  # it would take the dashboard away
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
