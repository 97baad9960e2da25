"""Relay autotune: what it measures, that it stays below the guard, and that it stops safely."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading

import pytest

from controller.cli.main import main
from controller.core import config as cfgmod
from controller.core.guards import GUARD_ABOVE_C
from controller.sim.plant import PLANTS, WATER_J_PER_KG_K, FirstOrderDeadTime, StoneBath
from controller.sim.simulation import Simulation, parse_injection
from controller.tuning import autotune, experiment


def fopdt_config() -> cfgmod.Config:
    # Room for the FOPDT plant's +/-4 degC swing below the guard; an ideal relay:
    # a 2 s window with 1 s minimum on/off is on/off at the 1 s simulation tick.
    cfg = cfgmod.replace(cfgmod.Config(), "control", max_setpoint_c=57.0, cutoff_c=60.0, setpoint_c=55.0)
    return cfgmod.replace(cfg, "relay", kind="ssr", window_s=2.0, min_switch_s=1.0)


def heater_levels(sim: Simulation) -> list[tuple[float, bool]]:
    """The relay pin's recorded changes as (simulated s, heater on)."""
    return [(t - sim.t0, bool(level) == sim.active_high) for t, level in sim.pin.changes]


def test_relay_experiment_measures_ku_pu_and_dead_time_of_a_fopdt_plant_within_10_percent():
    plant = FirstOrderDeadTime(gain_c=60.0, tau_s=600.0, dead_time_s=90.0)
    ku, pu_s = plant.ultimate()
    phases = []
    with Simulation(fopdt_config(), make_plant=lambda: FirstOrderDeadTime(gain_c=60.0, tau_s=600.0,
                                                                            dead_time_s=90.0), noise_c=0.0) as sim:
        sim.controller.add_listener(lambda status: phases.append(status.detail.get("autotune", {}).get("phase")))
        try:
            result = autotune.run(sim.controller, step=sim.step)
            sim.run(5)  # the next ticks publish "done", with the heater off
            assert not sim.relay_pin_on()
        finally:
            sim.close()
        m = result.measurement
        assert m.ku == pytest.approx(ku, rel=0.10)
        assert m.pu_s == pytest.approx(pu_s, rel=0.10)
        assert m.dead_time_s == pytest.approx(90.0, rel=0.10)
        assert m.cycles >= experiment.CYCLES_NEEDED
        # the interlock never had to step in: every peak stayed below the guard
        assert max(r.probe_c for r in sim.trace) < 55.0 + GUARD_ABOVE_C
        assert [p for i, p in enumerate(phases) if p and p != phases[i - 1]] == ["noise", "approach", "relay", "done"]


def tick_gaps(kind: str, seed: int):
    """Seconds between ticks: every second, jittered (a real clock), or now and then a gap of up to 6 s
    (a busy Pi, or `run --simulate` sped up)."""
    rng = random.Random(seed)
    if kind == "jittered":
        return lambda: max(0.2, rng.gauss(1.0, 0.3))
    if kind == "gaps":
        return lambda: rng.uniform(2.0, 6.0) if rng.random() < 0.05 else max(0.2, rng.gauss(1.0, 0.1))
    return lambda: 1.0


def tuned(params, *, seed: int, ticks: str) -> experiment.Measurement:
    """What the experiment measures on a stone bath, with this probe noise seed and tick timing."""
    gap_s = tick_gaps(ticks, seed)
    with Simulation(cfgmod.Config(), make_plant=lambda: StoneBath(params), seed=seed) as sim:
        try:
            return autotune.run(sim.controller, step=lambda: sim.step(gap_s())).measurement
        finally:
            sim.close()


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_the_measured_warming_rate_per_duty_agrees_within_20_percent_across_probe_noise_and_tick_timing(plant):
    # It is what the heater adds per unit of duty: its power over the water's (and pot's) heat capacity.
    p = PLANTS[plant]
    heater_c_per_s = p.power_w / (p.water_kg * WATER_J_PER_KG_K + p.pot_j_per_k)
    measured = [tuned(p, seed=seed, ticks=ticks).integrating_gain
                for seed, ticks in ((1, "steady"), (7, "steady"), (2, "jittered"), (3, "gaps"))]
    assert max(measured) <= 1.2 * min(measured), measured
    assert all(v == pytest.approx(heater_c_per_s, rel=0.1) for v in measured), (measured, heater_c_per_s)


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_experiment_at_the_highest_setpoint_never_exceeds_it(plant):
    cfg = cfgmod.replace(cfgmod.Config(), "control", setpoint_c=54.0)  # = max_setpoint_c
    result, sim = autotune.tune_in_simulation(cfg, lambda: StoneBath(PLANTS[plant]))
    try:
        assert max(r.probe_c for r in sim.trace) < cfg.control.max_setpoint_c
        assert result.measurement.centre_c <= 54.0
        assert not any(r.fault for r in sim.trace)
        g = result.gains
        assert 0 < g.kp <= 10 and 0 < g.ki <= 1  # inside what the config accepts
    finally:
        sim.close()


