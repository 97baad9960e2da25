"""``stonewarmer install`` / ``uninstall`` against a temporary root (a Raspberry Pi OS look-alike).

System commands (useradd, venv, pip, systemctl) go through a recording runner
that has the same effect on the temporary root as the real ones; file actions
(config, unit, boot config, command link) are real.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.service import installer
from controller.service.installer import Host, execute, install_plan, uninstall_plan
from tests.helpers import REPO

SOURCE = REPO
PI_CONFIG_TXT = "# Raspberry Pi OS Bookworm\ndtparam=audio=on\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n[all]\n"


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    (r / "etc" / "group").write_text("root:x:0:\ngpio:x:993:pi\n")
    (r / "boot" / "firmware").mkdir(parents=True)
    (r / "boot" / "firmware" / "config.txt").write_text(PI_CONFIG_TXT)
    return r


def snapshot(root: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


class FakeSystem:
    """Runs useradd/venv/pip/systemctl the way they would change the temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.commands: list[list[str]] = []

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        self.commands.append(argv)
        name = Path(argv[0]).name
        if name == "useradd":
            with (self.root / "etc" / "passwd").open("a") as f:
                f.write(f"{argv[-1]}:x:999:999::/var/lib/stonewarmer:/usr/sbin/nologin\n")
        elif name == "userdel":
            passwd = self.root / "etc" / "passwd"
            passwd.write_text("".join(line + "\n" for line in passwd.read_text().splitlines()
                                      if not line.startswith(argv[-1] + ":")))
        elif argv[1:3] == ["-m", "venv"]:
            (Path(argv[-1]) / "bin").mkdir(parents=True)
            (Path(argv[-1]) / "bin" / "python").write_text("")
        elif name == "systemctl":
            wants = self.root / "etc/systemd/system/multi-user.target.wants/stonewarmer.service"
            if "enable" in argv:
                wants.parent.mkdir(parents=True, exist_ok=True)
                wants.symlink_to("/etc/systemd/system/stonewarmer.service")
            elif "disable" in argv:
                wants.unlink()
        return subprocess.CompletedProcess(argv, 0, "", "")


def install(root: Path, *, configure_boot: bool = False, dry_run: bool = False) -> tuple[list[str], FakeSystem]:
    lines: list[str] = []
    host = Host(root=root, run=FakeSystem(root))
    execute(install_plan(host, SOURCE, configure_boot=configure_boot), host, dry_run=dry_run, out=lines.append)
    return lines, host.run


def test_dry_run_prints_every_action_and_changes_nothing(root, capsys):
    before = snapshot(root)
    assert main(["install", "--dry-run", "--configure-boot", "--root", str(root), "--source", str(SOURCE)]) == 0
    out = capsys.readouterr().out
    assert snapshot(root) == before
    expected = [
        "(dry run: nothing is changed)",
        "[would] system user stonewarmer",
        f"$ useradd --system --user-group --no-create-home --home-dir /var/lib/stonewarmer "
        f"--shell /usr/sbin/nologin --prefix {root} stonewarmer",
        "[would] virtual environment /opt/stonewarmer/venv using the system's lgpio (--system-site-packages)",
        f"$ python3 -m venv --system-site-packages {root}/opt/stonewarmer/venv",
        f"$ {root}/opt/stonewarmer/venv/bin/pip install --quiet --upgrade {SOURCE}",
        "[would] command /usr/local/bin/stonewarmer -> /opt/stonewarmer/venv/bin/stonewarmer",
        "[would] config /etc/stonewarmer/stonewarmer.toml (copied only if absent",
        "[would] service unit /etc/systemd/system/stonewarmer.service",
        f"$ systemctl --root={root} enable stonewarmer.service",
        "[would] add dtoverlay=w1-gpio, dtparam=strict_gpiod to /boot/firmware/config.txt",
        "REBOOT NEEDED",
    ]
    position = 0
    for text in expected:  # all there, in this order
        found = out.find(text, position)
        assert found >= 0, f"missing (in order): {text!r}\n{out}"
        position = found + len(text)


def test_dry_run_on_the_live_system_also_reloads_enables_and_starts(capsys):
    assert main(["install", "--dry-run", "--source", str(SOURCE)]) == 0
    out = capsys.readouterr().out
    assert "$ systemctl daemon-reload" in out
    assert "$ systemctl enable stonewarmer.service" in out
    assert "$ systemctl restart --no-block stonewarmer.service" in out


