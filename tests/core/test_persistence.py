"""Persisted state across power cuts: setpoint, gains and latched faults; bad files; a read-only disk.

A "power cut" is a Simulation abandoned without any shutdown code, then a new
one on the same state dir (a cold bath: the plant starts at room temperature).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import subprocess

import pytest

from controller.core import config as cfgmod
from controller.core.bath_model import BathModel
from controller.core.faults import FaultKind
from controller.core.pid import Gains
from controller.core.state import STATE_FILE, StateStore
from controller.sim.simulation import Simulation, parse_injection

_workdirs = itertools.count()


def warmer(tmp_path, *, injections=(), **control) -> Simulation:
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(tmp_path / "state"))
    if control:
        cfg = cfgmod.replace(cfg, "control", **control)
    return Simulation(cfg, workdir=tmp_path / f"sim{next(_workdirs)}",
                      injections=[parse_injection(i) for i in injections])


def on_times(sim) -> list[float]:
    """Simulated seconds (since the sim started) at which the relay pin switched on."""
    return [t - sim.t0 for t, level in sim.pin.changes if level]


def saved(tmp_path) -> dict:
    return json.loads((tmp_path / "state" / STATE_FILE).read_text())


def write_state(tmp_path, text: str) -> None:
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / STATE_FILE).write_text(text)


# -- power cuts --------------------------------------------------------------------------------
def test_setpoint_and_tuned_gains_survive_a_power_cut(tmp_path):
    before = warmer(tmp_path)
    before.controller.set_setpoint(49.5, source="test")
    before.controller.set_gains(Gains(kp=0.4, ki=0.001, kd=5.0))
    before.run(30)
    after = warmer(tmp_path)  # no close(): the power just went
    assert after.controller.status().setpoint_c == 49.5
    assert after.controller.pid.gains == Gains(kp=0.4, ki=0.001, kd=5.0)


def test_after_a_power_cut_heating_resumes_but_never_before_a_valid_reading(tmp_path):
    before = warmer(tmp_path)
    before.controller.set_setpoint(50.0, source="test")
    before.run(60)
    assert on_times(before), "it was heating when the power went"
    # The probe answers with empty files for the first 3 s after the restart.
    after = warmer(tmp_path, injections=["empty@0:3"])
    rows = [after.step() for _ in range(30)]
    first_valid_s = next(r.t_s for r in rows if r.reading_c is not None)
    assert first_valid_s == 3.0
    assert rows[-1].setpoint_c == 50.0 and rows[-1].fault is None
    assert on_times(after) and min(on_times(after)) >= first_valid_s  # resumed, after the reading


def test_without_resume_after_power_cut_the_config_setpoint_applies(tmp_path):
    before = warmer(tmp_path, resume_after_power_cut=False)
    before.controller.set_setpoint(45.0, source="test")
    after = warmer(tmp_path, resume_after_power_cut=False)
    assert after.controller.status().setpoint_c == 52.0


def test_a_latched_fault_stays_latched_across_a_power_cut(tmp_path):
    before = warmer(tmp_path, injections=["unplug@20"])
    before.run(40)
    assert before.controller.status().fault == "sensor"
    assert saved(tmp_path)["fault"]["kind"] == "sensor"
    after = warmer(tmp_path)  # probe plugged back in: valid readings, cold water
    after.run(600)
    assert after.controller.status().fault == "sensor"
    assert on_times(after) == []  # ten minutes, heater never on
    after.controller.acknowledge_fault(source="test")
    after.run(5)
    assert on_times(after) and min(on_times(after)) > 600


# -- bad state files ---------------------------------------------------------------------------
def test_a_corrupt_state_file_is_set_aside_and_the_heater_stays_off_until_acknowledged(tmp_path):
    write_state(tmp_path, '{"setpoint_c": 53, "gai')  # cut off mid-write by an older, non-atomic tool
    sim = warmer(tmp_path)
    sim.run(300)
    status = sim.controller.status()
    assert status.fault == "state"
    assert "corrupt" in status.fault_message and "state.corrupt" in status.fault_message
    assert on_times(sim) == []
    assert (tmp_path / "state" / "state.corrupt").read_text() == '{"setpoint_c": 53, "gai'
    assert saved(tmp_path)["fault"]["kind"] == "state"  # replaced by safe defaults, fault included
    # A restart is not an acknowledgement: still latched, and no crash loop.
    again = warmer(tmp_path)
    again.run(60)
    assert again.controller.status().fault == "state" and on_times(again) == []
    again.controller.acknowledge_fault(source="test")
    again.run(5)
    assert on_times(again)


@pytest.mark.parametrize("content, fault", [
    ({"setpoint_c": 99.0}, "state"),                                   # above max_setpoint_c
    ({"setpoint_c": "hot"}, "state"),
    ({"gains": {"kp": "fast", "ki": 0, "kd": 0}}, "state"),
    ({"gains": {"kp": -1.0, "ki": 0, "kd": 0}}, "state"),
    ({"gains": [1, 2, 3]}, "state"),
    ({"fault": "overtemp"}, "state"),                                  # damaged: kept latched
    ({"fault": {"kind": "meteor", "message": "?"}}, "state"),          # unknown kind: kept latched
    ({"fault": {"kind": "overtemp", "message": "60 degC", "wall_time_s": "yesterday"}}, "overtemp"),
    ({"gains": {"kp": 10**400, "ki": 0, "kd": 0}}, "state"),          # ints too large for a float
    ({"planner": {"factor": 10**400}}, "state"),
    ({"settings": {"presets": [{"name": "Body", "setpoint_c": 10**400}]}}, "state"),
    ({"settings": {"probe_offset_c": -(10**400)}}, "state"),
    ({"bath": {**BathModel().to_dict(), "heat_rate_c_per_s": 10**400}}, "state"),
])
def test_damaged_values_latch_a_fault_instead_of_crashing(tmp_path, content, fault):
    write_state(tmp_path, json.dumps({"version": 1, **content}))
    sim = warmer(tmp_path)
    sim.run(120)  # every tick runs: a bad value never reaches the PID
    status = sim.controller.status()
    assert status.fault == fault
    assert status.setpoint_c == 52.0
    assert on_times(sim) == []


def test_an_unreadable_state_file_latches_a_state_fault(tmp_path):
    (tmp_path / "state" / STATE_FILE).mkdir(parents=True)  # reading it fails with EISDIR
    sim = warmer(tmp_path)
    sim.run(30)
    assert sim.controller.status().fault == "state"
    assert "cannot read" in sim.controller.status().fault_message
    assert on_times(sim) == []


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    store = StateStore(tmp_path)
    store.save({"setpoint_c": 50.0})

    def disk_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError):
        store.save({"setpoint_c": 40.0})
    monkeypatch.undo()
    assert store.load()["setpoint_c"] == 50.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # no temporary file left


def test_temporary_files_left_by_a_power_cut_mid_write_are_cleaned_up(tmp_path):
    store = StateStore(tmp_path)
    (tmp_path / f".{STATE_FILE}.tmp-abc123").write_text('{"setpoint_c": 5')
    store.save({"setpoint_c": 50.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]


def test_a_state_save_during_a_password_save_does_not_break_it(tmp_path, monkeypatch):
    """The credentials file lives beside the state: a state save that lands while the
    password's write is in flight must leave that write's temporary file alone."""
    from web.credentials import CredentialStore

    real_replace = os.replace

    def replace_after_a_state_save(src, dst):
        if str(dst).endswith("web-auth.json"):
            StateStore(tmp_path).save({"setpoint_c": 50.0})  # the service saves meanwhile
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_a_state_save)
    CredentialStore(tmp_path).set_password("my warm stones")
    monkeypatch.setattr(os, "replace", real_replace)
    assert CredentialStore(tmp_path).check_password("my warm stones")
    assert StateStore(tmp_path).load()["setpoint_c"] == 50.0


# -- a save that fails -------------------------------------------------------------------------
class FlakyStore(StateStore):
    """A state store whose disk refuses the first ``failures`` saves (EIO), counting each attempt."""

    def __init__(self, directory, *, failures: int) -> None:
        super().__init__(directory)
        self.failures = failures
        self.attempts: list[float] = []
        self.clock = None

    def save(self, data) -> None:
        self.attempts.append(self.clock.monotonic())
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.EIO, "Input/output error")
        super().save(data)


def flaky(sim, tmp_path, *, failures: int) -> FlakyStore:
    store = FlakyStore(tmp_path / "state", failures=failures)
    store.clock = sim.controller.clock
    sim.controller.store = store
    return store


def test_a_trip_whose_save_fails_once_is_retried_reported_meanwhile_and_survives_a_power_cut(tmp_path):
    before = warmer(tmp_path, injections=["unplug@20"])
    store = flaky(before, tmp_path, failures=1)
    while before.controller.status().fault is None:
        before.step()
    assert store.attempts and store.failures == 0, "the trip's save was attempted and refused"
    assert not (tmp_path / "state" / STATE_FILE).exists()  # the trip is in memory only
    before.step()
    assert before.controller.status().detail["state_problem"] == (
        f"cannot save state to {store.path}: Input/output error")  # shown while unsaved
    before.run(5)
    assert saved(tmp_path)["fault"]["kind"] == "sensor"  # retried, and on the disk now
    assert len(store.attempts) == 2
    before.step()
    assert "state_problem" not in before.controller.status().detail
    after = warmer(tmp_path)  # the power went; the probe is back
    after.run(300)
    assert after.controller.status().fault == "sensor" and on_times(after) == []


def test_a_disk_that_keeps_refusing_is_retried_with_a_growing_backoff_until_it_takes_the_state(tmp_path):
    sim = warmer(tmp_path)
    store = flaky(sim, tmp_path, failures=8)
    sim.controller.set_setpoint(48.0, source="test")  # first attempt, refused
    start_s = store.attempts[0]
    sim.run(600)
    gaps = [round(b - a) for a, b in zip(store.attempts, store.attempts[1:])]
    assert gaps == [1, 2, 4, 8, 16, 32, 60, 60]  # then saved, and nothing more to save
    assert store.attempts[-1] - start_s < 200
    assert saved(tmp_path)["setpoint_c"] == 48.0
    assert "state_problem" not in sim.controller.status().detail


# -- a read-only state dir ---------------------------------------------------------------------
@contextlib.contextmanager
def read_only(directory):
    """Make ``directory`` read-only for this process, keeping its files."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in (directory, *directory.iterdir())}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    # root ignores permission bits: use a read-only mount, as an SD card remounted read-only is.
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"as root, a read-only dir needs a mount, not permitted here: {mounted.stderr.strip()}")
    try:
        for name, data in files.items():
            (directory / name).write_bytes(data)
        subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def test_a_read_only_state_dir_keeps_the_saved_state_but_holds_the_heater_until_acknowledged(tmp_path):
    before = warmer(tmp_path)
    before.controller.set_setpoint(50.0, source="test")
    with read_only(tmp_path / "state"):
        sim = warmer(tmp_path)
        sim.run(60)
        status = sim.controller.status()
        # It could not remember a fault across the next power cut: someone must look.
        assert status.fault == "state"
        assert "cannot save state" in status.fault_message
        assert status.setpoint_c == 50.0  # what was saved is still used
        assert on_times(sim) == []
        sim.controller.acknowledge_fault(source="test")
        sim.controller.set_setpoint(49.0, source="test")  # works in memory, no crash
        sim.run(5)
        status = sim.controller.status()
        assert on_times(sim) and status.setpoint_c == 49.0
        assert status.detail["state_problem"].startswith("cannot save state")
        notices = [e for e in sim.controller.events.since(0) if e.kind == "notice" and e.source == "state"]
        assert len(notices) == 1  # reported once, not on every save
    assert saved(tmp_path)["setpoint_c"] == 50.0