def test_interlock_trip_aborts_the_experiment_with_the_heater_off():
    # The probe starts failing while the experiment heats at full power: a sensor fault latches.
    with Simulation(cfgmod.Config(), injections=[parse_injection("crc@600:inf")]) as sim:
        try:
            with pytest.raises(autotune.AutotuneError) as err:
                autotune.run(sim.controller, step=sim.step)
            assert err.value.phase == experiment.Phase.FAILED
            assert "sensor" in str(err.value)
            stopped_s = sim.t_s
            sim.run(600)  # nothing switches the heater back on afterwards
            levels = heater_levels(sim)
            assert (True in [on for _, on in levels]), "the experiment heated before the trip"
            last_t, last_on = levels[-1]
            assert not last_on and 600 <= last_t <= stopped_s
            assert sim.controller.status().detail["autotune"]["phase"] == experiment.Phase.FAILED
        finally:
            sim.close()


def test_cancel_stops_the_experiment_and_switches_the_heater_off():
    cancel = threading.Event()
    with Simulation(cfgmod.Config(), on_step=lambda s, row: cancel.set() if s.t_s >= 700 else None) as sim:
        try:
            assert_heating = []
            with pytest.raises(autotune.AutotuneError) as err:
                autotune.run(sim.controller, step=sim.step, cancel=cancel,
                             report=lambda p: assert_heating.append(p["phase"]))
            assert err.value.phase == experiment.Phase.CANCELLED
            cancelled_s = sim.t_s
            assert sim.relay_pin_on(), "cancelled while heating"
            sim.run(900)
            last_t, last_on = heater_levels(sim)[-1]
            # off within the relay's minimum on-time, and it stays off
            assert not last_on
            assert cancelled_s <= last_t <= cancelled_s + sim.cfg.relay.effective_min_switch_s + 1
            assert sim.controller.status().detail["autotune"]["phase"] == experiment.Phase.CANCELLED
            assert "approach" in assert_heating
        finally:
            sim.close()


def test_autotune_command_saves_the_gains_and_prints_config_lines(tmp_path, capsys):
    assert main(["autotune", "--plant", "small", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    state = json.loads((tmp_path / "state.json").read_text())
    saved = json.loads((tmp_path / "autotune.json").read_text())
    assert state["gains"] == saved["gains"]
    assert f"kp = {saved['gains']['kp']:.4g}" in out and "[control]" in out
    # a warmer started on this state dir uses the tuned gains
    with Simulation(cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path))) as sim:
        try:
            assert sim.controller.pid.gains.kp == pytest.approx(saved["gains"]["kp"])
        finally:
            sim.close()


