"""``stonewarmer run``: the controller, its control thread and the web server in one process.

The control loop runs on its own thread and never waits on the web. The main
thread only waits for a signal. Whatever ends the process, the relay is
driven off here first (SIGTERM and SIGINT are handled, not left to atexit),
and systemd's ``ExecStopPost=stonewarmer relay-off`` covers what Python cannot
(SIGKILL, a watchdog abort).

Under systemd (``Type=notify``, config/stonewarmer.service) the control loop
itself reports to the service manager after every completed tick
(:class:`Supervisor`): ``WATCHDOG=1``, so a stalled loop is killed within
``WatchdogSec=``; ``READY=1`` once, after the first completed tick with the
dashboard listening, whatever the probe says (a warmer waiting for its probe is
up: heater off, the dashboard showing why; holding READY back would hold the
boot's ``multi-user.target`` and ``systemctl restart`` with it); ``STATUS=``
with the temperature and mode, or the probe's state while there is no valid
reading.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from controller.core import config as cfgmod
from controller.core.clock import MonotonicClock, ScaledClock
from controller.core.loop import Controller
from controller.core.probe import ThreadedProbeSource, W1Probe
from controller.core.schedule import run_forever
from controller.core.state import StateStore
from controller.core.status import Status
from controller.service.control import Commands, ControlServer, socket_path
from controller.service.sd_notify import Notifier

if TYPE_CHECKING:  # the simulator is imported only when simulating
    from controller.sim.simulation import Injection, Simulation

log = logging.getLogger("stonewarmer")

SIM_PIN_DIR = "sim-gpio"  # under the state dir: the simulated relay pin, readable by relay-off
#: How long shutdown waits for the control thread to finish its tick (s). Together with
#: the 0.5 s signal poll this keeps ``run`` well inside the 5 s stop budget.
JOIN_S = 2.0


@dataclass
class Runtime:
    """What ``run`` built: the controller, and the simulation behind it if any."""

    cfg: cfgmod.Config
    controller: Controller
    simulation: Simulation | None = None

    def before_tick(self, dt_s: float) -> None:
        if self.simulation is not None:
            self.simulation.sync(dt_s)


def build(cfg: cfgmod.Config, *, simulate: bool, plant: str = "reference", speed: float = 1.0,
          injections: Iterable[Injection] = (), store: StateStore | None = None) -> Runtime:
    """Build the controller on real hardware, or on the simulated bath.

    ``store``: where the hardware controller keeps its state (default: ``[state] dir``).
    """
    if simulate:
        from controller.sim.plant import load_plant
        from controller.sim.simulation import Simulation

        clock = ScaledClock(speed) if speed != 1.0 else MonotonicClock()
        state_dir = Path(cfg.state.dir)
        sim = Simulation(cfg, make_plant=load_plant(plant), clock=clock, workdir=state_dir / "sim",
                         mirror_dir=state_dir / SIM_PIN_DIR, atomic_files=True,
                         injections=list(injections))
        # The mirror only records changes; a claim that finds the pin already off changes
        # nothing, and a file left at "1" by a SIGKILLed run would then lie. Record it now.
        sim.factory.mirror(sim.pin)
        return Runtime(sim.cfg, sim.controller, sim)
    clock = MonotonicClock()
    primary = ThreadedProbeSource(W1Probe(w1_dir=cfg.probe.w1_dir, sensor_id=cfg.probe.id),
                                  clock=clock, timeout_s=cfg.probe.read_timeout_s)
    secondary = None
    if cfg.probe.safety_id:
        secondary = ThreadedProbeSource(W1Probe(w1_dir=cfg.probe.w1_dir, sensor_id=cfg.probe.safety_id),
                                        clock=clock, timeout_s=cfg.probe.read_timeout_s)
    controller = Controller(cfg, clock=clock, primary=primary, secondary=secondary, store=store)
    return Runtime(cfg, controller)


def status_line(status: Status) -> str:
    """One line for ``systemctl status``: temperature and mode (degC), or what the probe says."""
    if status.fault:
        temp = f"probe: {status.reading_kind}" if status.temperature_c is None else f"{status.temperature_c:.1f} degC"
        line = f"FAULT {status.fault}: heater off until acknowledged ({temp})"
    elif status.temperature_c is None:
        line = f"no valid reading (probe: {status.reading_kind}): heater off until there is one"
    else:
        heater = "on" if status.relay_on else "off"
        line = (f"{status.temperature_c:.1f} degC, {status.mode}, setpoint {status.setpoint_c:.1f} degC, "
                f"heater {heater}")
    problem = status.detail.get("state_problem")
    return f"{line}; NOT SAVED: {problem}" if problem else line


class Supervisor:
    """The control loop's report to systemd; :meth:`after_tick` is ``run_forever``'s hook.

    Called only after a tick completed (reading checked, interlock evaluated,
    relay written), so the watchdog is fed by the loop itself: if a tick hangs
    or raises, the pings stop and systemd acts. No timer thread can keep a dead
    loop looking alive.
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.web_listening = threading.Event()  # set by the main thread once the server is bound
        self.ready_sent = False
        self._last_line: str | None = None

    def after_tick(self, status: Status) -> None:
        fields: dict[str, object] = {}
        if not self.ready_sent and self.web_listening.is_set():
            fields["READY"] = 1
        fields["WATCHDOG"] = 1
        line = status_line(status)
        if line != self._last_line:
            fields["STATUS"] = line
        if self.notifier.send(**fields):  # not sent (queue full): all of it again next tick
            self.ready_sent = self.ready_sent or "READY" in fields
            self._last_line = line