def test_install_sets_everything_up_then_a_second_run_changes_nothing(root):
    lines, system = install(root, configure_boot=True)
    assert (root / "etc/stonewarmer/stonewarmer.toml").read_text() == (SOURCE / "config/stonewarmer.toml").read_text()
    assert (root / "etc/systemd/system/stonewarmer.service").read_text() == \
        (SOURCE / "config/stonewarmer.service").read_text()
    assert os.readlink(root / "usr/local/bin/stonewarmer") == "/opt/stonewarmer/venv/bin/stonewarmer"
    assert "stonewarmer:" in (root / "etc/passwd").read_text()
    config_txt = (root / "boot/firmware/config.txt").read_text()
    assert config_txt.startswith(PI_CONFIG_TXT)
    assert config_txt.endswith("[all]\ndtoverlay=w1-gpio\ndtparam=strict_gpiod\n")  # not inside [cm5]
    assert (root / "boot/firmware/config.txt.stonewarmer-backup").read_text() == PI_CONFIG_TXT
    assert "REBOOT NEEDED for the boot config to take effect: sudo reboot" in lines

    (root / "etc/stonewarmer/stonewarmer.toml").write_text("[control]\nsetpoint_c = 50.0\n")  # the user's edit
    before = snapshot(root)
    lines, system = install(root, configure_boot=True)
    assert snapshot(root) == before  # the user's config kept, boot config not appended twice
    assert [line for line in lines if line.startswith("[do")] == \
        ["[do   ] install or upgrade stonewarmer from " + f"{SOURCE} into /opt/stonewarmer/venv"]
    assert not any("REBOOT" in line for line in lines)
    assert [Path(c[0]).name for c in system.commands] == ["pip"]


def test_boot_config_falls_back_to_boot_config_txt_and_is_untouched_without_the_flag(root):
    (root / "boot/firmware/config.txt").unlink()
    (root / "boot/firmware").rmdir()
    (root / "boot/config.txt").write_text("dtoverlay=w1-gpio,gpiopin=4\n")
    lines, _ = install(root)
    assert (root / "boot/config.txt").read_text() == "dtoverlay=w1-gpio,gpiopin=4\n"
    assert any("/boot/config.txt lacks dtparam=strict_gpiod: run again with --configure-boot" in line
               for line in lines)
    install(root, configure_boot=True)
    assert (root / "boot/config.txt").read_text().endswith("[all]\ndtparam=strict_gpiod\n")


def test_uninstall_removes_the_service_and_keeps_config_and_state_unless_purged(root):
    install(root)
    (root / "var/lib/stonewarmer").mkdir(parents=True)
    (root / "var/lib/stonewarmer/state.json").write_text("{}")
    host = Host(root=root, run=FakeSystem(root))
    lines: list[str] = []
    execute(uninstall_plan(host, purge=False), host, dry_run=False, out=lines.append)
    assert not (root / "etc/systemd/system/stonewarmer.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/stonewarmer.service").is_symlink()
    assert not (root / "usr/local/bin/stonewarmer").is_symlink()
    assert not (root / "opt/stonewarmer").exists()
    assert (root / "etc/stonewarmer/stonewarmer.toml").exists()
    assert (root / "var/lib/stonewarmer/state.json").exists()
    assert host.run.commands == [["systemctl", f"--root={root}", "disable", "stonewarmer.service"]]

    lines.clear()
    execute(uninstall_plan(host, purge=True), host, dry_run=False, out=lines.append)
    assert not (root / "etc/stonewarmer").exists() and not (root / "var/lib/stonewarmer").exists()
    assert "stonewarmer:" not in (root / "etc/passwd").read_text()
    lines.clear()
    execute(uninstall_plan(host, purge=True), host, dry_run=False, out=lines.append)
    assert all(line.startswith("[ok   ]") for line in lines)  # nothing left to do


def test_a_failing_command_stops_the_install_with_its_message(root):
    def failing(argv):
        return subprocess.CompletedProcess(argv, 9, "", "useradd: cannot lock /etc/passwd; try again later.")

    host = Host(root=root, run=failing)
    with pytest.raises(installer.InstallError, match=r"useradd .* failed \(exit 9\): useradd: cannot lock"):
        execute(install_plan(host, SOURCE, configure_boot=False), host, dry_run=False, out=lambda _: None)
    assert not (root / "etc/systemd/system/stonewarmer.service").exists()  # stopped at the first failure


def test_install_without_root_rights_says_to_use_sudo(root, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["install", "--root", str(root), "--source", str(SOURCE)]) == 2
    assert "must run as root: sudo stonewarmer install" in capsys.readouterr().err


def test_the_installer_runs_from_a_fresh_checkout_with_only_the_standard_library(tmp_path):
    # Before the venv exists nothing but python3 is there: `python3 -m controller install` must load.
    probe = ("import sys, builtins; real = builtins.__import__\n"
             "def guard(name, *a, **k):\n"
             "    if name.split('.')[0] in ('gpiozero', 'w1thermsensor', 'flask', 'waitress', 'simple_pid'):\n"
             "        raise ModuleNotFoundError('No module named ' + repr(name), name=name)\n"
             "    return real(name, *a, **k)\n"
             "builtins.__import__ = guard\n"
             "sys.argv = ['stonewarmer', 'install', '--dry-run', '--root', sys.argv[1]]\n"
             "import runpy; runpy.run_module('controller', run_name='__main__')\n")
    (tmp_path / "etc").mkdir()
    result = subprocess.run([os.sys.executable, "-c", probe, str(tmp_path)], cwd=SOURCE,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[would] service unit /etc/systemd/system/stonewarmer.service" in result.stdout
