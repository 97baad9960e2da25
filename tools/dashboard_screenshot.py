"""Take the dashboard's screenshots in docs/: a simulated warmer, phone-sized (390x844), with the system Chromium.

    .venv/bin/python tools/dashboard_screenshot.py                # docs/dashboard.png: warmed up and READY
    .venv/bin/python tools/dashboard_screenshot.py --stuck-relay  # docs/dashboard-stuck-relay.png

The first runs `stonewarmer run --simulate` 40 times faster than real time until the stones are ready
(about 25 simulated minutes), signs in and takes the whole page. The second welds the relay at 2200
simulated seconds (100 times real time) and takes what the phone's screen shows once the interlock
has latched the fault.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from controller.qa.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "screenshot only"
VIEWPORT = {"width": 390, "height": 844}


def _status(url: str) -> dict:
    with urllib.request.urlopen(url + "api/status", timeout=1) as answer:
        return json.loads(answer.read())


def _wait_for(url: str, condition, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition(_status(url)):
                return
        except OSError:
            pass  # not up yet
        if time.monotonic() > deadline:
            raise SystemExit(f"the simulated warmer did not get there within {timeout_s:.0f} s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stuck-relay", action="store_true", help="the welded relay's alarm instead")
    parser.add_argument("out", nargs="?", type=Path, help="the PNG to write (default: in docs/)")
    args = parser.parse_args()
    out = args.out or ROOT / "docs" / ("dashboard-stuck-relay.png" if args.stuck_relay else "dashboard.png")
    run = ["--speed", "100", "--inject", "stuck-relay@2200"] if args.stuck_relay else ["--speed", "40"]
    cli = [sys.executable, "-m", "controller"]
    with tempfile.TemporaryDirectory() as state:
        subprocess.run([*cli, "set-password", "--stdin", "--state-dir", state], input=PASSWORD + "\n",
                       text=True, check=True, capture_output=True)
        port = free_port()
        proc = subprocess.Popen([*cli, "run", "--simulate", "--state-dir", state, "--host", "127.0.0.1",
                                 "--port", str(port), *run], stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            if args.stuck_relay:
                _wait_for(url, lambda s: s["fault"] == "stuck_relay", timeout_s=60)
            else:
                _wait_for(url, lambda s: s["mode"] == "ready", timeout_s=90)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(url)
                page.fill("#password", PASSWORD)
                page.click("#signin-button")
                expect(page.locator("#signout")).to_be_visible()
                page.wait_for_timeout(1500)  # the chart is drawn at most twice a second
                if args.stuck_relay:
                    page.emulate_media(reduced_motion="reduce")  # the banner steady, not mid-flash
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=str(out))
                else:
                    page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(out)


if __name__ == "__main__":
    main()
