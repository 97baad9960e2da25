"""The fault-injection matrix (controller/qa/faults.py), each case at warm-up and at hold."""

from __future__ import annotations

import logging

import pytest

from controller.qa import faults


@pytest.mark.parametrize(("case", "phase"), [(c, p) for c in faults.CASES for p in c.phases],
                         ids=lambda v: v.name.replace(" ", "-") if isinstance(v, faults.Case) else v)
def test_fault_is_caught_in_time_or_disturbance_does_not_trip(case, phase, caplog):
    caplog.set_level(logging.CRITICAL)
    result = faults.run_case(case, phase)
    assert result.passed, result.why
    if case.expect:
        assert result.fault in case.expect or case.alarm_only
        assert result.events >= 1                      # the trip is recorded
    else:
        assert result.fault is None


def test_process_level_faults_leave_the_heater_off():
    # SIGTERM while heating, SIGKILL + relay-off + restart, a broken config, a corrupt state file:
    # real `stonewarmer run --simulate` processes, the simulated pin watched across processes.
    results = faults.run_process_matrix()
    assert [r.case for r in results] == ["SIGTERM while heating", "SIGKILL, relay-off, restart",
                                         "config out of range", "state file corrupt"]
    for r in results:
        assert r.passed, f"{r.case}: {r.why}"


def test_table_summarises_every_run():
    results = [faults.run_case(faults.CASES[0], "hold", observe_s=30)]
    table = faults.format_table(results)
    assert "probe unplugged" in table and "1 runs, 1 passed" in table and "false trips 0" in table
