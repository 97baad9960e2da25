"""History: every tick's reading and every event, in SQLite (WAL) in the state dir.

An SD card wears out under constant small writes, so readings are kept in
memory and written in one transaction at most once every ``FLUSH_INTERVAL_S``.
A crash or power cut loses at most that last unwritten batch; a transaction is
all or nothing, so the file is never left half-written (WAL, ``synchronous=FULL``).

Kept: raw 1 s readings for 48 h, 1-minute aggregates for 90 days, the last
``EVENTS_KEPT`` events. Older rows are deleted with every batch, so the file
stays bounded (SQLite reuses the freed pages).

Times are wall-clock Unix seconds: history is for people reading a chart, and
must line up across restarts (control timing never reads it). The wall clock can
step back: a Pi without a battery clock boots with the time it saved last, and a
simulation run faster than real time writes times in the future. Two timelines
would then interleave (a zig-zag chart), so the history is cut at the step: the
newest timeline is the one the warmer lives in now, and the readings recorded
before the step at or after its time are deleted (``clock_runs``). Events are
kept, in the order they were recorded.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HISTORY_FILE = "history.sqlite3"
FLUSH_INTERVAL_S = 10.0        # at most one write per 10 s (SD card wear)
RAW_KEEP_S = 48 * 3600.0       # raw 1 s readings
MINUTE_KEEP_S = 90 * 86400.0   # 1-minute aggregates
EVENTS_KEPT = 10_000
MAX_PENDING = 100_000          # readings held while the disk refuses writes (~28 h at 1/s)
MAX_POINTS = 50_000            # most rows one query returns (12 h of raw readings fit)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    t_s REAL NOT NULL,              -- wall clock, Unix seconds
    temperature_c REAL,             -- NULL: no valid reading
    setpoint_c REAL NOT NULL,
    duty REAL NOT NULL,             -- 0..1, what the PID proposed
    relay_on INTEGER NOT NULL,      -- what the interlock drove
    mode TEXT NOT NULL,
    fault TEXT
);
CREATE INDEX IF NOT EXISTS readings_t ON readings (t_s);
CREATE TABLE IF NOT EXISTS minutes (
    t_s INTEGER PRIMARY KEY,        -- start of the minute, Unix seconds
    temperature_c REAL,             -- mean
    temperature_min_c REAL,
    temperature_max_c REAL,
    setpoint_c REAL NOT NULL,       -- mean
    duty REAL NOT NULL,             -- mean
    relay_on_ratio REAL NOT NULL,
    samples INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wall_time_s REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    fault TEXT,
    temperature_c REAL,
    setpoint_c REAL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_t ON events (wall_time_s);
"""

_READING_COLUMNS = ("t_s", "temperature_c", "setpoint_c", "duty", "relay_on", "mode", "fault")
_EVENT_COLUMNS = ("wall_time_s", "kind", "message", "fault", "temperature_c", "setpoint_c", "source")
#: Columns of a query answer, per resolution.
COLUMNS = {
    "1s": ("t_s", "temperature_c", "setpoint_c", "duty", "relay_on", "mode"),
    "1m": ("t_s", "temperature_c", "temperature_min_c", "temperature_max_c", "setpoint_c", "duty",
           "relay_on_ratio"),
}


def reading_row(status) -> tuple:
    """One ``readings`` row from a :class:`~controller.core.status.Status`."""
    return (status.wall_time_s, status.temperature_c, status.setpoint_c, status.duty,
            int(status.relay_on), status.mode, status.fault)


def event_row(event) -> tuple:
    """One ``events`` row from a :class:`~controller.core.events.Event`."""
    return tuple(getattr(event, c) for c in _EVENT_COLUMNS)


