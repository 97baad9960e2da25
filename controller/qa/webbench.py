"""``stonewarmer bench-web``: is the dashboard fast, and does it leave the control loop alone?

Runs the simulated warmer's control process here (the control loop and the
control socket, as ``stonewarmer run --role control --simulate``), its web
process as a process of its own (``stonewarmer run --role web``), exactly as
``stonewarmer run --simulate`` starts them, and a load generator in a third
process (asyncio):
``--clients`` clients each GET ``/api/status`` every ``--interval`` s (0: as
fast as they can) while ``--streams`` live-update streams stay open. Meanwhile
every control tick's start is compared with its schedule. Then, with
``throughput_s`` > 0, wrk measures ``/api/status`` against a bare Flask + waitress
endpoint serving the same JSON (controller/qa/web_throughput.py).

All the load comes from 127.0.0.1, so the bench lifts ``[web] connections_per_client``
to its maximum: the per-address cap is not what it measures.

A measurement, not a test: it prints figures (docs/dashboard-api.md quotes them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class TickLateness:
    """Each tick's start against the schedule ``run_forever`` keeps (controller-clock seconds)."""

    def __init__(self, clock, period_s: float) -> None:
        self.clock = clock
        self.period_s = period_s
        self.expected_s: float | None = None
        self.late_s: list[float] = []
        self.recording = False

    def before_tick(self, _dt_s: float) -> None:
        now = self.clock.monotonic()
        if self.expected_s is None:
            self.expected_s = now
        if self.recording:
            self.late_s.append(now - self.expected_s)
        self.expected_s += self.period_s
        if self.expected_s < now:  # run_forever resynchronises the same way
            self.expected_s = now + self.period_s


def run_web_bench(*, clients: int, interval_s: float, streams: int, duration_s: float, speed: float,
                  threads: int, throughput_s: float = 0.0) -> dict[str, Any]:
    """Serve a simulated warmer under load for ``duration_s`` (s); return the figures.

    ``speed``: simulated seconds per real second. ``throughput_s`` > 0: then each wrk run of
    the side-by-side throughput comparison lasts this long (s; figures under ``throughput``). Raises
    :class:`~controller.core.config.ConfigError` for settings the dashboard refuses and
    :class:`~controller.qa.bench.BenchError` when the load generator fails.
    """
    from controller.core import config as cfgmod
    from controller.core.loop import TICK_S
    from controller.core.schedule import run_forever
    from controller.qa.bench import BenchError
    from controller.qa.processes import command, free_port, wait_until
    from controller.service.control import ControlServer, socket_path
    from controller.service.pair import WEB_NICE, start
    from controller.service.session import SessionHub
    from controller.service.supervisor import build

    # The bare server of the throughput comparison runs here: waitress's per-request queue warning
    # under back-to-back load would drown the figures.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="stonewarmer-bench-") as state_dir:
        config = Path(state_dir) / "stonewarmer.toml"
        config.write_text(f'[state]\ndir = "{state_dir}"\n[web]\nthreads = {threads}\nmax_streams = {streams}\n'
                          "connections_per_client = 400\n")
        cfg = cfgmod.load(config)
        runtime = build(cfg, simulate=True, speed=speed)
        controller = runtime.controller
        lateness = TickLateness(controller.clock, TICK_S)
        stop = threading.Event()

        def before(dt_s: float) -> None:
            lateness.before_tick(dt_s)
            runtime.before_tick(dt_s)

        control = threading.Thread(target=run_forever, args=(controller, stop), kwargs={"before_tick": before},
                                   name="control", daemon=True)
        server = ControlServer(socket_path(state_dir), SessionHub(controller).commands())
        server.start()
        control.start()
        port = free_port()
        web = start(command("run", "--role", "web", "--simulate", "--config", str(config), "--host", "127.0.0.1",
                            "--port", str(port)), nice=WEB_NICE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _healthy(port), what="the web process to serve a ticking controller")
            lateness.recording = True
            # The clients are phones elsewhere on the Pi: here they run at the web process's priority.
            generator = start([sys.executable, "-m", "controller.qa.webbench", "127.0.0.1", str(port), str(clients),
                               str(interval_s), str(streams), str(duration_s)], nice=WEB_NICE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = generator.communicate(timeout=duration_s + 60)
            load = subprocess.CompletedProcess(generator.args, generator.returncode, out, err)
            lateness.recording = False
            throughput = _compare(port, cfg, threads=threads, run_s=throughput_s, pid=web.pid) \
                if throughput_s > 0 else None
        finally:
            web.terminate()
            web.wait(timeout=15)
            stop.set()
            control.join(timeout=5)
            server.stop()
            controller.close()
    if load.returncode != 0:
        raise BenchError(f"the load generator failed: {load.stderr.strip()[-500:]}")
    figures: dict[str, Any] = json.loads(load.stdout)
    late_ms = [s / speed * 1000 for s in lateness.late_s]  # controller seconds -> real ms
    figures.update({
        "throughput": throughput,
        "clients": clients, "interval_s": interval_s, "streams_wanted": streams,
        "duration_s": duration_s, "threads": threads, "speed": speed, "ticks": len(late_ms),
        "tick_late_p50_ms": percentile(late_ms, 50), "tick_late_p99_ms": percentile(late_ms, 99),
        "tick_late_max_ms": max(late_ms) if late_ms else math.nan,
    })
    return figures


def _healthy(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _compare(port: int, cfg: Any, *, threads: int, run_s: float, pid: int) -> dict[str, Any]:
    """The throughput comparison against the web process ``pid``'s /api/status (wrk; web_throughput.py).

    The CPU per request is measured on the same app, built here on the same control socket.
    """
    import urllib.request

    from controller.core import config as cfgmod
    from controller.qa.bench import BenchError
    from controller.qa.web_throughput import WrkError, compare
    from controller.service.control import socket_path
    from controller.service.remote import RemoteController
    from web import create_app, web_state_dir

    url = f"http://127.0.0.1:{port}/api/status"
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = answer.read()  # the bare endpoint serves the same bytes
    remote = RemoteController(socket_path(cfg.state.dir), cfg)
    remote.start()
    try:
        app = create_app(remote, cfgmod.replace(cfg, "state", dir=str(web_state_dir(cfg.state.dir))))
        return compare(url, body, ours_app=app, threads=threads, duration_s=run_s, ours_pid=pid)
    except WrkError as exc:
        raise BenchError(str(exc)) from None
    finally:
        remote.stop()



def format_figures(f: dict[str, Any]) -> str:
    from controller.qa.web_throughput import format_comparison

    throughput = [format_comparison(f["throughput"])] if f.get("throughput") else []
    return "\n".join([
        f"/api/status with {f['clients']} clients (every {f['interval_s']:g} s; 0 = back to back), "
        f"{f['streams_open']}/{f['streams_wanted']} streams open, {f['duration_s']:g} s, "
        f"{f['threads']} waitress threads:",
        f"  requests {f['requests']} ({f['requests'] / f['duration_s']:.0f}/s), errors {f['errors']}",
        f"  latency p50 {f['p50_ms']:.1f} ms, p90 {f['p90_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
        f"max {f['max_ms']:.1f} ms",
        f"  stream status messages received: {f['stream_messages']}",
        f"control tick start vs schedule ({f['ticks']} ticks at {f['speed']:g} ticks/s): "
        f"p50 {f['tick_late_p50_ms']:.1f} ms, p99 {f['tick_late_p99_ms']:.1f} ms, "
        f"max {f['tick_late_max_ms']:.1f} ms late",
        *throughput,
    ])


# -- the load generator (a separate process) ---------------------------------------------
async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), 0)
    await reader.readexactly(length)
    return status


