"""``stonewarmer check`` on a fake Raspberry Pi: each problem found, each with what to do.

The fake Pi is a temporary root (boot config, kernel module parameters), a fake
1-Wire tree read through the real w1thermsensor, a state dir, and recorded
answers from timedatectl/systemctl.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.service import doctor, host_checks, installer, system_view
from controller.service.doctor import System, diagnose
from controller.sim.fake_w1 import FakeW1Tree, crc8
from web import web_state_dir
from web.credentials import HOW_TO_SET, CredentialStore

PROBE_ID = "0000075a1f2b"
GOOD_BOOT = "dtparam=audio=on\n[all]\ndtoverlay=w1-gpio\ndtparam=strict_gpiod\n"


class Answers:
    """timedatectl / systemctl as a healthy Pi answers; change the dict to break things."""

    def __init__(self) -> None:
        self.by_command = {
            "timedatectl": (0, "yes\n"),
            "is-enabled": (0, "enabled\n"),
            "show": (0, "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n"
                        "StatusText=52.0 degC, ready, setpoint 52.0 degC, heater off\n"),
            "watchdog": (0, "15s\n"),
            "avahi": (0, 's "stonewarmer-room1"\n'),
        }

    def __call__(self, argv):
        if argv[0] == "busctl":
            key = "avahi"
        elif "--property=RuntimeWatchdogUSec" in argv:
            key = "watchdog"
        else:
            key = "timedatectl" if argv[0] == "timedatectl" else next(a for a in argv if a in ("is-enabled", "show"))
        code, out = self.by_command[key]
        return subprocess.CompletedProcess(argv, code, out, "")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def pi(tmp_path):
    """A healthy fake Pi: returns (system, config path, paths)."""
    root = tmp_path / "root"
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(GOOD_BOOT)
    write(root / "sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs", "N\n")  # strict_gpiod in effect
    write(root / installer.WATCHDOG_DROPIN.relative_to("/"), installer.WATCHDOG_CONF)
    write(root / "etc/hostname", "stonewarmer-room1\n")
    w1 = tmp_path / "w1"
    FakeW1Tree(w1, atomic=False).write(PROBE_ID, 51.8125)
    (w1 / "w1_bus_master1").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    CredentialStore(web_state_dir(state)).set_password("correct horse battery")
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[probe]\nw1_dir = "{w1}"\n[state]\ndir = "{state}"\n')
    system = System(root=root, run=Answers(), clock_state=lambda: 0, import_lgpio=lambda: None)
    return system, config, {"root": root, "w1": w1, "state": state, "config": config}


def findings(system, config) -> dict[str, list[doctor.Finding]]:
    return dict(diagnose(system, config))


def problems(system, config) -> list[doctor.Finding]:
    return [f for fs in findings(system, config).values() for f in fs if f.level != "ok"]


def test_a_healthy_pi_passes_every_check(pi):
    system, config, _ = pi
    found = findings(system, config)
    assert problems(system, config) == []
    assert [f.what for f in found["Probes"]] == [f"probe 28-{PROBE_ID} (main): 51.81 degC, 12-bit"]
    assert found["Service"][0].what == "stonewarmer.service enabled"


def test_the_cli_prints_each_problem_with_what_to_do_and_exits_1(pi, capsys):
    _, config, paths = pi
    (web_state_dir(paths["state"]) / "web-auth.json").unlink()
    status = main(["check", "--root", str(paths["root"]), "--config", str(config)])
    out = capsys.readouterr().out
    assert status == 1
    assert "[FAIL] no dashboard password set" in out
    assert "sudo stonewarmer set-password" in out


def test_dashboard_files_left_in_the_one_process_layout_say_to_run_the_install(pi):
    system, config, paths = pi
    web_dir = web_state_dir(paths["state"])
    (web_dir / "web-auth.json").rename(paths["state"] / "web-auth.json")  # an upgrade that did not move it
    found = findings(system, config)["Dashboard"]
    assert [f.level for f in found] == ["error"]
    assert f"still in {paths['state']} (web-auth.json)" in found[0].what
    assert "run `sudo stonewarmer install`" in found[0].what


def test_missing_boot_config_lines_say_how_to_add_them(pi):
    system, config, paths = pi
    (paths["root"] / "boot/firmware/config.txt").write_text("dtparam=audio=on\n#dtoverlay=w1-gpio\n")
    found = problems(system, config)
    overlay = next(f for f in found if "lacks dtoverlay=w1-gpio" in f.what)
    strict = next(f for f in found if "lacks dtparam=strict_gpiod" in f.what)
    assert overlay.level == strict.level == "error"
    assert overlay.todo == strict.todo == "sudo stonewarmer install --configure-boot, then sudo reboot"


def test_the_older_boot_config_location_is_read(pi):
    system, config, paths = pi
    (paths["root"] / "boot/firmware/config.txt").unlink()
    (paths["root"] / "boot/config.txt").write_text(GOOD_BOOT)
    assert problems(system, config) == []


def test_a_kernel_still_keeping_outputs_driven_asks_for_a_reboot(pi):
    system, config, paths = pi
    write(paths["root"] / "sys/module/pinctrl_rp1/parameters/persist_gpio_outputs", "Y\n")
    (finding,) = problems(system, config)
    assert "keeps released GPIO outputs driven" in finding.what and "reboot" in finding.todo


def test_an_inactive_one_wire_bus_and_no_probe_are_errors(pi):
    system, config, paths = pi
    (paths["w1"] / "w1_bus_master1").rmdir()
    (paths["w1"] / f"28-{PROBE_ID}" / "w1_slave").unlink()
    (paths["w1"] / f"28-{PROBE_ID}").rmdir()
    found = findings(system, config)
    assert found["1-Wire"][1].what.startswith("no 1-Wire bus master")
    assert found["Probes"][0].what.startswith("no DS18B20 probe found")
    assert "4.7 kOhm pull-up" in found["Probes"][0].todo


def test_a_probe_with_crc_errors_is_named(pi):
    system, config, paths = pi
    FakeW1Tree(paths["w1"], atomic=False).write_text(PROBE_ID, "72 01 4b 46 7f ff 0e 10 00 : crc=00 NO\n"
                                                               "72 01 4b 46 7f ff 0e 10 00 t=23125\n")
    (finding,) = problems(system, config)
    assert finding.what == f"probe 28-{PROBE_ID} (main): crc" and "cable" in finding.todo


def test_a_9_bit_probe_is_too_coarse(pi):
    system, config, paths = pi
    body = bytes([0x40, 0x03, 0x4B, 0x46, 0x1F, 0xFF, 0x0C, 0x10])  # config 0x1F: 9-bit, 52.0 degC
    pad = " ".join(f"{b:02x}" for b in body + bytes([crc8(body)]))
    FakeW1Tree(paths["w1"], atomic=False).write_text(PROBE_ID, f"{pad} : crc={crc8(body):02x} YES\n{pad} t=52000\n")
    (finding,) = problems(system, config)
    assert finding.what.endswith("9-bit (0.5 degC steps)")
    device = f"{paths['w1']}/28-{PROBE_ID}"
    # the resolution register alone is back to 9 bit after a power cut: it must be saved to the EEPROM too
    assert finding.todo.endswith(f"echo 12 | sudo tee {device}/resolution && echo save | sudo tee {device}/eeprom_cmd")


@pytest.mark.parametrize("relay, boot, expected", [
    ("pin = 5", GOOD_BOOT, "GPIO5 is pulled up while the Pi boots"),
    ("active_high = false", GOOD_BOOT, "active-low relay module"),
    ("pin = 22", GOOD_BOOT.replace("w1-gpio", "w1-gpio,gpiopin=22"), "the relay is on GPIO22, the 1-Wire bus pin"),
])
def test_risky_relay_wiring_is_explained(pi, relay, boot, expected):
    system, config, paths = pi
    config.write_text(config.read_text() + f"[relay]\n{relay}\n")
    (paths["root"] / "boot/firmware/config.txt").write_text(boot)
    found = problems(system, config)
    assert found[0].what.startswith(expected) and found[0].todo
    assert len(found) == (2 if "active_high" in relay else 1)  # active-low: also the strict_gpiod warning below


def test_an_active_low_module_with_strict_gpiod_is_warned_that_a_released_pin_turns_it_on(pi):
    system, config, paths = pi
    config.write_text(config.read_text() + "[relay]\nactive_high = false\n")
    warning = next(f for f in problems(system, config) if "strict_gpiod" in f.what)
    assert "the Pi pulls down, which is this module's ON level" in warning.what and "active-high" in warning.todo
    (paths["root"] / "boot/firmware/config.txt").write_text(GOOD_BOOT.replace("dtparam=strict_gpiod\n", ""))
    assert not [f for f in findings(system, config)["Relay"] if "pulls down" in f.what]


def test_a_kernel_without_persist_gpio_outputs_is_a_warning(pi):
    system, config, paths = pi
    (paths["root"] / "sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs").unlink()
    (finding,) = problems(system, config)
    assert finding.what.startswith("the running kernel has no persist_gpio_outputs parameter")
    assert "full-upgrade" in finding.todo


def test_a_missing_lgpio_is_an_error_the_service_cannot_run_without(pi):
    system, config, _ = pi

    def missing():
        raise ImportError("ModuleNotFoundError: No module named 'lgpio'")

    system.import_lgpio = missing
    (finding,) = problems(system, config)
    assert finding.level == "error" and "cannot drive the relay" in finding.what
    assert finding.todo.startswith("sudo apt install python3-lgpio")


def test_lgpio_is_imported_in_a_temporary_directory_not_the_callers(tmp_path, monkeypatch):
    # A stand-in lgpio that does what the real one does on import: a FIFO in $LG_WD, else the working directory.
    fake = tmp_path / "fake"
    write(fake / "lgpio.py", "import os\nos.mkfifo(os.path.join(os.environ.get('LG_WD', '.'), '.lgd-nfy0'))\n")
    here = tmp_path / "here"
    here.mkdir()
    here.chmod(0o555)  # a read-only working directory (as root, still writable: the FIFO would land here)
    monkeypatch.setenv("PYTHONPATH", str(fake))
    monkeypatch.chdir(here)
    system_view.import_lgpio()
    assert list(here.iterdir()) == []
    write(fake / "lgpio.py", "raise OSError('cannot create the notification FIFO')\n")
    with pytest.raises(ImportError, match="OSError: cannot create the notification FIFO"):
        system_view.import_lgpio()


def test_a_state_dir_outside_the_state_directory_is_read_only_for_the_service(pi):
    system, config, paths = pi
    unit = write(paths["root"] / "etc/systemd/system/stonewarmer.service", "[Service]\nProtectSystem=strict\n")
    (finding,) = problems(system, config)
    assert finding.level == "error" and "outside the service's StateDirectory /var/lib/stonewarmer" in finding.what
    assert f"ReadWritePaths={paths['state']}" in finding.todo
    write(unit.with_name("stonewarmer.service.d") / "override.conf", f"[Service]\nReadWritePaths={paths['state']}\n")
    assert problems(system, config) == []


def test_the_mqtt_extra_missing_from_the_venv_is_an_error_of_the_config(pi, monkeypatch, capsys):
    _, config, _ = pi
    config.write_text(config.read_text() + '[mqtt]\nenabled = true\nhost = "broker.lan"\n')
    real = doctor.importlib.util.find_spec
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None if name == "paho" else real(name))
    assert main(["check", "--config-only", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] [mqtt] is enabled but paho-mqtt is not installed" in out
    assert "sudo stonewarmer install --with mqtt" in out


def test_check_config_only_passes_a_good_config_and_refuses_a_bad_one(pi, capsys):
    _, config, _ = pi
    assert main(["check", "--config-only", "--config", str(config)]) == 0
    config.write_text(config.read_text() + "[control]\nsetpoint_c = 90.0\n")
    assert main(["check", "--config-only", "--config", str(config)]) == 1
    assert "[FAIL] config refused" in capsys.readouterr().out


def test_the_hardware_watchdog_is_read_as_systemd_reads_it(pi):
    system, config, paths = pi
    root = paths["root"]
    (root / installer.WATCHDOG_DROPIN.relative_to("/")).unlink()
    write(root / "etc/systemd/system.conf", "[Manager]\nRuntimeWatchdogSec=15\n")
    # a drop-in overrides system.conf: this is how Raspberry Pi OS's own setting wins over a local edit
    write(root / "usr/lib/systemd/system.conf.d/40-rpi-watchdog.conf", "[Manager]\nRuntimeWatchdogSec=off\n")
    (finding,) = problems(system, config)
    assert finding.what.startswith("the hardware watchdog is off (/usr/lib/systemd/system.conf.d/40-rpi-watchdog")
    assert installer.WATCHDOG_DROPIN.name in finding.todo
    write(root / installer.WATCHDOG_DROPIN.relative_to("/"), installer.WATCHDOG_CONF)
    assert problems(system, config) == []
    assert f"RuntimeWatchdogSec=15s ({installer.WATCHDOG_DROPIN})" in findings(system, config)["Service"][-1].what


def test_a_watchdog_configured_but_not_in_effect_asks_for_daemon_reexec(pi):
    system, config, _ = pi
    answers = Answers()
    answers.by_command["watchdog"] = (0, "0\n")
    live = System(root=system.root, run=answers, live=True, systemd_running=lambda: True)
    (finding,) = [f for f in host_checks.watchdog_findings(live) if f.level != "ok"]
    assert "but systemd runs with 0" in finding.what and finding.todo.startswith("sudo systemctl daemon-reexec")
    answers.by_command["watchdog"] = (0, "15s\n")
    assert host_checks.watchdog_findings(live)[0].level == "ok"


def test_a_name_every_pi_shares_and_a_name_avahi_had_to_change_are_pointed_out(pi):
    system, config, paths = pi
    write(paths["root"] / "etc/hostname", "raspberrypi\n")
    (finding,) = problems(system, config)
    assert finding.what.startswith("host name raspberrypi") and "--hostname stonewarmer-<room>" in finding.todo
    write(paths["root"] / "etc/hostname", "stonewarmer-room1\n")
    answers = Answers()
    live = System(root=system.root, run=answers, live=True)
    answers.by_command["avahi"] = (0, 's "stonewarmer-room1-2"\n')  # another warmer answers stonewarmer-room1.local
    (finding,) = [f for f in host_checks.network_name_findings(live) if f.level != "ok"]
    assert "avahi announces this Pi as stonewarmer-room1-2.local" in finding.what
    answers.by_command["avahi"] = (0, 's "stonewarmer-room1"\n')
    assert [f.level for f in host_checks.network_name_findings(live)] == ["ok", "ok"]


def test_an_unsynchronised_clock_is_a_warning_with_what_to_do(pi):
    system, config, _ = pi
    system.run.by_command["timedatectl"] = (0, "no\n")
    (finding,) = problems(system, config)
    assert finding.level == "warn" and "NTP" in finding.todo


def test_a_clock_synchronised_by_another_ntp_service_is_a_warning_the_sandboxed_schedule_cannot_see_it(pi):
    system, _, paths = pi
    answers = Answers()
    answers.by_command["timedatectl"] = (0, "yes\n")  # chrony keeps the clock right ...
    live = System(root=paths["root"], run=answers, clock_state=lambda: 0, live=True)
    (finding,) = host_checks.clock_findings(live)  # ... but timesyncd's flag is not there
    assert finding.level == "warn" and "not by systemd-timesyncd" in finding.what
    assert finding.todo.startswith("use systemd-timesyncd for NTP: sudo apt install systemd-timesyncd")
    write(paths["root"] / host_checks.TIMESYNC_FLAG.relative_to("/"), "")
    assert host_checks.clock_findings(live) == [doctor.Finding("ok", "clock synchronised (NTP)")]


def test_without_timedatectl_the_kernel_clock_state_is_asked(tmp_path):
    write(tmp_path / host_checks.TIMESYNC_FLAG.relative_to("/"), "")
    unsynced = System(root=tmp_path, run=lambda argv: None, clock_state=lambda: host_checks.TIME_ERROR, live=True)
    synced = System(root=tmp_path, run=lambda argv: None, clock_state=lambda: 0, live=True)
    assert doctor.clock_findings(unsynced)[0].what.startswith("clock not synchronised")
    assert doctor.clock_findings(synced)[0].level == "ok"


def test_a_corrupt_state_file_and_a_missing_state_dir_are_reported(pi, tmp_path):
    system, config, paths = pi
    (paths["state"] / "state.json").write_text("{oops")
    (finding,) = problems(system, config)
    assert "corrupt" in finding.what and "heater stays off until the fault is acknowledged" in finding.todo
    config.write_text(config.read_text().replace(str(paths["state"]), str(tmp_path / "nowhere")))
    found = findings(system, config)
    assert found["State"][0].what.endswith("does not exist yet") and "StateDirectory=" in found["State"][0].todo


def test_a_damaged_credentials_file_is_an_error(pi):
    system, config, paths = pi
    (web_state_dir(paths["state"]) / "web-auth.json").write_text("{not json")
    (finding,) = problems(system, config)
    assert "web-auth.json" in finding.what and finding.todo == HOW_TO_SET


def _live(answers) -> System:
    return System(root=Path("/"), run=answers, systemd_running=lambda: True)


@pytest.mark.parametrize("enabled, show, level, what, todo", [
    ((1, "not-found\n"), None, "error", "stonewarmer.service is not installed", "sudo stonewarmer install"),
    ((1, "disabled\n"), (0, "ActiveState=inactive\nResult=success\n"), "error",
     "stonewarmer.service is disabled: it will not start at boot", "sudo systemctl enable --now stonewarmer.service"),
    ((0, "enabled\n"), (0, "ActiveState=failed\nResult=watchdog\nNRestarts=0\n"), "error",
     "stonewarmer.service is failed (result: watchdog)", "journalctl -u stonewarmer.service -b"),
    ((0, "enabled\n"), (0, "ActiveState=activating\nStatusText=starting: heater off, waiting for a valid "
                           "reading (probe: missing)\n"), "warn",
     "stonewarmer.service starting: starting: heater off, waiting", "valid reading"),
    ((0, "enabled\n"), (0, "ActiveState=active\nNRestarts=3\nStatusText=x\n"), "warn",
     "stonewarmer.service restarted 3 times", "watchdog abort prints every thread's stack"),
])
def test_service_state_is_read_from_systemd(enabled, show, level, what, todo):
    answers = Answers()
    answers.by_command["is-enabled"] = enabled
    if show:
        answers.by_command["show"] = show
    found = [f for f in doctor.service_findings(_live(answers)) if f.level != "ok"]
    assert [f.level for f in found][-1] == level
    assert any(f.what.startswith(what) and todo in f.todo for f in found), found


def test_check_looks_at_both_units_and_names_the_one_that_is_down():
    answers = Answers()

    def per_unit(argv):
        if "is-enabled" in argv and argv[-1] == "stonewarmer-web.service":
            return subprocess.CompletedProcess(argv, 1, "disabled\n", "")
        return answers(argv)

    found = doctor.service_findings(_live(per_unit))
    assert [f.what for f in found if f.level == "ok"][0].startswith("stonewarmer.service running")
    (web,) = [f for f in found if f.level == "error"]
    assert web.what == "stonewarmer-web.service is disabled: it will not start at boot"
    assert web.todo == "sudo systemctl enable --now stonewarmer-web.service"
