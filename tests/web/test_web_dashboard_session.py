"""The dashboard as the therapist uses it on a phone, in a real Chromium against a real
``stonewarmer run --simulate`` (40 times real time), seen through a link the test can cut:
signing in, °F, the time to ready after a fault is acknowledged, and the Wi-Fi going away.

The probe is out from 480 to 540 simulated seconds (a sensor fault 12 s in, readings again 13.5 s
in), while the first test has cut the connection; and again from 900 to 1060 s (22.5 s to 26.5 s
in), for the time to ready after an acknowledge. The tests share the warmer and run in this order.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from tests.web.browser import ARTIFACTS, PHONES, CuttableLink, chromium, contrast, run_warmer, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]



@pytest.fixture(scope="module")
def warmer(tmp_path_factory):
    with run_warmer(tmp_path_factory.mktemp("session"), speed=40, tokens=["front-desk"],
                    injections=["unplug@480:60", "unplug@900:160"]) as w:
        yield w


@pytest.fixture(scope="module")
def link(warmer):
    relay = CuttableLink(int(warmer.url.rsplit(":", 1)[1]))
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _wait_until(condition, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f} s"
        time.sleep(0.1)


def test_a_lost_connection_alarms_and_a_fault_during_it_is_announced_when_it_returns(warmer, link, browser):
    from playwright.sync_api import expect

    assert warmer.status()["mode"] != "fault"
    page = browser.page(spy_alerts=True)
    page.goto(link.url + "/")
    expect(page.locator("#temp")).to_have_text(re.compile(r"^\d+\.\d$"), timeout=10_000)
    page.locator("h1").click()  # a tap: sound and vibration may play

    link.cut()
    cut_at = time.monotonic()
    expect(page.locator("#offline")).to_be_visible(timeout=12_000)
    silence = page.locator("#silence-offline")
    expect(silence).to_be_visible(timeout=20_000)
    alarm_after_s = time.monotonic() - cut_at
    assert 4 <= alarm_after_s <= 20, f"the alarm came {alarm_after_s:.1f} s after the connection was lost"
    page.wait_for_function("() => window.__tones > 0 && window.__vibrations.length > 0", timeout=3_000)
    silence.click()
    expect(page.locator("body")).not_to_have_class(re.compile("alarming"))

    # Meanwhile the probe comes out (a fault), goes back in, and a script at the front desk acknowledges:
    # by the time the connection returns, nothing is wrong any more, but the page must say what happened.
    _wait_until(lambda: warmer.status()["fault"] == "sensor", timeout_s=15, what="the sensor fault")
    _wait_until(lambda: warmer.status()["temperature_c"] is not None, timeout_s=10, what="the probe's return")
    _acknowledge(warmer)
    tones = page.evaluate("window.__tones")
    link.restore()
    expect(page.locator("#offline")).to_be_hidden(timeout=10_000)
    expect(page.locator("#alarm-headline")).to_have_text("A fault happened while the connection was lost",
                                                         timeout=5_000)
    expect(page.locator("#alarm-text")).to_contain_text("temperature probe")
    expect(page.locator("body")).to_have_class(re.compile("alarming"))  # not silenced with the outage's
    page.wait_for_function(f"() => window.__tones > {tones}", timeout=3_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-missed-fault.png"))
    page.locator("#silence").click()
    expect(page.locator("#alarm")).to_be_hidden()
    page.context.close()


@pytest.mark.parametrize("phone", PHONES)
def test_sign_in_fits_a_small_phone_and_a_wrong_password_shows_as_an_error(warmer, link, browser, phone):
    from playwright.sync_api import expect

    page = browser.page(phone=phone)
    page.goto(link.url + "/")
    button = page.locator("#signin-button")
    expect(button).to_be_visible()
    line_px = float(button.evaluate("(el) => parseFloat(getComputedStyle(el).lineHeight)"))
    assert button.bounding_box()["height"] < 2 * line_px, "'Sign in' wraps onto two lines"
    for link_box in (a.bounding_box() for a in page.locator("footer a").all()):
        assert link_box["height"] >= 44 and link_box["width"] >= 44, link_box

    page.fill("#password", "not the password")
    button.click()
    error = page.locator("#signin-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Wrong password")
    style = error.evaluate("(el) => ({ weight: getComputedStyle(el).fontWeight, "
                           "size: parseFloat(getComputedStyle(el).fontSize), role: el.getAttribute('role') })")
    assert int(style["weight"]) >= 700 and style["size"] >= 16 and style["role"] == "alert"
    assert contrast(page, "#signin-error") >= 4.5
    note_color = page.locator("#auth-msg").evaluate("(el) => getComputedStyle(el).color")
    assert error.evaluate("(el) => getComputedStyle(el).color") != note_color  # not grey help text
    page.screenshot(path=str(ARTIFACTS / f"dashboard-wrong-password-{phone}.png"))
    page.context.close()


def test_fahrenheit_mode_shows_every_temperature_in_fahrenheit(warmer, link, browser):
    from playwright.sync_api import expect

    page = browser.page()
    page.goto(link.url + "/")
    sign_in(page)
    page.click("#plus")  # 52.0 -> 52.5 degC
    expect(page.locator("#sp-msg")).to_have_text("Set to 52.5 °C.", timeout=5_000)
    page.click("#unit")
    expect(page.locator("#sp-msg")).to_have_text(re.compile(r"^Set to \d+ °F\.$"))
    expect(page.locator("#range")).to_have_text(re.compile(r"^Allowed \d+ °F to \d+ °F$"))
    expect(page.locator("#events")).to_contain_text("°F")
    page.click("#plus")  # whole degF from here
    expect(page.locator("#sp-msg")).to_have_text(re.compile(r"^Set to \d+ °F\.$"), timeout=5_000)
    expect(page.locator("#sp")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#range")).to_have_text(re.compile(r"^Allowed \d+ °F to \d+ °F$"))
    expect(page.locator("#events li").first).to_contain_text(re.compile(r"\d+ °F → \d+ °F"))
    visible = page.locator("main").inner_text()
    assert "°C" not in visible and "degC" not in visible, visible
    page.click("#unit")  # back to degC (the choice is kept per browser context anyway)
    page.context.close()


def test_time_to_ready_right_after_an_acknowledge_is_minutes_not_hours(warmer, link, browser):
    from playwright.sync_api import expect

    page = browser.page()
    page.goto(link.url + "/")
    sign_in(page)
    expect(page.locator("#badge-word")).to_have_text("FAULT", timeout=30_000)
    _wait_until(lambda: warmer.status()["temperature_c"] is None, timeout_s=10, what="the probe going stale")
    _wait_until(lambda: warmer.status()["temperature_c"] is not None, timeout_s=15, what="the probe's return")
    page.wait_for_timeout(3000)  # two simulated minutes of still water, the heater off, before she comes back
    page.click("#ack")
    expect(page.locator("#ack-msg")).to_be_empty()  # not refused
    expect(page.locator("#badge-word")).to_have_text("Warming", timeout=5_000)
    shown = []
    deadline = time.monotonic() + 6  # 240 simulated seconds
    while time.monotonic() < deadline:
        shown.append(page.locator("#eta").inner_text())
        page.wait_for_timeout(100)  # the page shows at most two statuses a second: see each
    estimates = [text for text in shown if text]
    assert estimates, "no time to ready within 4 simulated minutes of warming"
    assert all(re.match(r"Ready in about (\d+ min|a minute)", text) for text in estimates), set(estimates)
    minutes = [int(re.search(r"\d+", t).group()) for t in estimates if "min" in t]
    assert max(minutes) < 40, set(estimates)
    # Four simulated minutes pass while the test looks: a sound estimate moves by about that much, not by
    # tens of minutes as one from a rate measured with the heater off does while the real rate takes over.
    assert max(minutes) - min(minutes) <= 8, set(estimates)
    page.context.close()


def _acknowledge(warmer) -> None:
    """Acknowledge as a script would, retrying while the warmer refuses (the probe's first readings)."""
    request = urllib.request.Request(warmer.url + "/api/fault/ack", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {warmer.tokens['front-desk']}"})
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                assert json.loads(answer.read())["acknowledged"] == "sensor"
                return
        except urllib.error.HTTPError as refused:
            assert refused.code == 409 and time.monotonic() < deadline, refused.read()
        time.sleep(0.2)


def test_the_owner_sees_who_can_make_changes_and_ends_a_session_and_a_token(warmer, link, browser):
    from playwright.sync_api import expect

    mine, other = browser.page(), browser.page()
    for page in (mine, other):
        page.goto(link.url + "/")
        sign_in(page)
    mine.locator("#access summary").click()
    sessions, tokens = mine.locator("#sessions li"), mine.locator("#tokens li")
    expect(sessions.filter(has_text="(this browser)")).to_have_count(1)
    expect(tokens.filter(has_text="“front-desk”")).to_have_count(1)
    assert "Chrome" in sessions.first.inner_text()  # the browser in words, not its user-agent string

    # End every other browser's session (the earlier tests' too), the other page's among them.
    others = sessions.filter(has_not_text="(this browser)")
    expect(others).not_to_have_count(0)
    for left in range(others.count() - 1, -1, -1):
        end = others.first.get_by_role("button")
        end.click()
        expect(end).to_have_text("Tap again to confirm")  # one tap alone ends nothing
        end.click()
        expect(others).to_have_count(left)
    expect(sessions).to_have_count(1)
    other.reload()
    expect(other.locator("#signin")).to_be_visible()  # the other browser is signed out

    revoke = tokens.filter(has_text="“front-desk”").get_by_role("button")
    expect(revoke).to_have_text("Revoke")
    revoke.click()
    revoke.click()
    expect(tokens.filter(has_text="“front-desk”")).to_have_count(0)
    with pytest.raises(urllib.error.HTTPError) as refused:
        warmer.set_setpoint(50.0, token="front-desk")
    assert refused.value.code == 401
    for page in (mine, other):
        page.context.close()
