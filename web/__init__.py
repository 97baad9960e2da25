"""stonewarmer's web layer. (Interim: the dashboard issue builds it out.)"""

from __future__ import annotations

import threading

from flask import Flask, jsonify
from waitress.server import create_server


def create_app(controller, cfg) -> Flask:
    app = Flask(__name__)

    @app.get("/api/status")
    def status():
        return jsonify(controller.status().to_dict())

    return app


class WebRuntime:
    def __init__(self, app: Flask, cfg) -> None:
        self.app = app
        self.cfg = cfg
        self.server = None
        self.url = ""

    def start(self, host: str, port: int) -> None:
        self.server = create_server(self.app, host=host, port=port, threads=self.cfg.web.threads)
        self.url = f"http://{'localhost' if host in ('0.0.0.0', '::') else host}:{self.server.effective_port}/"
        threading.Thread(target=self.server.run, name="web", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def attach(controller, cfg) -> WebRuntime:
    return WebRuntime(create_app(controller, cfg), cfg)
