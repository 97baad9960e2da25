"""The benchmark's report as text: one table per plant, the software figures, the targets."""

from __future__ import annotations

from typing import Any

from controller.sim.simulation import WARM_BAND_C


def _f(value, spec: str = ".2f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _events_text(events: list[dict[str, Any]]) -> str:
    parts = []
    for e in events:
        back = "never" if e["back_in_band_s"] is None else f"{e['back_in_band_s']:.0f}s"
        settled = "never" if e["settled_s"] is None else f"{e['settled_s']:.0f}s"
        parts.append(f"{e['kind']} {back}/{settled} {_f(e['peak_above_c'], '+.2f')}/"
                     f"{_f(None if e['dip_below_c'] is None else -e['dip_below_c'], '+.2f')}")
    return "; ".join(parts) or "-"


def format_report(report: dict[str, Any]) -> str:
    lines = [f"stonewarmer bench{' --quick' if report['quick'] else ''}: relay {report['relay']['kind']} "
             f"(window {report['relay']['window_s']:g} s, min on/off {report['relay']['min_switch_s']:g} s), "
             f"setpoint {report['setpoint_c']:g} degC, default gains kp={report['default_gains']['kp']:g} "
             f"ki={report['default_gains']['ki']:g} kd={report['default_gains']['kd']:g}"]
    header = (f"{'scenario':<12} {'controller':<10} {'warm-up':>7} {'oversh':>6} {'hold±':>6} {'RMS':>6} "
              f"{'ons/h':>6} {'kWh':>5} {'guard':>6}  disturbances: back in band/settled, peak/dip vs SP degC; faults")
    for plant, info in report["plants"].items():
        m, tuned, zn = info["autotune"]["measurement"], info["autotuned_gains"], info["zn_gains"]
        lines += ["", f"== {plant}: full power to {report['setpoint_c'] - WARM_BAND_C:g} degC in "
                  f"{info['full_power_s'] / 60:.1f} min; autotune Ku={m['ku']:.3g}/degC Pu={m['pu_s']:.0f} s "
                  f"dead time {m['dead_time_s']:.0f} s -> autotuned kp={tuned['kp']:.3g} ki={tuned['ki']:.3g} "
                  f"kd={tuned['kd']:.3g}; ZN kp={zn['kp']:.3g} ki={zn['ki']:.3g} kd={zn['kd']:.3g}",
                  header, "-" * len(header)]
        for r in (r for r in report["runs"] if r["plant"] == plant):
            faults = ", ".join(f"{f['fault']}@{f['t_s'] / 60:.0f}min" for f in r["faults"])
            lines.append(
                f"{r['scenario']:<12} {r['controller']:<10} {_f(r['warmup_ratio']):>7} {_f(r['overshoot_c']):>6} "
                f"{_f(r['hold_max_c']):>6} {_f(r['hold_rms_c'], '.3f'):>6} {_f(r['switch_ons_per_hour'], '.0f'):>6} "
                f"{_f(r['energy_kwh']):>5} {r['guard_s']:>5.0f}s  {_events_text(r['events'])}"
                + (f"; FAULT {faults}" if faults else ""))
    sw = report["software"]
    lines += ["", "software:",
              f"  control tick CPU time: median {sw['tick_median_us']:.0f} us, p99 {sw['tick_p99_us']:.0f} us "
              f"(sensor read excluded, {sw['tick_samples']} ticks)",
              f"  simulator: {sw['sim_seconds_per_wall_second']:.0f} simulated s per wall s "
              f"(real w1thermsensor path)",
              f"  `stonewarmer run --simulate` peak RSS (control + web): {_f(sw['run_peak_rss_mb'], '.1f')} MB"
              + (f" ({sw['run_error']})" if sw["run_error"] else ""),
              "", "targets:"]
    for t in report["targets"]:
        verdict = "n/a" if t["met"] is None else "met" if t["met"] else f"MISSED by {t['missed_by']:.3g}{t['unit']}"
        lines.append(f"  {t['target']}: {_f(t['value'], '.3g')}{t['unit']} (limit {t['limit']:g}{t['unit']}) "
                     f"-> {verdict}")
    lines.append(f"\ncontrol runs took {report['control_wall_s']:.0f} s of wall time")
    return "\n".join(lines)
