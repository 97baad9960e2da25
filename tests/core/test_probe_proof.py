"""The hottest the water may be before the first fit, until the probe proves it is in the water."""

from __future__ import annotations

import random

import pytest

from controller.core.bath_model import HEAT_RATE_MAX_C_PER_S, HEAT_RATE_MIN_C_PER_S, ROOM_MAX_C
from controller.core.probe_proof import PROOF_HEAT_RISES, PROOF_RISE_C, ProbeProof

ROOM_C = 20.0
GUARD_C = 51.0  # the setpoint + 1 degC


def run(proof: ProbeProof, readings, *, on: float = 1.0, start_s: float = 0.0) -> float:
    """Feed one reading a second with the relay on for ``on`` of each; return the time after the last."""
    t = start_s
    for reading_c in readings:
        t += 1.0
        proof.update(t, 1.0, reading_c, heater_on_s=on, room_c=ROOM_C, guard_c=GUARD_C)
    return t


def test_a_probe_that_never_rises_bounds_the_water_by_the_fastest_heaters_heat():
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    run(proof, [ROOM_C] * 100)
    assert proof.water_max_c == pytest.approx(ROOM_C + 100 * HEAT_RATE_MAX_C_PER_S)


def test_the_heat_a_probe_in_the_water_shows_is_overdue_once_the_weakest_heater_would_have_risen_twice_the_proof():
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    enough_s = PROOF_HEAT_RISES * PROOF_RISE_C / HEAT_RATE_MIN_C_PER_S  # 62.5 s of heat at 0.004 degC/s at least
    t = run(proof, [ROOM_C] * int(enough_s))
    assert proof.unseen_s(t) == 0.0
    # The rise is judged against the scatter, taken as a noisy probe's (0.2 degC) until the readings show less.
    first_rise_c = ProbeProof().rise_c
    t = run(proof, [ROOM_C] * 400, start_s=t)
    assert proof.rise_c == PROOF_RISE_C  # a steady DS18B20
    assert proof.unseen_s(t) >= t - PROOF_HEAT_RISES * first_rise_c / HEAT_RATE_MIN_C_PER_S


def test_a_reading_still_falling_has_shown_something_and_the_count_waits():
    proof = ProbeProof()
    guard_c = 1000.0  # (not the bound holding the relay off: the next test)
    proof.update(0.0, 1.0, 34.0, heater_on_s=0.0, room_c=ROOM_C, guard_c=guard_c)
    t = 0.0
    for i in range(500):  # stones put back cold soak up the heat for minutes
        t += 1.0
        proof.update(t, 1.0, 34.0 - 0.01 * i, heater_on_s=1.0, room_c=ROOM_C, guard_c=guard_c)
    assert proof.unseen_s(t) == 0.0


