"""The history database: batches, aggregates, retention, and surviving a killed writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from controller.core import config as cfgmod
from controller.core.clock import SimClock
from controller.sim.simulation import Simulation
from web.history import HistoryRecorder, HistoryStore

T0 = 1_790_000_040.0  # a Unix time on a minute boundary


def _rows(start_s: float, count: int, *, temp_c=lambda i: 50.0, step_s: float = 1.0):
    return [(start_s + i * step_s, temp_c(i), 52.0, 0.5, i % 2, "holding", None) for i in range(count)]


@pytest.fixture
def store(tmp_path):
    s = HistoryStore(tmp_path / "h.sqlite3")
    yield s
    s.close()


def test_recorder_writes_nothing_until_a_flush_then_one_batch(sim, history):
    sim.run(25)
    assert history.store.counts()["readings"] == 0 and history.pending == 25
    assert history.flush() == 25
    assert history.store.counts()["readings"] == 25 and history.pending == 0
    stored = history.store.readings(since_s=0, until_s=1e11, resolution="1s")
    assert [r[1] for r in stored] == [r.reading_c for r in sim.trace]


def test_the_database_is_in_wal_mode(history):
    conn = sqlite3.connect(history.store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_minute_aggregates_are_right_even_when_a_minute_spans_two_batches(store):
    temps = lambda i: 40.0 + i  # noqa: E731
    rows = _rows(T0, 120, temp_c=temps)
    store.write(rows[:90])
    store.write(rows[90:])
    minutes = store.readings(since_s=0, until_s=1e11, resolution="1m")
    assert [m[0] for m in minutes] == [T0, T0 + 60]
    first, second = minutes
    assert first[1:4] == (40.0 + 29.5, 40.0, 99.0)  # mean, min, max of 40..99
    assert second[1:4] == (100.0 + 29.5, 100.0, 159.0)
    assert second[-1] == 0.5  # relay on half the time


def test_raw_readings_older_than_48_hours_are_pruned_minutes_stay(store):
    store.write(_rows(T0, 60))
    store.write(_rows(T0 + 48 * 3600 + 120, 10))
    raw = store.readings(since_s=0, until_s=1e11, resolution="1s")
    assert raw[0][0] == T0 + 48 * 3600 + 120 and len(raw) == 10
    assert store.readings(since_s=T0, until_s=T0 + 59, resolution="1m")[0][0] == T0


def test_minutes_older_than_90_days_are_pruned(store):
    store.write(_rows(T0, 60))
    store.write(_rows(T0 + 91 * 86400, 60))
    minutes = store.readings(since_s=0, until_s=1e11, resolution="1m")
    assert [m[0] for m in minutes] == [T0 + 91 * 86400]


def test_the_file_stays_bounded_once_old_rows_are_pruned(tmp_path):
    s = HistoryStore(tmp_path / "h.sqlite3", raw_keep_s=600, minute_keep_s=3600)
    pages = []
    for batch in range(40):
        s.write(_rows(T0 + batch * 300, 300))
        pages.append(s._conn.execute("PRAGMA page_count").fetchone()[0])
    s.close()
    assert max(pages[20:]) <= max(pages[10:20])  # steady state: freed pages are reused


def test_events_are_kept_across_restarts_newest_first(tmp_path, sim):
    rec = HistoryRecorder.open(tmp_path)
    rec.follow(sim.controller)
    sim.controller.set_setpoint(45.0, source="test")
    assert [e["kind"] for e in rec.events(limit=10)] == ["setpoint", "start"]  # pending ones count too
    rec.stop()
    again = HistoryRecorder.open(tmp_path)
    events = again.events(limit=10)
    assert [e["kind"] for e in events] == ["setpoint", "start"] and events[0]["setpoint_c"] == 45.0
    again.stop()


def test_a_failed_write_keeps_the_batch_for_the_next_try(sim, history, monkeypatch):
    sim.run(5)
    real_write = history.store.write

    def refuse(*_a, **_k):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(history.store, "write", refuse)
    assert history.flush() == 0 and "disk I/O error" in history.problem
    sim.run(3)
    monkeypatch.setattr(history.store, "write", real_write)
    assert history.flush() == 8 and history.problem is None
    times = [r[0] for r in history.store.readings(since_s=0, until_s=1e11, resolution="1s")]
    assert times == sorted(times) and len(times) == 8


def _run_warmer(state_dir, *, wall_start_s: float, duration_s: float, flush: bool):
    """One run of a simulated warmer whose wall clock starts at ``wall_start_s``, recording into
    ``state_dir``'s history; returns the recorder (flushed and stopped when ``flush``) and the
    (wall time, reading) of each tick."""
    cfg = cfgmod.replace(cfgmod.Config(), "state", dir=str(state_dir))
    clock = SimClock(wall_start_s=wall_start_s)
    recorder = HistoryRecorder.open(state_dir)
    with Simulation(cfg, clock=clock) as sim:
        recorder.follow(sim.controller)
        ticks = []
        sim.controller.add_listener(lambda status: ticks.append((status.wall_time_s, status.temperature_c)))
        sim.run(duration_s)
        sim.controller.set_setpoint(45.0 if flush else 47.0, source="test")
    if flush:
        recorder.stop()
    return recorder, ticks


def test_a_restart_with_an_earlier_clock_cuts_the_history_at_the_step(tmp_path):
    # The first run's clock is 10 minutes ahead (a sped-up run; a Pi that kept a wrong time): the
    # second run starts 5 minutes before the first one's last reading.
    _, first = _run_warmer(tmp_path, wall_start_s=T0 + 600, duration_s=600, flush=True)
    second_start_s = first[-1][0] - 300
    recorder, second = _run_warmer(tmp_path, wall_start_s=second_start_s, duration_s=600, flush=False)
    try:
        expected = [row for row in first if row[0] < second[0][0]] + second
        for _ in range(2):  # what is only in memory yet, then the same once written
            rows = recorder.readings(since_s=0, until_s=1e11, resolution="1s")
            times = [r[0] for r in rows]
            assert all(b > a for a, b in zip(times, times[1:])), "the chart would go back in time"
            assert [(r[0], r[1]) for r in rows] == expected  # one timeline: no reading of the first run after the step
            recorder.flush()
        minutes = recorder.readings(since_s=0, until_s=1e11, resolution="1m")
        assert sum(1 for m in minutes if m[0] >= second_start_s) == len({int(t // 60) for t, _ in second})
        # Events stay in the order they happened: the second run's after all of the first run's.
        events = recorder.events(limit=10)
        assert [(e["kind"], e["setpoint_c"]) for e in events[:4]] == [
            ("setpoint", 47.0), ("start", 45.0), ("setpoint", 45.0), ("start", 52.0)]
    finally:
        recorder.stop()


# A writer in its own process: commits batches of BATCH readings, announcing each. With
# "pause", batch 4 stops half-way through its INSERTs (inside the transaction) until killed.
WRITER = textwrap.dedent("""
    import sys
    from web.history import HistoryStore
    BATCH = 500
    store = HistoryStore(sys.argv[1])
    pause = sys.argv[2] == "pause"
    def rows(batch):
        for i in range(BATCH):
            if pause and batch == 4 and i == BATCH // 2:
                print("mid-batch", flush=True)
                sys.stdin.readline()  # killed here, with half a batch inserted
            yield (1790000000.0 + batch * BATCH + i, 50.0, 52.0, 0.5, 1, "holding", None)
    for batch in range(1000):
        store.write(rows(batch), [(1790000000.0 + batch, "notice", f"batch {batch}", None, None, None, "t")])
        print("committed", batch, flush=True)
""")


def _kill_writer_at(tmp_path, stop_after_line, *, pause: bool) -> HistoryStore:
    path = tmp_path / "h.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "pause" if pause else "run"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if stop_after_line(line):
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    return HistoryStore(path)


def test_killing_the_writer_mid_batch_loses_only_that_batch(tmp_path):
    store = _kill_writer_at(tmp_path, lambda line: line.startswith("mid-batch"), pause=True)
    try:
        assert store.integrity() == "ok"
        counts = store.counts()
        assert counts["readings"] == 4 * 500  # batches 0-3 complete, nothing of batch 4
        assert counts["events"] == 4
    finally:
        store.close()


def test_killing_the_writer_at_any_moment_leaves_whole_batches(tmp_path):
    seen = []
    store = _kill_writer_at(tmp_path, lambda line: seen.append(line) or len(seen) >= 7, pause=False)
    try:
        assert store.integrity() == "ok"
        readings = store.counts()["readings"]
        # Every announced batch is kept; the one being written when killed is all there or not at all.
        assert readings % 500 == 0 and readings >= 7 * 500
    finally:
        store.close()
