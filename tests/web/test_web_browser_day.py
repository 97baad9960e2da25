"""A day at the practice on the phone, in a real Chromium against a real ``stonewarmer run --simulate``:
switching off and on (and staying off across a restart), the presets, the settings sheet (schedule,
auto-off, presets, the ntfy address, the probe check, export and import), what the page says of the
schedule, and auto-off with its warning and "Keep it on".

This machine's clock is not synchronised (no NTP in the test box), so the real warmer's schedule waits
and the page must say so; the words for a planned start are checked on the real page with the status
it polls changed in flight.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.qa.processes import wait_until
from tests.web.browser import chromium, run_warmer, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPEED = 20


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _call(warmer, method: str, path: str, body=None, *, token: str = "owner") -> dict:
    """The API as a script uses it, with the token ``token``."""
    request = urllib.request.Request(warmer.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {warmer.tokens[token]}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def _history(warmer, since_s: float) -> dict:
    """The 1 s history from ``since_s`` to the warmer's latest tick (its simulated wall clock runs ahead)."""
    until_s = warmer.status()["wall_time_s"]
    return _call(warmer, "GET", f"/api/history?since={since_s:.3f}&until={until_s:.3f}&resolution=1s")["series"]


def test_switch_off_holds_the_relay_off_across_a_restart_and_switch_on_heats_again(tmp_path, browser):
    from playwright.sync_api import expect

    with run_warmer(tmp_path, speed=SPEED, tokens=["owner"]) as warmer:
        page = browser.page()
        page.goto(warmer.url + "/")
        expect(page.locator("#badge-word")).to_have_text("Warming", timeout=10_000)
        expect(page.locator("#power")).to_be_disabled()  # not signed in
        sign_in(page)
        page.click("#power")  # one tap
        expect(page.locator("#badge-word")).to_have_text("Off", timeout=5_000)
        expect(page.locator("#power")).to_have_text("Switch on")
        off_wall_s = warmer.status()["wall_time_s"]
        events = _call(warmer, "GET", "/api/events?limit=5")["events"]
        assert events[0]["kind"] == "off" and events[0]["source"] == "web", events[0]
        expect(page.locator("#events")).to_contain_text("Switched off from the dashboard")
        # A simulated minute later the relay has never closed since, and the mode is off all along.
        expect(page.locator("#temp")).to_have_text(re.compile(r"^\d+\.\d$"))
        wait_until(lambda: warmer.status()["wall_time_s"] >= off_wall_s + 60, timeout_s=30,
                   what="a simulated minute with the warmer off")
        status = warmer.status()
        assert status["mode"] == "off" and status["relay_on"] is False
        series = _history(warmer, off_wall_s + 2)  # the tick in flight when the tap came may still heat
        assert len(series["t_s"]) > 30
        assert set(series["relay_on"]) == {0} and set(series["mode"]) == {"off"}
        warmer.proc.send_signal(signal.SIGTERM)

    with run_warmer(tmp_path, speed=SPEED, tokens=["owner"]) as warmer:  # the same state dir: restarted
        page.goto(warmer.url + "/")
        expect(page.locator("#badge-word")).to_have_text("Off", timeout=10_000)
        assert warmer.status()["relay_on"] is False
        sign_in(page)
        page.click("#power")
        expect(page.locator("#badge-word")).to_have_text("Warming", timeout=5_000)
        expect(page.locator("#power")).to_have_text("Switch off")
        expect(page.locator("#day-msg")).to_have_text("Switched on.")
        on_wall_s = warmer.status()["wall_time_s"]
        wait_until(lambda: warmer.status()["wall_time_s"] >= on_wall_s + 30, timeout_s=30,
                   what="half a simulated minute switched on")
        assert 1 in _history(warmer, on_wall_s)["relay_on"]  # cold water: it heats again


@pytest.fixture(scope="module")
def warmer(tmp_path_factory):
    with run_warmer(tmp_path_factory.mktemp("day"), speed=SPEED, tokens=["owner"]) as w:
        yield w


