"""The stonewarmer command: user mistakes are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import subprocess
import sys

import pytest

from controller.cli import main as cli
from controller.cli.options import dumps_json, load_config, state_dir
from controller.sim.fake_w1 import FakeW1Tree
from controller.sim.simpins import read_pin_file
from tests.helpers import REPO


def run_cli(*args, env=None):
    """The real console entry point in a subprocess: exit code, stdout, stderr."""
    full_env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "controller", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_bad_config_is_one_line_and_exit_2_and_touches_no_gpio(tmp_path, pins):
    bad = tmp_path / "bad.toml"
    bad.write_text("[control]\nmax_setpoint_c = 60.0\n")
    assert cli.main(["run", "--config", str(bad)]) == 2
    assert pins.pins == {}          # no pin was claimed
    code, out, err = run_cli("run", "--config", str(bad))
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "max_setpoint_c = 60.0 is not allowed" in err


def test_simulate_refuses_a_setpoint_above_the_maximum(capsys):
    assert cli.main(["simulate", "--duration", "60", "--setpoint", "58"]) == 2
    err = capsys.readouterr().err
    assert "--setpoint 58 is not allowed" in err and "54" in err


@pytest.mark.parametrize("args", [
    ["simulate", "--duration", "forever"],
    ["simulate", "--inject", "meteor@10"],
    ["simulate", "--inject", "crc@soon"],
    ["simulate", "--plant", "nosuchmodule:Bath"],
    ["simulate", "--plant", "nocolon"],
    ["simulate", "--at", "soon:ack"],
    ["simulate", "--at", "600:sleep"],
    ["simulate", "--at", "600:off=1"],
    ["simulate", "--at", "600:setpoint=70"],
    ["simulate", "--ready-at", "soon"],
    ["simulate", "--duration", "1h", "--ready-at", "2h"],
    ["simulate", "--inject", "stuck@600"],
    ["bench", "--fleet", "0"],
    ["bench", "--fleet", "3", "--quick"],
])
def test_bad_simulate_arguments_are_refused(args, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"stonewarmer {args[0]}: ") and err.count("\n") == 1


def test_simulate_at_acknowledges_and_sets_the_setpoint_at_the_given_times(capsys):
    # The probe in the air trips the heater at 300 s; acknowledging it while it is still out is
    # refused or trips again; a setpoint change at 20 min goes through.
    assert cli.main(["simulate", "--duration", "30m", "--inject", "lifted@300", "--at", "600:ack",
                     "--at", "20m:setpoint=45", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(a["t_s"], a["action"]) for a in out["actions"]] == [(600.0, "ack"), (1200.0, "setpoint")]
    assert out["actions"][1]["outcome"] == "setpoint 45 degC"
    assert out["faults"] and out["peak_water_c"] < 52.0 + 1.5


def test_simulate_at_off_holds_the_relay_open_until_on(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    assert cli.main(["simulate", "--duration", "2h", "--at", "3600:off", "--at", "5400:on", "--json",
                     "--trace", str(trace)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(a["t_s"], a["outcome"]) for a in out["actions"]] == [(3600.0, "switched off"), (5400.0, "switched on")]
    rows = list(csv.DictReader(trace.open()))
    off = [r for r in rows if 3600 <= float(r["t_s"]) < 5400]
    assert off and {r["mode"] for r in off} == {"off"}
    assert {r["relay"] for r in off} == {"0"}
    assert any(r["relay"] == "1" for r in rows if float(r["t_s"]) < 3600)
    assert any(r["relay"] == "1" for r in rows if float(r["t_s"]) >= 5400)


def test_simulate_ready_at_starts_switched_off_and_the_schedule_switches_it_on_with_the_state_dir_kept(
        tmp_path, capsys):
    state = tmp_path / "state"
    assert cli.main(["simulate", "--plant", "small", "--duration", "1h", "--state-dir", str(state)]) == 0
    assert json.loads((state / "state.json").read_text())["bath"]["warmups"] == 1
    capsys.readouterr()
    trace = tmp_path / "trace.csv"
    assert cli.main(["simulate", "--plant", "small", "--duration", "9000", "--ready-at", "9000", "--json",
                     "--state-dir", str(state), "--trace", str(trace)]) == 0
    started = [a for a in json.loads(capsys.readouterr().out)["actions"] if a["action"] == "auto-on"]
    assert len(started) == 1 and "ready by" in started[0]["outcome"]
    rows = list(csv.DictReader(trace.open()))
    assert {r["relay"] for r in rows if float(r["t_s"]) < started[0]["t_s"]} == {"0"}
    assert {r["mode"] for r in rows if float(r["t_s"]) < started[0]["t_s"]} == {"off"}
    assert any(r["relay"] == "1" for r in rows if float(r["t_s"]) >= started[0]["t_s"])


def test_simulate_json_summary_and_trace(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    assert cli.main(["simulate", "--duration", "30m", "--json", "--trace", str(trace)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("warmup_s", "overshoot_c", "hold_max_c", "switch_ons_per_hour", "faults", "full_power_s"):
        assert key in summary
    rows = list(csv.reader(trace.open()))
    assert rows[0] == ["t_s", "probe_c", "setpoint_c", "duty", "relay", "mode", "fault"]
    assert len(rows) == 1 + 1800
    assert rows[-1][0] == "1800"


def test_simulate_with_an_injected_fault_reports_it(capsys):
    assert cli.main(["simulate", "--duration", "15m", "--inject", "unplug@300", "--json"]) == 0
    faults = json.loads(capsys.readouterr().out)["faults"]
    assert faults[0]["fault"] == "sensor" and 300 < faults[0]["t_s"] <= 304


class OwnBath:
    """A user's plant: heats 0.05 degC/s when on, cools 0.01 degC/s when off."""

    def __init__(self):
        self.t = 20.0

    def advance(self, dt_s, heater_on):
        self.t += dt_s * (0.05 if heater_on else -0.01)

    def probe_c(self):
        return self.t


