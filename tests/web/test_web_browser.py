"""The dashboard in a real headless Chromium (Debian's package) against a real ``stonewarmer run``.

Phone-sized (390x844). The simulated warmer runs 20 times faster than real time with
the probe unplugged at 240 simulated seconds (12 s into the test). Screenshots go to
artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from controller.qa.processes import free_port
from tests.helpers import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "artifacts"
PASSWORD = "stones are warm"
SPEED = 20
UNPLUG_AT_S = 240  # simulated seconds


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} is missing (Debian package chromium; `make system-deps` installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=2) as answer:
        return json.loads(answer.read())


@pytest.fixture
def warmer(tmp_path):
    """A real ``stonewarmer run --simulate`` on a free port, with a password set; yields its URL."""
    _require_chromium()
    cli = [sys.executable, "-m", "controller"]
    state = tmp_path / "state"
    subprocess.run([*cli, "set-password", "--stdin", "--state-dir", str(state)], input=PASSWORD + "\n",
                   text=True, check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "run.log"  # a file, not a pipe nobody reads: a full pipe would stall the warmer
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cli, "run", "--simulate", "--state-dir", str(state), "--host", "127.0.0.1",
                                 "--port", str(port), "--speed", str(SPEED), "--inject", f"unplug@{UNPLUG_AT_S}"],
                                stdout=out, stderr=subprocess.STDOUT)
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if _get(url + "/healthz")["ok"]:
                break
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stonewarmer run did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def page():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


def test_dashboard_shows_live_temperature_changes_setpoint_and_shows_a_fault(warmer, page):
    from playwright.sync_api import expect

    url, proc = warmer
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(url + "/")

    # The temperature shows, and updates.
    temp = page.locator("#temp")
    expect(temp).to_have_text(re.compile(r"^\d+\.\d$"), timeout=10_000)
    first = temp.inner_text()
    expect(temp).not_to_have_text(first, timeout=10_000)
    expect(page.locator("#badge")).to_have_text("Warming")
    expect(page.locator("#plus")).to_be_disabled()  # not signed in yet

    # A signed-in user raises the setpoint by two 0.5 degC steps; the warmer follows.
    page.fill("#password", PASSWORD)
    page.click("#signin-button")
    expect(page.locator("#signout")).to_be_visible()
    expect(page.locator("#plus")).to_be_enabled()
    page.click("#plus")
    page.click("#plus")
    expect(page.locator("#sp-msg")).to_have_text(re.compile("Set to 53.0"), timeout=5_000)
    assert _get(url + "/api/status")["setpoint_c"] == 53.0
    expect(page.locator("#sp")).to_have_text("53.0")
    expect(page.locator("#reason")).to_contain_text("53.0 °C")
    page.screenshot(path=str(ARTIFACTS / "dashboard-warming.png"))

    # Fahrenheit, remembered by the browser.
    page.click("#unit")
    expect(page.locator("#sp")).to_have_text("127")
    page.reload()
    expect(page.locator("#temp-unit")).to_have_text("°F", timeout=10_000)
    page.click("#unit")

    # The unplugged probe: FAULT with its reason in words, the alarm banner, no temperature.
    expect(page.locator("#badge")).to_have_text("FAULT", timeout=30_000)
    expect(page.locator("#reason")).to_contain_text("probe")
    expect(page.locator("#reason")).to_contain_text("acknowledge")
    expect(page.locator("#alarm")).to_be_visible()
    expect(temp).to_have_text("--")
    expect(page.locator("#events")).to_contain_text("probe")
    page.screenshot(path=str(ARTIFACTS / "dashboard-fault.png"), full_page=True)

    # The warmer goes away: "connection lost", and no number shown as current.
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=10)
    assert status == 0, proc.log.read_text()[-3000:]
    expect(page.locator("#offline")).to_be_visible(timeout=15_000)
    expect(page.locator("#badge")).to_have_text("NOT LIVE")
    expect(temp).to_have_text("--")
    page.screenshot(path=str(ARTIFACTS / "dashboard-offline.png"))
