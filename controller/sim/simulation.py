"""Closed-loop simulation of a stone bath through the real code path.

Each simulated second: the plant advances with whatever the relay *pin* says
(a gpiozero mock pin), the probe temperature is written as a kernel-format
``w1_slave`` file (quantised, with noise), and the controller ticks, reading it
back through w1thermsensor. Faults are injected into the file, the pin or the
plant (:data:`INJECTIONS`); what a person does (acknowledge, change the setpoint)
happens at set times (:data:`ACTIONS`).
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.core.events import EventKind
from controller.core.faults import FaultKind
from controller.core.interfaces import Clock, ProbeSource
from controller.core.loop import CommandError, Controller
from controller.core.probe import RawRead, ReadingKind, SyncProbeSource, W1Probe
from controller.core.state import StateStore
from controller.core.status import Mode
from controller.sim.fake_w1 import ZERO_TEXT, FakeW1Tree, w1_slave_text
from controller.sim.plant import PROBE_AIR_TAU_S, PlantFactory, StoneBath, full_power_time_s
from controller.sim.ready_by import ready_by_config, ready_wall_start_s
from controller.sim.simpins import ClockedMockFactory

log = logging.getLogger(__name__)

PRIMARY_ID = "0000075a1f2b"
SECONDARY_ID = "0000075a9c3d"
NOISE_C = 0.03          # probe noise (1 sigma) before 1/16 degC quantisation
SETTLE_S = 900.0        # hold figures start this long after the bath first reaches the band
WARM_BAND_C = 0.5       # "warmed up" = probe within this of the setpoint
LINGER_S = 100.0        # an unplugged sensor's directory lingers this long (reads fail)

#: name -> default duration in s (inf: until the end). ``KIND@S`` or ``KIND@S:DUR``.
INJECTIONS = {
    "unplug": math.inf,        # reads fail, then the slave directory disappears
    "crc": 1.0,                # the kernel's CRC check says NO
    "empty": 1.0,              # empty file (the kernel gave up after retries)
    "reset85": 1.0,            # the 85.0 degC power-on value
    "zero": 1.0,               # all-zero scratchpad
    "freeze": math.inf,        # the file stops changing
    "jump": 1.0,               # one reading 15 degC off
    "stuck-relay": math.inf,   # the heater runs whatever the pin says (welded contact)
    "dead-element": math.inf,  # the heater never heats
    "lifted": math.inf,        # probe out of the water: it cools toward the room
    "hang": math.inf,          # the 1-Wire read never returns (as the Pi's threaded reader sees it)
    "stall": math.inf,         # the control loop itself blocks (a deadlock): only the watchdog sees it
    "stuck": math.inf,         # stuck=C: the probe reads C from then on (a believable value, or 0.0)
}
#: What a person does at ``SECONDS:ACTION``: acknowledge the fault, set the temperature, switch off or on.
ACTIONS = ("ack", "setpoint=C", "off", "on")


@dataclass(frozen=True, slots=True)
class Injection:
    kind: str
    at_s: float
    duration_s: float
    value_c: float = 0.0  # stuck: what the probe reads

    def active(self, t_s: float) -> bool:
        return self.at_s <= t_s < self.at_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Action:
    """Something a person does at ``at_s``: ``ack`` (acknowledge the fault), ``setpoint`` (to ``value_c``),
    ``off`` or ``on``."""

    at_s: float
    kind: str
    value_c: float = 0.0


def parse_action(text: str) -> Action:
    """``SECONDS:ACTION``, ACTION ``ack``, ``setpoint=C``, ``off`` or ``on`` (SECONDS: 90, 15m, 2h)."""
    at, sep, action = text.partition(":")
    name, _, value = action.partition("=")
    try:
        at_s = parse_duration(at) if sep else math.nan
    except ValueError:
        at_s = math.nan
    if not math.isfinite(at_s) or at_s < 0:
        raise ValueError(f"--at {text!r}: expected SECONDS:ACTION with SECONDS a time >= 0 (90, 15m, 2h)")
    if name in ("ack", "off", "on") and not value:
        return Action(at_s, name)
    if name == "setpoint" and value:
        try:
            return Action(at_s, "setpoint", float(value))
        except ValueError:
            pass
    raise ValueError(f"--at {text!r}: ACTION must be one of {', '.join(ACTIONS)} (C in degC)")


def parse_injection(text: str) -> Injection:
    """``KIND@SECONDS`` or ``KIND@SECONDS:DURATION`` (seconds, ``inf`` allowed); ``stuck=C@SECONDS``."""
    kind, sep, rest = text.partition("@")
    kind, has_value, value = kind.partition("=")
    if not sep or kind not in INJECTIONS or bool(has_value) != (kind == "stuck") or (kind == "stuck") != bool(value):
        raise ValueError(f"--inject {text!r}: expected KIND@SECONDS with KIND one of "
                         f"{', '.join(INJECTIONS)} (stuck=C: the probe reads C degC)")
    try:
        value_c = float(value) if value else 0.0
    except ValueError:
        raise ValueError(f"--inject {text!r}: stuck=C needs C in degC") from None
    at, _, dur = rest.partition(":")
    try:
        at_s = parse_duration(at)
        duration_s = parse_duration(dur) if dur else INJECTIONS[kind]
    except ValueError:
        raise ValueError(f"--inject {text!r}: SECONDS must be a number of seconds (or 10m, 2h)") from None
    if at_s < 0 or duration_s <= 0:
        raise ValueError(f"--inject {text!r}: the time must be >= 0 and the duration > 0")
    return Injection(kind, at_s, duration_s, value_c)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``4h`` or ``inf`` -> seconds."""
    text = text.strip().lower()
    if text == "inf":
        return math.inf
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:])
    value = float(text[:-1] if scale else text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value * (scale or 1.0)


@dataclass(slots=True)
class TraceRow:
    t_s: float
    probe_c: float         # true temperature at the probe tip
    reading_c: float | None  # what the controller has as its valid reading
    water_c: float | None  # true water temperature, if the plant exposes it
    setpoint_c: float
    duty: float
    relay: bool            # the relay pin (what the heater sees, before injected faults)
    mode: Mode
    fault: FaultKind | None


@dataclass
class Summary:
    duration_s: float
    setpoint_c: float
    full_power_s: float | None
    warmup_s: float | None
    warmup_ratio: float | None
    overshoot_c: float | None
    hold_max_c: float | None
    hold_rms_c: float | None
    switch_ons_per_hour: float | None
    energy_kwh: float | None
    peak_probe_c: float
    peak_water_c: float | None
    faults: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Simulation:
    """A controller on a simulated bath. Call :meth:`step` or :meth:`run`; close it (or use
    ``with Simulation(...) as sim:``)."""

    def __init__(self, cfg: cfgmod.Config | None = None, *, make_plant: PlantFactory = StoneBath,
                 injections: Sequence[Injection] = (), seed: int = 1, noise_c: float = NOISE_C,
                 workdir: str | Path | None = None, on_step: Callable[[Simulation, TraceRow], None] | None = None,
                 clock: Clock | None = None, mirror_dir: str | Path | None = None, atomic_files: bool = False,
                 keep_trace: bool = True, actions: Sequence[Action] = (), ready_at_s: float | None = None) -> None:
        self._tmp = None
        self._unstall = threading.Event()  # set by close(): a stalled loop may end
        if workdir is None:
            # tmpfs where there is one: the simulator rewrites the probe file every tick
            shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
            self._tmp = tempfile.TemporaryDirectory(prefix="stonewarmer-sim-", dir=shm)
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        cfg = cfg or cfgmod.Config()
        w1_dir = self.workdir / "w1"
        # A simulation never touches the real warmer's state: with the default [state] dir it
        # keeps its state in the work dir; only a dir chosen on purpose (--state-dir) is used.
        state_dir = self.workdir / "state" if cfg.state.dir == cfgmod.StateConfig().dir else Path(cfg.state.dir)
        cfg = cfgmod.replace(cfg, "probe", w1_dir=str(w1_dir), id=PRIMARY_ID,
                             safety_id=SECONDARY_ID if cfg.probe.safety_id else "")
        cfg = cfgmod.replace(cfg, "state", dir=str(state_dir))
        if ready_at_s is not None:  # a "ready by" at that simulated second, on a wall clock that puts it on the minute
            clock = clock or SimClock(wall_start_s=ready_wall_start_s(ready_at_s, wall_start_s=SimClock().wall(),
                                                                      state_dir=state_dir))
            cfg = ready_by_config(cfg, clock.wall() + ready_at_s)
        self.cfg = cfg
        self.make_plant = make_plant
        self.plant = make_plant()
        self.injections = list(injections)
        self.rng = random.Random(seed)
        self.noise_c = noise_c
        self.clock = clock or SimClock()
        self.t0 = self.clock.monotonic()
        self.tree = FakeW1Tree(w1_dir, atomic=atomic_files)
        self.has_second = bool(cfg.probe.safety_id)
        self.second_offset_c = 0.0  # what the second probe reads above the first (a drifting probe)
        self._frozen_text: dict[str, str] = {}
        self._lifted_c: float | None = None
        self._write_probes(0.0)
        self.factory = ClockedMockFactory(self.clock, mirror_dir=mirror_dir)
        primary = _HangableSource(SyncProbeSource(W1Probe(w1_dir=w1_dir, sensor_id=PRIMARY_ID)),
                                  hung=lambda: self._active("hang", self.t_s),
                                  timeout_s=cfg.probe.read_timeout_s)
        secondary = (SyncProbeSource(W1Probe(w1_dir=w1_dir, sensor_id=SECONDARY_ID))
                     if self.has_second else None)
        self.controller = Controller(cfg, clock=self.clock, primary=primary, secondary=secondary,
                                     pin_factory=self.factory, store=StateStore(state_dir))
        if ready_at_s is not None:
            self.controller.switch_off(source="simulation")  # ... and the schedule switches it on
        self.pin = self.factory.pin(cfg.relay.pin)
        self.active_high = cfg.relay.active_high
        self.trace: list[TraceRow] = []
        self.keep_trace = keep_trace
        self.on_step = on_step
        self._actions = sorted(actions, key=lambda a: a.at_s)
        self.actions_done: list[tuple[float, str, str]] = []  # (t_s, action, outcome)

    # -- one simulated second ------------------------------------------------------------
    @property
    def t_s(self) -> float:
        return self.clock.monotonic() - self.t0

    def relay_pin_on(self) -> bool:
        return bool(self.pin.state) == self.active_high

    def heater_on(self) -> bool:
        """What the element gets: the pin, unless a fault is injected in the relay or element."""
        t = self.t_s
        if self._active("stuck-relay", t):
            return True
        if self._active("dead-element", t):
            return False
        return self.relay_pin_on()

    def sync(self, dt_s: float) -> None:
        """Advance the bath by ``dt_s`` with the heater as it is, and write the probe files.

        The ``stall`` injection blocks here, on the control thread of ``run --simulate``
        (a real clock), for its duration: no tick, no watchdog ping, the pin as it was.
        """
        stall = next((i for i in self.injections if i.kind == "stall" and i.active(self.t_s)), None)
        if stall is not None:
            log.error("injected stall: the control loop blocks now (%.0f s after start)", self.t_s)
            until_s = self.t0 + stall.at_s + stall.duration_s
            if math.isinf(until_s):
                self._unstall.wait()
            else:
                self.clock.sleep_until(until_s, self._unstall)
        self.plant.advance(dt_s, self.heater_on())
        self._write_probes(self.t_s)

    def step(self, dt_s: float = 1.0) -> TraceRow:
        """Advance simulated time by ``dt_s`` (s) and tick once; needs the default :class:`SimClock`."""
        if not isinstance(self.clock, SimClock):
            raise TypeError("Simulation.step advances a SimClock; with a real clock call sync() each tick")
        heater = self.heater_on()
        self.clock.advance(dt_s)
        self.plant.advance(dt_s, heater)
        self._write_probes(self.t_s)
        while self._actions and self._actions[0].at_s <= self.t_s:
            self._act(self._actions.pop(0))
        status = self.controller.tick()
        row = TraceRow(self.t_s, self.plant.probe_c(), status.temperature_c,
                       getattr(self.plant, "water_c", None), status.setpoint_c, status.duty,
                       self.relay_pin_on(), status.mode, status.fault)
        if self.keep_trace:  # a days-long soak checks each row in on_step instead of keeping them
            self.trace.append(row)
        if self.on_step:
            self.on_step(self, row)
        return row

    def _act(self, action: Action) -> None:
        """Do what the person does; a refusal is kept in :attr:`actions_done` with its reason."""
        try:
            if action.kind == "ack":
                fault = self.controller.acknowledge_fault(source="simulation")
                outcome = f"acknowledged {fault.kind}"
            elif action.kind in ("off", "on"):
                switch = self.controller.switch_off if action.kind == "off" else self.controller.switch_on
                changed = switch(source="simulation")
                outcome = f"switched {action.kind}" if changed else f"already {action.kind}"
            else:
                outcome = f"setpoint {self.controller.set_setpoint(action.value_c, source='simulation'):g} degC"
        except CommandError as exc:
            outcome = f"refused: {exc}"
        self.actions_done.append((self.t_s, action.kind, outcome))

    def run(self, duration_s: float) -> list[TraceRow]:
        end = self.t_s + duration_s
        while self.t_s < end - 1e-9:
            self.step()
        return self.trace

    def close(self) -> None:
        """Heater off, pin released, probe files removed (a work dir of its own)."""
        self._unstall.set()
        self.controller.close()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self) -> Simulation:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the probe files -------------------------------------------------------------------
    def _active(self, kind: str, t_s: float) -> bool:
        return any(i.kind == kind and i.active(t_s) for i in self.injections)

    def _write_probes(self, t_s: float) -> None:
        true_c = self.plant.probe_c()
        if self._active("lifted", t_s):
            room_c = getattr(self.plant, "room_c", 21.0)
            tau_s = getattr(getattr(self.plant, "params", None), "probe_air_tau_s", PROBE_AIR_TAU_S)
            if self._lifted_c is None:
                self._lifted_c, self._lifted_t_s = true_c, t_s
            dt = t_s - self._lifted_t_s
            self._lifted_c += (room_c - self._lifted_c) * dt / (tau_s + dt)
            self._lifted_t_s = t_s
            true_c = self._lifted_c
        self._write_one(PRIMARY_ID, true_c, t_s)
        if self.has_second:
            self._write_one(SECONDARY_ID, true_c + self.second_offset_c, t_s, faults=False)

    def _write_one(self, sensor_id: str, true_c: float, t_s: float, *, faults: bool = True) -> None:
        reading = true_c + self.rng.gauss(0.0, self.noise_c) if self.noise_c else true_c
        if faults:
            for inj in self.injections:
                if not inj.active(t_s):
                    continue
                if inj.kind == "unplug":
                    if t_s - inj.at_s >= LINGER_S:
                        self.tree.unplug(sensor_id)
                    else:
                        self.tree.write_text(sensor_id, "")
                    return
                if inj.kind == "stuck":
                    self.tree.write(sensor_id, inj.value_c)
                    return
                if inj.kind == "freeze":
                    text = self._frozen_text.setdefault(sensor_id, self.tree.path(sensor_id).read_text())
                    self.tree.write_text(sensor_id, text)
                    return
                special = {"crc": w1_slave_text(reading, crc_ok=False), "empty": "",
                           "reset85": w1_slave_text(85.0), "zero": ZERO_TEXT,
                           "jump": w1_slave_text(reading + 15.0)}.get(inj.kind)
                if special is not None:
                    self.tree.write_text(sensor_id, special)
                    return
        self.tree.write(sensor_id, reading)


