"""``stonewarmer install`` / ``uninstall`` against a temporary root (a Raspberry Pi OS look-alike).

System commands (useradd, venv, pip, systemctl) go through a recording runner
that has the same effect on the temporary root as the real ones, including a
fake systemd whose ``start`` answers as ``systemctl start`` does once the
service reports READY (or fails); file actions (config, unit, boot config, the
venv symlink, the watchdog drop-in) are real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.service import installer, upgrade
from controller.service.installer import Host, execute, install_plan, uninstall_plan
from tests.helpers import REPO

PI_CONFIG_TXT = "# Raspberry Pi OS Bookworm\ndtparam=audio=on\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n[all]\n"


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/bash\n")
    (r / "etc" / "group").write_text("root:x:0:\ngpio:x:993:pi\n")
    (r / "etc" / "hostname").write_text("stonewarmer-room1\n")
    (r / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tstonewarmer-room1\n")
    (r / "boot" / "firmware").mkdir(parents=True)
    (r / "boot" / "firmware" / "config.txt").write_text(PI_CONFIG_TXT)
    return r


@pytest.fixture
def source(tmp_path) -> Path:
    """A checkout: the repository's package files (a `git pull` is an edit here)."""
    checkout = tmp_path / "checkout"
    for part in upgrade.PACKAGE_PARTS:
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            checkout.mkdir(exist_ok=True)
            shutil.copy2(REPO / part, checkout / part)
    return checkout


def pull(source: Path) -> None:
    """What `git pull` does to the checkout: a new version of the code."""
    with (source / "controller" / "__init__.py").open("a") as f:
        f.write("# a new version\n")