@pytest.fixture
def page(browser, warmer):
    from playwright.sync_api import expect

    page = browser.page()
    page.goto(warmer.url + "/")
    expect(page.locator("#temp")).to_have_text(re.compile(r"^\d+\.\d$"), timeout=10_000)
    sign_in(page)
    yield page
    page.context.close()


#: Every control of the day card and the settings sheet narrower or lower than 44 px, and a page wider than the phone.
SMALL_TARGETS = """() => {
  const shown = (e) => e.getClientRects().length > 0 && !e.classList.contains("visually-hidden");
  const small = [...document.querySelectorAll(".day button, #settings button, #settings input, #settings select, "
    + "#settings .button")].filter(shown).map((e) => [e.id || e.textContent, e.getBoundingClientRect()])
    .filter(([, r]) => r.width < 44 || r.height < 44).map(([name]) => name);
  return { small, overflow: document.documentElement.scrollWidth > window.innerWidth };
}"""


def test_the_day_controls_fit_a_360_px_phone_with_44_px_targets(warmer, browser):
    from playwright.sync_api import expect

    page = browser.page(phone="360x740")
    page.goto(warmer.url + "/")
    sign_in(page)
    expect(page.locator("#presets button")).to_have_count(3)
    assert page.evaluate(SMALL_TARGETS) == {"small": [], "overflow": False}
    page.click("#open-settings")
    expect(page.locator("#ready-sun")).to_be_visible()
    assert page.evaluate(SMALL_TARGETS) == {"small": [], "overflow": False}
    page.context.close()


def test_a_preset_is_one_tap_and_a_refused_one_is_said_in_words(warmer, page):
    from playwright.sync_api import expect

    presets = page.locator("#presets button")
    expect(presets).to_have_text(["Body 52", "Face 48", "Feet 54"])
    page.click("text=Face 48")
    expect(page.locator("#sp")).to_have_text("48.0", timeout=5_000)
    expect(page.locator("#day-msg")).to_have_text("Face: set to 48.0 °C.")
    wait_until(lambda: warmer.status()["setpoint_c"] == 48.0, timeout_s=10, what="the preset in the status")
    expect(page.locator("#presets button[aria-pressed=true]")).to_have_text("Face 48")

    # A preset the warmer does not know (the request changed on its way): refused, in words, nothing changed.
    page.route("**/api/preset", lambda route: route.continue_(post_data=json.dumps({"name": "Neck"})))
    page.click("text=Body 52")
    expect(page.locator("#day-msg")).to_contain_text("Not changed:")
    expect(page.locator("#day-msg")).to_contain_text("Body, Face, Feet")
    assert warmer.status()["setpoint_c"] == 48.0
    page.unroute("**/api/preset")
    page.click("text=Body 52")
    expect(page.locator("#sp")).to_have_text("52.0", timeout=5_000)


def test_the_settings_sheet_saves_the_schedule_presets_and_ntfy_and_refuses_a_wrong_value(warmer, page):
    from playwright.sync_api import expect

    page.click("#open-settings")
    expect(page.locator("#settings")).to_be_visible()
    expect(page.locator("#preset-range")).to_have_text("Each between 35.0 °C and 54.0 °C.")
    page.fill("#ready-mon", "08:00")
    page.select_option("#preset-mon", "Body")
    page.fill("#off-mon", "18:30")
    page.fill("#auto-off-h", "8")
    page.fill("#ntfy-url", "https://ntfy.example/stones")
    page.click("#add-preset")
    page.locator(".preset-row").last.locator("input").first.fill("Hands")
    page.locator(".preset-row").last.locator("input").nth(1).fill("50")
    page.click("#save-settings")
    expect(page.locator("#settings-msg")).to_have_text("Saved.", timeout=5_000)
    saved = _call(warmer, "GET", "/api/settings")
    assert saved["schedule"]["days"]["mon"] == {"ready_by": "08:00", "preset": "Body", "off_at": "18:30"}
    assert saved["schedule"]["auto_off_h"] == 8
    assert {"name": "Hands", "setpoint_c": 50.0} in saved["presets"]
    assert saved["notify"]["ntfy_url"] == "https://ntfy.example/stones"

    # Too hot a preset: refused as a whole, in words, and nothing changed.
    page.locator(".preset-row").last.locator("input").nth(1).fill("80")
    page.fill("#auto-off-h", "3")
    page.click("#save-settings")
    expect(page.locator("#settings-msg")).to_contain_text("Not saved, nothing was changed:", timeout=5_000)
    assert _call(warmer, "GET", "/api/settings") == saved
    page.click("#close-settings")
    expect(page.locator("#presets button")).to_contain_text(["Hands 50"], timeout=5_000)

    # The machine's clock is not synchronised: the schedule waits, and the page says so.
    assert warmer.status()["clock_synced"] is False
    expect(page.locator("#day-note")).to_contain_text("The clock is not set: the schedule waits.")


