"""``stonewarmer check``: the doctor. What is connected, what is risky, and what to do about each.

Sections, in the order a fresh Pi needs them: config, 1-Wire overlay, probes
(readings and resolution), relay pin and polarity, strict_gpiod, GPIO library,
clock, state dir, dashboard password, the network name, the service and the
hardware watchdog (the last ones in :mod:`controller.service.host_checks`).
Every finding that is not "ok" says what to do. ``--root DIR`` inspects a system image (or a fake tree in
tests): the boot config, kernel module parameters and the service's unit are
looked up under DIR; the probe and state dirs are the config's, as given.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from controller.core import config as cfgmod
from controller.service import web_files
from controller.service.host_checks import (
    clock_findings,
    network_name_findings,
    service_findings,
    watchdog_findings,
)
from controller.service.installer import (
    BOOT_CONFIGS,
    STATE_DIR,
    UNIT_PATH,
    USER,
    boot_lines_missing,
)
from controller.service.system_view import Finding, System

# GPIO 0-8 are pulled up at power-on (docs/field-notes.md, "GPIO and relays"): an active-high
# relay driver on one of them switches the heater on while the Pi boots.
PULLED_UP_AT_BOOT = range(0, 9)
ONE_WIRE_DEFAULT_GPIO = 4
#: Module parameters that keep a released GPIO output driven (Pi 4: bcm2835, Pi 5: rp1).
PERSIST_PARAMS = ("/sys/module/pinctrl_bcm2835/parameters/persist_gpio_outputs",
                  "/sys/module/pinctrl_rp1/parameters/persist_gpio_outputs")


# -- config ------------------------------------------------------------------------------------
def load_config(path: Path) -> tuple[cfgmod.Config, list[Finding]]:
    if not path.exists():
        return cfgmod.Config(), [Finding("error", f"no config at {path}; checking with the defaults",
                                         "sudo stonewarmer install (copies the example config there)")]
    try:
        cfg = cfgmod.load(path)
    except cfgmod.ConfigError as exc:
        return cfgmod.Config(), [Finding("error", f"config refused: {exc}; checking with the defaults",
                                         f"fix {path}; the service will not start until it loads")]
    out = [Finding("ok", f"config {path}")]
    if cfg.mqtt.enabled and importlib.util.find_spec("paho") is None:
        out.append(Finding("error", "[mqtt] is enabled but paho-mqtt is not installed: the service will not start",
                           "sudo stonewarmer install --with mqtt (installs it into the service's venv)"))
    return cfg, out


def config_findings(path: Path) -> list[Finding]:
    """``stonewarmer check --config-only``: the config loads, and what it needs is installed."""
    return load_config(path)[1]


# -- 1-Wire and probes -------------------------------------------------------------------------
def _boot_config(system: System) -> tuple[Path, str] | tuple[None, None]:
    for path in BOOT_CONFIGS:
        if system.path(path).is_file():
            return path, system.path(path).read_text(errors="replace")
    return None, None


def one_wire_gpio(boot_text: str | None) -> int:
    """The 1-Wire data pin set by ``dtoverlay=w1-gpio,gpiopin=N`` (default GPIO4)."""
    for raw in (boot_text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("dtoverlay=w1-gpio"):
            for part in line.split(",")[1:]:
                key, _, value = part.partition("=")
                if key.strip() == "gpiopin" and value.strip().isdigit():
                    return int(value)
    return ONE_WIRE_DEFAULT_GPIO


def one_wire_findings(system: System, cfg: cfgmod.Config) -> list[Finding]:
    out = []
    boot, text = _boot_config(system)
    if text is None:
        out.append(Finding("warn", "no Raspberry Pi boot config found (" + " or ".join(map(str, BOOT_CONFIGS)) + ")",
                           "on a Raspberry Pi, mount the boot partition; elsewhere enable 1-Wire your own way"))
    elif "dtoverlay=w1-gpio" in boot_lines_missing(text):
        out.append(Finding("error", f"{boot} lacks dtoverlay=w1-gpio (the 1-Wire bus for the DS18B20)",
                           "sudo stonewarmer install --configure-boot, then sudo reboot"))
    else:
        out.append(Finding("ok", f"1-Wire overlay in {boot} (data on GPIO{one_wire_gpio(text)})"))
    w1_dir = Path(cfg.probe.w1_dir)
    if not any(w1_dir.glob("w1_bus_master*")):
        out.append(Finding("error", f"no 1-Wire bus master in {w1_dir}: the overlay is not active",
                           "add dtoverlay=w1-gpio to the boot config (install --configure-boot) and reboot"))
    else:
        out.append(Finding("ok", f"1-Wire bus active in {w1_dir}"))
    return out


def probe_findings(cfg: cfgmod.Config) -> list[Finding]:
    from controller.core.probe import W1Probe, list_probes  # w1thermsensor: only installed in the venv

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
        if read.kind != "valid":
            found.append(Finding("error", f"probe 28-{sensor_id} ({role}): {read.kind}",
                                 "check the probe's cable and connector"))
        elif bits is not None and bits < 11:
            device = f"{cfg.probe.w1_dir}/28-{sensor_id}"
            # DS18B20: 9 bit = 0.5 degC steps (docs/field-notes.md, "DS18B20"): too coarse to hold +/-0.5 degC.
            # The resolution register is reloaded from the EEPROM at power-on: save it there too.
            found.append(Finding("warn", f"probe 28-{sensor_id} ({role}): {read.celsius:.2f} degC, {bits}-bit "
                                         f"({0.5 / 2 ** (bits - 9):g} degC steps)",
                                 f"set 12-bit and save it in the probe's EEPROM, or it is back after a power cut: "
                                 f"echo 12 | sudo tee {device}/resolution && echo save | sudo tee {device}/eeprom_cmd"))
        else:
            found.append(Finding("ok", f"probe 28-{sensor_id} ({role}): {read.celsius:.2f} degC, "
                                       f"{bits or '?'}-bit"))
    for key, wanted in (("id", cfg.probe.id), ("safety_id", cfg.probe.safety_id)):
        if wanted and wanted not in ids:
            found.append(Finding("error", f"[probe] {key} = {wanted!r} is not connected",
                                 f"connected: {', '.join(ids)}; fix [probe] {key}"))
    return found


# -- relay and GPIO ----------------------------------------------------------------------------
def relay_findings(cfg: cfgmod.Config, *, one_wire_pin: int = ONE_WIRE_DEFAULT_GPIO,
                   strict_gpiod: bool = False) -> list[Finding]:
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
    if not r.active_high and strict_gpiod:
        # docs/field-notes.md, "More facts": strict_gpiod returns a released line to an input, pulled down.
        out.append(Finding("warn", "active-low relay module with dtparam=strict_gpiod: a pin released by a dying "
                                   "process becomes an input that the Pi pulls down, which is this module's ON "
                                   "level (until ExecStopPost=stonewarmer relay-off drives it off)",
                           "use an active-high driver or an SSR; or a module that pulls its input up itself"))
    if r.pin == one_wire_pin:
        out.append(Finding("error", f"the relay is on GPIO{r.pin}, the 1-Wire bus pin",
                           "use another pin for the relay, e.g. GPIO17"))
    return out


def strict_gpiod_findings(system: System) -> list[Finding]:
    boot, text = _boot_config(system)
    out = []
    if text is not None and "dtparam=strict_gpiod" in boot_lines_missing(text):
        out.append(Finding("error", f"{boot} lacks dtparam=strict_gpiod: if stonewarmer is killed and "
                                    "relay-off cannot run, the kernel keeps the heater's pin driven ON",
                           "sudo stonewarmer install --configure-boot, then sudo reboot"))
    elif boot is not None:
        out.append(Finding("ok", f"dtparam=strict_gpiod in {boot}: a released GPIO returns to an input"))
    values = {}
    for param in PERSIST_PARAMS:
        try:
            values[param] = system.path(param).read_text().strip()
        except OSError:
            continue
        if values[param].upper() in ("Y", "1"):
            out.append(Finding("warn", f"the running kernel still keeps released GPIO outputs driven ({param} = Y)",
                               "reboot so that dtparam=strict_gpiod takes effect"))
    if boot is not None and not values:
        out.append(Finding("warn", "the running kernel has no persist_gpio_outputs parameter "
                                   f"({' or '.join(PERSIST_PARAMS)}): dtparam=strict_gpiod does nothing, and a "
                                   "dying process may leave the heater's pin driven on",
                           "update the kernel: sudo apt update && sudo apt full-upgrade, then sudo reboot"))
    return out


def gpio_library_findings(system: System) -> list[Finding]:
    try:
        system.import_lgpio()
    except ImportError as exc:
        if "No module named" in str(exc):
            return [Finding("error", "the lgpio GPIO library is not installed: the service cannot drive the relay",
                            "sudo apt install python3-lgpio (the service's venv uses the system's packages)")]
        return [Finding("error", f"the lgpio GPIO library does not load: {exc}",
                        "sudo apt install --reinstall python3-lgpio")]
    return [Finding("ok", "lgpio GPIO library present")]


# -- state, password -------------------------------------------------------------------------------
def _unit_settings(system: System, key: str) -> list[str]:
    """The values of ``key=`` in the installed unit and its drop-ins (``systemctl edit``)."""
    unit = system.path(UNIT_PATH)
    files = [unit, *sorted(unit.with_name(unit.name + ".d").glob("*.conf"))]
    values = []
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        values += [line.split("=", 1)[1].strip() for line in lines if line.strip().startswith(f"{key}=")]
    return values


def writable_by_service(system: System, state_dir: Path) -> bool:
    """Under ProtectSystem=strict only StateDirectory= and ReadWritePaths= are writable."""
    allowed = [STATE_DIR] + [Path(p.lstrip("-")) for v in _unit_settings(system, "ReadWritePaths") for p in v.split()]
    return any(state_dir == a or a in state_dir.parents for a in allowed)


def state_findings(cfg: cfgmod.Config, system: System | None = None) -> list[Finding]:
    from controller.core.state import StateError, StateStore

    state_dir = Path(cfg.state.dir)
    if system is not None and system.path(UNIT_PATH).is_file() and not writable_by_service(system, state_dir):
        return [Finding("error", f"[state] dir = {state_dir} is outside the service's StateDirectory {STATE_DIR}: "
                                 "under ProtectSystem=strict the service cannot write there, so it cannot keep the "
                                 "setpoint and latched faults (it latches a state fault)",
                        f"use the default ({STATE_DIR}), or let it write there: sudo systemctl edit stonewarmer, "
                        f"add [Service] ReadWritePaths={state_dir}, then sudo systemctl restart stonewarmer")]
    if not state_dir.is_dir():
        return [Finding("warn", f"state dir {state_dir} does not exist yet",
                        "the service creates it at start (StateDirectory=); for a manual run: "
                        f"sudo install -d -o {USER} {state_dir}")]
    out = []
    try:
        fd, tmp = tempfile.mkstemp(prefix=".check-", dir=state_dir)
        os.close(fd)
        os.unlink(tmp)
        out.append(Finding("ok", f"state dir {state_dir} writable"))
    except OSError as exc:
        readonly = hasattr(os, "statvfs") and os.statvfs(state_dir).f_flag & os.ST_RDONLY
        out.append(Finding("error", f"state dir {state_dir} not writable ({exc.strerror}"
                                    + (", read-only file system" if readonly else "") + "): "
                                    "setpoint and latched faults cannot be kept across a power cut",
                           "a read-only SD card is failing: back up and replace it" if readonly else
                           f"run this as root (sudo), or fix the owner: sudo chown {USER} {state_dir}"))
    try:
        saved = StateStore(state_dir).load()
    except StateError as exc:
        out.append(Finding("error", f"{exc}",
                           "at start it is set aside and the heater stays off until the fault is acknowledged"))
        return out
    out.append(bath_finding(cfg, saved))
    return out


def bath_finding(cfg: cfgmod.Config, saved: dict) -> Finding:
    """What the warmer has learned about its bath, in a therapist's words."""
    from controller.core.bath_model import BathModel

    try:
        model = BathModel.from_dict(saved["bath"]) if saved.get("bath") is not None else BathModel()
    except ValueError as exc:
        return Finding("warn", f"the learned bath in the state file is not usable ({exc})",
                       "it is learned afresh on the next warm-up")
    too_weak = model.too_weak_message(saved.get("setpoint_c", cfg.control.setpoint_c))
    if too_weak:
        return Finding("warn", f"bath: {too_weak}")
    return Finding("ok", f"bath: {model.describe(power_w=cfg.heater.power_w)}")


