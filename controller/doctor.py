"""``stonewarmer check``: what is connected, and what is risky, each with what to do."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from . import config as cfgmod
from .cli import add_config_arg, load_config
from .probe import W1Probe, list_probes

# GPIO 0-8 are pulled up at power-on (FIELD-NOTES "GPIO and relays"): an active-high
# relay driver on one of them switches the heater on while the Pi boots.
PULLED_UP_AT_BOOT = range(0, 9)
ONE_WIRE_DEFAULT_GPIO = 4


@dataclass(frozen=True, slots=True)
class Finding:
    level: str   # "ok", "warn", "error"
    what: str
    todo: str = ""

    def __str__(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "error": "FAIL"}[self.level]
        return f"[{mark}] {self.what}" + (f"\n       -> {self.todo}" if self.todo else "")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="list probes and the relay set-up; warn about risky choices")
    add_config_arg(p)
    p.set_defaults(handler=cmd_check)


def probe_findings(cfg: cfgmod.Config) -> list[Finding]:
    ids = list_probes(cfg.probe.w1_dir)
    if not ids:
        return [Finding("error", f"no DS18B20 probe found in {cfg.probe.w1_dir}",
                        "check the wiring (data on GPIO4 with a 4.7 kOhm pull-up to 3.3 V) "
                        "and that config.txt has dtoverlay=w1-gpio, then reboot")]
    found = []
    for sensor_id in ids:
        probe = W1Probe(w1_dir=cfg.probe.w1_dir, sensor_id=sensor_id)
        read = probe.read(0.0)
        bits = probe.resolution_bits()
        role = ("main" if sensor_id == cfg.probe.id or (not cfg.probe.id and sensor_id == ids[0])
                else "safety" if sensor_id == cfg.probe.safety_id else "unused")
        if read.kind == "valid":
            found.append(Finding("ok", f"probe 28-{sensor_id} ({role}): {read.celsius:.2f} degC, "
                                       f"{bits or '?'}-bit"))
        else:
            found.append(Finding("error", f"probe 28-{sensor_id} ({role}): {read.kind}",
                                 "check the probe's cable and connector"))
    for key, wanted in (("id", cfg.probe.id), ("safety_id", cfg.probe.safety_id)):
        if wanted and wanted not in ids:
            found.append(Finding("error", f"[probe] {key} = {wanted!r} is not connected",
                                 f"connected: {', '.join(ids)}; fix [probe] {key}"))
    return found


def relay_findings(cfg: cfgmod.Config) -> list[Finding]:
    r = cfg.relay
    out = [Finding("ok", f"relay on GPIO{r.pin}, {'active high' if r.active_high else 'active low'}, "
                         f"{r.kind}: window {r.effective_window_s:g} s, min on/off {r.effective_min_switch_s:g} s")]
    if r.pin in PULLED_UP_AT_BOOT and r.active_high:
        out.append(Finding("warn", f"GPIO{r.pin} is pulled up while the Pi boots: the heater switches on "
                                   "until stonewarmer starts",
                           "move the relay driver to a pin in GPIO9-27 (GPIO17 is the default)"))
    if not r.active_high:
        out.append(Finding("warn", "active-low relay module: it clicks on briefly when the pin is claimed "
                                   "(lgpio drives a new output low first)",
                           "prefer an active-high driver (or an SSR) on the default GPIO17"))
    if r.pin == ONE_WIRE_DEFAULT_GPIO:
        out.append(Finding("error", "the relay is on GPIO4, the 1-Wire bus pin",
                           "use another pin for the relay, e.g. GPIO17"))
    return out


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    findings = probe_findings(cfg) + relay_findings(cfg)
    for f in findings:
        print(f)
    return 1 if any(f.level == "error" for f in findings) else 0
