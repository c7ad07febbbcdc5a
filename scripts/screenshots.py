"""Regenerate docs/screenshots/*.png from a live demo: `make screenshots`.

Starts `estate demo` on free ports with a throwaway SQLite database, waits until the simulated
devices have reported, signs in as each user group and captures its main pages. With
`python scripts/screenshots.py URL PASSWORD` it captures an already running demo instead.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHROMIUM = os.environ.get("ESTATE_TEST_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1100, "height": 760}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_demo() -> Iterator[tuple[str, str]]:
    """A fresh `estate demo`; yields its base URL and the sign-in password it printed."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="estate-screens-") as data:
        env = os.environ | {
            "ESTATE_DATA_DIR": data,
            "ESTATE_DATABASE_URL": f"sqlite:///{data}/estate.db",
            "ESTATE_MQTT_URL": "embedded",
            "ESTATE_MQTT_EMBEDDED_PORT": str(free_port()),
            "ESTATE_TSDB_URL": "",
            # Devices that drop off show as offline within seconds, so the pages have some.
            "ESTATE_OFFLINE_AFTER_S": "10",
            "ESTATE_SWEEP_INTERVAL_S": "2",
        }
        command = [str(ROOT / ".venv" / "bin" / "estate"), "demo", "--port", str(port)]
        command += ["--devices-per-prison", "48", "--interval", "3", "--fault-rate", "0.03"]
        demo = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True
        )
        try:
            password = _password_from(demo)
            yield f"http://127.0.0.1:{port}", password
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("the demo did not stop within 30 s; killing it", file=sys.stderr)
                demo.kill()
                demo.wait()


def _password_from(demo: subprocess.Popen[str]) -> str:
    assert demo.stdout is not None
    for line in demo.stdout:
        found = re.search(r"password: (\S+)", line)
        if found:
            return found.group(1)
    raise SystemExit(f"`estate demo` exited ({demo.wait()}) before printing its password")


def wait_for_reports(base: str, seconds: float = 90) -> None:
    """Until the demo's devices are mostly online, so the pages show a live estate."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    time.sleep(min(20.0, max(0.0, deadline - time.monotonic())))


def sign_in(browser: Browser, base: str, username: str, password: str) -> Page:
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{base}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
    return page


def shoot(page: Page, base: str, path: str, name: str) -> None:
    response = page.goto(f"{base}{path}")
    if response is None or response.status != 200:
        status = response.status if response else "no response"
        print(f"skipped {name}: {path} answered {status}", file=sys.stderr)
        return
    page.screenshot(path=OUT / f"{name}.png", full_page=True)
    print(f"wrote docs/screenshots/{name}.png", file=sys.stderr)


def capture(base: str, password: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        page.goto(f"{base}/sign-in")
        page.screenshot(path=OUT / "sign-in.png")
        page.close()

        rollout = sign_in(browser, base, "rollout", password)
        shoot(rollout, base, "/estate", "estate-overview")
        shoot(rollout, base, "/prisons/MDI", "prison")
        shoot(rollout, base, "/rollout", "rollout")
        rollout.close()

        support = sign_in(browser, base, "support", password)
        shoot(support, base, "/attention", "home-it-support")
        shoot(support, base, "/devices?prison=MDI", "devices")
        first = support.locator("main table tbody a").first
        device = first.get_attribute("href") if first.count() else None
        if device:
            shoot(support, base, device, "device")
        shoot(support, base, "/alerts", "alerts")
        shoot(support, base, "/jobs", "jobs")
        support.close()

        facilities = sign_in(browser, base, "facilities", password)
        shoot(facilities, base, "/faults", "faults")
        shoot(facilities, base, "/faults/new?location=MDI-1-1-001", "report-a-fault")
        shoot(facilities, base, "/places?q=MDI-1-1", "places")
        shoot(facilities, base, "/faults/reports", "fault-reports")
        facilities.close()
        browser.close()


def main(argv: list[str]) -> None:
    if len(argv) == 2:
        capture(argv[0], argv[1])
        return
    if argv:
        raise SystemExit("usage: screenshots.py [URL PASSWORD]")
    with running_demo() as (base, password):
        wait_for_reports(base)
        capture(base, password)


if __name__ == "__main__":
    main(sys.argv[1:])