def test_no_heat_given_leaves_the_water_where_the_reading_says():
    # A bath that cools with the relay off: the bound from the first reading must not hold for ever.
    proof = ProbeProof()
    proof.update(0.0, 1.0, 34.0, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    run(proof, [34.0 - 0.01 * i for i in range(600)], on=0.0)
    assert proof.water_max_c == pytest.approx(28.0, abs=0.2)
    assert not proof.proven


def test_a_first_reading_warmer_than_any_room_is_not_bounded_but_its_heat_must_show():
    # Hot tap water on a first start: a probe on the counter cannot read it. Bounded, the relay was held off after a
    # second of the fastest heater's heat and the bath cooled to the room with no fault; but a probe stuck at
    # 45 degC from power-on reads as warm, so the heat given must show all the same.
    proof = ProbeProof()
    warm_c = ROOM_MAX_C + 10.0
    proof.update(0.0, 1.0, warm_c, heater_on_s=0.0, room_c=ROOM_C, guard_c=warm_c - 3.0)
    t = 0.0
    for _ in range(200):
        t += 1.0
        proof.update(t, 1.0, warm_c, heater_on_s=1.0, room_c=ROOM_C, guard_c=warm_c - 3.0)
    assert proof.water_max_c is None
    assert proof.unseen_s(t) > 0.0  # the heat of the weakest heater's two proofs went in unshown
    for _ in range(60):
        t += 1.0
        proof.update(t, 1.0, warm_c + 0.01 * _, heater_on_s=1.0, room_c=ROOM_C, guard_c=warm_c - 3.0)
    assert proof.proven and proof.unseen_s(t) == 0.0


def test_a_rise_of_two_steps_with_heat_proves_the_probe_in_the_water():
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    run(proof, [ROOM_C] * 30 + [ROOM_C + 0.004 * i for i in range(60)])  # the weakest heater, after a delay
    assert proof.proven and proof.water_max_c is None


def test_a_rise_without_heat_proves_nothing():
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    run(proof, [ROOM_C + 0.01 * i for i in range(100)], on=0.0)  # a probe warming in the air by the pot
    assert not proof.proven


def test_a_noisy_probes_scatter_does_not_prove_it_in_the_water():
    # 0.2 degC of scatter (a long unshielded cable): single readings, and 10 s means, stray two steps often.
    rng = random.Random(1)
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    run(proof, [ROOM_C + rng.gauss(0.0, 0.2) for _ in range(600)])
    assert not proof.proven
    assert proof.rise_c > 2 * PROOF_RISE_C


def proven_on_a_ramp(rate_c_per_s: float, seconds: int) -> tuple[ProbeProof, float, float]:
    """A probe proven on a warm-up ramp; returns it, the time and the last reading."""
    proof = ProbeProof()
    proof.update(0.0, 1.0, ROOM_C, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    delay = 40
    readings = [ROOM_C] * delay + [ROOM_C + rate_c_per_s * i for i in range(seconds - delay)]
    t = run(proof, readings)
    assert proof.proven
    return proof, t, readings[-1]


def test_a_reading_that_falls_at_full_power_loses_the_proof_from_its_top_plus_the_fastest_heaters_lead():
    # Lifted just after its first proof, the probe's slope is a fraction of a fast bath's: counted at twice that
    # slope, 1800 W into 3 L reached the setpoint + 7.5 to +43 degC. The water may lead the probe by all the heat of
    # its delay, and take all the heat given since.
    proof, t, top_c = proven_on_a_ramp(0.05, 200)
    assert proof.delay_s == pytest.approx(40 + 10, abs=10)  # from the heat to the first proof (10 s mean)
    fall = [top_c - 0.5 * (i + 1) for i in range(10)]  # lifted into the air
    run(proof, fall, start_s=t)
    assert not proof.proven
    assert proof.water_max_c >= top_c + HEAT_RATE_MAX_C_PER_S * (proof.delay_s - 1)


def test_a_bound_that_holds_the_relay_off_is_overdue_from_then_on():
    # The fastest heater's heat reached the guard before the weakest one's could show: the relay stays off and
    # nothing will prove the probe. Silent, that was a bath left cold with no fault.
    proof = ProbeProof()
    guard_c = 40.0
    proof.update(0.0, 1.0, 34.0, heater_on_s=0.0, room_c=ROOM_C, guard_c=guard_c)
    t = 0.0
    for _ in range(40):  # 37.5 s of heat reach the guard
        t += 1.0
        proof.update(t, 1.0, 34.0, heater_on_s=1.0, room_c=ROOM_C, guard_c=guard_c)
    assert proof.unseen_s(t) == pytest.approx(2.0, abs=1.5)
    for _ in range(100):
        t += 1.0
        proof.update(t, 1.0, 34.0, heater_on_s=0.0, room_c=ROOM_C, guard_c=guard_c)
    assert proof.unseen_s(t) == pytest.approx(102.0, abs=1.5)


def test_a_warm_first_reading_that_falls_loses_the_proof_and_is_bounded():
    # Hot tap water on a first start, the probe lifted before its reading first rose with heat: neither proven nor
    # bounded, the fall kept restarting the "heat must show" count and 1800 W into 3 L ran to 60-81 degC.
    proof = ProbeProof()
    warm_c = ROOM_MAX_C + 5.0
    proof.update(0.0, 1.0, warm_c, heater_on_s=0.0, room_c=ROOM_C, guard_c=GUARD_C)
    t = run(proof, [warm_c] * 10)
    run(proof, [warm_c - 0.5 * (i + 1) for i in range(10)], start_s=t)
    assert not proof.proven
    assert proof.water_max_c is not None and proof.water_max_c >= warm_c + HEAT_RATE_MAX_C_PER_S * 10
