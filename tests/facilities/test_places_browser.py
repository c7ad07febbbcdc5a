"""Finding a place and printing its QR sheet in a real browser, with axe, with and without JS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from playwright.sync_api import Browser, Page, expect

from fleet.db import utcnow
from tests.facilities.test_fault_reports import logged
from tests.web.axe import serious_violations
from tests.web.site import PASSWORD, Site, running_site, sign_in

RASTER = 296  # pixels across each code when read back: 8 per module for a version-3 code
READ_BACK = """async ([selector, size]) => {
  const found = [];
  for (const card of document.querySelectorAll(selector)) {
    const svg = card.querySelector("svg").cloneNode(true);
    svg.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    const image = new Image();
    image.src = "data:image/svg+xml;base64," + btoa(svg.outerHTML);
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = size;
    const context = canvas.getContext("2d");
    context.fillStyle = "#fff";
    context.fillRect(0, 0, size, size);
    context.drawImage(image, 0, 0, size, size);
    const rgba = context.getImageData(0, 0, size, size).data;
    const grey = [];
    for (let i = 0; i < rgba.length; i += 4) grey.push(rgba[i]);
    found.push({place: card.dataset.place, grey});
  }
  return found;
}"""


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


def _axe_clean(page: Page, javascript: bool = True) -> None:
    """axe needs scripts to run; without JavaScript the same pages are checked by the JS run."""
    if javascript:
        assert serious_violations(page) == []


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_find_a_place_by_code_and_report_a_fault_there(
    site: Site, browser: Browser, javascript: bool
) -> None:
    logged(site.ctx, "MDI-1-1-002", "plumbing", "P3", utcnow())
    context = browser.new_context(java_script_enabled=javascript, bypass_csp=True)
    page = sign_in(context, site, "facilities")
    page.goto(f"{site.base}/places")
    expect(page.locator("tr[data-place]")).to_have_count(2)  # MDI's two wings; no LEI
    _axe_clean(page, javascript)

    page.get_by_label("Code or name of a cell, landing, wing or room").fill("mdi-1-1")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(f"{site.base}/places?q=mdi-1-1")
    rows = page.locator("main tbody tr[data-place]")
    expect(rows).to_have_count(4)
    expect(page.locator("tr[data-place='MDI-1-1'] td[data-cell=open]")).to_have_text("1")
    _axe_clean(page, javascript)

    page.get_by_role("link", name="Cell 002").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("MDI-1-1-002")
    expect(page.locator("tr[data-fault]")).to_have_count(1)
    expect(page.get_by_role("button", name="Report a fault here")).to_have_attribute(
        "href", "/faults/new?location=MDI-1-1-002"
    )
    _axe_clean(page, javascript)

    page.get_by_role("link", name="Landing 1").click()
    expect(page.locator("main tbody tr[data-place]")).to_have_count(3)
    page.goto(f"{site.base}/places?q=" + "x" * 70)
    expect(page.locator(".govuk-error-summary")).to_contain_text("at most 64 characters")
    _axe_clean(page, javascript)
    context.close()


def _decode(card: dict[str, Any]) -> list[str]:
    pixels = bytes(card["grey"])
    view = zxingcpp.ImageView(pixels, RASTER, RASTER, zxingcpp.ImageFormat.Lum)
    return [found.text for found in zxingcpp.read_barcodes(view, formats=zxingcpp.QRCode)]


def test_the_qr_sheet_reads_back_to_the_report_form_and_prints_three_across(
    site: Site, browser: Browser
) -> None:
    context = browser.new_context(bypass_csp=True)
    page = sign_in(context, site, "facilities")
    page.goto(f"{site.base}/places/MDI-2-1")
    page.get_by_role("button", name="Print QR codes for this landing").click()
    expect(page.locator("li.places-qr")).to_have_count(3)
    expect(page.get_by_role("button", name="Print this sheet")).to_be_visible()
    _axe_clean(page)

    cards = page.evaluate(READ_BACK, ["li.places-qr", RASTER])
    decoded = {card["place"]: _decode(card) for card in cards}
    assert decoded == {
        path: [f"{site.base}/faults/new?location={path}"]
        for path in ("MDI-2-1-001", "MDI-2-1-002", "MDI-2-1-003")
    }

    # Scanned on a phone that is not signed in: sign in, then straight to the filled-in form.
    phone = browser.new_context()
    scanned = phone.new_page()
    scanned.goto(decoded["MDI-2-1-002"][0])
    expect(scanned).to_have_url(re.compile(r"/sign-in\?next="))
    scanned.get_by_label("Username").fill("facilities")
    scanned.get_by_label("Password", exact=True).fill(PASSWORD)
    scanned.get_by_role("button", name="Sign in").click()
    expect(scanned).to_have_url(f"{site.base}/faults/new?location=MDI-2-1-002")
    expect(scanned.locator("main")).to_contain_text("MDI-2-1-002")
    phone.close()

    page.emulate_media(media="print")
    expect(page.locator(".moj-header")).to_be_hidden()
    expect(page.locator("h1")).to_be_hidden()
    columns = page.locator(".places-qr-grid").evaluate(
        "grid => getComputedStyle(grid).gridTemplateColumns.split(' ').length"
    )
    assert columns == 3
    context.close()


def test_the_qr_sheet_without_javascript_says_how_to_print(site: Site, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = sign_in(context, site, "facilities")
    page.goto(f"{site.base}/places/MDI-1-2/qr-sheet")
    expect(page.get_by_text("Use your browser\u2019s Print command")).to_be_visible()
    expect(page.get_by_role("button", name="Print this sheet")).to_be_hidden()
    page.goto(f"{site.base}/places/LEI-1-1/qr-sheet")  # outside the caseload
    expect(page.locator(".govuk-error-summary")).to_contain_text("No place in your prisons")
    context.close()
