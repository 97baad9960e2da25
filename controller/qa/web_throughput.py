"""``/api/status`` against a bare Flask + waitress endpoint serving the same JSON, side by side.

The dashboard's own server (host check, viewing check, security headers, the
connection guard) is measured with wrk against the least a Flask app on waitress
can do: one route returning the same bytes. Both run in this process, with the
same waitress thread count, while the simulated warmer keeps ticking; the runs
alternate (ours, bare, ours, bare ...) so that load from elsewhere on the machine
falls on both, and the median of the ratios of neighbouring runs is reported. On a shared machine the
requests per second swing with other processes' load, so the CPU time this
process spent per request (``time.process_time``: every thread of it, the control
loop included, the same for both) is reported beside them: it shows the cost of
each server however busy the machine is. wrk is Debian's package (``apt-get
install wrk``); traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response
from waitress import wasyncore
from waitress.server import create_server

CONNECTIONS = 50
WRK_THREADS = 2


class WrkError(RuntimeError):
    """wrk is missing, or its run failed; the message says which."""


def process_cpu_s(pid: int | None = None) -> float:
    """CPU time (user + system, s) of process ``pid`` so far; None: this process."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (man 5 proc)


def wrk_requests_per_s(url: str, *, connections: int, duration_s: float, pid: int | None = None) -> dict[str, float]:
    """One wrk run against ``url``: requests per second, the errors it counted, and the CPU time per
    request of the server's process ``pid`` (None: this process)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (Debian: sudo apt-get install wrk)")
    cpu_before_s = process_cpu_s(pid)
    run = subprocess.run([wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s", url],
                         capture_output=True, text=True, timeout=duration_s + 60)
    cpu_s = process_cpu_s(pid) - cpu_before_s
    rate = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
    count = re.search(r"(\d+) requests in", run.stdout)
    if run.returncode != 0 or rate is None or count is None:
        raise WrkError(f"wrk failed: {(run.stderr or run.stdout).strip()[-300:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", run.stdout)
    return {"requests_per_s": float(rate.group(1)), "cpu_us_per_request": cpu_s / max(1, int(count.group(1))) * 1e6,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0}


def bare_app(body: bytes) -> Flask:
    """The least Flask can do for ``GET /api/status``: the same bytes, every time."""
    app = Flask("bare")

    @app.get("/api/status")
    def status() -> Response:
        return Response(body, mimetype="application/json")

    return app


def wsgi_cpu_us(app: Any, *, host: str, requests: int = 2000, rounds: int = 5) -> float:
    """CPU time of this thread per ``GET /api/status`` through ``app``'s WSGI callable alone (us; best round).

    No sockets, no waitress: what the application itself costs per request, which the load on the
    machine hardly moves (``time.thread_time`` counts only this thread's own CPU).
    """
    def start_response(_status: str, _headers: list[tuple[str, str]], _exc_info: Any = None) -> None:
        return None

    best_us = float("inf")
    for _ in range(rounds):
        started_s = time.thread_time()
        for _ in range(requests):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/status", "QUERY_STRING": "",
                       "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                       "HTTP_HOST": host, "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
                       "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO()}
            b"".join(app(environ, start_response))
        best_us = min(best_us, (time.thread_time() - started_s) / requests * 1e6)
    return best_us


class _BareServer:
    """``bare_app`` on plain waitress, on a free loopback port."""

    def __init__(self, body: bytes, *, threads: int) -> None:
        self.server: Any = create_server(bare_app(body), host="127.0.0.1", port=0, threads=threads,
                                         connection_limit=400)
        self.url = f"http://127.0.0.1:{self.server.effective_port}/api/status"
        self._thread = threading.Thread(target=self.server.run, name="bare-web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server = self.server
        server.task_dispatcher.shutdown(timeout=1.0)
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(timeout=2.0)


def compare(ours_url: str, body: bytes, *, ours_app: Any, threads: int, duration_s: float, rounds: int = 5,
            connections: int = CONNECTIONS, ours_pid: int | None = None) -> dict[str, Any]:
    """wrk against ``ours_url`` (served by process ``ours_pid``; None: this one) and against a bare
    server of ``body`` in this process, alternating ``rounds`` times; and the CPU per request of
    ``ours_app`` (the WSGI app behind ``ours_url``) and of the bare app alone."""
    host = ours_url.split("/")[2]
    app_us = {"ours": wsgi_cpu_us(ours_app, host=host), "bare": wsgi_cpu_us(bare_app(body), host=host)}
    bare = _BareServer(body, threads=threads)
    ours_runs, bare_runs = [], []
    try:
        for _ in range(rounds):
            ours_runs.append(wrk_requests_per_s(ours_url, connections=connections, duration_s=duration_s,
                                                pid=ours_pid))
            bare_runs.append(wrk_requests_per_s(bare.url, connections=connections, duration_s=duration_s))
    finally:
        bare.stop()
    pairs = list(zip(ours_runs, bare_runs))  # neighbours in time: the same load from elsewhere
    return {"connections": connections, "run_s": duration_s, "rounds": rounds, "threads": threads,
            "ours_requests_per_s": [r["requests_per_s"] for r in ours_runs],
            "bare_requests_per_s": [r["requests_per_s"] for r in bare_runs],
            "ours_cpu_us_per_request": [r["cpu_us_per_request"] for r in ours_runs],
            "bare_cpu_us_per_request": [r["cpu_us_per_request"] for r in bare_runs],
            "ours_errors": sum(r["non_2xx"] + r["socket_errors"] for r in ours_runs),
            "bare_errors": sum(r["non_2xx"] + r["socket_errors"] for r in bare_runs),
            "ours_app_cpu_us": app_us["ours"], "bare_app_cpu_us": app_us["bare"],
            "ratio": statistics.median(o["requests_per_s"] / b["requests_per_s"] for o, b in pairs),
            "cpu_ratio": statistics.median(b["cpu_us_per_request"] / o["cpu_us_per_request"] for o, b in pairs)}


def format_comparison(f: dict[str, Any]) -> str:
    def runs(side: str) -> str:
        rates = ", ".join(f"{r:.0f}" for r in f[f"{side}_requests_per_s"])
        cpu = ", ".join(f"{c:.0f}" for c in f[f"{side}_cpu_us_per_request"])
        return f"{rates} requests/s; {cpu} us CPU per request (errors {f[f'{side}_errors']})"

    return "\n".join([
        f"/api/status throughput (wrk, {f['connections']} connections, {f['rounds']} x {f['run_s']:g} s each, "
        f"{f['threads']} waitress threads):",
        f"  stonewarmer  {runs('ours')}",
        f"  bare Flask   {runs('bare')}",
        f"  ratio (median of neighbouring runs): {f['ratio']:.2f} in requests/s, {f['cpu_ratio']:.2f} in CPU "
        f"per request (1.00 = as fast as bare)",
        f"  the Flask app alone (WSGI, no sockets): {f['ours_app_cpu_us']:.1f} us vs {f['bare_app_cpu_us']:.1f} us "
        f"CPU per request",
    ])
