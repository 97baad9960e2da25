"""``stonewarmer run``: the controller, its control thread and the web server in one process.

The control loop runs on its own thread and never waits on the web. The main
thread only waits for a signal. Whatever ends the process, the relay is
driven off here first (SIGTERM and SIGINT are handled, not left to atexit),
and systemd's ``ExecStopPost=stonewarmer relay-off`` covers what Python cannot
(SIGKILL, a watchdog abort).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from . import config as cfgmod
from .clock import MonotonicClock, ScaledClock
from .loop import Controller, run_forever
from .probe import ThreadedProbeSource, W1Probe

log = logging.getLogger("stonewarmer")

SIM_PIN_DIR = "sim-gpio"  # under the state dir: the simulated relay pin, readable by relay-off


@dataclass
class Runtime:
    """What ``run`` built: the controller, and the simulation behind it if any."""

    cfg: cfgmod.Config
    controller: Controller
    simulation: object | None = None

    def before_tick(self, dt_s: float) -> None:
        if self.simulation is not None:
            self.simulation.sync(dt_s)


def build(cfg: cfgmod.Config, *, simulate: bool, plant: str = "reference", speed: float = 1.0,
          injections=()) -> Runtime:
    """Build the controller on real hardware, or on the simulated bath."""
    if simulate:
        from .plant import load_plant
        from .simulation import Simulation

        clock = ScaledClock(speed) if speed != 1.0 else MonotonicClock()
        state_dir = Path(cfg.state.dir)
        sim = Simulation(cfg, make_plant=load_plant(plant), clock=clock, workdir=state_dir / "sim",
                         mirror_dir=state_dir / SIM_PIN_DIR, atomic_files=True,
                         injections=list(injections))
        return Runtime(sim.cfg, sim.controller, sim)
    clock = MonotonicClock()
    primary = ThreadedProbeSource(W1Probe(w1_dir=cfg.probe.w1_dir, sensor_id=cfg.probe.id),
                                  clock=clock, timeout_s=cfg.probe.read_timeout_s)
    secondary = None
    if cfg.probe.safety_id:
        secondary = ThreadedProbeSource(W1Probe(w1_dir=cfg.probe.w1_dir, sensor_id=cfg.probe.safety_id),
                                        clock=clock, timeout_s=cfg.probe.read_timeout_s)
    controller = Controller(cfg, clock=clock, primary=primary, secondary=secondary)
    return Runtime(cfg, controller)


def serve(cfg: cfgmod.Config, *, simulate: bool = False, plant: str = "reference", speed: float = 1.0,
          injections=(), host: str | None = None, port: int | None = None) -> int:
    """Run until SIGTERM/SIGINT. Return the exit status."""
    runtime = build(cfg, simulate=simulate, plant=plant, speed=speed, injections=injections)
    controller = runtime.controller
    stop = threading.Event()
    failure: list[BaseException] = []

    def control_thread() -> None:
        try:
            run_forever(controller, stop, before_tick=runtime.before_tick)
        except BaseException as exc:  # noqa: BLE001 - any failure must end in heater off
            failure.append(exc)
            log.exception("control loop failed; heater off, exiting")
            controller.interlock.relay.off(controller.clock.monotonic())
            stop.set()

    def on_signal(signum, _frame) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from web import attach

    web = attach(controller, runtime.cfg)
    from . import mqtt  # [mqtt]: status, commands, Home Assistant discovery (controller/mqtt.py)

    bridge = mqtt.attach(controller, runtime.cfg)
    thread = threading.Thread(target=control_thread, name="control", daemon=True)
    thread.start()
    web.start(host or runtime.cfg.web.host, port or runtime.cfg.web.port)
    bridge.start()
    print(f"stonewarmer: dashboard at {web.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        thread.join(timeout=3.0)
        controller.close()  # heater off before anything else can fail
        web.stop()
        bridge.stop()
    return 1 if failure else 0
