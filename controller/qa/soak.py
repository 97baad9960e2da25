"""``stonewarmer soak``: days of simulated operation with everything a treatment room does to it.

A closed-loop simulation of the reference bath with the dashboard attached
(its history database, its API answered through the Flask app) and the
systemd watchdog pings of the real :class:`~controller.service.supervisor.Supervisor`,
for ``--hours`` simulated hours (72 by default), with, at random but
seeded times: setpoint changes through the signed-in web API, stones returned
cold, the lid opened, single probe glitches (CRC, jump, 85.0, empty), and
steady web traffic. It checks, every tick or at the end:

* the relay is never on at or above the cutoff (reading or true water);
* no fault latches (everything injected is a disturbance, not a fault);
* the process grows by less than 5 MB after the first two hours;
* the history database stays within its bound (48 h of raw readings);
* every completed tick sent its WATCHDOG=1.
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.core import config as cfgmod
from controller.qa.simulated import stone_bath
from controller.service.sd_notify import Notifier
from controller.service.supervisor import Supervisor
from controller.sim.simulation import Injection, Simulation

MEMORY_GROWTH_LIMIT_MB = 5.0
BASELINE_AT_S = 2 * 3600.0      # memory is measured from here (caches warm, history full of batches)
FLUSH_EVERY_S = 10.0            # the history writer's batch interval
PASSWORD = "soak test password"
GLITCHES = ("crc", "jump", "reset85", "empty")


@dataclass
class SoakReport:
    hours: float
    seed: int
    ticks: int = 0
    watchdog_pings: int = 0
    relay_on_at_cutoff: int = 0
    false_trips: list[str] = field(default_factory=list)
    disturbances: dict[str, int] = field(default_factory=dict)
    web_requests: int = 0
    web_errors: int = 0          # any answer other than the expected status
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    db_bytes: int = 0
    db_rows: dict[str, int] = field(default_factory=dict)
    db_row_limit: int = 0
    peak_water_c: float = 0.0
    wall_s: float = 0.0

    @property
    def memory_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def problems(self) -> list[str]:
        out = []
        if self.relay_on_at_cutoff:
            out.append(f"relay on at or above the cutoff in {self.relay_on_at_cutoff} ticks")
        out += [f"false trip: {t}" for t in self.false_trips]
        if self.memory_growth_mb >= MEMORY_GROWTH_LIMIT_MB:
            out.append(f"memory grew {self.memory_growth_mb:.1f} MB")
        if self.db_rows.get("readings", 0) > self.db_row_limit:
            out.append(f"history holds {self.db_rows['readings']} raw readings > {self.db_row_limit}")
        if self.watchdog_pings != self.ticks:
            out.append(f"{self.ticks - self.watchdog_pings} watchdog pings missed")
        if self.web_errors:
            out.append(f"{self.web_errors} unexpected web answers")
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "memory_growth_mb": self.memory_growth_mb, "problems": self.problems()}


def rss_mb() -> float:
    """Resident set size of this process now, MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _WatchdogCounter:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; counts WATCHDOG=1."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.pings = 0

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.pings += data.split(b"\n").count(b"WATCHDOG=1")

    def close(self) -> None:
        self.sock.close()


