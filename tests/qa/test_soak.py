"""The soak, shortened for CI: `stonewarmer soak` runs the full 72 hours."""

from __future__ import annotations

import logging

from controller.core import config as cfgmod
from controller.qa.soak import run_soak


def test_three_hours_with_disturbances_and_web_traffic_stay_safe_and_bounded(caplog):
    caplog.set_level(logging.CRITICAL)
    report = run_soak(cfgmod.Config(), hours=3, seed=7)
    assert report.problems() == []
    assert report.ticks == 3 * 3600 == report.watchdog_pings
    assert report.relay_on_at_cutoff == 0 and report.false_trips == []
    assert sum(report.disturbances.values()) >= 5       # it really was disturbed
    assert report.web_requests > 1000 and report.web_errors == 0
    assert report.db_rows["readings"] == 3 * 3600       # every tick reached the history, none twice