@pytest.mark.parametrize(("measured", "message"), [
    ({"integrating_gain": 0.0}, "the measured warming rate per unit of duty k' is 0 degC/s: must be a finite number "
                                "above 0"),
    ({"dead_time_s": math.nan}, "the measured dead time is nan s: must be a finite number above 0"),
    ({"integrating_gain": 1e-4}, "the simc rule's gains are refused: [control] kp = "),  # 1 / (2 k' theta): ~100
])
def test_autotune_command_fails_and_saves_nothing_when_the_measurement_gives_no_usable_gains(
        tmp_path, capsys, monkeypatch, measured, message):
    measure = experiment.RelayExperiment.measure
    monkeypatch.setattr(experiment.RelayExperiment, "measure",
                        lambda self, cycles: dataclasses.replace(measure(self, cycles), **measured))
    assert main(["autotune", "--simulate", "--state-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"autotune: failed: {message}" in err and err.rstrip().endswith("; gains unchanged")
    if "kp = " in message:
        assert "is not allowed: must be between 0 and 10 per degC" in err
    state = json.loads((tmp_path / "state.json").read_text()) if (tmp_path / "state.json").exists() else {}
    assert state.get("gains") is None and not (tmp_path / "autotune.json").exists()


def test_autotune_refuses_a_setpoint_above_the_maximum(capsys):
    assert main(["autotune", "--simulate", "--setpoint", "56"]) == 2
    assert "outside the allowed range" in capsys.readouterr().err


# -- over SSH: hang-ups, the pin at exit, who owns the files ---------------------------------------
class _HungUpTerminal:
    """stdout/stderr after the SSH session went away: every write fails."""

    def write(self, _text):
        raise OSError(5, "Input/output error")

    def flush(self):
        raise OSError(5, "Input/output error")


def test_a_hang_up_cancels_autotune_with_the_heater_off_even_with_the_terminal_gone(tmp_path, monkeypatch):
    # The SSH session drops while the experiment heats at full power: SIGHUP arrives and
    # every later print fails. Unhandled, SIGHUP kills the process with the relay driven on.
    hangup_before = signal.getsignal(signal.SIGHUP)  # SIG_IGN under nohup, SIG_DFL in a terminal
    sims = []
    real_step = Simulation.step

    def step(self, dt_s=1.0):
        if not sims:
            sims.append(self)
        if self.t_s == 700:
            monkeypatch.setattr(sys, "stdout", _HungUpTerminal())
            monkeypatch.setattr(sys, "stderr", _HungUpTerminal())
            os.kill(os.getpid(), signal.SIGHUP)
        return real_step(self, dt_s)

    monkeypatch.setattr(Simulation, "step", step)
    assert main(["autotune", "--plant", "reference", "--state-dir", str(tmp_path)]) == 128 + signal.SIGHUP
    (sim,) = sims
    levels = heater_levels(sim)
    on_at = [t for t, on in levels if on]
    assert on_at and on_at[-1] < 700, "heating when the hang-up came"
    last_t, last_on = levels[-1]
    assert not last_on and 700 <= last_t <= 700 + sim.cfg.relay.effective_min_switch_s + 1
    assert not (tmp_path / "autotune.json").exists()  # cancelled: nothing tuned, nothing saved
    assert signal.getsignal(signal.SIGHUP) is hangup_before  # the handlers were put back


def test_autotune_on_the_hardware_leaves_the_pin_driven_off_when_stopped(tmp_path, pins, tree, monkeypatch):
    tree.write("0000075a1f2b", 30.0)
    config = tmp_path / "stonewarmer.toml"
    config.write_text(f'[probe]\nw1_dir = "{tree.root}"\nid = "0000075a1f2b"\n\n'
                      f'[state]\ndir = "{tmp_path / "state"}"\n')
    # systemd or kill stops the command after its first tick (the noise phase: heater off).
    from controller.core.loop import Controller

    real_tick = Controller.tick
    ticks = []

    def tick(self):
        status = real_tick(self)
        ticks.append(status)
        if len(ticks) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return status

    monkeypatch.setattr(Controller, "tick", tick)
    assert main(["autotune", "--config", str(config)]) == 128 + signal.SIGTERM
    pin = pins.pin(17)
    assert pin.function == "output" and pin.state is False  # driven off, not released to float
    assert not any(level for _, level in pin.changes)


def test_saved_gains_and_results_belong_to_the_state_dir_owner_when_tuned_as_root(tmp_path):
    from controller.core.pid import Gains
    from controller.tuning.hardware import ServiceOwnedStore
    from controller.tuning.results import apply
    from controller.tuning.rules import gains_from

    if os.geteuid() != 0:
        pytest.skip("only root can write files for another user (sudo stonewarmer autotune)")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    os.chown(state_dir, 4242, 4243)  # the service user's StateDirectory
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(state_dir))
    with Simulation(cfg) as sim:
        try:
            sim.controller.store = ServiceOwnedStore(state_dir)
            result, tuned = autotune.tune_in_simulation(fopdt_config(), lambda: FirstOrderDeadTime(
                gain_c=60.0, tau_s=600.0, dead_time_s=90.0), noise_c=0.0)
            tuned.close()
            apply(sim.controller, result)
        finally:
            sim.close()
    for name in ("state.json", "autotune.json"):
        owner = (state_dir / name).stat()
        assert (owner.st_uid, owner.st_gid) == (4242, 4243), name
    assert Gains(**json.loads((state_dir / "state.json").read_text())["gains"]) == gains_from(result.measurement)
