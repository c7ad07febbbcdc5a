"""A fault reported and worked to closed in a real browser, with and without JavaScript."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from facilities.faults.models import Fault
from fleet.db import transaction
from tests.facilities.fault_site import browser_page, fault_site, seed_fault, stored
from tests.web.site import Site


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


def _move(page: Page, button: str, **fields: str) -> None:
    form = page.locator("form.faults-move").filter(
        has=page.get_by_role("button", name=button, exact=True)
    )
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name=button, exact=True).click()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_report_with_the_picker_then_work_it_to_closed(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context, page = browser_page(browser, site, "facilities", "/faults", javascript=javascript)
    page.get_by_role("navigation", name="Faults").get_by_role("link", name="Report a fault").click()
    # Search by name finds nothing; by a wing code lists it; then browse down the tree.
    page.get_by_label("Search for the place").fill("Wing 2")
    page.get_by_role("button", name="Find place").click()
    page.get_by_role("button", name="MDI-2 (show places inside)").click()
    page.get_by_role("button", name="MDI-2-1 (show places inside)").click()
    page.get_by_label("MDI-2-1-003 - Cell 003").check()
    page.get_by_label("Heating").check()
    page.get_by_label("P2: urgent").check()
    page.get_by_label("What is wrong?").fill("Radiator cold all day")
    page.get_by_role("button", name="Send report", exact=True).click()

    expect(page.locator(".govuk-notification-banner")).to_contain_text("Your fault report was sent")
    expect(page.locator("h1")).to_have_text("Fault MDI-F-000001")
    expect(page.locator(".govuk-summary-list").first).to_contain_text("MDI-2-1-003")
    expect(page.locator(".govuk-summary-list").first).to_contain_text("Cell 003, Landing 1, Wing 2")

    _move(page, "Mark as triaged", **{"Note (optional)": "Checked on the landing"})
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Saved: triaged")
    page.locator("form.faults-move").first.get_by_label("Assign to").select_option("mdi.works")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator(".govuk-summary-list").first).to_contain_text("mdi.works")
    _move(page, "Start work")
    # Clearing without saying what was done is refused, and the note typed is kept.
    _move(page, "Mark as cleared", **{"Note (optional)": "Bled the radiator"})
    expect(page.locator(".govuk-error-summary")).to_contain_text("needs a resolution")
    form = page.locator("form.faults-move").filter(has_text="What was done to fix it?")
    expect(form.get_by_label("Note (optional)")).to_have_value("Bled the radiator")
    form.get_by_label("What was done to fix it?").fill("Valve replaced, radiator warm")
    form.get_by_role("button", name="Mark as cleared").click()
    expect(page.locator(".govuk-summary-list").first).to_contain_text("Valve replaced")
    _move(page, "Close as verified")
    expect(page.locator(".govuk-summary-list").first).to_contain_text("Closed")
    expect(page.get_by_text("nothing more can be done to it")).to_be_visible()

    titles = page.locator(".moj-timeline__title").all_inner_texts()
    assert titles == [
        "Closed as verified", "Cleared", "Work started", "Assigned", "Triaged", "Reported",
    ]  # fmt: skip
    timeline = page.locator(".moj-timeline")
    expect(timeline).to_contain_text("Checked on the landing")
    expect(timeline).to_contain_text("assignee: mdi.works")
    expect(timeline.locator(".moj-timeline__byline").first).to_have_text("by facilities")
    with transaction(site.ctx.sessions) as session:
        fault = session.scalars(select(Fault)).one()
        assert (fault.status, fault.assignee, fault.version) == ("closed", "mdi.works", 6)
    context.close()


def test_my_assigned_lists_only_open_faults_assigned_to_me(site: Site, browser: Browser) -> None:
    first = seed_fault(site.ctx)
    seed_fault(site.ctx, location="MDI-1-2-001")
    context, page = browser_page(browser, site, "mdi.works", f"/faults/{first}")
    _move(page, "Mark as triaged")
    page.get_by_role("button", name="Assign", exact=True).click()  # to me, the default
    page.get_by_role("link", name="My assigned").click()
    expect(page.locator("h1")).to_have_text("My assigned faults")
    expect(page.locator(".faults-table tbody tr")).to_have_count(1)
    expect(page.locator(".faults-table")).to_contain_text(first)
    assert stored(site.ctx).faults == 2
    context.close()


def test_a_stale_move_is_refused_with_a_clear_message_and_nothing_overwritten(
    site: Site, browser: Browser
) -> None:
    reference = seed_fault(site.ctx)
    context, mine = browser_page(browser, site, "facilities", f"/faults/{reference}")
    theirs = context.new_page()
    theirs.goto(f"{site.base}/faults/{reference}")
    _move(theirs, "Mark as triaged", **{"Note (optional)": "Theirs first"})
    before = stored(site.ctx)
    _move(mine, "Cancel this fault", **{"Why (required)": "Duplicate"})
    expect(mine.locator(".govuk-error-summary")).to_contain_text(
        "Someone else changed this fault while you had it open; it is now triaged"
    )
    expect(mine.locator(".govuk-error-summary")).to_contain_text("Nothing you sent was saved")
    assert stored(site.ctx) == before
    # The page shown with the message carries the new version, so trying again works.
    _move(mine, "Cancel this fault", **{"Why (required)": "Duplicate"})
    expect(mine.locator(".govuk-summary-list").first).to_contain_text("Cancelled")
    context.close()
