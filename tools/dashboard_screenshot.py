"""Take docs/dashboard.png: the dashboard of a simulated warmer, phone-sized (390 px wide).

Runs `stonewarmer run --simulate` 40 times faster than real time for a simulated
~33 minutes so the chart has a warm-up curve, signs in, and screenshots the page
with the system Chromium:
    .venv/bin/python tools/dashboard_screenshot.py [OUT.png]
"""

from __future__ import annotations

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


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    cli = [sys.executable, "-m", "controller"]
    with tempfile.TemporaryDirectory() as state:
        subprocess.run([*cli, "set-password", "--stdin", "--state-dir", state], input=PASSWORD + "\n",
                       text=True, check=True, capture_output=True)
        port = free_port()
        proc = subprocess.Popen([*cli, "run", "--simulate", "--state-dir", state, "--host", "127.0.0.1",
                                 "--port", str(port), "--speed", "40"], stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(100):
                try:
                    urllib.request.urlopen(url + "healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(50)  # ~33 simulated minutes: warmed up and ready
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 390, "height": 844})
                page.goto(url)
                page.fill("#password", PASSWORD)
                page.click("#signin-button")
                expect(page.locator("#signout")).to_be_visible()
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(out)


if __name__ == "__main__":
    main()
