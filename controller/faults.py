"""The fault-injection matrix: every failure we can imagine, in a closed loop on the reference bath.

Each case injects one fault at warm-up (t = 300 s, heating at full power) and at
hold (t = 2400 s, holding 52 degC) and reports: how long until the relay pin was
off, the fault reported, the peak *true* water temperature, and the events
recorded. A case passes when the relay was off within the interlock's promise
for that fault, the right fault (or, for a disturbance, none) was reported and
the water stayed below the cutoff. Run it with ``stonewarmer bench --faults``.

Process-level faults (SIGTERM, SIGKILL, a broken config) are in the test suite,
where a real ``stonewarmer run`` process is started and killed.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from . import config as cfgmod
from . import safety
from .simulation import Injection, Simulation
from .state import StateStore

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
    # The safety probe drifts upward 0.1 degC/s (a failing sensor or water ingress).
    if sim.t_s >= t_inj:
        sim.second_offset_c = 0.1 * (sim.t_s - t_inj)


def _stones_returned(sim: Simulation, t_inj: float) -> None:
    if sim.t_s == t_inj:
        sim.plant.return_stones(2.0, 35.0)
    if sim.t_s == t_inj + 1200:
        sim.plant.return_stones(2.5, 33.0)


def _lid_open(sim: Simulation, t_inj: float) -> None:
    if hasattr(sim.plant, "set_lid"):
        sim.plant.set_lid(t_inj <= sim.t_s < t_inj + 90)


def _wall_clock_jumps(sim: Simulation, t_inj: float) -> None:
    steps = {0: 3600.0, 60: -7200.0, 120: 0.5, 121: -0.25, 600: 3600.0}  # +-1 h, NTP slews and steps
    if sim.t_s - t_inj in steps:
        sim.clock.wall_offset_s += steps[sim.t_s - t_inj]


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
    Case("probe unplugged", (safety.SENSOR,), 1.0, (("unplug", math.inf),)),
    Case("CRC failures", (safety.SENSOR,), 1.0, (("crc", math.inf),)),
    Case("one CRC failure", (), 1.0, (("crc", 1.0),), note="off for one tick, no latch"),
    Case("empty reads", (safety.SENSOR,), 1.0, (("empty", math.inf),)),
    Case("85.0 power-on value once", (), 1.0, (("reset85", 1.0),)),
    Case("85.0 power-on value repeatedly", (safety.SENSOR,), 1.0, (("reset85", math.inf),)),
    Case("all-zero scratchpad", (safety.SENSOR,), 1.0, (("zero", math.inf),)),
    Case("jump", (), 1.0, (("jump", 1.0),), note="one implausible reading: off for one tick"),
    Case("frozen value", (safety.SENSOR, safety.HEATING), 1200.0, (("freeze", math.inf),),
         note="150 s of full-power heat without a change; at hold ~16 min of 15 % duty"),
    Case("1-Wire read never returns", (safety.SENSOR,), 4.0, (("hang", math.inf),)),
    Case("second probe drifting", (safety.PROBE_DISAGREE,), 65.0, setup=_drift_second_probe,
         second_probe=True, note="> 3 degC apart after 30 s, then 30 s more"),
    Case("relay welded on", (safety.STUCK_RELAY,), 180.0, (("stuck-relay", math.inf),), alarm_only=True,
         note="the pin goes off but the element stays on: the alarm says unplug it"),
    Case("element dead", (safety.HEATING,), math.inf, (("dead-element", math.inf),),
         note="safe (the bath cools); reported by the heating watch once 5 degC below target"),
    Case("probe lifted out of the water", (safety.HEATING, safety.SENSOR), 60.0, (("lifted", math.inf),)),
    Case("stones returned cold", (), math.inf, setup=_stones_returned, phases=("hold",),
         note="a disturbance, not a fault"),
    Case("lid open 90 s", (), math.inf, setup=_lid_open, phases=("hold",)),
    Case("wall clock jumps +-1 h and NTP steps", (), math.inf, setup=_wall_clock_jumps),
    Case("state dir full, then CRC failures", (safety.SENSOR,), 31.0, setup=_state_dir_full,
         note="latches in memory, reports the disk"),
)


def run_case(case: Case, phase: str, *, observe_s: float = OBSERVE_S, seed: int = 1) -> Result:
    t_inj = PHASES[phase]
    cfg = cfgmod.Config()
    if case.second_probe:
        cfg = cfgmod.replace(cfg, "probe", safety_id="second")
    injections = [Injection(kind, t_inj, dur) for kind, dur in case.injections]
    hook = (lambda sim, _row: case.setup(sim, t_inj)) if case.setup else None
    sim = Simulation(cfg, injections=injections, seed=seed, on_step=hook)
    try:
        sim.run(t_inj + observe_s)
        return _judge(case, phase, sim, t_inj)
    finally:
        sim.close()


def _judge(case: Case, phase: str, sim: Simulation, t_inj: float) -> Result:
    abs_inj = sim.t0 + t_inj
    cutoff_c = sim.cfg.control.cutoff_c
    on_at_inj = bool([lvl for t, lvl in sim.pin.changes if t <= abs_inj][-1:] == [True])
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


def format_table(results: list[Result]) -> str:
    def fmt(v, spec):
        return "-" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{v:{spec}}"

    head = (f"{'fault':38} {'phase':8} {'relay off':>9} {'promise':>7} {'tripped':>8} "
            f"{'reported':16} {'peak water':>10} {'events':>6}  result")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.case:38} {r.phase:8} {fmt(r.relay_off_after_s, '.0f'):>8}s {fmt(r.promise_s, '.0f'):>6}s "
            f"{fmt(r.extra.get('fault_t_s'), '.0f'):>7}s {r.fault or 'none':16} {r.peak_water_c:>8.2f} C "
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


