"""What the dashboard's browser tests share: a real ``stonewarmer run --simulate`` and Debian's Chromium
driven by Playwright. Not a test module; the tests import from here."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.qa.processes import free_port
from tests.helpers import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "artifacts"
PASSWORD = "stones are warm"
PHONES = {"390x844": {"width": 390, "height": 844}, "360x740": {"width": 360, "height": 740}}

#: Counts what the page asks of the speaker and the vibration motor (each call still goes through).
SPY_ALERTS = """
window.__tones = 0;
window.__vibrations = [];
(() => {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (Ctx) {
    const make = Ctx.prototype.createOscillator;
    Ctx.prototype.createOscillator = function () { window.__tones += 1; return make.call(this); };
  }
  if (navigator.vibrate) {
    const vibrate = navigator.vibrate.bind(navigator);
    navigator.vibrate = (pattern) => { window.__vibrations.push(pattern); return vibrate(pattern); };
  }
  // Says when the alarm banner shows, on the console: a test can wait for it without looking at the
  // page (Playwright's every look at a page counts as a tap).
  document.addEventListener("DOMContentLoaded", () => {
    const alarm = document.getElementById("alarm");
    new MutationObserver(() => { if (!alarm.hidden) console.log(ALARM_SHOWN); })
      .observe(alarm, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
""".replace("ALARM_SHOWN", '"spy: the alarm banner shows"')
ALARM_SHOWN = "spy: the alarm banner shows"


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (Debian package chromium; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=2) as answer:
        return json.loads(answer.read())


@dataclass
class Warmer:
    url: str
    proc: subprocess.Popen
    log: Path
    state_dir: Path
    tokens: dict[str, str]

    def status(self) -> dict:
        return get_json(self.url + "/api/status")

    def set_setpoint(self, setpoint_c: float, *, token: str) -> dict:
        """Change the setpoint as a script would, with the API token called ``token``."""
        request = urllib.request.Request(self.url + "/api/setpoint", method="POST",
                                         data=json.dumps({"setpoint_c": setpoint_c}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.tokens[token]}"})
        with urllib.request.urlopen(request, timeout=2) as answer:
            return json.loads(answer.read())


@contextlib.contextmanager
def run_warmer(tmp_dir: Path, *, speed: float, injections: list[str] = (), plant: str | None = None,
               tokens: list[str] = (), config: str | None = None) -> Iterator[Warmer]:
    """A real ``stonewarmer run --simulate`` on a free port, a password set (and API tokens made for
    ``tokens``), with ``config`` (TOML text) as its config file if given; yields it, then kills it.
    Run again on the same ``tmp_dir``, it is the same warmer restarted (its state dir kept)."""
    require_chromium()
    cli = [sys.executable, "-m", "controller"]
    state = tmp_dir / "state"
    subprocess.run([*cli, "set-password", "--stdin", "--state-dir", str(state)], input=PASSWORD + "\n",
                   text=True, check=True, capture_output=True)
    made = {name: subprocess.run([*cli, "token", "--name", name, "--state-dir", str(state)], check=True,
                                 capture_output=True, text=True).stdout.strip() for name in tokens}
    port = free_port()
    log = tmp_dir / "run.log"  # a file, not a pipe nobody reads: a full pipe would stall the warmer
    args = [*cli, "run", "--simulate", "--state-dir", str(state), "--host", "127.0.0.1", "--port", str(port),
            "--speed", str(speed), *(f"--inject={i}" for i in injections), *(["--plant", plant] if plant else [])]
    if config is not None:
        (tmp_dir / "config.toml").write_text(config)
        args += ["--config", str(tmp_dir / "config.toml")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if get_json(url + "/healthz")["ok"]:
                break
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stonewarmer run did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield Warmer(url, proc, log, state, made)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


class CuttableLink:
    """A TCP relay between the browser and the warmer that the test can cut, as a phone loses the
    Wi-Fi: :meth:`cut` drops every open connection (the live stream too) and refuses new ones, while
    the warmer goes on; :meth:`restore` lets them through again. ``url`` is the warmer seen through it."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.down = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


@dataclass
class Browser:
    """One headless Chromium; :meth:`page` opens a fresh phone-sized page in a context of its own."""

    browser: object
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # requests to anything but the warmer

    def page(self, *, phone: str = "390x844", color_scheme: str = "light", spy_alerts: bool = False):
        context = self.browser.new_context(viewport=PHONES[phone], color_scheme=color_scheme)
        if spy_alerts:
            context.add_init_script(SPY_ALERTS)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(msg.text))
        page.on("request", lambda request: None if request.url.startswith("http://127.0.0.1:")
                else self.elsewhere.append(request.url))
        return page


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium for a module's tests; at the end, no JavaScript error may have happened on any page, and
    no page may have loaded anything from anywhere but the warmer (no CDN: the Pi may be offline)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)  # where the tests leave their screenshots

    with sync_playwright() as p:
        browser = Browser(p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS))
        yield browser
        browser.browser.close()
    assert browser.errors == [], f"JavaScript errors on the page: {browser.errors}"
    assert browser.elsewhere == [], f"the page loaded from elsewhere: {browser.elsewhere}"


def sign_in(page) -> None:
    from playwright.sync_api import expect

    page.fill("#password", PASSWORD)
    page.click("#signin-button")
    expect(page.locator("#signout")).to_be_visible()


def contrast(page, selector: str) -> float:
    """The WCAG contrast ratio of the element's text colour against its background (computed styles)."""
    return page.eval_on_selector(selector, """(el) => {
      const rgba = (c) => c.match(/[\\d.]+/g).map(Number);
      const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      const lum = (c) => { const [r, g, b] = rgba(c).map(channel); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const transparent = (e) => { const c = rgba(getComputedStyle(e).backgroundColor); return c[3] === 0; };
      let bg = el;
      while (bg.parentElement && transparent(bg)) bg = bg.parentElement;
      const a = lum(getComputedStyle(el).color), b = lum(getComputedStyle(bg).backgroundColor);
      return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }""")