def serve(cfg: cfgmod.Config, *, simulate: bool = False, plant: str = "reference", speed: float = 1.0,
          injections: Iterable[Injection] = (), host: str | None = None, port: int | None = None,
          notifier: Notifier | None = None, commands: Callable[[Controller], Commands] | None = None,
          role: str = "all") -> int:
    """Run until SIGTERM/SIGINT (exit status 0) or a control-loop failure (1).

    ``commands(controller)``: what the local control socket (``control.sock`` in the state
    dir) offers, e.g. autotune as a job of the service; without it there is no socket.
    ``role``: ``"control"`` (probe, relay, interlock and the socket with the web's session;
    no web, no MQTT, no network), ``"web"`` (dashboard, MQTT, notifications, the controller
    reached over the control socket; its files in ``<state dir>/web``) or ``"all"`` (both
    in one process: the tests).
    """
    if role == "web":
        return _serve_web(cfg, host=host, port=port, notifier=notifier or Notifier())
    try:  # a watchdog abort (WatchdogSignal=SIGABRT) then logs every thread's stack to the journal
        faulthandler.enable(file=sys.stderr, all_threads=True)
    except (AttributeError, ValueError, OSError):
        pass  # no real stderr to write to (embedded use)
    # Before anything touches the pin: a SIGTERM during start-up must stop us cleanly too.
    stop = _stop_on_signals()
    notifier = notifier or Notifier()
    runtime = build(cfg, simulate=simulate, plant=plant, speed=speed, injections=injections)
    controller = runtime.controller
    supervisor = Supervisor(notifier)
    failure: list[BaseException] = []
    thread: threading.Thread | None = None
    # What to stop on the way out, in this order: each part goes in front as it is started.
    parts: list[tuple[str, Callable[[], None]]] = [("systemd notifier", notifier.close)]

    def control_thread() -> None:
        try:
            run_forever(controller, stop, before_tick=runtime.before_tick, after_tick=supervisor.after_tick)
        except BaseException as exc:  # noqa: BLE001 - any failure must end in heater off
            failure.append(exc)
            log.exception("control loop failed; heater off, exiting")
            try:
                controller.interlock.relay.off(controller.clock.monotonic())
            finally:
                stop.set()

    # From here on the relay pin is claimed: whatever fails (a bad MQTT password or CA
    # file, a port in use), the finally below drives it off and stops what was started.
    try:
        if role == "all":
            web, bridge = _attach_web(controller, runtime.cfg, parts)
        server_commands = commands(controller) if commands is not None else None
        if role == "control":  # the web process's session, beside the other commands
            from controller.service.session import SessionHub

            server_commands = (server_commands or Commands()) | SessionHub(controller).commands()
        if server_commands is not None:
            # In the config's state dir, where the CLI looks (a simulation may keep its own state deeper).
            control = ControlServer(socket_path(cfg.state.dir), server_commands)
            try:
                control.start()
            except OSError as exc:  # the warmer runs on without it
                log.error("cannot open the control socket %s: %s", control.path, exc.strerror or exc)
            else:
                parts.insert(0, ("control socket", control.stop))
        thread = threading.Thread(target=control_thread, name="control", daemon=True)
        thread.start()
        if role == "control":
            supervisor.web_listening.set()  # no dashboard here: READY after the first tick
            print(f"stonewarmer: control process, session socket {socket_path(cfg.state.dir)}", flush=True)
        else:
            host = host or runtime.cfg.web.host
            port = port or runtime.cfg.web.port
            try:
                web.start(host, port)
            except OSError as exc:
                log.error("cannot serve the dashboard on %s:%s: %s", host, port, exc.strerror or exc)
                failure.append(exc)
                stop.set()
            else:
                supervisor.web_listening.set()
                print(f"stonewarmer: dashboard at {web.url}", flush=True)
                bridge.start()
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        notifier.stopping("stopping: heater off")
        _shutdown(controller, thread, failure)
        _stop_parts(parts)  # the heater is off by now
    return 1 if failure else 0


