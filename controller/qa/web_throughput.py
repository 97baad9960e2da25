"""``/api/status`` against a bare Flask + waitress endpoint serving the same JSON, side by side.

The dashboard's own server (host check, viewing check, security headers, the
connection guard) is measured with wrk against the least a Flask app on waitress
can do: one route returning the same bytes. Both run in this process, with the
same waitress thread count, while the simulated warmer keeps ticking; the runs
alternate (ours, bare, ours, bare ...) so that load from elsewhere on the machine
falls on both, and the best run of each is compared. wrk is Debian's package
(``apt-get install wrk``); traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
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
    run = subprocess.run([wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s", url],
                         capture_output=True, text=True, timeout=duration_s + 60)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
    if run.returncode != 0 or rate is None:
        raise WrkError(f"wrk failed: {(run.stderr or run.stdout).strip()[-300:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", run.stdout)
    return {"requests_per_s": float(rate.group(1)), "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
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


def compare(ours_url: str, body: bytes, *, threads: int, duration_s: float, rounds: int = 2,
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
    return {"connections": connections, "run_s": duration_s, "rounds": rounds, "threads": threads,
            "ours_requests_per_s": [r["requests_per_s"] for r in ours_runs],
            "bare_requests_per_s": [r["requests_per_s"] for r in bare_runs],
            "ours_errors": sum(r["non_2xx"] + r["socket_errors"] for r in ours_runs),
            "bare_errors": sum(r["non_2xx"] + r["socket_errors"] for r in bare_runs),
            "ratio": ours_best / bare_best if bare_best else float("nan")}


def format_comparison(f: dict[str, Any]) -> str:
    ours = ", ".join(f"{r:.0f}" for r in f["ours_requests_per_s"])
    bare = ", ".join(f"{r:.0f}" for r in f["bare_requests_per_s"])
    return "\n".join([
        f"/api/status throughput (wrk, {f['connections']} connections, {f['rounds']} x {f['run_s']:g} s each, "
        f"{f['threads']} waitress threads):",
        f"  stonewarmer  {ours} requests/s (errors {f['ours_errors']})",
        f"  bare Flask   {bare} requests/s (errors {f['bare_errors']})",
        f"  ratio (best of each): {f['ratio']:.2f}",
    ])
