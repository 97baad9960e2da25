"""Autotune as a job of the running service: through the interlock, back to the PID, reached over the control socket."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from controller.cli.main import main
from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.core.guards import GUARD_ABOVE_C
from controller.core.persistence import restore
from controller.core.pid import Gains
from controller.core.state import StateStore
from controller.core.status import Mode
from controller.qa.processes import command, free_port, wait_until
from controller.service.control import request, socket_path
from controller.sim.simulation import Simulation, parse_injection
from controller.tuning import autotune
from controller.tuning.experiment import Phase, RelayExperiment
from controller.tuning.job import AutotuneJob, JobError
from tests.helpers import REPO, relay_pin, run_ticks


def run_job(sim: Simulation, job: AutotuneJob, *, max_s: float = 4 * 3600) -> None:
    """Tick the simulated service until the job has ended (and saved)."""
    while job.running and sim.t_s < max_s:
        sim.step()
    assert job.finished.wait(10), "the job did not end"


def test_the_job_tunes_through_the_interlock_saves_the_gains_and_hands_back_to_the_pid(tmp_path):
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    with Simulation(cfg) as sim:
        try:
            job = AutotuneJob(sim.controller)
            job.start()
            run_job(sim, job)
            tuned_s = sim.t_s
            assert job.outcome["phase"] == Phase.DONE, job.outcome
            saved = json.loads((tmp_path / "state" / "state.json").read_text())["gains"]
            assert saved == job.outcome["gains"] and sim.controller.pid.gains.kp == saved["kp"]
            assert max(r.probe_c for r in sim.trace) < 52.0 + GUARD_ABOVE_C  # the guard never had to act
            sim.run(3600)  # the PID holds the setpoint with the new gains
            after = [r for r in sim.trace if r.t_s > tuned_s + 1800]
            assert all(abs(r.probe_c - 52.0) < 0.5 for r in after)
            assert any(r.relay for r in after) and sim.controller.status().detail["autotune"]["phase"] == "done"
        finally:
            sim.close()


def test_a_cancelled_job_hands_the_heater_back_to_the_pid_and_sets_no_gains(tmp_path):
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    with Simulation(cfg) as sim:
        try:
            job = AutotuneJob(sim.controller)
            job.start(setpoint_c=50.0)
            sim.run(90)  # the noise phase (heater off), then heating
            assert job.cancel()
            sim.step()
            assert not job.running and job.outcome["phase"] == Phase.CANCELLED
            sim.step()  # the next status shows it
            assert sim.controller.status().detail["autotune"]["phase"] == "cancelled"
            sim.run(1800)
            # no gains set: the controller's own (from the bath as it learns it), none saved
            assert sim.controller.state_dict()["gains"] is None
            assert sim.controller.status().mode in ("holding", "warming", "ready")
            assert abs(sim.trace[-1].probe_c - 50.0) < 1.0  # the PID took the bath to the setpoint
        finally:
            sim.close()


def test_an_autotune_on_a_cold_bath_keeps_the_control_loop_ticking_on_a_real_clocks_schedule(make_controller, clock,
                                                                                              tree, pins):
    # Started on a cold bath, the experiment holds the heater off for its noise minute and the water only
    # answers the approach's heat 30-40 s later: some 90 s of a flat reading in mode "warming", the window
    # the time-to-ready rate is measured over (two halves of 45 s). A real clock never ticks on the whole
    # second, so the halves do not share the reading at their boundary (here: ticks 1.1 s apart), and the
    # noise there can make both halves warm while the whole window reads the same at both ends.
    controller = make_controller()
    job = AutotuneJob(controller)
    job.start()
    flat_c = 21.0
    noise_at_the_boundary = [flat_c + 0.0625, flat_c - 0.0625]  # one DS18B20 step up, then one down
    statuses = run_ticks(controller, clock, tree, [flat_c] * 40 + noise_at_the_boundary + [flat_c] * 40, dt_s=1.1)
    last = statuses[-1]
    assert last.mode == Mode.WARMING and last.fault is None and last.ready_in_s is None  # no rate, no estimate
    assert job.running and last.detail["autotune"]["phase"] == "approach"
    assert relay_pin(pins).state == 1  # the loop goes on driving the relay: the approach heats


def test_a_measurement_that_cannot_be_evaluated_fails_the_job_and_the_pid_warms_on(tmp_path, monkeypatch):
    def no_gains(*_args, **_kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(autotune, "usable_gains", no_gains)  # arithmetic that fails in a way nobody foresaw
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    with Simulation(cfg) as sim:
        try:
            job = AutotuneJob(sim.controller)
            job.start()
            run_job(sim, job)  # the tick that evaluated the cycles did not raise
            failed_s = sim.t_s
            assert job.outcome["phase"] == Phase.FAILED and "ZeroDivisionError" in job.outcome["message"]
            sim.run(1800)
            after = [r for r in sim.trace if r.t_s > failed_s]
            assert any(r.relay for r in after) and abs(after[-1].probe_c - 52.0) < 0.5  # the PID holds the bath
            assert sim.controller.state_dict()["gains"] is None  # none were set
        finally:
            sim.close()


def test_a_measurement_that_gives_unusable_gains_fails_the_job_and_saves_nothing(tmp_path, monkeypatch):
    # The heater did not seem to warm the bath faster than it cooled: k' <= 0 gives kp <= 0 (or a
    # division by 0). Saved, such gains would be refused at the next start, which latches a fault.
    measure = RelayExperiment.measure
    monkeypatch.setattr(RelayExperiment, "measure",
                        lambda self, cycles: dataclasses.replace(measure(self, cycles), integrating_gain=-0.002))
    state_dir = tmp_path / "state"
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(state_dir))
    with Simulation(cfg) as sim:
        try:
            sim.controller.set_gains(Gains(kp=0.4, ki=0.001, kd=0.0), source="an earlier autotune")
            (state_dir / "autotune.json").write_text('{"earlier": true}')
            state_before = json.loads((state_dir / "state.json").read_text())
            job = AutotuneJob(sim.controller)
            job.start()
            run_job(sim, job)
            assert job.outcome["phase"] == Phase.FAILED, job.outcome
            assert "k' is -0.002 degC/s: must be a finite number above 0; gains unchanged" in job.outcome["message"]
            assert sim.controller.pid.gains == Gains(kp=0.4, ki=0.001, kd=0.0)
            failed_s = sim.t_s
            sim.run(1800)  # the PID warms on with the gains it had
            assert abs([r for r in sim.trace if r.t_s > failed_s][-1].probe_c - 52.0) < 0.5
        finally:
            sim.close()
    assert json.loads((state_dir / "state.json").read_text())["gains"] == state_before["gains"]
    assert (state_dir / "autotune.json").read_text() == '{"earlier": true}'
    # the next start finds nothing to refuse
    _restored, _fault, problem = restore(StateStore(state_dir), cfg, SimClock())
    assert problem is None


def test_the_job_refuses_to_start_twice_or_with_a_fault_latched(tmp_path):
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    with Simulation(cfg, injections=[parse_injection("unplug@5")]) as sim:
        try:
            job = AutotuneJob(sim.controller)
            job.start()
            with pytest.raises(JobError, match="running already"):
                job.start()
            with pytest.raises(JobError, match="setpoint"):
                AutotuneJob(sim.controller).start(setpoint_c=99.0)
            sim.run(60)  # the probe is unplugged: a sensor fault ends the experiment
            assert job.outcome["phase"] == Phase.FAILED and "sensor" in job.outcome["message"]
            with pytest.raises(JobError, match="fault is latched"):
                job.start()
        finally:
            sim.close()


def test_sudo_autotune_runs_in_the_service_and_a_dropped_client_does_not_stop_it(tmp_path, capsys):
    state_dir = tmp_path / "state"
    config = REPO / "config" / "stonewarmer.toml"
    proc = subprocess.Popen(command("run", "--simulate", "--state-dir", str(state_dir), "--config", str(config),
                                    "--host", "127.0.0.1", "--port", str(free_port()), "--speed", "300"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        path = socket_path(state_dir)
        wait_until(path.exists, what="the control socket")
        assert oct(path.stat().st_mode & 0o777) == "0o660"  # the service user, its group (the web) and root
        # A client starts the job and hangs up at once, as a dropped SSH session does.
        answers = request(path, {"command": "autotune", "rule": "simc"})
        assert next(answers) == {"started": {"setpoint_c": 52.0}}
        answers.close()
        # Another one follows it to the end.
        assert main(["autotune", "--watch", "--config", str(config), "--state-dir", str(state_dir)]) == 0
        out = capsys.readouterr().out
        assert "autotune: done: gains (simc)" in out
        saved = json.loads((state_dir / "state.json").read_text())
        assert (state_dir / "autotune.json").stat().st_uid == os.getuid() == (state_dir / "state.json").stat().st_uid
        assert f"kp={saved['gains']['kp']:.4g}" in out
        assert main(["autotune", "--cancel", "--config", str(config), "--state-dir", str(state_dir)]) == 0
        assert "none was running" in capsys.readouterr().out
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
        # On a failure above, the service's own account of it (a crash, a refused request) goes into the report.
        print("the service's output:", output, sep="\n", file=sys.stderr)
    assert proc.returncode == 0, output
    assert "autotune started" in output and not path.exists()
