"""Relay autotune: run the relay experiment through the interlock, then compute gains.

The experiment (:mod:`controller.tuning.experiment`) replaces the PID's duty
(``Controller.set_duty_override``); the safety interlock still judges every
tick, exactly as in normal operation, and any trip ends the experiment with the
heater off. The gains come from :mod:`controller.tuning.rules`; applying and
keeping them is :mod:`controller.tuning.results`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controller.core import config as cfgmod
from controller.core.guards import GUARD_ABOVE_C
from controller.core.loop import Controller
from controller.core.status import Status
from controller.tuning.experiment import GUARD_MARGIN_C, Phase, RelayExperiment
from controller.tuning.rules import DEFAULT_RULE, Result, UnusableMeasurement, usable_gains

if TYPE_CHECKING:
    from controller.sim.simulation import Simulation

CYCLES_MAX = 15              # give up after this many cycles without 3 consistent ones
RECENTRES_MAX = 3
MAX_EXPERIMENT_S = 8 * 3600.0


def limit_c(controller: Controller) -> float:
    """No peak of the experiment may reach this (degC): below the interlock's guard and the max setpoint."""
    guard_c = controller.setpoint_c + GUARD_ABOVE_C
    return min(guard_c, controller.cfg.control.max_setpoint_c) - GUARD_MARGIN_C


class AutotuneError(Exception):
    """The experiment could not finish (cancelled, interlock trip, no oscillation, no usable gains)."""

    def __init__(self, message: str, *, phase: Phase) -> None:
        super().__init__(message)
        self.phase = phase


class Session:
    """One relay experiment on ``controller``, fed one published status per completed tick.

    Creating it hands the duty to the experiment (``Controller.set_duty_override``);
    :meth:`observe` does the bookkeeping of one tick and returns the :class:`Result`
    once enough cycles agree, or raises :class:`AutotuneError`. Quick enough for the
    control thread (the service's job calls it from a tick listener). Whoever ends the
    session hands the duty back (:func:`run` switches the heater off; the job: the PID).
    """

    def __init__(self, controller: Controller, *, rule: str = DEFAULT_RULE, max_s: float = MAX_EXPERIMENT_S,
                 report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.controller = controller
        self.rule = rule
        self.max_s = max_s
        self.report = report
        self.experiment = RelayExperiment(target_c=controller.setpoint_c, limit_c=limit_c(controller))
        self.start_s = controller.clock.monotonic()
        self._last_key: tuple[Any, ...] | None = None
        controller.set_duty_override(self.experiment)

    def observe(self, status: Status) -> Result | None:
        """Account for one completed tick; the result when done. Raises :class:`AutotuneError`."""
        experiment, controller = self.experiment, self.controller
        experiment.observe(status.monotonic_s, status.temperature_c, status.relay_on)
        if status.fault:
            raise AutotuneError(f"the safety interlock tripped ({status.fault}: "
                                f"{status.fault_message}); the heater is off", phase=Phase.FAILED)
        progress = experiment.progress(status.monotonic_s, status.temperature_c)
        controller.set_detail(autotune=progress)
        key = (progress["phase"], progress["cycle"], len(experiment.cycles))
        if self.report is not None and key != self._last_key:
            self.report({**progress, "temperature_c": status.temperature_c})
        self._last_key = key
        cycles = experiment.consistent()
        if cycles is None:
            elapsed = status.monotonic_s - self.start_s
            if (len(experiment.cycles) > CYCLES_MAX or experiment.recentres > RECENTRES_MAX
                    or elapsed > self.max_s):
                raise AutotuneError(
                    f"no steady oscillation after {elapsed / 60:.0f} min and {len(experiment.cycles)} "
                    f"cycles (periods {[round(x.period_s) for x in experiment.cycles[-4:]]} s): "
                    "is the lid on and the probe in the water?", phase=Phase.FAILED)
            return None
        measurement = experiment.measure(cycles)
        try:
            gains = usable_gains(controller.cfg, measurement, self.rule)
        except UnusableMeasurement as exc:
            raise AutotuneError(f"{exc}; gains unchanged", phase=Phase.FAILED) from None
        controller.set_detail(autotune={**experiment.progress(status.monotonic_s, None),
                                        "phase": Phase.DONE, "eta_s": 0})
        return Result(measurement, self.rule, gains, controller.clock.monotonic() - self.start_s)

    def failed(self, exc: AutotuneError) -> None:
        """Show how it ended (``detail.autotune``)."""
        self.controller.set_detail(autotune={"phase": exc.phase, "message": str(exc)})


def run(controller: Controller, *, step: Callable[[], object], cancel: threading.Event | None = None,
        report: Callable[[dict[str, Any]], None] | None = None, rule: str = DEFAULT_RULE,
        max_s: float = MAX_EXPERIMENT_S) -> Result:
    """Run the relay experiment on ``controller`` and return the measurement and gains.

    ``step()`` lets one control tick happen (simulation: advance the bath one
    second; hardware: wait for the next second and tick). ``report(progress)``
    is called when the phase or cycle count changes. The gains are NOT applied
    here: see :func:`controller.tuning.results.apply`. Raises :class:`AutotuneError` on cancel, on an
    interlock trip and when no consistent oscillation appears within ``max_s``;
    the heater is then being switched off (duty 0 through the interlock).
    """
    session = Session(controller, rule=rule, max_s=max_s, report=report)
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise AutotuneError("cancelled", phase=Phase.CANCELLED)
            step()
            result = session.observe(controller.status())
            if result is not None:
                return result
    except AutotuneError as exc:
        session.failed(exc)
        raise
    except KeyboardInterrupt:
        controller.set_detail(autotune={"phase": Phase.CANCELLED, "message": "cancelled (Ctrl-C)"})
        raise
    finally:
        # Heater off, still through the interlock; the caller hands back to the PID or closes.
        controller.set_duty_override(_off)


def _off(_now_s: float, _temp_c: float, _setpoint_c: float) -> float:
    return 0.0


def tune_in_simulation(cfg: cfgmod.Config, make_plant: Callable[[], Any], *, rule: str = DEFAULT_RULE,
                       seed: int = 1, noise_c: float | None = None,
                       report: Callable[[dict[str, Any]], None] | None = None,
                       cancel: threading.Event | None = None) -> tuple[Result, Simulation]:
    """Autotune a simulated plant as fast as the simulator runs. Returns (Result, Simulation).

    The simulation is returned open (heater off) so the caller can inspect or
    close it; on an error it is closed.
    """
    from controller.sim.simulation import NOISE_C, Simulation

    sim = Simulation(cfg, make_plant=make_plant, seed=seed, noise_c=NOISE_C if noise_c is None else noise_c)
    try:
        result = run(sim.controller, step=sim.step, cancel=cancel, report=report, rule=rule)
    except BaseException:
        sim.close()
        raise
    return result, sim
