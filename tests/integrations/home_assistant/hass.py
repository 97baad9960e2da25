"""One real Home Assistant on 127.0.0.1: a fresh config, onboarded through its API, MQTT added.

What it takes, and what to leave out so that nothing reaches beyond 127.0.0.1, is in
docs/field-notes.md, "Home Assistant". The tests talk to it over its REST API (urllib);
what needs its websocket API or its own code runs in its own Python (``in_ha.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from controller.qa.processes import free_port, stop

IN_HA = Path(__file__).with_name("in_ha.py")
START_TIMEOUT_S = 180.0  # a cold start on a busy 2-core machine: the frontend is large
OWNER = {"name": "Owner", "username": "owner", "password": "owner-pass-123", "language": "en"}

# Only these three: default_config would set up integrations that reach for the internet.
CONFIGURATION = """\
homeassistant:
  name: Spa
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
"""


class HomeAssistantError(AssertionError):
    """Home Assistant answered a request with an error status."""

    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text[:300]}")
        self.status = status


class HomeAssistant:
    """``hass -c <workdir>/config``; :meth:`start`, :meth:`onboard`, then :meth:`call` and :meth:`states`."""

    def __init__(self, bin_dir: Path, workdir: Path) -> None:
        self.bin_dir = bin_dir
        self.config_dir = workdir / "config"
        self.log_file = workdir / "home-assistant.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = self.base + "/"
        self.process: subprocess.Popen | None = None
        self.token = ""    # long-lived, for the tests' requests
        self.tokens: dict[str, Any] = {}  # the owner's access and refresh tokens, for the frontend

    # -- the process -------------------------------------------------------------------------
    def start(self) -> None:
        """Start it on a fresh config (returns at once; :meth:`wait_started` waits)."""
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        # The core_config onboarding step, done before the first start: its API sets up integrations
        # that go online (weather, radio, translation). The frontend needs every step done.
        storage = self.config_dir / ".storage"
        storage.mkdir()
        (storage / "onboarding").write_text(json.dumps({"version": 4, "minor_version": 1, "key": "onboarding",
                                                        "data": {"done": ["core_config"]}}))
        self.process = subprocess.Popen([str(self.bin_dir / "hass"), "-c", str(self.config_dir),
                                         "--log-file", str(self.log_file)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def wait_started(self) -> None:
        """Until the onboarding API answers (HTTP is up and onboarding loaded)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"Home Assistant exited:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base + "/api/onboarding", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Home Assistant did not answer within {START_TIMEOUT_S:g} s:\n"
                                     f"{self.log()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout_s=30.0)
            self.process = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # -- onboarding --------------------------------------------------------------------------
    def onboard(self, *, broker_port: int) -> None:
        """The owner user, the other onboarding steps, a long-lived token, and the MQTT integration
        through its config flow (the core_config step was marked done by :meth:`start`)."""
        code = self.request("POST", "/api/onboarding/users", {"client_id": self.client_id, **OWNER},
                            token=None)["auth_code"]
        self.tokens = self.request("POST", "/auth/token", {"grant_type": "authorization_code", "code": code,
                                                           "client_id": self.client_id}, token=None, form=True)
        access = self.tokens["access_token"]
        self.request("POST", "/api/onboarding/analytics", {}, token=access)  # analytics stays off
        self.request("POST", "/api/onboarding/integration",
                     {"client_id": self.client_id, "redirect_uri": self.client_id + "?auth_callback=1"}, token=access)
        self.token = json.loads(self.in_ha("token", self.base, access))
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt",
                                                                        "show_advanced_options": False})
        done = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                            {"broker": "127.0.0.1", "port": broker_port})
        if done.get("type") != "create_entry":
            raise AssertionError(f"the MQTT config flow did not finish: {done}")

    def in_ha(self, *args: str) -> str:
        """Run ``in_ha.py`` with Home Assistant's Python; its stdout."""
        done = subprocess.run([str(self.bin_dir / "python"), str(IN_HA), *args], capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"in_ha.py {args[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    # -- the REST API ------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str | None | bool = True,
                form: bool = False) -> Any:
        """One REST request; the decoded JSON answer. ``token=True``: the long-lived token."""
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        bearer = self.token if token is True else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as exc:
            raise HomeAssistantError(exc.code, method, path, exc.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def call(self, domain: str, service: str, **data: Any) -> Any:
        """Call a service as an automation or the frontend would: ``call("climate", "set_hvac_mode", ...)``."""
        return self.request("POST", f"/api/services/{domain}/{service}", data)

    def states(self) -> dict[str, dict[str, Any]]:
        """Entity id -> its state object (``state``, ``attributes``)."""
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def wait_for(self, predicate, *, timeout_s: float = 20.0, what: str) -> dict[str, dict[str, Any]]:
        """Poll the states until ``predicate(states)`` holds; return those states."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.states()
            if predicate(states):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; Home Assistant shows "
                                     f"{json.dumps({k: v['state'] for k, v in states.items()}, indent=1)}")
            time.sleep(0.2)