class _HangableSource:
    """Wraps the simulator's probe source; while ``hung()`` it behaves as the Pi's
    :class:`~controller.core.probe.ThreadedProbeSource` does over a read that never
    returns: nothing for ``timeout_s``, then a TIMEOUT reading every poll.
    (The threaded source itself is tested with a really blocking read.)"""

    def __init__(self, source: ProbeSource, *, hung: Callable[[], bool], timeout_s: float) -> None:
        self.source = source
        self.hung = hung
        self.timeout_s = timeout_s
        self._hung_since_s: float | None = None

    def poll(self, now_s: float) -> RawRead | None:
        if not self.hung():
            self._hung_since_s = None
            return self.source.poll(now_s)
        if self._hung_since_s is None:
            self._hung_since_s = now_s
        if now_s - self._hung_since_s > self.timeout_s:
            return RawRead(ReadingKind.TIMEOUT, None, None, now_s)
        return None

    def close(self) -> None:
        self.source.close()


def summarize(sim: Simulation, *, setpoint_c: float | None = None, full_power_s: float | None = None,
              hold_until_s: float | None = None) -> Summary:
    """Control-quality figures from a finished simulation's trace.

    Measured on the true probe-tip temperature (not the noisy reading).
    warm-up: first time within WARM_BAND_C of the setpoint; overshoot: highest
    probe temperature above the setpoint before ``hold_until_s``; hold band:
    from SETTLE_S after warm-up to ``hold_until_s`` (default: the end).
    """
    trace = sim.trace
    sp = setpoint_c if setpoint_c is not None else sim.cfg.control.setpoint_c
    end = hold_until_s if hold_until_s is not None else (trace[-1].t_s if trace else 0.0)
    warm = next((r.t_s for r in trace if r.probe_c >= sp - WARM_BAND_C), None)
    if full_power_s is None:
        full_power_s = full_power_time_s(sim.make_plant, sp - WARM_BAND_C)
    overshoot = hold_max = hold_rms = per_hour = None
    if warm is not None:
        before_end = [r for r in trace if warm <= r.t_s <= end]
        overshoot = max(0.0, max(r.probe_c for r in before_end) - sp) if before_end else None
        held = [r for r in before_end if r.t_s >= warm + SETTLE_S]
        if held:
            errors = [r.probe_c - sp for r in held]
            hold_max = max(abs(e) for e in errors)
            hold_rms = math.sqrt(sum(e * e for e in errors) / len(errors))
            ons = sum(1 for a, b in zip(held, held[1:]) if b.relay and not a.relay)
            hours = (held[-1].t_s - held[0].t_s) / 3600.0
            per_hour = ons / hours if hours > 0 else None
    energy = getattr(sim.plant, "energy_j", None)
    waters = [r.water_c for r in trace if r.water_c is not None]
    faults = [e.to_dict() for e in sim.controller.events.since(0) if e.kind == EventKind.FAULT]
    for f in faults:
        f["t_s"] = f["monotonic_s"] - sim.t0
    return Summary(
        duration_s=trace[-1].t_s if trace else 0.0,
        setpoint_c=sp,
        full_power_s=full_power_s if math.isfinite(full_power_s) else None,
        warmup_s=warm,
        warmup_ratio=(warm / full_power_s) if warm is not None and full_power_s else None,
        overshoot_c=overshoot,
        hold_max_c=hold_max,
        hold_rms_c=hold_rms,
        switch_ons_per_hour=per_hour,
        energy_kwh=energy / 3.6e6 if energy is not None else None,
        peak_probe_c=max((r.probe_c for r in trace), default=math.nan),
        peak_water_c=max(waters) if waters else None,
        faults=faults,
    )