def test_a_planned_start_is_said_with_the_ready_by_time(warmer, page):
    from playwright.sync_api import expect

    days = {d: {"ready_by": "08:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    settings = _call(warmer, "GET", "/api/settings")
    _call(warmer, "PUT", "/api/settings", {**settings, "schedule": {"auto_off_h": 10, "days": days}})
    wall = datetime.fromtimestamp(warmer.status()["wall_time_s"])
    start = wall.replace(hour=7, minute=12, second=0, microsecond=0)
    if start <= wall:
        start += timedelta(days=1)

    def planned(route):  # the status as a warmer whose clock is set would say it
        status = route.fetch().json()
        route.fulfill(json={**status, "clock_synced": True, "next_start": start.timestamp()})

    page.route("**/api/stream", lambda route: route.fulfill(status=503))  # the page polls /api/status instead
    page.route("**/api/status", planned)
    page.reload()
    expect(page.locator("#day-note")).to_contain_text("Starts at 07:12 to be ready by 08:00.", timeout=10_000)


@pytest.mark.parametrize("zone_name", ["Asia/Kolkata", "Nowhere/Unknown"])  # unknown to the browser: the offset
def test_a_planned_start_is_said_in_the_warmers_time_zone_not_the_phones(warmer, page, zone_name):
    from playwright.sync_api import expect

    days = {d: {"ready_by": "08:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    settings = _call(warmer, "GET", "/api/settings")
    _call(warmer, "PUT", "/api/settings", {**settings, "schedule": {"auto_off_h": 10, "days": days}})
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year; the phone (this machine's Chromium) is on UTC
    wall = datetime.fromtimestamp(warmer.status()["wall_time_s"], kolkata)
    start = wall.replace(hour=7, minute=12, second=0, microsecond=0)
    if start <= wall:
        start += timedelta(days=1)

    def planned(route):  # a warmer in Kolkata whose clock is set
        status = route.fetch().json()
        route.fulfill(json={**status, "clock_synced": True, "next_start": start.timestamp(),
                            "time_zone": zone_name, "utc_offset_s": 19800.0})

    page.route("**/api/stream", lambda route: route.fulfill(status=503))
    page.route("**/api/status", planned)
    page.reload()
    expect(page.locator("#day-note")).to_contain_text("Starts at 07:12 to be ready by 08:00.", timeout=10_000)


def test_the_probe_check_applies_the_thermometer_offset_and_refuses_one_out_of_range(warmer, page):
    from playwright.sync_api import expect

    page.click("#open-settings")
    expect(page.locator("#calibration-now")).to_contain_text("The probe reads", timeout=5_000)
    raw_c = warmer.status()["temperature_c"] - warmer.status()["probe_offset_c"]
    page.fill("#thermometer", f"{raw_c + 10:.1f}")  # 10 degC off: a thermometer misread, not a probe
    page.click("#calibrate")
    expect(page.locator("#calibration-msg")).to_contain_text("Not changed:", timeout=5_000)
    assert warmer.status()["probe_offset_c"] == 0

    raw_c = warmer.status()["temperature_c"]
    page.fill("#thermometer", f"{raw_c - 0.8:.1f}")
    page.click("#calibrate")
    expect(page.locator("#calibration-msg")).to_contain_text(re.compile(r"Correction −\d\.\d °C applied"),
                                                             timeout=5_000)
    # The status reaches the web process with the control process's next tick: wait for it.
    wait_until(lambda: warmer.status()["probe_offset_c"] != 0, timeout_s=10, what="the offset in the status")
    offset_c = warmer.status()["probe_offset_c"]
    assert -2.0 < offset_c < -0.3  # the water warms while the thumb types
    expect(page.locator("#calibration-now")).to_contain_text("with the correction of −")
    page.click("#reset-offset")
    expect(page.locator("#calibration-msg")).to_contain_text("Correction reset", timeout=5_000)
    wait_until(lambda: warmer.status()["probe_offset_c"] == 0, timeout_s=10, what="the reset in the status")


def test_settings_export_downloads_a_file_and_import_refuses_a_bad_one_and_loads_a_good_one(warmer, page, tmp_path):
    from playwright.sync_api import expect

    page.click("#open-settings")
    with page.expect_download() as download:
        page.click("#export-settings")
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    assert exported.name == "stonewarmer-settings.json"
    doc = json.loads(exported.read_text())
    assert doc == _call(warmer, "GET", "/api/settings")

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "presets": [{"name": "Body", "setpoint_c": 80}]}))
    page.set_input_files("#import-file", str(bad))
    expect(page.locator("#import-msg")).to_contain_text("Not imported, nothing was changed:", timeout=5_000)
    not_json = tmp_path / "notes.json"
    not_json.write_text("stones: warm")
    page.set_input_files("#import-file", str(not_json))
    expect(page.locator("#import-msg")).to_have_text(
        "Not imported, nothing was changed: notes.json is not a settings file (not JSON).")
    assert _call(warmer, "GET", "/api/settings") == doc

    good = tmp_path / "other-warmer.json"
    good.write_text(json.dumps({**doc, "presets": [{"name": "Body", "setpoint_c": 50.5}]}))
    page.set_input_files("#import-file", str(good))
    expect(page.locator("#import-msg")).to_have_text("Imported other-warmer.json.", timeout=5_000)
    assert _call(warmer, "GET", "/api/settings")["presets"] == [{"name": "Body", "setpoint_c": 50.5}]
    page.click("#close-settings")
    expect(page.locator("#presets button")).to_have_text(["Body 50.5"], timeout=5_000)


AUTO_OFF_SPEED = 60
AUTO_OFF_H = 0.3  # 18 simulated minutes: the warning 3 min after the last touch (3 s at 60 times)


def test_auto_off_shows_when_warns_keeps_on_with_one_tap_then_switches_off_and_says_why(tmp_path, browser):
    from playwright.sync_api import expect

    config = f"[schedule]\nauto_off_h = {AUTO_OFF_H}\n"
    with run_warmer(tmp_path, speed=AUTO_OFF_SPEED, config=config, tokens=["owner"]) as warmer:
        page = browser.page()
        page.goto(warmer.url + "/")
        sign_in(page)
        first_off = warmer.status()["auto_off_at"]
        expect(page.locator("#day-note")).to_contain_text(re.compile(r"Switches off at \d\d:\d\d\."))
        expect(page.locator("#auto-off-warning")).to_be_visible(timeout=15_000)
        expect(page.locator("#auto-off-headline")).to_have_text(
            re.compile(r"Switches itself off at \d\d:\d\d"))
        page.click("#keep-on")  # one tap
        expect(page.locator("#auto-off-warning")).to_be_hidden(timeout=5_000)
        expect(page.locator("#day-msg")).to_contain_text("Kept on: switches off at")
        kept = warmer.status()
        assert kept["auto_off_at"] > first_off + 60 and kept["mode"] != "off"

        # Nobody touches it again: the warning, then off, and the page says why and when.
        expect(page.locator("#badge-word")).to_have_text("Off", timeout=40_000)
        off = next(e for e in _call(warmer, "GET", "/api/events?limit=20")["events"] if e["kind"] == "auto-off")
        when = datetime.fromtimestamp(off["wall_time_s"]).strftime("%H:%M")
        expect(page.locator("#day-note")).to_have_text(
            f"Switched itself off by auto-off (no one had touched it) at {when}.")
        assert warmer.status()["relay_on"] is False
