"""The dashboard in a real headless Chromium (Debian's package) against a real ``stonewarmer run``.

Phone-sized (390x844). The simulated warmer runs 20 times faster than real time with
the probe unplugged at 240 simulated seconds (12 s into the test). Screenshots go to
artifacts/.
"""

from __future__ import annotations

import re
import signal

import pytest

from tests.web.browser import ARTIFACTS, PASSWORD, chromium, get_json, run_warmer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPEED = 20
UNPLUG_AT_S = 600  # simulated seconds: 30 s of real time, for a browser that starts slowly on a loaded machine
                   # (at 240, 12 s, the probe was unplugged before a loaded CI's page showed its first reading)


@pytest.fixture
def warmer(tmp_path):
    with run_warmer(tmp_path, speed=SPEED, injections=[f"unplug@{UNPLUG_AT_S}"]) as w:
        yield w.url, w.proc, w.log


@pytest.fixture
def page():
    with chromium() as browser:
        yield browser.page()


def test_dashboard_shows_live_temperature_changes_setpoint_and_shows_a_fault(warmer, page):
    from playwright.sync_api import expect

    url, proc, log = warmer
    page.goto(url + "/")

    # The temperature shows, and updates.
    temp = page.locator("#temp")
    expect(temp).to_have_text(re.compile(r"^\d+\.\d$"), timeout=10_000)
    first = temp.inner_text()
    expect(temp).not_to_have_text(first, timeout=10_000)
    expect(page.locator("#badge-word")).to_have_text("Warming")
    expect(page.locator("#plus")).to_be_disabled()  # not signed in yet

    # A signed-in user raises the setpoint by two 0.5 degC steps; the warmer follows.
    page.fill("#password", PASSWORD)
    page.click("#signin-button")
    expect(page.locator("#signout")).to_be_visible()
    expect(page.locator("#plus")).to_be_enabled()
    page.click("#plus")
    page.click("#plus")
    expect(page.locator("#sp-msg")).to_have_text(re.compile("Set to 53.0"), timeout=5_000)
    assert get_json(url + "/api/status")["setpoint_c"] == 53.0
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
    expect(page.locator("#badge-word")).to_have_text("FAULT", timeout=60_000)
    expect(page.locator("#reason")).to_contain_text("probe")
    expect(page.locator("#reason")).to_contain_text("acknowledge")
    expect(page.locator("#alarm")).to_be_visible()
    expect(temp).to_have_text("--")
    expect(page.locator("#events")).to_contain_text("probe")
    page.screenshot(path=str(ARTIFACTS / "dashboard-fault.png"), full_page=True)

    # The warmer goes away: "connection lost", and no number shown as current.
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=10)
    assert status == 0, log.read_text()[-3000:]
    expect(page.locator("#offline")).to_be_visible(timeout=15_000)
    expect(page.locator("#badge-word")).to_have_text("NOT LIVE")
    expect(temp).to_have_text("--")
    page.screenshot(path=str(ARTIFACTS / "dashboard-offline.png"))