def test_simulate_loads_a_users_plant(capsys):
    assert cli.main(["simulate", "--duration", "20m", "--plant", "tests.cli.test_cli:OwnBath", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["warmup_s"] is not None and summary["faults"] == []


def test_relay_off_drives_a_pin_left_on_to_off(pins, clock):
    pin = pins.pin(17)
    pin.function = "output"
    pin.state = True                      # what a SIGKILLed controller leaves behind
    clock.advance(5.0)
    assert cli.main(["relay-off"]) == 0
    assert [level for _, level in pin.changes] == [False, True, False]
    assert pin.changes[-1][0] == clock.monotonic() and pin.state is False


def test_relay_off_still_finds_the_pin_in_an_otherwise_broken_config(tmp_path, pins, capsys):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[relay]\npin = 22\nactive_high = false\n[control]\nsetpoint_c = 99\n")
    assert cli.main(["relay-off", "--config", str(cfg)]) == 0
    assert pins.pin(22).state is True   # active low: off is high
    assert "warning" in capsys.readouterr().err


def test_relay_off_simulate_writes_the_simulated_pin(tmp_path):
    code, out, _ = run_cli("relay-off", "--simulate", "--state-dir", str(tmp_path))
    assert code == 0
    assert read_pin_file(tmp_path / "sim-gpio", "GPIO17") is False


def test_check_lists_probes_with_readings_and_warns_about_risky_pins(tmp_path, capsys):
    FakeW1Tree(tmp_path / "w1").write("0000075a1f2b", 51.5)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[probe]\nw1_dir = "{tmp_path / "w1"}"\n[relay]\npin = 5\n')
    cli.main(["check", "--config", str(cfg)])   # exit 1 here: no overlay, no password (not a Pi)
    out = capsys.readouterr().out
    assert "28-0000075a1f2b" in out and "51.50 degC" in out and "12-bit" in out
    assert "GPIO5 is pulled up while the Pi boots" in out


@pytest.mark.parametrize("name", cli.USER_ERRORS)
def test_every_declared_domain_error_is_one_line_and_exit_2(name, monkeypatch, capsys):
    module_name, _, class_name = name.partition(":")
    error = getattr(importlib.import_module(module_name), class_name)

    def handler(args):
        raise error("what was wrong; what is allowed")

    monkeypatch.setattr("controller.cli.run.cmd_simulate", handler)
    assert cli.main(["simulate"]) == 2
    assert capsys.readouterr().err == "stonewarmer simulate: what was wrong; what is allowed\n"


def test_an_undeclared_exception_is_a_bug_and_is_not_hidden(monkeypatch):
    def handler(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("controller.cli.run.cmd_simulate", handler)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["simulate"])


def test_a_relative_state_dir_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=None, state_dir="here/state")
    assert state_dir(args) == tmp_path / "here" / "state"
    assert load_config(args, simulate=True).state.dir == str(tmp_path / "here" / "state")


def test_a_command_given_a_relative_state_dir_writes_under_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["token", "--state-dir", "rel", "--name", "script"]) == 0
    assert (tmp_path / "rel" / "web" / "web-auth.json").is_file()  # the web process's own directory


def test_non_finite_numbers_become_null_in_json_output():
    assert json.loads(dumps_json({"a": math.nan, "b": [math.inf, 1.5], "c": (-math.inf,)})) == \
        {"a": None, "b": [None, 1.5], "c": [None]}
