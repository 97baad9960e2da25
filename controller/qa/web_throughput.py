"""``/api/status`` against a bare Flask + waitress endpoint serving the same JSON, side by side.

The dashboard's own server (host check, viewing check, security headers, the
connection guard) is measured with wrk against the least a Flask app on waitress
can do: one route returning the same bytes. Both run in this process, with the
same waitress thread count, while the simulated warmer keeps ticking; the runs
alternate (ours, bare, ours, bare ...) so that load from elsewhere on the machine
falls on both, and the best run of each is compared. On a shared machine the
requests per second swing with other processes' load, so the CPU time this
process spent per request (``time.process_time``: every thread of it, the control
loop included, the same for both) is reported beside them: it shows the cost of
each server however busy the machine is. wrk is Debian's package (``apt-get
install wrk``); traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import Any

from flask import Flask, Response
from waitress import wasyncore
from waitress.server import create_server

CONNECTIONS = 50
WRK_THREADS = 2


class WrkError(RuntimeError):
    """wrk is missing, or its run failed; the message says which."""


def wrk_requests_per_s(url: str, *, connections: int, duration_s: float) -> dict[str, float]:
    """One wrk run against ``url``: requests per second, and the errors it counted."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (Debian: sudo apt-get install wrk)")
    cpu_before_s = time.process_time()
    run = subprocess.run([wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s", url],
                         capture_output=True, text=True, timeout=duration_s + 60)
    cpu_s = time.process_time() - cpu_before_s
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


def compare(ours_url: str, body: bytes, *, threads: int, duration_s: float, rounds: int = 3,
            connections: int = CONNECTIONS) -> dict[str, Any]:
    """wrk against ``ours_url`` and against a bare server of ``body``, alternating ``rounds`` times."""
    bare = _BareServer(body, threads=threads)
    ours_runs, bare_runs = [], []
    try:
        for _ in range(rounds):
            ours_runs.append(wrk_requests_per_s(ours_url, connections=connections, duration_s=duration_s))
            bare_runs.append(wrk_requests_per_s(bare.url, connections=connections, duration_s=duration_s))
    finally:
        bare.stop()
    ours_best = max(r["requests_per_s"] for r in ours_runs)
    bare_best = max(r["requests_per_s"] for r in bare_runs)
    ours_cpu = min(r["cpu_us_per_request"] for r in ours_runs)
    bare_cpu = min(r["cpu_us_per_request"] for r in bare_runs)
    return {"connections": connections, "run_s": duration_s, "rounds": rounds, "threads": threads,
            "ours_requests_per_s": [r["requests_per_s"] for r in ours_runs],
            "bare_requests_per_s": [r["requests_per_s"] for r in bare_runs],
            "ours_cpu_us_per_request": [r["cpu_us_per_request"] for r in ours_runs],
            "bare_cpu_us_per_request": [r["cpu_us_per_request"] for r in bare_runs],
            "ours_errors": sum(r["non_2xx"] + r["socket_errors"] for r in ours_runs),
            "bare_errors": sum(r["non_2xx"] + r["socket_errors"] for r in bare_runs),
            "ratio": ours_best / bare_best if bare_best else float("nan"),
            "cpu_ratio": bare_cpu / ours_cpu if ours_cpu else float("nan")}


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
        f"  ratio, best of each: {f['ratio']:.2f} in requests/s, {f['cpu_ratio']:.2f} in CPU per request "
        f"(1.00 = as fast as bare)",
    ])