def _attach_web(controller: Any, cfg: cfgmod.Config,
                parts: list[tuple[str, Callable[[], None]]]) -> tuple[Any, Any]:
    """The dashboard, MQTT and the phone notifications on ``controller`` (local, or over the socket)."""
    from web import attach
    from web.context import EXTENSION

    web = attach(controller, cfg)
    parts.insert(0, ("web server and history", web.stop))
    from controller.integrations import mqtt  # [mqtt]: status, commands, Home Assistant discovery

    bridge = mqtt.attach(controller, cfg)
    parts.insert(0, ("MQTT", bridge.stop))
    from controller.integrations import notify  # [notify]: the phone, from a worker thread of its own

    notes = notify.attach(controller, cfg, ntfy=web.app.extensions[EXTENSION].ntfy)  # the phone's ntfy address
    notes.start()
    parts.insert(0, ("phone notifications", notes.stop))
    return web, bridge


def _serve_web(cfg: cfgmod.Config, *, host: str | None, port: int | None, notifier: Notifier) -> int:
    """The web process: no pin, no probe; the controller is the control process behind its socket.

    Its own watchdog: ``WATCHDOG=1`` every half second while the server thread lives.
    """
    from controller.service.remote import EVENTS_CURSOR, RemoteController
    from web import web_state_dir

    path = socket_path(cfg.state.dir)
    files_problem = _move_old_web_files(cfg.state.dir)
    cfg = cfgmod.replace(cfg, "state", dir=str(web_state_dir(cfg.state.dir)))
    stop = _stop_on_signals()
    remote = RemoteController(path, cfg, events_cursor=Path(cfg.state.dir) / EVENTS_CURSOR)
    parts: list[tuple[str, Callable[[], None]]] = [("systemd notifier", notifier.close),
                                                   ("control link", remote.stop)]
    failed = False
    try:
        web, bridge = _attach_web(remote, cfg, parts)
        remote.start()  # after the history and the notifications listen: every event reaches them once
        host, port = host or cfg.web.host, port or cfg.web.port
        try:
            web.start(host, port)
        except OSError as exc:
            log.error("cannot serve the dashboard on %s:%s: %s", host, port, exc.strerror or exc)
            return 1
        print(f"stonewarmer: dashboard at {web.url} (controller at {path})", flush=True)
        bridge.start()
        notifier.send(READY=1, STATUS=files_problem or "dashboard up")
        while not stop.wait(0.5):
            if web._thread is None or not web._thread.is_alive():
                log.error("the web server stopped; exiting")
                failed = True
                break
            notifier.send(WATCHDOG=1)
    finally:
        notifier.stopping("stopping")
        _stop_parts(parts)
    return 1 if failed else 0


def _move_old_web_files(state_dir: str) -> str | None:
    """The web's files of a one-process install, moved into the web dir if this process may (the same
    user, e.g. ``stonewarmer run``); if not, the problem (logged), to be shown as the unit's status."""
    from controller.service import web_files

    try:
        for item in web_files.move_into_web_dir(state_dir) if web_files.old_layout(state_dir) else ():
            log.warning("%s into %s (the layout of two processes)", item.describe(), web_files.web_dir(state_dir))
    except OSError as exc:
        problem = web_files.advice(state_dir, web_files.old_layout(state_dir), exc.strerror or str(exc))
        log.error("%s", problem)
        return problem
    return None


def _stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (handled, not left to atexit)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _stop_parts(parts: list[tuple[str, Callable[[], None]]]) -> None:
    """Stop each part in order. One that fails to stop cleanly is logged, not allowed to skip the
    others or to turn a clean stop into a failure."""
    for name, part_stop in parts:
        try:
            part_stop()
        except Exception:  # noqa: BLE001 - shutting down: report and go on
            log.exception("stopping the %s failed", name)


def _shutdown(controller: Controller, thread: threading.Thread | None, failure: list[BaseException]) -> None:
    """Heater off and pin left driven off, even when the control thread is stuck (or never started)."""
    if thread is not None:
        thread.join(timeout=JOIN_S)
    if thread is not None and thread.is_alive():
        # A tick that never returns may hold the controller's lock: drive the pin
        # directly rather than wait for it, and report the hang.
        log.error("control loop did not finish its tick within %.0f s; heater off anyway", JOIN_S)
        failure.append(TimeoutError("control loop hung"))
        controller.interlock.relay.release(close=False)
        return
    controller.close(release_pin=False)  # the process exits next: keep the pin driven off