def snapshot(root: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


class FakeSystem:
    """Runs useradd/venv/pip/systemctl the way they would change the temporary root.

    ``live``: a running systemd (stop/start/is-active). ``start`` fails for a venv in
    ``failing_starts`` (the new version refuses to run) and answers once READY otherwise;
    the config check fails for a venv in ``refusing``. ``events`` is what the service saw.
    """

    def __init__(self, root: Path, *, live: bool = False) -> None:
        self.root = root
        self.live = live
        self.commands: list[list[str]] = []
        self.events: list[str] = []
        self.states = {name: "inactive" for name in upgrade.UNIT_NAMES}
        self.failing_starts: set[str] = set()
        self.refusing: set[str] = set()

    @property
    def state(self) -> str:
        """The control unit's state (the web unit follows it in these tests)."""
        return self.states[upgrade.UNIT_NAME]

    @state.setter
    def state(self, value: str) -> None:
        self.states = dict.fromkeys(upgrade.UNIT_NAMES, value)

    def in_use(self) -> str:
        venv = self.root / "opt/stonewarmer/venv"
        return os.readlink(venv) if venv.is_symlink() else "the previous venv"

    def __call__(self, argv: list[str]) -> subprocess.CompletedProcess:
        self.commands.append(argv)
        name = Path(argv[0]).name
        code, out = 0, ""
        if name == "useradd":
            with (self.root / "etc" / "passwd").open("a") as f:
                # Ids of their own as root (files are really given to them); the tester's own otherwise.
                uid = (998 if argv[-1] == installer.WEB_USER else 999) if os.geteuid() == 0 else os.getuid()
                gid = uid if os.geteuid() == 0 else os.getgid()
                f.write(f"{argv[-1]}:x:{uid}:{gid}::/var/lib/stonewarmer:/usr/sbin/nologin\n")
        elif name == "userdel":
            passwd = self.root / "etc" / "passwd"
            passwd.write_text("".join(line + "\n" for line in passwd.read_text().splitlines()
                                      if not line.startswith(argv[-1] + ":")))
        elif name == "install" and argv[1] == "-d":
            Path(argv[-1]).mkdir(parents=True, exist_ok=True)
        elif argv[1:3] == ["-m", "venv"]:
            (Path(argv[-1]) / "bin").mkdir(parents=True)
            (Path(argv[-1]) / "bin" / "python").write_text("")
        elif argv[1:4] == ["-m", "pip", "install"]:
            package = Path(re.sub(r"\[.*\]$", "", argv[-1]))
            assert (package / "pyproject.toml").is_file()
            (Path(argv[0]).parent / "stonewarmer").write_text(f"# installed from {argv[-1]}\n")
        elif name == "stonewarmer" and argv[1] == "check":
            if Path(argv[0]).parents[1].name in self.refusing:
                code, out = 1, "[FAIL] config refused: [control] setpoint_c = 60.0: allowed 35..57"
        elif name == "systemctl":
            code, out = self.systemctl(argv)
        elif name == "hostnamectl":
            self.events.append(f"hostname {argv[-1]}")
        return subprocess.CompletedProcess(argv, code, out, "")

    def systemctl(self, argv: list[str]) -> tuple[int, str]:
        verb = next(a for a in argv[1:] if not a.startswith("-"))
        unit = argv[-1]
        wants = self.root / "etc/systemd/system/multi-user.target.wants" / unit
        # The events of the control unit, as one service; the web unit's are prefixed "web".
        web = "web " if unit == upgrade.WEB_UNIT_NAME else ""
        if verb == "enable":
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(f"/etc/systemd/system/{unit}")
        elif verb == "disable":
            wants.unlink()
        elif verb == "is-active":
            return (0 if self.states[unit] == "active" else 3), self.states[unit] + "\n"
        elif verb == "stop":
            self.events.append(f"{web}stop ({self.in_use()})" + ("" if web else ": relay off"))
            self.states[unit] = "inactive"
        elif verb == "start":
            if self.in_use() in self.failing_starts:
                self.events.append(f"{web}start {self.in_use()}: failed")
                self.states[unit] = "failed"
                return 1, f"Job for {unit} failed because the control process exited with error code."
            self.events.append(f"{web}start {self.in_use()}: READY")
            self.states[unit] = "active"
        else:
            self.events.append(verb)
        return 0, ""


def install(root: Path, source: Path, *, system: FakeSystem | None = None, configure_boot: bool = False,
            dry_run: bool = False, extras: tuple[str, ...] = (), hostname: str | None = None) -> list[str]:
    lines: list[str] = []
    system = system or FakeSystem(root)
    host = Host(root=root, run=system, services=system.live)
    execute(install_plan(host, source, configure_boot=configure_boot, extras=extras, hostname=hostname), host,
            dry_run=dry_run, out=lines.append)
    return lines


def assert_in_order(out: str, expected: list[str]) -> None:
    position = 0
    for text in expected:
        found = out.find(text, position)
        assert found >= 0, f"missing (in order): {text!r}\n{out}"
        position = found + len(text)


def test_dry_run_prints_every_action_and_changes_nothing(root, source, capsys):
    before = snapshot(root)
    assert main(["install", "--dry-run", "--configure-boot", "--root", str(root), "--source", str(source)]) == 0
    out = capsys.readouterr().out
    assert snapshot(root) == before
    venv = f"venv-{upgrade.fingerprint(source, ())}"
    assert_in_order(out, [
        "(dry run: nothing is changed)",
        f"checkout {source} (--source)",
        "[would] system user stonewarmer",
        f"$ useradd --system --user-group --no-create-home --home-dir /var/lib/stonewarmer "
        f"--shell /usr/sbin/nologin --prefix {root} stonewarmer",
        "[would] config /etc/stonewarmer/stonewarmer.toml (copied only if absent",
        f"[would] copy the package's files from {source} to /opt/stonewarmer/.build-",
        f"[would] new virtual environment /opt/stonewarmer/{venv} (--system-site-packages",
        f"$ {sys.executable} -m venv --system-site-packages {root}/opt/stonewarmer/{venv}",
        f"$ {root}/opt/stonewarmer/{venv}/bin/python -m pip install --quiet --no-cache-dir -c "
        f"{root}/opt/stonewarmer/.build-",
        f"$ {root}/opt/stonewarmer/{venv}/bin/stonewarmer check --config-only --config "
        f"{root}/etc/stonewarmer/stonewarmer.toml",
        "[would] command /usr/local/bin/stonewarmer -> /opt/stonewarmer/venv/bin/stonewarmer",
        "[would] hardware watchdog: /etc/systemd/system.conf.d/zz-stonewarmer-watchdog.conf",
        f"[would] switch /opt/stonewarmer/venv to {venv}",
        "[would] service unit /etc/systemd/system/stonewarmer.service",
        f"$ systemctl --root={root} enable stonewarmer.service",
        "[would] add dtoverlay=w1-gpio, dtparam=strict_gpiod to /boot/firmware/config.txt",
        "REBOOT NEEDED",
    ])
    assert "-m pip install" in out and str(source) not in out.split("-m pip install", 1)[1].split("\n")[0]


def test_dry_run_on_the_live_system_also_reloads_starts_and_waits_for_ready(source, capsys):
    assert main(["install", "--dry-run", "--source", str(source)]) == 0
    out = capsys.readouterr().out
    assert_in_order(out, ["$ systemctl daemon-reexec", "$ systemctl daemon-reload",
                          "$ systemctl enable stonewarmer.service", "start stonewarmer.service and wait for READY=1",
                          "$ systemctl start stonewarmer.service", "$ systemctl is-active stonewarmer.service"])
    assert "--no-block" not in out


def test_install_sets_everything_up_then_a_second_run_changes_nothing(root, source):
    lines = install(root, source, configure_boot=True)
    assert (root / "etc/stonewarmer/stonewarmer.toml").read_text() == (source / "config/stonewarmer.toml").read_text()
    assert (root / "etc/systemd/system/stonewarmer.service").read_text() == \
        (source / "config/stonewarmer.service").read_text()
    assert os.readlink(root / "usr/local/bin/stonewarmer") == "/opt/stonewarmer/venv/bin/stonewarmer"
    assert os.readlink(root / "opt/stonewarmer/venv") == f"venv-{upgrade.fingerprint(source, ())}"
    assert "stonewarmer:" in (root / "etc/passwd").read_text()
    config_txt = (root / "boot/firmware/config.txt").read_text()
    assert config_txt.startswith(PI_CONFIG_TXT)
    assert config_txt.endswith("[all]\ndtoverlay=w1-gpio\ndtparam=strict_gpiod\n")  # not inside [cm5]
    assert (root / "boot/firmware/config.txt.stonewarmer-backup").read_text() == PI_CONFIG_TXT
    assert "REBOOT NEEDED for the boot config to take effect: sudo reboot" in lines
    assert sorted(p.name for p in (root / "opt/stonewarmer").iterdir()) == \
        ["venv", f"venv-{upgrade.fingerprint(source, ())}"]  # the build copy is gone

    (root / "etc/stonewarmer/stonewarmer.toml").write_text("[control]\nsetpoint_c = 50.0\n")  # the user's edit
    before = snapshot(root)
    system = FakeSystem(root)
    lines = install(root, source, system=system, configure_boot=True)
    assert snapshot(root) == before  # the user's config kept, boot config not appended twice
    assert all(line.startswith("[ok   ]") for line in lines), lines  # the second plan: every step unchanged
    assert system.commands == []  # nothing built: no venv, no pip, so no network either


def test_a_second_run_on_a_running_service_does_not_restart_it(root, source):
    system = FakeSystem(root, live=True)
    install(root, source, system=system)
    assert system.events[-1].endswith(": READY")
    system.events.clear()
    lines = install(root, source, system=system)
    assert all(line.startswith("[ok   ]") for line in lines), lines
    assert system.events == []
    assert [c[1:] for c in system.commands if Path(c[0]).name == "systemctl"][-2:] == \
        [["is-active", "stonewarmer.service"], ["is-active", "stonewarmer-web.service"]]  # asked, never told


def running_then_pulled(root: Path, source: Path) -> tuple[FakeSystem, str, str]:
    """A version installed and running on a fake systemd, then `git pull`: (system, old venv, new venv)."""
    system = FakeSystem(root, live=True)
    install(root, source, system=system)
    old = system.in_use()
    system.events.clear()
    pull(source)
    return system, old, f"venv-{upgrade.fingerprint(source, ())}"


def test_an_upgrade_is_built_beside_then_stops_switches_starts_and_waits_for_ready(root, source):
    system, old, new = running_then_pulled(root, source)
    lines = install(root, source, system=system)
    assert system.events == [f"web stop ({old})", f"stop ({old}): relay off", f"start {new}: READY",
                             f"web start {new}: READY"]
    assert_in_order("\n".join(lines), [
        f"[do   ] new virtual environment /opt/stonewarmer/{new} beside the one in use",
        "[do   ] the new version checks /etc/stonewarmer/stonewarmer.toml",
        "[do   ] stop stonewarmer-web.service",
        "[do   ] stop stonewarmer.service (its ExecStopPost drives the relay off: heater off)",
        f"[do   ] switch /opt/stonewarmer/venv to {new} (from {old})",
        "[do   ] start stonewarmer.service and wait for READY=1",
        "[do   ] start stonewarmer-web.service and wait for READY=1",
        "[do   ] stonewarmer.service is running",
        "[do   ] stonewarmer-web.service is running",
        "[do   ] remove the previous versions in /opt/stonewarmer",
    ])
    assert sorted(p.name for p in (root / "opt/stonewarmer").iterdir()) == ["venv", new]
    assert upgrade.installed(Host(root=root)).source == source


def test_an_upgrade_that_does_not_start_switches_back_and_starts_the_previous_version(root, source):
    system, old, _ = running_then_pulled(root, source)
    old_unit = (root / "etc/systemd/system/stonewarmer.service").read_bytes()
    with (source / "config/stonewarmer.service").open("a") as f:
        f.write("# a changed unit\n")
    new = f"venv-{upgrade.fingerprint(source, ())}"
    system.failing_starts.add(new)
    lines: list[str] = []
    host = Host(root=root, run=system, services=True)
    with pytest.raises(installer.InstallError, match=r"start stonewarmer.service .* failed .*undone: stop "
                                                      r"stonewarmer.service; put the previous .* back"):
        execute(install_plan(host, source, configure_boot=False), host, dry_run=False, out=lines.append)
    assert system.events == [f"web stop ({old})", f"stop ({old}): relay off", "daemon-reload",
                             f"start {new}: failed", f"stop ({new}): relay off", "daemon-reload",
                             f"start {old}: READY", f"web start {old}: READY"]
    assert system.state == "active" and system.in_use() == old
    assert (root / "etc/systemd/system/stonewarmer.service").read_bytes() == old_unit
    assert f"[undo ] switch /opt/stonewarmer/venv back to {old}" in lines
    assert (root / "opt/stonewarmer" / new / upgrade.RECORD_NAME).is_file()  # kept: a retry needs no network

    system.failing_starts.clear()  # whatever stopped it is fixed: the retry builds nothing
    system.commands.clear()
    install(root, source, system=system)
    assert system.in_use() == new and system.state == "active"
    assert not [c for c in system.commands if "venv" in c or "pip" in c]


def test_a_config_the_new_version_refuses_leaves_the_running_version_alone(root, source):
    system, old, new = running_then_pulled(root, source)
    system.refusing.add(new)
    with pytest.raises(installer.InstallError, match=r"the new version checks .*failed \(exit 1\): "
                                                      r"\[FAIL\] config refused"):
        install(root, source, system=system)
    assert system.events == [] and system.state == "active" and system.in_use() == old


def test_an_older_installers_venv_directory_is_set_aside_and_comes_back_on_failure(root, source):
    system = FakeSystem(root, live=True)
    legacy = root / "opt/stonewarmer/venv"
    (legacy / "bin").mkdir(parents=True)
    (legacy / "bin/stonewarmer").write_text("# the previous installer's venv\n")
    system.state = "active"
    new = f"venv-{upgrade.fingerprint(source, ())}"
    system.failing_starts.add(new)
    with pytest.raises(installer.InstallError, match="switch /opt/stonewarmer/venv back to the previous venv"):
        install(root, source, system=system)
    assert not legacy.is_symlink() and (legacy / "bin/stonewarmer").read_text() == "# the previous installer's venv\n"

    system.failing_starts.clear()
    install(root, source, system=system)
    assert os.readlink(legacy) == new and not (root / "opt/stonewarmer/venv.previous").exists()


def test_boot_config_falls_back_to_boot_config_txt_and_is_untouched_without_the_flag(root, source):
    (root / "boot/firmware/config.txt").unlink()
    (root / "boot/firmware").rmdir()
    (root / "boot/config.txt").write_text("dtoverlay=w1-gpio,gpiopin=4\n")
    lines = install(root, source)
    assert (root / "boot/config.txt").read_text() == "dtoverlay=w1-gpio,gpiopin=4\n"
    assert any("/boot/config.txt lacks dtparam=strict_gpiod: run again with --configure-boot" in line
               for line in lines)
    install(root, source, configure_boot=True)
    assert (root / "boot/config.txt").read_text().endswith("[all]\ndtparam=strict_gpiod\n")


def test_uninstall_removes_the_service_and_keeps_config_and_state_unless_purged(root, source):
    install(root, source)
    (root / "var/lib/stonewarmer").mkdir(parents=True, exist_ok=True)
    (root / "var/lib/stonewarmer/state.json").write_text("{}")
    host = Host(root=root, run=FakeSystem(root))
    lines: list[str] = []
    execute(uninstall_plan(host, purge=False), host, dry_run=False, out=lines.append)
    assert not (root / "etc/systemd/system/stonewarmer.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/stonewarmer.service").is_symlink()
    assert not (root / "usr/local/bin/stonewarmer").is_symlink()
    assert not (root / "opt/stonewarmer").exists()
    assert not (root / "etc/systemd/system.conf.d/zz-stonewarmer-watchdog.conf").exists()
    assert (root / "etc/stonewarmer/stonewarmer.toml").exists()
    assert (root / "var/lib/stonewarmer/state.json").exists()
    assert host.run.commands == [["systemctl", f"--root={root}", "disable", "stonewarmer-web.service"],
                                 ["systemctl", f"--root={root}", "disable", "stonewarmer.service"]]

    lines.clear()
    execute(uninstall_plan(host, purge=True), host, dry_run=False, out=lines.append)
    assert not (root / "etc/stonewarmer").exists() and not (root / "var/lib/stonewarmer").exists()
    assert "stonewarmer:" not in (root / "etc/passwd").read_text()
    lines.clear()
    execute(uninstall_plan(host, purge=True), host, dry_run=False, out=lines.append)
    assert all(line.startswith("[ok   ]") for line in lines)  # nothing left to do


def test_a_failing_command_stops_the_install_with_its_message(root, source):
    def failing(argv):
        return subprocess.CompletedProcess(argv, 9, "", "useradd: cannot lock /etc/passwd; try again later.")

    host = Host(root=root, run=failing)
    with pytest.raises(installer.InstallError, match=r"useradd .* failed \(exit 9\): useradd: cannot lock"):
        execute(install_plan(host, source, configure_boot=False), host, dry_run=False, out=lambda _: None)
    assert not (root / "etc/systemd/system/stonewarmer.service").exists()  # stopped at the first failure


def test_install_without_root_rights_says_to_use_sudo(root, source, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["install", "--root", str(root), "--source", str(source)]) == 2
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
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[would] service unit /etc/systemd/system/stonewarmer.service" in result.stdout


def test_the_checkout_is_found_from_the_working_directory_else_where_the_last_install_came_from(source, tmp_path):
    site_packages = tmp_path / "venv/lib/python3.11/site-packages"  # where an installed command runs from
    site_packages.mkdir(parents=True)
    found = upgrade.find_checkout(given=None, cwd=source / "controller", running_from=site_packages, remembered=None)
    assert found == (source, "the working directory")
    found = upgrade.find_checkout(given=None, cwd=tmp_path, running_from=site_packages, remembered=source)
    assert found == (source, "the checkout of the last install")
    with pytest.raises(installer.InstallError, match=r"cannot find the stonewarmer checkout to install: run this "
                                                      r"inside it \(cd stonewarmer\), or pass --source DIR"):
        upgrade.find_checkout(given=None, cwd=tmp_path, running_from=site_packages, remembered=None)


def test_git_pull_then_sudo_stonewarmer_install_from_the_checkout_finds_it(root, source, monkeypatch, capsys):
    install(root, source)
    pull(source)
    monkeypatch.chdir(source)
    assert main(["install", "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"checkout {source} (the working directory)" in out
    assert f"[would] switch /opt/stonewarmer/venv to venv-{upgrade.fingerprint(source, ())}" in out


def test_extras_go_into_the_service_venv_and_stay_on_upgrade(root, source, capsys):
    install(root, source, extras=("mqtt",))
    assert upgrade.installed(Host(root=root)).extras == ("mqtt",)
    pull(source)
    assert main(["install", "--dry-run", "--root", str(root), "--source", str(source)]) == 0
    pip = next(line for line in capsys.readouterr().out.splitlines() if "-m pip install" in line)
    assert pip.endswith("[mqtt]")  # the upgrade keeps what --with installed
    assert main(["install", "--dry-run", "--root", str(root), "--source", str(source), "--with", "bogus"]) == 2
    assert "--with bogus: unknown extra bogus; allowed: bench, dev, mqtt, notify, plot, test" in capsys.readouterr().err


def test_no_pip_install_advice_for_the_mqtt_extra_anywhere():
    # stonewarmer is not on PyPI, and Raspberry Pi OS refuses a system-wide pip install (PEP 668).
    files = [*REPO.glob("*.md"), *(REPO / "docs").glob("*.md"), *(REPO / "controller").rglob("*.py"),
             *(REPO / "web").rglob("*.py")]
    assert [p for p in files if re.search(r"pip install ['\"]?stonewarmer\[mqtt", p.read_text())] == []


@pytest.mark.slow
def test_the_build_happens_in_a_copy_so_the_checkout_gets_no_build_directory(root, source):
    """A real setuptools build of what the installer hands to pip."""
    class Building(FakeSystem):
        def __call__(self, argv):
            if argv[1:4] == ["-m", "pip", "install"]:
                built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                                        "-w", str(root / "wheels"), argv[-1]],
                                       capture_output=True, text=True, timeout=120)
                assert built.returncode == 0, built.stderr
            return super().__call__(argv)

    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    install(root, source, system=Building(root))
    assert len(list((root / "wheels").glob("stonewarmer-*.whl"))) == 1
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before  # no build/, no egg-info
    assert not list((root / "opt/stonewarmer").glob(".build-*"))


def test_constraints_pin_every_service_dependency_inside_the_ranges_of_pyproject():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / upgrade.CONSTRAINTS).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    for spec in (project["dependencies"] + project["optional-dependencies"]["mqtt"]
                 + project["optional-dependencies"]["notify"]):
        requirement = Requirement(spec)
        name = requirement.name.lower()
        assert name in pins, f"{name} is not pinned in {upgrade.CONSTRAINTS}"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {spec}"
        assert any(s.operator in ("<", "<=", "~=", "==") for s in requirement.specifier), f"{spec}: no upper bound"


