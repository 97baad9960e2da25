"""Take the dashboard's screenshots in docs/: a simulated warmer, phone-sized (390x844), with the system Chromium.

    .venv/bin/python tools/dashboard_screenshot.py                # docs/dashboard.png: warmed up and READY
    .venv/bin/python tools/dashboard_screenshot.py --stuck-relay  # docs/dashboard-stuck-relay.png
    .venv/bin/python tools/dashboard_screenshot.py --day          # docs/day-*.png: a practice day

The first runs `stonewarmer run --simulate` 40 times faster than real time until the stones are ready
(about 25 simulated minutes), signs in and takes the whole page. The second welds the relay at 2200
simulated seconds (100 times real time) and takes what the phone's screen shows once the interlock
has latched the fault. The third runs a warmer with auto-off after 45 simulated minutes (40 times
real time) and takes what the phone shows at four moments of the README's practice day: the stones
ready with the preset buttons, the auto-off warning, the settings sheet, switched off for the night.
Each is what the screen shows (not the whole page), reduced to 256 colours to keep the files small.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
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


def _small_png(png: bytes, out: Path) -> None:
    """Write ``png`` reduced to a 256-colour palette (a flat page loses nothing visible)."""
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def _day_shots(page, out_dir: Path) -> list[Path]:
    """The four moments of a practice day, on a warmer whose auto-off comes after 45 simulated minutes."""
    shots = []

    def shot(name: str) -> None:
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(600)  # the chart is drawn at most twice a second
        shots.append(out_dir / f"day-{name}.png")
        _small_png(page.screenshot(), shots[-1])

    expect(page.locator("#badge-word")).to_have_text("READY", timeout=90_000)
    shot("ready")
    expect(page.locator("#auto-off-warning")).to_be_visible(timeout=90_000)
    shot("auto-off")
    page.click("#keep-on")
    page.click("#open-settings")
    expect(page.locator("#ready-mon")).to_be_visible()
    page.fill("#ready-mon", "08:00")
    page.select_option("#preset-mon", "Body")
    page.fill("#off-mon", "18:30")
    page.click("#save-settings")
    expect(page.locator("#settings-msg")).to_have_text("Saved.")
    page.wait_for_timeout(300)
    shots.append(out_dir / "day-settings.png")
    _small_png(page.screenshot(), shots[-1])
    page.click("#close-settings")
    page.click("#power")
    expect(page.locator("#badge-word")).to_have_text("Off")
    shot("off")
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stuck-relay", action="store_true", help="the welded relay's alarm instead")
    which.add_argument("--day", action="store_true", help="the practice day's four screens (docs/day-*.png)")
    parser.add_argument("out", nargs="?", type=Path,
                        help="the PNG to write, or with --day the folder (default: docs/)")
    args = parser.parse_args()
    out = args.out or ROOT / "docs" / ("dashboard-stuck-relay.png" if args.stuck_relay else "dashboard.png")
    if args.day:
        out = args.out or ROOT / "docs"
    run = ["--speed", "100", "--inject", "stuck-relay@2200"] if args.stuck_relay else ["--speed", "40"]
    cli = [sys.executable, "-m", "controller"]
    with tempfile.TemporaryDirectory() as state:
        if args.day:
            config = Path(state) / "config.toml"
            config.write_text("[schedule]\nauto_off_h = 0.75\n")
            run += ["--config", str(config)]
        subprocess.run([*cli, "set-password", "--stdin", "--state-dir", state], input=PASSWORD + "\n",
                       text=True, check=True, capture_output=True)
        port = free_port()
        proc = subprocess.Popen([*cli, "run", "--simulate", "--state-dir", state, "--host", "127.0.0.1",
                                 "--port", str(port), *run], stdout=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            if args.stuck_relay:
                _wait_for(url, lambda s: s["fault"] == "stuck_relay", timeout_s=60)
            elif not args.day:
                _wait_for(url, lambda s: s["mode"] == "ready", timeout_s=90)
            else:
                _wait_for(url, lambda s: s["mode"] is not None, timeout_s=30)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(url)
                page.fill("#password", PASSWORD)
                page.click("#signin-button")
                expect(page.locator("#signout")).to_be_visible()
                written = [out]
                if args.day:
                    written = _day_shots(page, out)
                elif args.stuck_relay:
                    page.wait_for_timeout(1500)  # the chart is drawn at most twice a second
                    page.emulate_media(reduced_motion="reduce")  # the banner steady, not mid-flash
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=str(out))
                else:
                    page.wait_for_timeout(1500)
                    page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
