"""The benchmark's targets: each figure against its limit, met or missed (and by how much)."""

from __future__ import annotations

from typing import Any

# Reference plant, mechanical relay, default gains, unless said.
TARGET_WARMUP_RATIO = 1.10
TARGET_OVERSHOOT_C = 0.2
TARGET_HOLD_C = 0.15
TARGET_RECOVERY_S = 240.0
TARGET_RECOVERY_PEAK_C = 0.3
TARGET_SWITCHES_PER_H = 60.0
TARGET_HOLD_VS_BANG_BANG = 0.2
TARGET_TUNED_OVERSHOOT_C = 0.5
TARGET_TUNED_HOLD_C = 0.3
TARGET_SIM_SPEED = 2000.0
TARGET_TICK_MEDIAN_US = 200.0
TARGET_RSS_MB = 80.0  # the control and the web process together (a Pi Zero 2 W has 512 MB)


def _find(report: dict[str, Any], plant: str, scenario: str, controller: str) -> dict | None:
    return next((r for r in report["runs"] if (r["plant"], r["scenario"], r["controller"])
                 == (plant, scenario, controller)), None)


def _target(name: str, value, limit: float, *, unit: str = "", at_most: bool = True) -> dict[str, Any]:
    met = None if value is None else (value <= limit if at_most else value >= limit)
    by = None if value is None else (value - limit if at_most else limit - value)
    return {"target": name, "limit": limit, "value": value, "unit": unit, "met": met,
            "missed_by": None if met is None or met else by}


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, each met / missed (and by how much). None: not measured in this run."""
    out = []
    hold = _find(report, "reference", "warmup-hold", "default")
    bang = _find(report, "reference", "warmup-hold", "bang-bang")
    stones = _find(report, "reference", "stones", "default")
    if hold:
        out += [_target("reference, default gains: warm-up / full-power limit", hold["warmup_ratio"],
                        TARGET_WARMUP_RATIO),
                _target("reference, default gains: overshoot", hold["overshoot_c"], TARGET_OVERSHOOT_C,
                        unit="degC"),
                _target("reference, default gains: hold band max |T-SP|", hold["hold_max_c"], TARGET_HOLD_C,
                        unit="degC"),
                _target("reference, default gains: relay switch-ons per hour", hold["switch_ons_per_hour"],
                        TARGET_SWITCHES_PER_H)]
        if bang and hold["hold_max_c"] is not None and bang["hold_max_c"]:
            out.append(_target("reference: hold band / bang-bang's", hold["hold_max_c"] / bang["hold_max_c"],
                               TARGET_HOLD_VS_BANG_BANG))
    if stones:
        recoveries = [e["back_in_band_s"] for e in stones["events"]]
        worst = None if any(r is None for r in recoveries) or not recoveries else max(recoveries)
        out += [_target("reference, default gains: stones returned, back within +/-0.3 degC", worst,
                        TARGET_RECOVERY_S, unit="s"),
                _target("reference, default gains: stones returned, peak above setpoint",
                        max((e["peak_above_c"] for e in stones["events"]), default=None),
                        TARGET_RECOVERY_PEAK_C, unit="degC")]
    for plant in report["plants"]:
        if plant == "reference":
            continue
        tuned = _find(report, plant, "warmup-hold", "autotuned")
        if tuned:
            out += [_target(f"{plant}, autotuned: overshoot", tuned["overshoot_c"], TARGET_TUNED_OVERSHOOT_C,
                            unit="degC"),
                    _target(f"{plant}, autotuned: hold band max |T-SP|", tuned["hold_max_c"],
                            TARGET_TUNED_HOLD_C, unit="degC")]
    sw = report["software"]
    out += [_target("simulated seconds per wall second", sw["sim_seconds_per_wall_second"], TARGET_SIM_SPEED,
                    at_most=False),
            _target("control tick CPU time, median", sw["tick_median_us"], TARGET_TICK_MEDIAN_US, unit="us"),
            _target("`run --simulate` peak RSS (both processes)", sw["run_peak_rss_mb"], TARGET_RSS_MB, unit="MB")]
    return out