def run_soak(cfg: cfgmod.Config, *, hours: float, seed: int = 1,
             progress: Callable[[str], None] | None = None) -> SoakReport:
    from web import attach
    from web.credentials import CredentialStore

    rng = random.Random(seed)
    report = SoakReport(hours=hours, seed=seed)
    duration_s = hours * 3600.0
    started = time.perf_counter()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # tmpfs: the probe file is rewritten every tick
    with tempfile.TemporaryDirectory(prefix="stonewarmer-soak-", dir=shm) as tmp:
        tmp_path = Path(tmp)
        cfg = cfgmod.replace(cfg, "state", dir=str(tmp_path / "state"))
        sim = Simulation(cfg, workdir=tmp_path, seed=seed, keep_trace=False)
        CredentialStore(cfg.state.dir).set_password(PASSWORD)
        web = attach(sim.controller, sim.cfg)
        history = web.history
        if history is None:
            raise RuntimeError("the dashboard has no history recorder: the soak checks its database")
        client = web.app.test_client()
        counter = _WatchdogCounter(tmp_path)
        supervisor = Supervisor(Notifier(counter.path))
        supervisor.web_listening.set()
        cutoff_c = sim.cfg.control.cutoff_c
        c = sim.cfg.control

        def request(method: str, url: str, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
            report.web_requests += 1
            answer = client.open(url, method=method, **kwargs)
            if answer.status_code != expect:
                report.web_errors += 1
            return answer.get_json(silent=True) or {}

        csrf = request("GET", "/api/session")["csrf_token"]
        csrf = request("POST", "/api/session", json={"password": PASSWORD},
                       headers={"X-CSRF-Token": csrf})["csrf_token"]

        # What happens when: (time, action, argument), sorted.
        plan: list[tuple[float, str, Any]] = []

        def schedule(action: str, low_min: float, high_min: float, make_arg: Callable[[], Any]) -> None:
            t = rng.uniform(low_min, high_min) * 60
            while t < duration_s:
                plan.append((t, action, make_arg()))
                t += rng.uniform(low_min, high_min) * 60

        schedule("setpoint", 30, 120, lambda: round(rng.uniform(max(45.0, c.min_setpoint_c), c.max_setpoint_c) * 2) / 2)
        schedule("stones", 45, 120, lambda: (round(rng.uniform(1.0, 2.5), 1), round(rng.uniform(30.0, 40.0), 1)))
        schedule("lid", 60, 180, lambda: rng.uniform(60.0, 120.0))
        schedule("glitch", 20, 90, lambda: rng.choice(GLITCHES))
        plan.sort(key=lambda item: item[0])
        lid_closes_at = None

        def every_tick(sim_: Simulation, row) -> None:
            nonlocal lid_closes_at
            status = sim_.controller.status()
            supervisor.after_tick(status)
            report.ticks += 1
            water = row.water_c if row.water_c is not None else row.probe_c
            report.peak_water_c = max(report.peak_water_c, water)
            if row.relay and ((status.temperature_c or 0) >= cutoff_c or water >= cutoff_c):
                report.relay_on_at_cutoff += 1
            t = row.t_s
            while plan and plan[0][0] <= t:
                _, action, arg = plan.pop(0)
                report.disturbances[action] = report.disturbances.get(action, 0) + 1
                if action == "setpoint":
                    request("POST", "/api/setpoint", json={"setpoint_c": arg}, headers={"X-CSRF-Token": csrf})
                elif action == "stones":
                    stone_bath(sim_).return_stones(*arg)
                elif action == "lid":
                    stone_bath(sim_).set_lid(True)
                    lid_closes_at = t + arg
                else:
                    sim_.injections.append(Injection(arg, t + 1, 1.0))
            if lid_closes_at is not None and t >= lid_closes_at:
                stone_bath(sim_).set_lid(False)
                lid_closes_at = None
            if t % FLUSH_EVERY_S == 0:
                history.flush()
                counter.drain()
            if t % 10 == 0:
                request("GET", "/api/status")
            if t % 60 == 0:
                request("GET", "/api/history?since=-3600&resolution=1s")
                request("GET", "/healthz")
            if t % 600 == 0:
                request("GET", "/metrics")
                request("GET", "/api/events")
                request("GET", "/api/history?since=-43200&resolution=1m")
            if t == BASELINE_AT_S or (t == 1 and duration_s <= BASELINE_AT_S):
                report.rss_start_mb = rss_mb()
            if progress and t % 21600 == 0:
                progress(f"  {t / 3600:.0f} h simulated, {time.perf_counter() - started:.0f} s")

        sim.on_step = every_tick
        try:
            sim.run(duration_s)
            history.flush()
            counter.drain()
            report.rss_end_mb = rss_mb()
            report.false_trips = [f"{e.fault} at {e.monotonic_s - sim.t0:.0f} s: {e.message}"
                                  for e in sim.controller.events.since(0) if e.kind == "fault"]
            report.watchdog_pings = counter.pings
            report.db_rows = history.store.counts()
            report.db_bytes = sum(p.stat().st_size for p in Path(cfg.state.dir).glob("history.sqlite*"))
            from web.history import RAW_KEEP_S
            report.db_row_limit = int(RAW_KEEP_S) + int(FLUSH_EVERY_S) + 1
        finally:
            history.stop()
            counter.close()
            sim.close()
    report.wall_s = time.perf_counter() - started
    return report


def format_report(r: SoakReport) -> str:
    lines = [
        f"soak: {r.hours:g} simulated hours in {r.wall_s:.0f} s (seed {r.seed})",
        f"  ticks {r.ticks}, watchdog pings {r.watchdog_pings}",
        "  disturbances: " + ", ".join(f"{k} {v}" for k, v in sorted(r.disturbances.items())),
        f"  web requests {r.web_requests}, unexpected answers {r.web_errors}",
        f"  relay on at/above the cutoff: {r.relay_on_at_cutoff} ticks; peak water {r.peak_water_c:.2f} degC",
        f"  false trips: {len(r.false_trips)}",
        f"  memory: {r.rss_start_mb:.1f} MB after 2 h -> {r.rss_end_mb:.1f} MB at the end "
        f"(growth {r.memory_growth_mb:+.2f} MB, limit {MEMORY_GROWTH_LIMIT_MB:g})",
        f"  history: {r.db_bytes / 1e6:.1f} MB on disk, rows {r.db_rows} (raw limit {r.db_row_limit})",
    ]
    problems = r.problems()
    lines.append("  result: " + ("ok" if not problems else "FAIL: " + "; ".join(problems)))
    return "\n".join(lines)
