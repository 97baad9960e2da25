"""The benchmark's software figures: control tick CPU time, simulator speed, memory of ``run --simulate``."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.core import config as cfgmod
from controller.qa.processes import command, free_port, stop
from controller.qa.scenarios import SEED
from controller.qa.simulated import sim_clock
from controller.sim.simulation import Simulation

TICK_SAMPLES = 3000      # control ticks timed for the CPU figure
RSS_SAMPLE_S = 10.0      # `run --simulate` runs this long before its peak RSS is read


class _PreRead:
    """A probe source whose read was done beforehand: the timed tick excludes the sensor wait."""

    def __init__(self, source) -> None:
        self.source = source
        self.ready = None

    def read_ahead(self, now_s: float) -> None:
        self.ready = self.source.poll(now_s)

    def poll(self, now_s: float):
        ready, self.ready = self.ready, None
        return ready

    def close(self) -> None:
        self.source.close()


def measure_tick_us(cfg: cfgmod.Config, ticks: int = TICK_SAMPLES) -> dict[str, Any]:
    """CPU time of Controller.tick (thread CPU clock), the w1thermsensor read done before it."""
    sim = Simulation(cfg, seed=SEED)
    try:
        pre = _PreRead(sim.controller.primary_source)
        sim.controller.primary_source = pre
        samples = []
        clock = sim_clock(sim)
        for _ in range(ticks):
            clock.advance(1.0)
            sim.sync(1.0)
            pre.read_ahead(sim.clock.monotonic())
            t0 = time.thread_time_ns()
            sim.controller.tick()
            samples.append((time.thread_time_ns() - t0) / 1000.0)
    finally:
        sim.close()
    samples.sort()
    return {"tick_median_us": statistics.median(samples),
            "tick_p99_us": samples[min(len(samples) - 1, int(0.99 * len(samples)))], "tick_samples": ticks}


def measure_sim_speed(cfg: cfgmod.Config, sim_s: float) -> dict[str, Any]:
    """Simulated seconds per wall-clock second through the real w1thermsensor path."""
    started = time.perf_counter()
    sim = Simulation(cfg, seed=SEED)
    try:
        sim.run(sim_s)
    finally:
        sim.close()
    wall = time.perf_counter() - started
    return {"sim_seconds": sim_s, "sim_wall_s": wall, "sim_seconds_per_wall_second": sim_s / wall}


def measure_run_rss(sample_s: float = RSS_SAMPLE_S) -> dict[str, Any]:
    """Peak RSS (VmHWM) of `stonewarmer run --simulate`'s two processes together (control and web)
    after ``sample_s`` of running, MB. (Its parent, which only starts and watches them, is not
    counted: on the Pi systemd does that.)"""
    with tempfile.TemporaryDirectory(prefix="stonewarmer-bench-") as state_dir:
        cmd = command("run", "--simulate", "--state-dir", state_dir, "--host", "127.0.0.1", "--port", str(free_port()))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + sample_s
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            if proc.poll() is not None:
                return {"run_peak_rss_mb": None, "run_sample_s": sample_s,
                        "run_error": f"`{' '.join(cmd[2:])}` exited with status {proc.returncode}"}
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            peak_kb = sum(_peak_rss_kb(int(pid)) for pid in children)
        finally:
            stop(proc)
    return {"run_peak_rss_mb": peak_kb / 1024.0, "run_sample_s": sample_s, "run_error": None}


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmHWM"].split()[0])


def measure_software(cfg: cfgmod.Config, *, quick: bool = False) -> dict[str, Any]:
    return {**measure_tick_us(cfg, ticks=1000 if quick else TICK_SAMPLES),
            **measure_sim_speed(cfg, 3600.0 if quick else 4 * 3600.0),
            **measure_run_rss(5.0 if quick else RSS_SAMPLE_S)}
