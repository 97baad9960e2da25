"""What the QA tools reach for inside a :class:`~controller.sim.simulation.Simulation`.

A simulation takes any plant and any clock; the benchmark, the soak and the fault
matrix return stones, open the lid and step the wall clock, which only the
built-in bath and the simulated clock can do. These say so at once when they
get something else.
"""

from __future__ import annotations

from controller.core.clock import SimClock
from controller.sim.plant import StoneBath
from controller.sim.simulation import Simulation


def stone_bath(sim: Simulation) -> StoneBath:
    """The simulation's bath, which must be the built-in :class:`StoneBath` (stones, lid)."""
    if not isinstance(sim.plant, StoneBath):
        raise TypeError(f"returning stones and opening the lid need a StoneBath, not {type(sim.plant).__name__}")
    return sim.plant


def sim_clock(sim: Simulation) -> SimClock:
    """The simulation's clock, which must be the :class:`SimClock` (stepped by hand)."""
    if not isinstance(sim.clock, SimClock):
        raise TypeError(f"stepping time needs a SimClock, not {type(sim.clock).__name__}")
    return sim.clock