def clock_runs(rows: Iterable[tuple], last_s: float | None = None) -> Iterator[tuple[float | None, list[tuple]]]:
    """Split readings (in the order they were recorded, time first) where the wall clock stepped back.

    Yields ``(cut_s, rows)``: ``cut_s`` is ``None`` for rows that go on from ``last_s`` (the latest
    time before them), else the time the clock stepped back to: every earlier reading at or after it
    belongs to the abandoned timeline.
    """
    run: list[tuple] = []
    cut_s: float | None = None
    previous_s = last_s
    for row in rows:
        if previous_s is not None and row[0] < previous_s:
            if run:
                yield cut_s, run
            run, cut_s = [], row[0]
        run.append(row)
        previous_s = row[0]
    if run:
        yield cut_s, run


class _Span:
    """Watches rows go by to learn the earliest time in a batch and the time of its last row."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None  # the last row's: the clock's "now" after any step back

    def watch(self, rows: Iterable[tuple]) -> Iterator[tuple]:
        for row in rows:
            t = row[0]
            self.first = t if self.first is None else min(self.first, t)
            self.last = t
            yield row


class HistoryStore:
    """The SQLite file. Thread-safe: one connection, one lock (writes are short and rare)."""

    def __init__(self, path: str | Path, *, raw_keep_s: float = RAW_KEEP_S,
                 minute_keep_s: float = MINUTE_KEEP_S, events_kept: int = EVENTS_KEPT) -> None:
        self.path = Path(path)
        self.raw_keep_s = raw_keep_s
        self.minute_keep_s = minute_keep_s
        self.events_kept = events_kept
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, with explicit BEGIN/COMMIT around each batch.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a committed batch survives a power cut
        self._conn.executescript(_SCHEMA)

    def write(self, readings: Iterable[tuple], events: Iterable[tuple] = ()) -> None:
        """Write one batch in one transaction: all of it, or (crash, error) none of it."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                span = _Span()
                for cut_s, run in clock_runs(readings, self._last_s(cur)):
                    if cut_s is not None:
                        self._cut(cur, cut_s)
                    cur.executemany(f"INSERT INTO readings ({', '.join(_READING_COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
                                    span.watch(run))
                cur.executemany(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
                                events)
                if span.first is not None and span.last is not None:
                    self._aggregate(cur, math.floor(span.first / 60.0) * 60.0)
                    self._prune(cur, span.last)
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise

    @staticmethod
    def _last_s(cur: sqlite3.Cursor) -> float | None:
        return cur.execute("SELECT MAX(t_s) FROM readings").fetchone()[0]

    def _cut(self, cur: sqlite3.Cursor, cut_s: float) -> None:
        """The clock stepped back to ``cut_s``: drop the abandoned timeline's readings from there on."""
        log.warning("history: the clock stepped back; readings from %.0f on are replaced", cut_s)
        cur.execute("DELETE FROM readings WHERE t_s >= ?", (cut_s,))
        cur.execute("DELETE FROM minutes WHERE t_s >= ?", (math.floor(cut_s / 60.0) * 60.0,))

    def last_s(self) -> float | None:
        """The time of the latest stored reading (None: none yet)."""
        with self._lock:
            return self._last_s(self._conn.cursor())

    def _aggregate(self, cur: sqlite3.Cursor, from_s: float) -> None:
        # Recompute every minute the batch touched (idempotent: a minute split over two batches is right).
        cur.execute(
            "INSERT OR REPLACE INTO minutes SELECT CAST(t_s / 60 AS INTEGER) * 60 AS m, AVG(temperature_c), "
            "MIN(temperature_c), MAX(temperature_c), AVG(setpoint_c), AVG(duty), AVG(relay_on), COUNT(*) "
            "FROM readings WHERE t_s >= ? GROUP BY m", (from_s,))

    def _prune(self, cur: sqlite3.Cursor, now_s: float) -> None:
        cur.execute("DELETE FROM readings WHERE t_s < ?", (now_s - self.raw_keep_s,))
        cur.execute("DELETE FROM minutes WHERE t_s < ?", (now_s - self.minute_keep_s,))
        cur.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.events_kept,))

    def readings(self, *, since_s: float, until_s: float, resolution: str,
                 limit: int = MAX_POINTS) -> list[tuple]:
        """Rows of ``COLUMNS[resolution]`` with ``since_s <= t_s <= until_s``, oldest first."""
        table = {"1s": "readings", "1m": "minutes"}[resolution]
        with self._lock:
            return self._conn.execute(
                f"SELECT {', '.join(COLUMNS[resolution])} FROM {table} WHERE t_s >= ? AND t_s <= ? "
                "ORDER BY t_s LIMIT ?", (since_s, until_s, limit)).fetchall()

    def events(self, *, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` events, newest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(_EVENT_COLUMNS, r)) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("readings", "minutes", "events")}

    def integrity(self) -> str:
        """``"ok"`` when SQLite finds the file sound."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class HistoryRecorder:
    """Collects each tick's status and every event in memory; writes them in batches.

    ``on_status`` and ``on_event`` run on the control thread (or a command's
    thread): they only append to a list. A writer thread flushes every
    ``flush_interval_s``; :meth:`stop` flushes what is left.
    """

    def __init__(self, store: HistoryStore, *, flush_interval_s: float = FLUSH_INTERVAL_S,
                 max_pending: int = MAX_PENDING) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.problem: str | None = None  # the last write error, in words
        self._readings: deque[tuple] = deque(maxlen=max_pending)
        self._events: deque[tuple] = deque(maxlen=max_pending)
        self._lock = threading.Lock()        # the pending lists
        self._flush_lock = threading.Lock()  # one batch at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, state_dir: str | Path, **options: Any) -> HistoryRecorder:
        return cls(HistoryStore(Path(state_dir) / HISTORY_FILE), **options)

    def follow(self, controller) -> None:
        """Record ``controller``'s statuses and events (including those recorded before now)."""
        for event in controller.events.since(0):
            self.on_event(event)
        controller.events.add_sink(self.on_event)
        controller.add_listener(self.on_status)

    def on_status(self, status) -> None:
        row = reading_row(status)
        with self._lock:
            self._readings.append(row)

    def on_event(self, event) -> None:
        row = event_row(event)
        with self._lock:
            self._events.append(row)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._readings)

    def flush(self) -> int:
        """Write what is pending as one batch; return the number of readings written."""
        with self._flush_lock:
            with self._lock:
                readings, events = list(self._readings), list(self._events)
                self._readings.clear()
                self._events.clear()
            if not readings and not events:
                return 0
            try:
                self.store.write(readings, events)
            except (sqlite3.Error, OSError) as exc:
                # Keep them for the next try (bounded: the oldest go first).
                with self._lock:
                    _put_back(self._readings, readings)
                    _put_back(self._events, events)
                if self.problem is None:
                    log.error("history: cannot write to %s: %s", self.store.path, exc)
                self.problem = f"cannot write the history to {self.store.path}: {exc}"
                return 0
            self.problem = None
            return len(readings)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def stop(self) -> None:
        """Write what is pending and close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self.flush()
        self.store.close()

    # -- reading ------------------------------------------------------------------------
    def readings(self, *, since_s: float, until_s: float, resolution: str,
                 limit: int = MAX_POINTS) -> list[tuple]:
        """Stored rows, plus (raw resolution) those not written yet: the chart is never 10 s behind."""
        rows = self.store.readings(since_s=since_s, until_s=until_s, resolution=resolution, limit=limit)
        if resolution == "1s":
            last_s = self.store.last_s()
            with self._lock:
                pending = list(self._readings)
            for cut_s, run in clock_runs(pending, last_s):  # cut as the next batch will be
                if cut_s is not None:
                    rows = [r for r in rows if r[0] < cut_s]
                rows += [r[:6] for r in run if since_s <= r[0] <= until_s]
            rows = rows[:limit]
        return rows

    def events(self, *, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            pending = [dict(zip(_EVENT_COLUMNS, r)) for r in reversed(self._events)]
        return (pending + self.store.events(limit=limit))[:limit]


def _put_back(pending: deque, rows: list) -> None:
    """Return unwritten ``rows`` to the front of ``pending``, dropping the oldest if it is full."""
    room = (pending.maxlen or len(rows)) - len(pending)
    if room > 0:
        pending.extendleft(reversed(rows[max(0, len(rows) - room):]))
