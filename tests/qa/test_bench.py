"""The benchmark: its quick form's JSON, the baselines it compares with, its figures and plot."""

from __future__ import annotations

import json
import math
import sys

import pytest

from controller.cli.main import main
from controller.core import config as cfgmod
from controller.core.pid import Gains
from controller.qa import bench, bench_plot, scenarios, software
from controller.qa.baselines import BangBang, TextbookPID
from controller.sim.simulation import TraceRow

RUN_FIELDS = {"plant", "scenario", "controller", "gains", "full_power_s", "warmup_s", "warmup_ratio",
              "overshoot_c", "hold_max_c", "hold_rms_c", "switch_ons_per_hour", "energy_kwh", "peak_probe_c",
              "guard_s", "faults", "events", "duration_s", "wall_s", "trace"}
EVENT_FIELDS = {"at_s", "event", "kind", "back_in_band_s", "settled_s", "peak_above_c", "dip_below_c"}
SOFTWARE_FIELDS = {"tick_median_us", "tick_p99_us", "tick_samples", "sim_seconds", "sim_wall_s",
                   "sim_seconds_per_wall_second", "run_peak_rss_mb", "run_sample_s", "run_error"}
MEASUREMENT_FIELDS = {"ku", "ku_classic", "pu_s", "amplitude_c", "relay_amplitude", "centre_c", "hysteresis_c",
                      "noise_c", "dead_time_s", "heating_rate_c_per_min", "integrating_gain", "cycles",
                      "periods_s", "amplitudes_c"}


def test_quick_bench_json_has_every_field(capsys):
    assert main(["bench", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quick"] is True
    assert list(report["plants"]) == ["reference"]
    tune = report["plants"]["reference"]["autotune"]
    assert set(tune["measurement"]) == MEASUREMENT_FIELDS
    assert report["plants"]["reference"]["full_power_s"] > 0
    runs = report["runs"]
    names = {s["name"] for s in report["scenarios"]}
    assert names == {"warmup-hold", "stones", "lid", "setpoint", "noisy"}
    assert {(r["scenario"], r["controller"]) for r in runs} == {(s, c) for s in names for c in bench.CONTROLLERS}
    for r in runs:
        assert set(r) == RUN_FIELDS, r["scenario"]
        for field in ("warmup_ratio", "overshoot_c", "energy_kwh", "peak_probe_c"):
            assert isinstance(r[field], (int, float)) and math.isfinite(r[field]), (r["controller"], field)
        for e in r["events"]:
            assert set(e) == EVENT_FIELDS
    by = {(r["scenario"], r["controller"]): r for r in runs}
    assert len(by[("stones", "default")]["events"]) == 2
    assert len(by[("lid", "default")]["events"]) == 1  # the lid closing is no separate disturbance
    # the dial thermostat swings wider than stonewarmer holds
    assert by[("warmup-hold", "bang-bang")]["hold_max_c"] > by[("warmup-hold", "default")]["hold_max_c"]
    software = report["software"]
    assert set(software) == SOFTWARE_FIELDS
    assert software["run_error"] is None and software["run_peak_rss_mb"] > 0
    assert software["tick_median_us"] > 0 and software["sim_seconds_per_wall_second"] > 0
    assert report["targets"] and all({"target", "limit", "value", "met", "missed_by"} <= set(t)
                                      for t in report["targets"])


def test_bang_bang_switches_at_the_edges_of_its_band_only():
    t = BangBang(hysteresis_c=1.0)
    assert [t(0, c, 52.0) for c in (40.0, 52.5, 53.0, 52.5, 51.5, 51.0, 51.5)] == [1, 1, 0, 0, 0, 1, 1]


def test_textbook_pid_has_no_anti_windup():
    pid = TextbookPID(Gains(kp=0.5, ki=0.01, kd=0.0))
    for second in range(1200):  # 20 min at 10 degC below: the integral grows far past full power
        assert pid(float(second), 42.0, 52.0) == 1.0
    # 1 degC above the setpoint, still full power: the wound-up integral must unwind first
    assert pid(1200.0, 53.0, 52.0) == 1.0
    assert pid.pid._integral > 100


def test_baselines_run_through_the_interlock_whose_guard_clips_them():
    # ZN gains without anti-windup overshoot; the guard (setpoint + 1 degC) holds the heater off.
    zn = Gains(kp=0.38, ki=0.0025, kd=14.0)
    scenario = scenarios.Scenario("short", "warm-up", 45 * 60.0)
    r = scenarios.run_one(cfgmod.Config(), "reference", scenario, "zn-pid", zn, 1080.0)
    assert r["guard_s"] > 60
    assert r["peak_probe_c"] < 52.0 + 1.0 + 1.0  # clipped near the guard, not a runaway


def _row(t_s: float, probe_c: float, setpoint_c: float = 52.0) -> TraceRow:
    return TraceRow(t_s, probe_c, probe_c, probe_c, setpoint_c, 0.0, False, "holding", None)


def test_event_figures_time_the_return_to_the_band_and_the_settling():
    event = scenarios.Event(100.0, "stones", (2.0, 35.0))
    scenario = scenarios.Scenario("s", "s", 1000.0, (event,))
    temps = [52.0] * 100 + [51.0] * 50 + [51.8] * 50 + [52.2] * 100 + [52.4] * 10 + [52.0] * 690
    figures = scenarios._event_figures([_row(float(t), c) for t, c in enumerate(temps)], scenario)
    assert figures == [{"at_s": 100.0, "event": "2 kg stones at 35 degC", "kind": "stones",
                        "back_in_band_s": 50.0, "settled_s": 210.0,
                        "peak_above_c": pytest.approx(0.4), "dip_below_c": pytest.approx(1.0)}]


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert main(["bench", "--quick", "--plot", str(tmp_path / "b.png")]) == 2
    assert "pip install -e '.[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "b.png").exists()


def test_plot_draws_every_controller_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib", reason="the optional `plot` extra is not installed")
    trace = [(float(t), 52.0, 52.0) for t in range(0, 600, 10)]
    report = {"command": "stonewarmer bench --quick", "plants": {"reference": {}},
              "scenarios": [{"name": "warmup-hold"}],
              "runs": [{"plant": "reference", "scenario": "warmup-hold", "controller": c, "trace": trace}
                       for c in bench.CONTROLLERS]}
    bench_plot.plot(report, str(tmp_path / "b.png"))
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tick_timing_excludes_the_probe_read_but_ticks_on_real_readings():
    figures = software.measure_tick_us(cfgmod.Config(), ticks=50)
    assert figures["tick_samples"] == 50
    assert 0 < figures["tick_median_us"] <= figures["tick_p99_us"]


def test_sim_speed_runs_the_simulation_it_times():
    figures = software.measure_sim_speed(cfgmod.Config(), 120.0)
    assert figures["sim_seconds"] == 120.0 and figures["sim_wall_s"] > 0
    assert figures["sim_seconds_per_wall_second"] == pytest.approx(120.0 / figures["sim_wall_s"])


def test_bench_without_simple_pid_says_to_install_the_bench_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "simple_pid", None)  # import fails as if not installed
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "install the bench extra" in err and "'.[bench]'" in err
