"""axe-core finds no serious or critical problems on any fault page, in any state it shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.facilities.fault_site import PNG, browser_page, fault_site, seed_fault
from tests.web.axe import serious_violations
from tests.web.site import Site


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


def test_every_fault_page_passes_axe(site: Site, browser: Browser, tmp_path: Path) -> None:
    reference = seed_fault(site.ctx)
    seed_fault(site.ctx, "MDI-2-1-001", category="heating", priority="P3")
    photo = tmp_path / "bell.png"
    photo.write_bytes(PNG)
    context, page = browser_page(browser, site, "facilities", "/faults", bypass_csp=True)
    problems: dict[str, object] = {}

    def check(name: str, target: Page = page) -> None:
        problems[name] = serious_violations(target)

    check("open faults")
    page.goto(f"{site.base}/faults?status=nonsense&wing=MDI-77")
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    check("open faults with errors")
    page.goto(f"{site.base}/faults/new")
    check("report form, top of the tree")
    page.get_by_label("Search for the place").fill("MDI-1-1")
    page.get_by_role("button", name="Find place").click()
    check("report form, places found")
    page.get_by_role("button", name="MDI-1-1 (show places inside)").click()
    check("report form, looking inside a landing")
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    check("report form with errors")
    page.goto(f"{site.base}/faults/new?location=MDI-1-1-003")
    check("report form from a QR code")
    page.get_by_label("Fire safety").check()
    page.get_by_label("P1: emergency").check()
    page.get_by_label("What is wrong?").fill("Smoke detector beeping")
    page.get_by_label("Photo (optional)").set_input_files(str(photo))
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(page.locator(".govuk-notification-banner")).to_be_visible()
    check("fault page with a photo and the success banner")
    page.goto(f"{site.base}/faults/{reference}")
    check("fault page with its next steps")
    cancel = page.locator("form.faults-move").filter(has_text="Cancel this fault")
    cancel.get_by_role("button", name="Cancel this fault").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    check("fault page with a refused move")
    page.get_by_role("link", name="My assigned").click()
    check("my assigned, none yet")
    page.goto(f"{site.base}/faults/new?location=MDI-1-1-001")
    page.get_by_label("Plumbing").check()
    page.get_by_label("P3: routine").check()
    page.get_by_label("What is wrong?").fill("Leak")
    context.set_offline(True)
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(page.locator("#faults-queue")).to_contain_text("saved on this device")
    check("report kept on the device while offline")
    context.set_offline(False)
    expect(page.locator("#faults-queue")).to_contain_text("Sent:")
    check("queued report sent")
    context.close()

    viewer, page = browser_page(
        browser, site, "mdi.viewer", f"/faults/{reference}", bypass_csp=True
    )
    check("fault page for a reader", page)
    page.goto(f"{site.base}/faults/MDI-F-999999")
    check("a fault that is not there", page)
    viewer.close()
    assert len(problems) == 15
    assert all(not found for found in problems.values()), problems
