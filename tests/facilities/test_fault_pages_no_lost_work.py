"""Never lose completed work: errors keep what was typed, retries make one fault, offline queues."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from facilities.faults.models import Fault
from fleet.db import transaction
from tests.facilities.fault_site import (
    PASSWORD,
    browser_page,
    fault_site,
    stored,
    web_client,
)
from tests.web.site import Site

QR_LINK = "/faults/new?location=MDI-1-1-001"


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_form_with_an_error_comes_back_with_everything_typed(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context, page = browser_page(browser, site, "facilities", QR_LINK, javascript=javascript)
    expect(page.locator("#chosen-place")).to_have_text("MDI-1-1-001")
    page.get_by_label("In-cell telephone").check()
    page.get_by_label("What is wrong?").fill("Handset dead, no dial tone\nTried twice")
    page.get_by_label("Device id (optional)").fill("PHONE-404")
    page.get_by_role("button", name="Send report", exact=True).click()

    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Choose how urgent it is, from P1 to P4")
    expect(page).to_have_title("Error: Report a fault - Estate - HMPPS")
    expect(page.locator("#chosen-place")).to_have_text("MDI-1-1-001")
    expect(page.get_by_label("In-cell telephone")).to_be_checked()
    expect(page.get_by_label("What is wrong?")).to_have_value(
        "Handset dead, no dial tone\nTried twice"
    )
    expect(page.get_by_label("Device id (optional)")).to_have_value("PHONE-404")
    assert stored(site.ctx).faults == 0

    # The device is checked once the form is otherwise complete: still nothing lost.
    page.get_by_label("P2: urgent").check()
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(summary).to_contain_text("No device 'PHONE-404' in MDI")
    expect(page.get_by_label("P2: urgent")).to_be_checked()
    page.get_by_label("Device id (optional)").fill("")
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(page.locator("h1")).to_have_text("Fault MDI-F-000001")
    assert stored(site.ctx).faults == 1
    context.close()


def test_a_resubmitted_form_makes_one_fault_and_lands_on_it(site: Site) -> None:
    with web_client(site, "facilities") as client:
        token, key = client.form_tokens()
        form = {
            "csrf_token": token,
            "idempotency_key": key,
            "location": "MDI-1-2-001",
            "category": "plumbing",
            "priority": "P3",
            "description": "Toilet will not flush",
        }
        first = client.http.post("/faults/new", data=form)
        # The response is lost on the way back; the tablet sends the same form again.
        again = client.http.post("/faults/new", data=form)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == "/faults/MDI-F-000001?sent=new"
    assert again.headers["location"] == "/faults/MDI-F-000001?sent=again"
    assert stored(site.ctx).faults == 1


def test_copies_of_one_form_racing_each_other_make_one_fault(site: Site) -> None:
    with web_client(site, "facilities") as client:
        token, key = client.form_tokens()
        cookies = dict(client.http.cookies)
    form = {
        "csrf_token": token,
        "idempotency_key": key,
        "location": "MDI-1-2-001",
        "category": "plumbing",
        "priority": "P3",
        "description": "Toilet will not flush",
    }
    answers: list[int] = []
    start = threading.Barrier(6)

    def send() -> None:
        with httpx.Client(base_url=site.base, cookies=cookies, timeout=30) as http:
            start.wait()
            answers.append(http.post("/faults/new", data=form).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [303] * 6
    assert stored(site.ctx).faults == 1


def test_a_double_click_without_javascript_makes_one_fault(site: Site, browser: Browser) -> None:
    context, page = browser_page(browser, site, "facilities", QR_LINK, javascript=False)
    page.get_by_label("Plumbing").check()
    page.get_by_label("P3: routine").check()
    page.get_by_label("What is wrong?").fill("Sink blocked")
    page.get_by_role("button", name="Send report", exact=True).dblclick()
    expect(page.locator("h1")).to_have_text("Fault MDI-F-000001")
    assert stored(site.ctx).faults == 1
    context.close()


def test_offline_the_report_is_kept_on_the_device_and_sent_once_online(
    site: Site, browser: Browser
) -> None:
    context, page = browser_page(browser, site, "facilities", QR_LINK)
    page.get_by_label("Door, lock or cell bell").check()
    page.get_by_label("P1: emergency").check()
    page.get_by_label("What is wrong?").fill("Cell bell not working, landing 1")
    context.set_offline(True)
    page.get_by_role("button", name="Send report", exact=True).click()
    queue = page.locator("#faults-queue")
    expect(queue).to_contain_text("No connection: your report for MDI-1-1-001 is saved")
    expect(page.get_by_label("What is wrong?")).to_have_value("")
    assert stored(site.ctx).faults == 0

    context.set_offline(False)
    expect(queue).to_contain_text("Sent: your report for MDI-1-1-001 is fault MDI-F-000001")
    queue.get_by_role("link", name="Open fault MDI-F-000001").click()
    expect(page.locator(".govuk-summary-list").first).to_contain_text("Cell bell not working")
    # Nothing is left waiting: another page load sends nothing more.
    page.goto(f"{site.base}/faults")
    expect(page.locator(".faults-table tbody tr")).to_have_count(1)
    assert stored(site.ctx).faults == 1
    with transaction(site.ctx.sessions) as session:
        fault = session.scalars(select(Fault)).one()
        assert (fault.category, fault.priority, fault.reporter) == (
            "door_lock_cell_bell",
            "P1",
            "facilities",
        )
    context.close()


def test_a_report_queued_offline_survives_closing_the_page(site: Site, browser: Browser) -> None:
    context, page = browser_page(browser, site, "facilities", QR_LINK)
    page.get_by_label("Heating").check()
    page.get_by_label("P4: can wait").check()
    page.get_by_label("What is wrong?").fill("Radiator knocks at night")
    context.set_offline(True)
    page.get_by_role("button", name="Send report", exact=True).click()
    expect(page.locator("#faults-queue")).to_contain_text("saved on this device")
    page.close()
    context.set_offline(False)
    assert stored(site.ctx).faults == 0
    later = context.new_page()
    later.goto(f"{site.base}/faults")
    expect(later.locator("#faults-queue")).to_contain_text("is fault MDI-F-000001")
    assert stored(site.ctx).faults == 1
    context.close()


def test_the_qr_link_asks_for_sign_in_then_opens_the_form_with_the_place(
    site: Site, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.base}{QR_LINK}")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.get_by_label("Username").fill("facilities")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.base}{QR_LINK}")
    expect(page.locator("#chosen-place")).to_have_text("MDI-1-1-001")
    # A place outside the caseload is not filled in, and says so.
    page.goto(f"{site.base}/faults/new?location=LEI-1-1-001")
    expect(page.locator("#place-error")).to_contain_text("There is no place LEI-1-1-001")
    expect(page.locator("#chosen-place")).to_have_count(0)
    context.close()