def test_the_learned_bath_is_kept_and_reused_after_a_restart(tmp_path):
    before = warmer(tmp_path)
    before.run(1500)                                  # one warm-up of the reference bath
    learned = before.controller.bath
    before.close()
    assert learned.learned and 0.8 < learned.heat_rate_c_per_s / (1200.0 / 38188.0) < 1.2
    after = warmer(tmp_path)
    status = after.step()
    assert after.controller.bath == learned
    assert "a minute at full power" in after.controller.status().bath["summary"]
    assert status.fault is None
    after.close()


def test_a_damaged_learned_bath_is_reported_and_learned_afresh(tmp_path):
    StateStore(tmp_path / "state").save({"setpoint_c": 52.0, "bath": {"heat_rate_c_per_s": 9.0}})
    sim = warmer(tmp_path)
    assert not sim.controller.bath.learned
    assert sim.controller.status().fault == FaultKind.STATE
    assert "learning the bath afresh" in sim.controller.state_problem
    sim.close()


def test_default_gains_saved_by_an_earlier_version_leave_the_gains_to_the_bath_model(tmp_path):
    StateStore(tmp_path / "state").save({"setpoint_c": 52.0, "gains": {"kp": 0.5, "ki": 0.001, "kd": 1.0}})
    sim = warmer(tmp_path)
    assert sim.controller.state_dict()["gains"] is None   # derived from the bath, not the saved defaults
    assert sim.controller.pid.gains.kd == 0.0
    sim.close()
