"""The dashboard through a whole session that ends with a welded relay, in a real Chromium against a
real ``stonewarmer run --simulate`` (100 times real time; the relay welds at 2200 simulated seconds).

The warmer warms up (Almost ready about 11 s in, READY about 14 s), then the relay sticks and the
interlock latches ``stuck_relay`` about 23 s in. The tests share that one warmer, each waiting for
the state it looks at.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.web.browser import ALARM_SHOWN, ARTIFACTS, chromium, contrast, run_warmer, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RAW_WORDS = ("stuck_relay", "relay stuck", "interlock", "token:", "(sensor)", "degC", "CRC", "bad readings")


@pytest.fixture(scope="module")
def warmer(tmp_path_factory):
    with run_warmer(tmp_path_factory.mktemp("stuck"), speed=100, injections=["stuck-relay@2200"],
                    tokens=["review"]) as w:
        w.set_setpoint(52.5, token="review")  # a change by a script: its event names the app in words
        yield w


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _badge(page) -> dict:
    return page.eval_on_selector("#badge", """(el) => {
      const s = getComputedStyle(el);
      return { word: document.getElementById("badge-word").textContent,
               icon: document.getElementById("badge-icon").textContent,
               radius: parseFloat(s.borderTopLeftRadius), height: el.getBoundingClientRect().height,
               fontSize: parseFloat(s.fontSize), background: s.backgroundColor };
    }""")


def test_ready_is_told_apart_from_almost_ready_by_shape_icon_and_word(warmer, browser):
    from playwright.sync_api import expect

    page = browser.page()
    page.goto(warmer.url + "/")
    expect(page.locator("#badge-word")).to_have_text("Almost ready", timeout=20_000)
    holding = _badge(page)
    expect(page.locator("#badge-word")).to_have_text("READY", timeout=10_000)
    ready = _badge(page)
    page.screenshot(path=str(ARTIFACTS / "dashboard-ready.png"))
    assert holding["word"] != ready["word"]
    assert ready["icon"] == "✔" and holding["icon"] != ready["icon"]
    # The shape, not only the shade: READY is a square-cornered block, clearly bigger than the pill.
    assert holding["radius"] > ready["radius"] * 2
    assert ready["height"] > holding["height"] * 1.3 and ready["fontSize"] > holding["fontSize"] * 1.3
    # "Almost ready" is an outline; READY is filled.
    assert re.fullmatch(r"rgba\(0, 0, 0, 0\)|transparent", holding["background"])
    assert not re.fullmatch(r"rgba\(0, 0, 0, 0\)|transparent", ready["background"])
    page.context.close()


def test_the_legend_swatch_of_the_water_takes_the_lines_colour(warmer, browser):
    from playwright.sync_api import expect

    page = browser.page()
    page.goto(warmer.url + "/")
    expect(page.locator("#badge-word")).to_have_text(re.compile("Almost ready|READY|FAULT"), timeout=30_000)
    colours = """() => {
      const probe = document.createElement("div");
      probe.style.color = "var(--warming)";
      document.body.append(probe);
      const warming = getComputedStyle(probe).color;
      probe.remove();
      return [getComputedStyle(document.getElementById("hero")).borderTopColor,
              getComputedStyle(document.getElementById("k-temp"), "::before").backgroundColor, warming];
    }"""
    # The chart (and its legend) is redrawn at most twice a second, the hero on every status: give
    # the legend one redraw to follow a change of state that lands between the two.
    page.wait_for_function(f"() => {{ const [line, swatch] = ({colours})(); return line === swatch; }}",
                           timeout=5_000)
    line, swatch, warming = page.evaluate(colours)
    assert swatch == line, f"the water's swatch is {swatch}, its line {line}"
    assert line != warming  # not warming now: the line (and so the swatch) is not the warming orange
    page.context.close()


def _wait_for_fault(warmer, kind: str, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while warmer.status()["fault"] != kind:
        assert time.monotonic() < deadline, f"no {kind} fault within {timeout_s:.0f} s"
        time.sleep(0.2)


def test_an_alarm_before_the_first_tap_tries_no_vibration(warmer, browser):
    from playwright.sync_api import expect

    _wait_for_fault(warmer, "stuck_relay", timeout_s=30)
    page = browser.page(spy_alerts=True)
    first_console = len(browser.console)
    page.goto(warmer.url + "/")
    # Not a look at the page until the alarm has run for two rounds: Playwright's own look counts as a tap.
    deadline = time.monotonic() + 15
    while ALARM_SHOWN not in browser.console[first_console:]:
        assert time.monotonic() < deadline, "no alarm banner within 15 s"
        page.wait_for_timeout(100)
    page.wait_for_timeout(4500)
    blocked = [m for m in browser.console[first_console:] if "vibrate" in m]
    assert blocked == []
    assert page.evaluate("""() => [window.__vibrations.length, document.getElementById("alarm").hidden,
                                   getComputedStyle(document.querySelector("#alarm .tap-hint")).display]""") \
        == [0, False, "block"]  # the banner asks for the tap the alarm needs
    # The first tap unlocks sound and vibration, and the alarm goes on with both.
    page.locator("h1").click()
    page.wait_for_function("() => window.__vibrations.length > 0 && window.__tones > 0", timeout=5_000)
    expect(page.locator("#alarm .tap-hint")).to_be_hidden()
    page.context.close()


def test_a_stuck_relay_says_first_and_largest_that_the_heater_is_on(warmer, browser):
    from playwright.sync_api import expect

    page = browser.page(color_scheme="dark")
    page.goto(warmer.url + "/")
    headline = page.locator("#alarm-headline")
    expect(headline).to_have_text("The heater is ON — unplug it now", timeout=30_000)
    expect(page.locator("#badge-word")).to_have_text("FAULT")
    banner = page.eval_on_selector("#alarm", """(el) => {
      const sizes = [...el.querySelectorAll("*")].filter((e) => e.textContent.trim() && !e.children.length)
        .map((e) => ({ id: e.id, size: parseFloat(getComputedStyle(e).fontSize) }));
      return { first: el.innerText.trim().split("\\n")[0], sizes };
    }""")
    assert banner["first"] == "The heater is ON — unplug it now"
    headline_px = next(s["size"] for s in banner["sizes"] if s["id"] == "alarm-headline")
    assert all(headline_px > s["size"] for s in banner["sizes"] if s["id"] != "alarm-headline")
    assert "unplug" in page.locator("#alarm-text").inner_text().lower()
    # Readable in dark mode: white on the banner's red, and its flash, at least 4.5:1.
    for _ in range(3):  # the banner flashes: measure on both phases
        assert contrast(page, "#alarm-headline") >= 4.5
        assert contrast(page, "#alarm-text") >= 4.5
        page.wait_for_timeout(400)

    # Plain words on the page; the ids and the technical message only behind "Details". (The events
    # are for those signed in.)
    expect(page.locator("#events")).to_contain_text("Sign in to see the events")
    sign_in(page)
    expect(page.locator("#events")).to_contain_text("the heater would not switch off")
    expect(page.locator("#events")).to_contain_text("by the app “review”")
    main_text = page.locator("body").inner_text()
    assert not [w for w in RAW_WORDS if w in main_text], main_text
    page.locator("#fault-details summary").click()
    expect(page.locator("#fault-tech")).to_contain_text("stuck_relay")
    expect(page.locator("#fault-tech")).to_contain_text("°C")
    page.screenshot(path=str(ARTIFACTS / "dashboard-stuck-relay-dark.png"))
    page.context.close()
