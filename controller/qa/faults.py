"""The fault-injection matrix: every failure we can imagine, in a closed loop on the reference bath.

Each case injects one fault at warm-up (t = 300 s, heating at full power) and at
hold (holding 52 degC: one second into the first heating pulse after t = 2400 s)
and reports: how long until the relay pin was off, the fault reported, the peak
*true* water temperature, and the events recorded. A case passes when the relay was off within the interlock's promise
for that fault, the right fault (or, for a disturbance, none) was reported and
the water stayed below the cutoff. Run it with ``stonewarmer bench --faults``.

Process-level faults (SIGTERM, SIGKILL and a restart, a broken config, a corrupt
state file) run real ``stonewarmer run --simulate`` processes (:data:`PROCESS_CASES`):
the simulated relay pin is a file, so its state is seen across processes.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.core import config as cfgmod
from controller.core.faults import FaultKind
from controller.core.state import STATE_FILE, StateStore
from controller.qa.processes import command, free_port, relay_pin, stop, wait_until
from controller.qa.simulated import sim_clock, stone_bath
from controller.sim.simulation import Injection, Simulation

PHASES = {"warm-up": 300.0, "hold": 2400.0}
OBSERVE_S = 1500.0     # watch this long after the injection
TICK_S = 1.0


@dataclass(frozen=True)
class Case:
    """One fault. ``expect``: the fault kinds that may report it; empty = it must NOT trip."""

    name: str
    expect: tuple[str, ...]
    promise_s: float                     # relay off within this long after the injection
    injections: tuple[tuple[str, float], ...] = ()  # (kind, duration_s) at the phase time
    setup: Callable[[Simulation, float], None] | None = None  # called every step: (sim, t_inj)
    second_probe: bool = False
    phases: tuple[str, ...] = tuple(PHASES)
    note: str = ""
    # The relay cannot cut this fault (the contact is welded): the promise is then the
    # time from the first moment the interlock wanted the heater off to the alarm.
    alarm_only: bool = False


@dataclass
class Result:
    case: str
    phase: str
    relay_off_after_s: float | None      # None: the relay never had to go off
    promise_s: float
    fault: str | None
    message: str
    peak_water_c: float
    events: int
    passed: bool
    why: str = ""
    extra: dict = field(default_factory=dict)


def _drift_second_probe(sim: Simulation, t_inj: float) -> None:
    # The safety probe drifts upward 0.05 degC/s (a failing sensor or water ingress).
    if sim.t_s >= t_inj:
        sim.second_offset_c = 0.05 * (sim.t_s - t_inj)


def _stones_returned(sim: Simulation, t_inj: float) -> None:
    if sim.t_s == t_inj:
        stone_bath(sim).return_stones(2.0, 35.0)
    if sim.t_s == t_inj + 1200:
        stone_bath(sim).return_stones(2.5, 33.0)


def _lid_open(sim: Simulation, t_inj: float) -> None:
    stone_bath(sim).set_lid(t_inj <= sim.t_s < t_inj + 90)


def _wall_clock_jumps(sim: Simulation, t_inj: float) -> None:
    # +-1 h, NTP slews and steps, by seconds after the injection
    steps: dict[float, float] = {0: 3600.0, 60: -7200.0, 120: 0.5, 121: -0.25, 600: 3600.0}
    if sim.t_s - t_inj in steps:
        sim_clock(sim).wall_offset_s += steps[sim.t_s - t_inj]


class _FullDisk(StateStore):
    def save(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def _state_dir_full(sim: Simulation, t_inj: float) -> None:
    # The disk fills up, then a real fault must still latch (in memory) and be shown.
    if sim.t_s == t_inj:
        sim.controller.store = _FullDisk(sim.controller.store.dir)
    if sim.t_s == t_inj + 30:
        sim.injections.append(Injection("crc", t_inj + 30, math.inf))


#: The matrix. Promises: a bad read turns the relay off in the tick it arrives; a hung read
#: counts as bad after read_timeout_s (3 s); the other rules after their own periods.
CASES: tuple[Case, ...] = (
    Case("probe unplugged", (FaultKind.SENSOR,), 1.0, (("unplug", math.inf),)),
    Case("CRC failures", (FaultKind.SENSOR,), 1.0, (("crc", math.inf),)),
    Case("one CRC failure", (), 1.0, (("crc", 1.0),), note="off for one tick, no latch"),
    Case("empty reads", (FaultKind.SENSOR,), 1.0, (("empty", math.inf),)),
    Case("85.0 power-on value once", (), 1.0, (("reset85", 1.0),)),
    Case("85.0 power-on value repeatedly", (FaultKind.SENSOR,), 1.0, (("reset85", math.inf),)),
    Case("all-zero scratchpad", (FaultKind.SENSOR,), 1.0, (("zero", math.inf),)),
    Case("jump", (), 1.0, (("jump", 1.0),), note="one implausible reading: off for one tick"),
    Case("frozen value", (FaultKind.SENSOR, FaultKind.HEATING), 1200.0, (("freeze", math.inf),),
         note="150 s of full-power heat without a change; at hold ~16 min of 15 % duty"),
    Case("1-Wire read never returns", (FaultKind.SENSOR,), 4.0, (("hang", math.inf),)),
    Case("second probe drifting", (FaultKind.PROBE_DISAGREE,), 100.0, setup=_drift_second_probe,
         second_probe=True, note="> 3 degC apart after 60 s, then 30 s more"),
    Case("relay welded on", (FaultKind.STUCK_RELAY,), 180.0, (("stuck-relay", math.inf),), alarm_only=True,
         note="the pin goes off but the element stays on: the alarm says unplug it"),
    Case("element dead", (FaultKind.HEATING,), math.inf, (("dead-element", math.inf),),
         note="safe (the bath cools); reported by the heating watch once 5 degC below target"),
    Case("probe lifted out of the water", (FaultKind.HEATING, FaultKind.SENSOR), 90.0, (("lifted", math.inf),),
         note="the energy budget: heat for ~1 degC of water the probe did not show, ~1 min at full power"),
    Case("stones returned cold", (), math.inf, setup=_stones_returned, phases=("hold",),
         note="a disturbance, not a fault"),
    Case("lid open 90 s", (), math.inf, setup=_lid_open, phases=("hold",)),
    Case("wall clock jumps +-1 h and NTP steps", (), math.inf, setup=_wall_clock_jumps),
    Case("state dir full, then CRC failures", (FaultKind.SENSOR,), 31.0, setup=_state_dir_full,
         note="latches in memory, reports the disk"),
)


def _config(second_probe: bool) -> cfgmod.Config:
    cfg = cfgmod.Config()
    return cfgmod.replace(cfg, "probe", safety_id="second") if second_probe else cfg


@functools.lru_cache(maxsize=8)
def injection_time_s(phase: str, *, second_probe: bool = False, seed: int = 1) -> float:
    """When to inject: at warm-up the relay is on all the time; at hold, the first second
    of a heating pulse after PHASES["hold"], so "time until the relay was off" means something.
    The run up to the injection is the same with or without it (same seed), so one look ahead
    finds the moment."""
    if phase != "hold":
        return PHASES[phase]
    sim = Simulation(_config(second_probe), seed=seed)
    try:
        sim.run(PHASES["hold"] + 2 * sim.cfg.relay.effective_window_s * 3)
        ons = [t - sim.t0 for t, level in sim.pin.changes if level and t - sim.t0 >= PHASES["hold"]]
    finally:
        sim.close()
    return ons[0] + 1.0 if ons else PHASES["hold"]


def run_case(case: Case, phase: str, *, observe_s: float = OBSERVE_S, seed: int = 1) -> Result:
    t_inj = injection_time_s(phase, second_probe=case.second_probe, seed=seed)
    cfg = _config(case.second_probe)
    injections = [Injection(kind, t_inj, dur) for kind, dur in case.injections]
    setup = case.setup
    hook = (lambda sim, _row: setup(sim, t_inj)) if setup else None
    sim = Simulation(cfg, injections=injections, seed=seed, on_step=hook)
    try:
        sim.run(t_inj + observe_s)
        return _judge(case, phase, sim, t_inj)
    finally:
        sim.close()


def _judge(case: Case, phase: str, sim: Simulation, t_inj: float) -> Result:
    abs_inj = sim.t0 + t_inj
    cutoff_c = sim.cfg.control.cutoff_c
    on_at_inj = [lvl for t, lvl in sim.pin.changes if t <= abs_inj][-1]  # the first change is the claim
    offs = [t for t, lvl in sim.pin.changes if t >= abs_inj and not lvl]
    off_after = (offs[0] - abs_inj) if (on_at_inj and offs) else (0.0 if not on_at_inj else None)
    after = [e for e in sim.controller.events.since(0) if e.monotonic_s >= abs_inj]
    faults = [e for e in after if e.kind == "fault"]
    first = faults[0] if faults else None
    peak = max((r.water_c for r in sim.trace if r.t_s >= t_inj and r.water_c is not None), default=math.nan)
    why = []
    if not case.expect:
        off_after = None if not faults else off_after
        if faults:
            why.append(f"false trip: {faults[0].fault}")
    elif first is None:
        why.append("no fault reported")
    else:
        if case.alarm_only:
            stuck = next((e for e in faults if e.fault in case.expect), None)
            wanted_off = offs[0] if offs else abs_inj
            if stuck is None:
                why.append(f"no {'/'.join(case.expect)} alarm")
            elif stuck.monotonic_s - wanted_off > case.promise_s:
                why.append(f"alarm {stuck.monotonic_s - wanted_off:.0f} s after the heater should have "
                           f"gone off > promised {case.promise_s:.0f} s")
        elif first.fault not in case.expect:
            why.append(f"reported {first.fault}, expected {'/'.join(case.expect)}")
        if off_after is None:
            why.append("relay never went off")
        elif not case.alarm_only and off_after > case.promise_s:
            why.append(f"relay off after {off_after:.0f} s > promised {case.promise_s:.0f} s")
        if not case.alarm_only and peak >= cutoff_c:
            why.append(f"water reached {peak:.1f} degC")
    if sim.controller.store.__class__ is _FullDisk and not sim.controller.state_problem:
        why.append("the full disk was not reported")
    return Result(case.name, phase, off_after, case.promise_s,
                  first.fault if first else None, first.message if first else "", peak, len(after),
                  not why, "; ".join(why),
                  {"fault_t_s": (first.monotonic_s - abs_inj) if first else None})


def run_matrix(cases=CASES, *, observe_s: float = OBSERVE_S) -> list[Result]:
    return [run_case(case, phase, observe_s=observe_s) for case in cases for phase in case.phases]


# -- process-level faults ----------------------------------------------------------------------
SPEED = 20.0          # simulated seconds per real second in the spawned warmers
PROCESS_TIMEOUT_S = 30.0


def _spawn(state_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(command("run", "--simulate", "--state-dir", str(state_dir), "--host", "127.0.0.1",
                                    "--port", str(port), "--speed", f"{SPEED:g}", *extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def _status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "/api/status", timeout=2) as answer:
            return json.load(answer)
    except (OSError, ValueError):
        return None


def _result(name: str, off_s: float | None, promise_s: float, fault: str | None, why: list[str],
            message: str = "") -> Result:
    return Result(name, "process", off_s, promise_s, fault, message, math.nan, 0, not why, "; ".join(why))


def _sigterm(tmp: Path) -> Result:
    state = tmp / "state"
    proc, _ = _spawn(state)
    try:
        wait_until(lambda: relay_pin(state) is True, what="heating")
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=PROCESS_TIMEOUT_S)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    why = [w for w, bad in ((f"exit status {code}", code != 0), ("relay left on", relay_pin(state)),
                            (f"took {took:.1f} s", took > 5.0)) if bad]
    return _result("SIGTERM while heating", took, 5.0, None, why, f"exit {code}")


def _sigkill_restart(tmp: Path) -> Result:
    state = tmp / "state"
    # The control process alone, as systemd runs it: run's parent would drive the pin off at once.
    proc = subprocess.Popen(command("run", "--role", "control", "--simulate", "--state-dir", str(state), "--speed",
                                    f"{SPEED:g}"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: relay_pin(state) is True, what="heating")
        proc.kill()
        proc.wait(timeout=PROCESS_TIMEOUT_S)
    finally:
        proc.kill()
    why = [] if relay_pin(state) else ["a SIGKILL cannot turn the pin off: expected it still on"]
    started = time.monotonic()  # what systemd's ExecStopPost= does next
    off = subprocess.run(command("relay-off", "--simulate", "--state-dir", str(state)), capture_output=True,
                         timeout=PROCESS_TIMEOUT_S)
    took = time.monotonic() - started
    if off.returncode != 0 or relay_pin(state) is not False:
        why.append("relay-off did not turn it off")
    proc, url = _spawn(state)  # Restart=always
    try:
        wait_until(lambda: (_status(url) or {}).get("temperature_c") is not None, what="the restarted warmer")
    finally:
        stop(proc, timeout_s=PROCESS_TIMEOUT_S)
    return _result("SIGKILL, relay-off, restart", took, 5.0, None, why, "ExecStopPost relay-off")


def _bad_config(tmp: Path) -> Result:
    state = tmp / "state"
    bad = tmp / "bad.toml"
    bad.write_text("[control]\nmax_setpoint_c = 65.0\n")
    run = subprocess.run(command("run", "--simulate", "--config", str(bad), "--state-dir", str(state)),
                         capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    why = [w for w, b in ((f"exit status {run.returncode}, expected 2", run.returncode != 2),
                          ("a traceback", "Traceback" in run.stderr),
                          ("the pin was touched", relay_pin(state) is not None)) if b]
    off = subprocess.run(command("relay-off", "--simulate", "--config", str(bad), "--state-dir", str(state)),
                         capture_output=True, timeout=PROCESS_TIMEOUT_S)
    if off.returncode != 0 or relay_pin(state) is not False:
        why.append("relay-off failed on the broken config")
    return _result("config out of range", 0.0, 0.0, None, why, run.stderr.strip())


def _corrupt_state(tmp: Path) -> Result:
    state = tmp / "state"
    state.mkdir(parents=True)
    (state / STATE_FILE).write_text('{"version": 1, "setpoint_c": 52.0, "fau')  # a power cut mid-write
    proc, url = _spawn(state)
    try:
        wait_until(lambda: (_status(url) or {}).get("temperature_c") is not None, what="the first reading")
        watched_until = time.monotonic() + 3.0   # 60 simulated seconds: it must not heat
        ever_on = False
        while time.monotonic() < watched_until:
            ever_on = ever_on or bool(relay_pin(state))
            time.sleep(0.05)
        fault = (_status(url) or {}).get("fault")
    finally:
        stop(proc, timeout_s=PROCESS_TIMEOUT_S)
    why = [w for w, b in (("heater came on", ever_on), (f"reported {fault}", fault != FaultKind.STATE)) if b]
    return _result("state file corrupt", 0.0, 0.0, fault, why, "heater off until acknowledged")


PROCESS_CASES = (_sigterm, _sigkill_restart, _bad_config, _corrupt_state)


def run_process_matrix() -> list[Result]:
    results = []
    for case in PROCESS_CASES:
        with tempfile.TemporaryDirectory(prefix="stonewarmer-fault-") as tmp:
            try:
                results.append(case(Path(tmp)))
            except (TimeoutError, subprocess.TimeoutExpired) as exc:
                results.append(_result(case.__name__.strip("_"), None, 0.0, None, [str(exc)]))
    return results


def format_table(results: list[Result]) -> str:
    def fmt(v, spec):
        return "-" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{v:{spec}}"

    head = (f"{'fault':38} {'phase':8} {'relay off':>9} {'promise':>7} {'tripped':>8} "
            f"{'reported':16} {'peak water':>10} {'events':>6}  result")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.case:38} {r.phase:8} {fmt(r.relay_off_after_s, '.1f'):>8}s {fmt(r.promise_s, '.0f'):>6}s "
            f"{fmt(r.extra.get('fault_t_s'), '.0f'):>7}s {r.fault or 'none':16} "
            f"{'-' if math.isnan(r.peak_water_c) else format(r.peak_water_c, '8.2f'):>8} C "
            f"{r.events:>6}  {'ok' if r.passed else 'FAIL: ' + r.why}")
    caught = sum(1 for r in results if r.fault)
    false_trips = sum(1 for r in results if r.why.startswith("false trip"))
    worst = max((r.relay_off_after_s for r in results
                 if r.fault and r.relay_off_after_s is not None and not math.isinf(r.promise_s)
                 and r.case != "relay welded on"), default=0)
    lines.append("")
    lines.append(f"{len(results)} runs, {sum(r.passed for r in results)} passed; faults reported in {caught}; "
                 f"false trips {false_trips}; worst time to relay off after a tripping fault {worst:.0f} s")
    return "\n".join(lines)


