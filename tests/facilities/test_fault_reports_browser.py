"""The fault reports page in a real browser: charts with tables, recurrences, axe, no-JS errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.facilities.test_fault_reports import seed_history
from tests.web.axe import serious_violations
from tests.web.site import Site, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


def test_reports_show_charts_tables_and_recurring_faults(site: Site, browser: Browser) -> None:
    refs = seed_history(site.ctx)
    context = browser.new_context(bypass_csp=True)
    page = sign_in(context, site, "admin")
    page.goto(f"{site.base}/faults/reports")
    expect(page.get_by_role("heading", name="Fault reports")).to_be_visible()
    expect(page.locator("[data-figure=open]")).to_have_text("6")  # MDI 5, LEI 1
    expect(page.locator("#table-open-prison tbody tr")).to_have_count(2)
    expect(
        page.get_by_role("img", name="Open faults by category; the table below has the figures")
    ).to_be_visible()
    expect(page.locator("svg.reports-chart__svg")).to_have_count(4)
    recurring = page.locator("#table-recurring tbody tr")
    expect(recurring).to_have_count(1)
    expect(recurring.first).to_have_attribute("data-place", "MDI-1-2")
    for ref in refs["recurring"]:
        expect(recurring.get_by_role("link", name=ref)).to_have_attribute("href", f"/faults/{ref}")
    assert serious_violations(page) == []

    page.get_by_label("Prison", exact=True).select_option("LEI")
    page.get_by_role("button", name="Show report").click()
    expect(page).to_have_url(f"{site.base}/faults/reports?prison=LEI&from=&to=")
    expect(page.locator("[data-figure=open]")).to_have_text("1")
    expect(page.locator("#table-recurring")).to_have_count(0)
    csv_link = page.get_by_role("link", name="Download open faults by prison and category as CSV")
    assert "prison=LEI" in (csv_link.get_attribute("href") or "")
    assert serious_violations(page) == []
    context.close()


def test_a_bad_period_without_javascript_comes_back_with_what_was_typed(
    site: Site, browser: Browser
) -> None:
    seed_history(site.ctx)
    context = browser.new_context(java_script_enabled=False)
    page = sign_in(context, site, "facilities")  # MDI only
    page.goto(f"{site.base}/faults/reports")
    expect(page.locator("#table-open-prison tbody tr")).to_have_count(1)
    expect(page.locator("main")).not_to_contain_text("Leicester")
    page.get_by_label("From", exact=True).fill("2026-02-30")
    page.get_by_label("To", exact=True).fill("2026-01-01")
    page.get_by_role("button", name="Show report").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("'2026-02-30' is not a date")
    expect(page.get_by_label("From", exact=True)).to_have_value("2026-02-30")
    expect(page.get_by_label("To", exact=True)).to_have_value("2026-01-01")
    page.get_by_role("link", name="30 days").click()
    expect(page.locator(".govuk-error-summary")).to_have_count(0)
    expect(page.locator("[data-figure=open]")).to_have_text("5")
    context.close()


def test_the_reports_page_axe_clean_with_an_error(site: Site, browser: Browser) -> None:
    context = browser.new_context(bypass_csp=True)
    page = sign_in(context, site, "rollout")  # MDI and LEI: a prison to choose
    page.goto(f"{site.base}/faults/reports?from=2026-06-02&to=2026-06-01")
    expect(page.locator(".govuk-error-summary")).to_contain_text("is after the end")
    assert serious_violations(page) == []
    context.close()