def test_the_hardware_watchdog_drop_in_sorts_after_raspberry_pi_oss_own(root, source):
    install(root, source)
    dropin = root / "etc/systemd/system.conf.d/zz-stonewarmer-watchdog.conf"
    assert "[Manager]\nRuntimeWatchdogSec=15s\n" in dropin.read_text()
    assert dropin.name > "99-anything.conf" and dropin.name > "raspberrypi-watchdog.conf"


def test_hostname_names_this_pi_and_a_shared_name_is_refused_or_pointed_out(root, source, capsys):
    system = FakeSystem(root, live=True)
    install(root, source, system=system, hostname="stonewarmer-room2")
    assert (root / "etc/hostname").read_text() == "stonewarmer-room2\n"
    assert (root / "etc/hosts").read_text() == "127.0.0.1\tlocalhost\n127.0.1.1\tstonewarmer-room2\n"
    assert "hostname stonewarmer-room2" in system.events
    for bad, why in (("Room 2", "use 1-63 lowercase letters"), ("stonewarmer", "every Pi set up by the guide")):
        assert main(["install", "--dry-run", "--root", str(root), "--source", str(source), "--hostname", bad]) == 2
        assert why in capsys.readouterr().err
    (root / "etc/hostname").write_text("raspberrypi\n")
    lines = install(root, source)
    assert any("like every other Pi set up the same way" in line and "--hostname stonewarmer-<room>" in line
               for line in lines)


def test_a_new_python_or_other_extras_make_a_new_version_and_tests_or_docs_do_not(source):
    base = upgrade.fingerprint(source, (), python=(3, 11))
    assert upgrade.fingerprint(source, (), python=(3, 13)) != base  # Bookworm -> Trixie: the old venv cannot run
    assert upgrade.fingerprint(source, ("mqtt",), python=(3, 11)) != base
    (source / "docs").mkdir()
    (source / "docs" / "notes.md").write_text("not part of the package\n")
    (source / "controller" / "__pycache__").mkdir(exist_ok=True)
    (source / "controller" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert upgrade.fingerprint(source, (), python=(3, 11)) == base
