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
from controller.service import doctor
from controller.service.doctor import System, diagnose
from controller.sim.fake_w1 import FakeW1Tree, crc8
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
        }

    def __call__(self, argv):
        key = "timedatectl" if argv[0] == "timedatectl" else next(a for a in argv if a in ("is-enabled", "show"))
        code, out = self.by_command[key]
        return subprocess.CompletedProcess(argv, code, out, "")


@pytest.fixture
def pi(tmp_path):
    """A healthy fake Pi: returns (system, config path, paths)."""
    root = tmp_path / "root"
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(GOOD_BOOT)
    w1 = tmp_path / "w1"
    FakeW1Tree(w1, atomic=False).write(PROBE_ID, 51.8125)
    (w1 / "w1_bus_master1").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    CredentialStore(state).set_password("correct horse battery")
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
    (paths["state"] / "web-auth.json").unlink()
    status = main(["check", "--root", str(paths["root"]), "--config", str(config)])
    out = capsys.readouterr().out
    assert status == 1
    assert "[FAIL] no dashboard password set" in out
    assert "sudo stonewarmer set-password" in out


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
    param = paths["root"] / "sys/module/pinctrl_rp1/parameters/persist_gpio_outputs"
    param.parent.mkdir(parents=True)
    param.write_text("Y\n")
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
    assert finding.todo == f"set 12-bit: echo 12 | sudo tee {paths['w1']}/28-{PROBE_ID}/resolution"


@pytest.mark.parametrize("relay, boot, expected", [
    ("pin = 5", GOOD_BOOT, "GPIO5 is pulled up while the Pi boots"),
    ("active_high = false", GOOD_BOOT, "active-low relay module"),
    ("pin = 22", GOOD_BOOT.replace("w1-gpio", "w1-gpio,gpiopin=22"), "the relay is on GPIO22, the 1-Wire bus pin"),
])
def test_risky_relay_wiring_is_explained(pi, relay, boot, expected):
    system, config, paths = pi
    config.write_text(config.read_text() + f"[relay]\n{relay}\n")
    (paths["root"] / "boot/firmware/config.txt").write_text(boot)
    (finding,) = problems(system, config)
    assert finding.what.startswith(expected) and finding.todo


def test_an_unsynchronised_clock_is_a_warning_with_what_to_do(pi):
    system, config, _ = pi
    system.run.by_command["timedatectl"] = (0, "no\n")
    (finding,) = problems(system, config)
    assert finding.level == "warn" and "NTP" in finding.todo


def test_without_timedatectl_the_kernel_clock_state_is_asked():
    unsynced = System(root=Path("/"), run=lambda argv: None, clock_state=lambda: doctor.TIME_ERROR)
    synced = System(root=Path("/"), run=lambda argv: None, clock_state=lambda: 0)
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
    (paths["state"] / "web-auth.json").write_text("{not json")
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
