"""Every probe reading is classified, through the real w1thermsensor on a fake 1-Wire tree."""

from __future__ import annotations

import threading

import pytest

from controller.core import probe as pr
from controller.sim.fake_w1 import ZERO_TEXT, crc8, scratchpad, w1_slave_text
from tests.helpers import PROBE_ID


def read(tree, text=None, celsius=None):
    if text is not None:
        tree.write_text(PROBE_ID, text)
    elif celsius is not None:
        tree.write(PROBE_ID, celsius)
    return pr.W1Probe(w1_dir=tree.root, sensor_id=PROBE_ID).read(5.0)


def test_w1_slave_text_is_the_kernel_format():
    text = w1_slave_text(23.125)
    first, second = text.splitlines()
    assert first == "72 01 4b 46 7f ff 0c 10 " + f"{crc8(bytes.fromhex('72014b467fff0c10')):02x}" + \
        f" : crc={crc8(bytes.fromhex('72014b467fff0c10')):02x} YES"
    assert second.endswith(" t=23125")
    assert crc8(scratchpad(52.0)) == 0  # CRC over all nine bytes of a good scratchpad is zero


def test_negative_temperature_uses_twos_complement_and_truncates_like_the_kernel():
    text = w1_slave_text(-10.0625)
    assert text.splitlines()[1].startswith("5f ff")
    assert text.endswith("t=-10062\n")


def test_valid_reading_is_quantised_to_a_sixteenth(tree):
    raw = read(tree, celsius=52.03)
    assert raw.kind == pr.ReadingKind.VALID
    assert raw.celsius == pytest.approx(52.0)


@pytest.mark.parametrize(("text", "kind"), [
    (w1_slave_text(52.0, crc_ok=False), pr.ReadingKind.CRC),
    ("", pr.ReadingKind.EMPTY),
    (w1_slave_text(85.0), pr.ReadingKind.RESET85),
    (ZERO_TEXT, pr.ReadingKind.ZERO),
    ("garbage\nmore garbage\n", pr.ReadingKind.CRC),
    ("72 01 4b 46 7f ff 0c 10 57 : crc=57 YES\n", pr.ReadingKind.GARBLED),
])
def test_bad_file_is_classified(tree, text, kind):
    assert read(tree, text=text).kind == kind


def test_missing_sensor_is_classified_and_found_again_when_replugged(tree):
    tree.write(PROBE_ID, 50.0)
    probe = pr.W1Probe(w1_dir=tree.root, sensor_id=PROBE_ID)
    assert probe.read(0).kind == pr.ReadingKind.VALID
    tree.unplug(PROBE_ID)
    assert probe.read(1).kind == pr.ReadingKind.MISSING
    tree.write(PROBE_ID, 50.5)
    assert probe.read(2).celsius == pytest.approx(50.5)


def test_first_sensor_is_used_when_no_id_is_configured(tree):
    tree.write(PROBE_ID, 40.0)
    probe = pr.W1Probe(w1_dir=tree.root)
    assert probe.read(0).celsius == pytest.approx(40.0)
    assert probe.sensor_id == PROBE_ID
    assert pr.list_probes(tree.root) == [PROBE_ID]


def raw(celsius, t, text=None):
    return pr.RawRead(pr.ReadingKind.VALID, celsius, text or f"t={celsius}", t)


@pytest.mark.parametrize("celsius", [-0.5, 100.5, 120.0])
def test_out_of_range_reading_is_refused(celsius):
    assert pr.ReadingClassifier().classify(raw(celsius, 0), 0.0).kind == pr.ReadingKind.OUT_OF_RANGE


def test_jump_of_more_than_5_c_within_2_s_is_refused_but_a_real_change_is_accepted_later():
    c = pr.ReadingClassifier()
    assert c.classify(raw(50.0, 0), 0).valid
    assert c.classify(raw(55.5, 1), 0).kind == pr.ReadingKind.JUMP
    assert c.classify(raw(54.9, 2), 0).valid          # 4.9 degC: plausible
    assert c.classify(raw(62.0, 4.5), 0).valid        # > 2 s after the last valid one


def test_frozen_value_is_refused_once_the_model_expected_1_5_c_of_change():
    c = pr.ReadingClassifier()
    # the model expects 0.01 degC per read: 150 reads to 1.5 degC
    kinds = [c.classify(raw(40.0, t, "same"), 0.01).kind for t in range(0, 152)]
    assert kinds[148] == pr.ReadingKind.VALID
    assert kinds[150] == pr.ReadingKind.FROZEN and kinds[151] == pr.ReadingKind.FROZEN


def test_frozen_value_while_cooling_above_the_setpoint_is_refused_too():
    # No heat at all, yet the model expects the water to cool: the change counts either way.
    c = pr.ReadingClassifier()
    kinds = [c.classify(raw(55.0, t, "same"), -0.005).kind for t in range(0, 310)]
    assert kinds[290] == pr.ReadingKind.VALID and kinds[305] == pr.ReadingKind.FROZEN


def test_identical_value_in_a_bath_the_model_expects_still_is_not_frozen():
    c = pr.ReadingClassifier()
    assert all(c.classify(raw(30.0, t, "same"), 0.0).valid for t in range(0, 5000))


def test_frozen_count_restarts_when_the_value_changes():
    c = pr.ReadingClassifier()
    for t in range(0, 140):
        c.classify(raw(40.0, t, "same"), 0.01)
    c.classify(raw(40.0625, 140, "other"), 0.01)
    assert all(c.classify(raw(40.0625, t, "other"), 0.01).valid for t in range(141, 289))


def test_85_0_reached_gradually_is_a_real_reading_not_a_reset():
    c = pr.ReadingClassifier()
    assert c.classify(raw(84.5, 0, "a"), 0.1).valid
    reset = pr.RawRead(pr.ReadingKind.RESET85, None, "85", 1.0)
    assert c.classify(reset, 0.1).celsius == 85.0
    fresh = pr.ReadingClassifier()
    fresh.classify(raw(50.0, 0, "a"), 0.1)
    assert fresh.classify(reset, 0.1).kind == pr.ReadingKind.RESET85   # a jump to 85.0 is the power-on value


class HangingProbe:
    """A probe whose read never returns until released: a hung 1-Wire bus."""

    sensor_id = "hung"

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def read(self, now_s):
        self.started.set()
        self.release.wait(10)
        return pr.RawRead(pr.ReadingKind.VALID, 50.0, "x", now_s)


def test_threaded_source_reports_a_hung_read_as_timeout_and_never_blocks(clock):
    probe = HangingProbe()
    source = pr.ThreadedProbeSource(probe, clock=clock, timeout_s=3.0)
    try:
        assert probe.started.wait(5)
        assert source.poll(clock.monotonic()) is None      # still converting: nothing yet
        clock.advance(3.5)
        assert source.poll(clock.monotonic()).kind == pr.ReadingKind.TIMEOUT
    finally:
        source.close()
        probe.release.set()


def test_threaded_source_hands_over_each_completed_read_once(clock, tree):
    tree.write(PROBE_ID, 47.0)
    source = pr.ThreadedProbeSource(pr.W1Probe(w1_dir=tree.root, sensor_id=PROBE_ID),
                                    clock=clock, timeout_s=3.0)
    try:
        got = None
        for _ in range(2000):  # bounded wait for the worker's first read
            got = source.poll(clock.monotonic())
            if got:
                break
            threading.Event().wait(0.005)
        assert got is not None and got.celsius == pytest.approx(47.0)
    finally:
        source.close()