async def _status_client(host: str, port: int, interval_s: float, deadline: float, result: dict) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(random.uniform(0, interval_s or 0.01))  # spread the clients out
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /api/status HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while loop.time() < deadline:
        started = time.perf_counter()
        writer.write(request)
        await writer.drain()
        try:
            status = await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            result["errors"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            continue
        took = time.perf_counter() - started
        result["latencies"].append(took)
        if status != 200:
            result["errors"] += 1
        if interval_s:
            await asyncio.sleep(max(0.0, interval_s - took))
    writer.close()


async def _stream_client(host: str, port: int, deadline: float, result: dict) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /api/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        result["stream_refused"] += 1
        writer.close()
        return
    result["streams_open"] += 1
    while loop.time() < deadline:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=max(0.01, deadline - loop.time()))
        except TimeoutError:
            break
        if line.startswith(b"event: status"):
            result["stream_messages"] += 1
    writer.close()


async def _load(host: str, port: int, clients: int, interval_s: float, streams: int,
                duration_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {"latencies": [], "errors": 0, "streams_open": 0, "stream_refused": 0,
                              "stream_messages": 0}
    loop = asyncio.get_running_loop()
    stream_tasks = [asyncio.create_task(_stream_client(host, port, loop.time() + duration_s + 2, result))
                    for _ in range(streams)]
    await asyncio.sleep(1.0)  # the streams are open before the clients start
    deadline = loop.time() + duration_s
    await asyncio.gather(*(_status_client(host, port, interval_s, deadline, result) for _ in range(clients)))
    await asyncio.gather(*stream_tasks)
    lat_ms = [x * 1000 for x in result.pop("latencies")]
    result.update({"requests": len(lat_ms), "p50_ms": percentile(lat_ms, 50), "p90_ms": percentile(lat_ms, 90),
                   "p99_ms": percentile(lat_ms, 99), "max_ms": max(lat_ms) if lat_ms else math.nan,
                   "mean_ms": statistics.fmean(lat_ms) if lat_ms else math.nan})
    return result


if __name__ == "__main__":
    host, port, clients, interval, streams, duration = sys.argv[1:7]
    print(json.dumps(asyncio.run(_load(host, int(port), int(clients), float(interval), int(streams),
                                       float(duration)))))