def password_findings(cfg: cfgmod.Config) -> list[Finding]:
    from web import web_state_dir
    from web.credentials import HOW_TO_SET, CredentialStore  # the dashboard's own reading of its file

    left = web_files.old_layout(cfg.state.dir)
    if left:
        return [Finding("error", web_files.advice(cfg.state.dir, left, "the upgrade has not moved them"))]
    store = CredentialStore(web_state_dir(cfg.state.dir))
    try:
        password_set = store.password_set
    except PermissionError:
        return [Finding("warn", f"cannot read {store.path} to check the password", "run the check with sudo")]
    if store.problem:
        return [Finding("error", store.problem, HOW_TO_SET)]
    if not password_set:
        return [Finding("error", "no dashboard password set: nobody can change the setpoint from the dashboard",
                        HOW_TO_SET)]
    return [Finding("ok", "dashboard password set")]


def diagnose(system: System, config_path: Path) -> list[tuple[str, list[Finding]]]:
    cfg, config = load_config(config_path)
    _, boot_text = _boot_config(system)
    strict = boot_text is not None and "dtparam=strict_gpiod" not in boot_lines_missing(boot_text)
    return [
        ("Config", config),
        ("1-Wire", one_wire_findings(system, cfg)),
        ("Probes", probe_findings(cfg)),
        ("Relay", relay_findings(cfg, one_wire_pin=one_wire_gpio(boot_text), strict_gpiod=strict)
         + strict_gpiod_findings(system) + gpio_library_findings(system)),
        ("Clock", clock_findings(system)),
        ("State", state_findings(cfg, system)),
        ("Dashboard", password_findings(cfg)),
        ("Network", network_name_findings(system, port=cfg.web.port)),
        ("Service", service_findings(system) + watchdog_findings(system)),
    ]
