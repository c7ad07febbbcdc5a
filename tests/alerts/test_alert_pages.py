"""The alert pages in a real browser: the queue, bulk acknowledge with and without JavaScript,
quiet windows on show, rule and window forms, and axe on every page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from fleet.db import transaction, utcnow
from tests.alerts.support import add_rule, add_window, alerts, run_pass
from tests.estate.factories import add_device
from tests.web.axe import serious_violations
from tests.web.site import Site, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        now = utcnow()
        silent = now - timedelta(hours=2)
        with transaction(running.ctx.sessions) as session:
            for cell in ("MDI-1-2-001", "MDI-2-2-001", "MDI-2-2-002"):
                add_device(session, prison="MDI", location=cell, online=False, last_seen=silent)
            add_device(
                session, prison="LEI", location="LEI-1-1-002", online=False, last_seen=silent
            )
        add_rule(running.ctx, name="Phones offline", kind="offline", threshold=30, group_min=5)
        add_window(
            running.ctx,
            prison_code="MDI",
            kind="ad_hoc",
            reason="cell search",
            rule_kinds=["flapping"],
            ends_at=now + timedelta(hours=3),
        )
        run_pass(running.ctx, now)
        yield running


def _context(browser: Browser, *, javascript: bool = True) -> BrowserContext:
    return browser.new_context(bypass_csp=True, java_script_enabled=javascript)


def _no_serious_violations(page: Page) -> None:
    assert serious_violations(page) == [], page.url


def test_bulk_acknowledge_from_the_queue_with_javascript(site: Site, browser: Browser) -> None:
    context = _context(browser)
    try:
        page = sign_in(context, site, "support")
        page.goto(f"{site.base}/alerts")
        expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
        expect(page.locator("#quiet-windows")).to_contain_text("Quiet: cell search until")
        rows = page.locator("tr[data-alert]")
        expect(rows).to_have_count(3)  # MDI only: LEI is outside the caseload
        expect(page.locator("table")).not_to_contain_text("LEI")
        _no_serious_violations(page)
        boxes = page.locator("input[name=ids]")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.get_by_role("button", name="Acknowledge selected alerts").click()
        expect(page.locator(".govuk-notification-banner")).to_contain_text("2 alerts acknowledged")
        expect(page.locator("tr[data-alert] .govuk-tag", has_text="Acknowledged")).to_have_count(2)
        expect(page.locator("input[name=ids]")).to_have_count(1)
        _no_serious_violations(page)

        page.get_by_label("Status").select_option("acknowledged")
        page.get_by_role("button", name="Apply filters").click()
        expect(page.locator("tr[data-alert]")).to_have_count(2)
        page.locator("tr[data-alert] a").first.click()
        expect(page.locator("h1")).to_contain_text("offline for longer than 30 minutes")
        expect(page.locator(".govuk-summary-list")).to_contain_text("by support")
        _no_serious_violations(page)
        page.get_by_label("What was done (optional)").fill("Reseated the handset")
        page.get_by_role("button", name="Resolve").click()
        expect(page.locator(".govuk-summary-list")).to_contain_text("Reseated the handset")
    finally:
        context.close()
    statuses = sorted(a.status for a in alerts(site.ctx) if a.prison_code == "MDI")
    assert statuses == ["acknowledged", "firing", "resolved"]


def test_bulk_acknowledge_works_without_javascript(site: Site, browser: Browser) -> None:
    context = _context(browser, javascript=False)
    try:
        page = sign_in(context, site, "admin")
        page.goto(f"{site.base}/alerts?prison=LEI")
        expect(page.locator("tr[data-alert]")).to_have_count(1)
        page.locator("input[name=ids]").check()
        page.get_by_role("button", name="Acknowledge selected alerts").click()
        expect(page).to_have_url(f"{site.base}/alerts?prison=LEI&acted=1")
        expect(page.locator(".govuk-notification-banner")).to_contain_text("1 alert acknowledged")
    finally:
        context.close()
    [lei] = [a for a in alerts(site.ctx) if a.prison_code == "LEI"]
    assert (lei.status, lei.acknowledged_by) == ("acknowledged", "admin")


def test_rules_and_quiet_windows_pages_keep_what_was_typed_on_error(
    site: Site, browser: Browser
) -> None:
    context = _context(browser)
    try:
        page = sign_in(context, site, "admin")
        page.goto(f"{site.base}/alerts/rules")
        expect(page.locator("tr[data-rule]")).to_have_count(1)
        _no_serious_violations(page)
        page.get_by_label("Name").fill("Flat batteries")
        page.get_by_label("Kind", exact=True).select_option("battery_low")
        page.get_by_label("Threshold").fill("150")
        page.get_by_role("button", name="Add rule").click()
        expect(page.locator(".govuk-error-summary")).to_contain_text("150% is not a possible")
        expect(page.get_by_label("Name")).to_have_value("Flat batteries")
        _no_serious_violations(page)
        page.get_by_label("Threshold").fill("15")
        page.get_by_role("button", name="Add rule").click()
        expect(page.locator("tr[data-rule]")).to_have_count(2)
        expect(page.locator("tbody")).to_contain_text("battery below 15%, not charging")

        page.goto(f"{site.base}/alerts/quiet")
        expect(page.locator("#quiet-windows")).to_contain_text("cell search")
        _no_serious_violations(page)
        page.get_by_label("Prison").select_option("MDI")
        page.get_by_label("Reason").fill("night power-down")
        page.get_by_label("Offline").check()
        page.get_by_label("Scheduled, every week").check()
        page.get_by_label("Starts at").fill("22:00")
        page.get_by_role("button", name="Add quiet window").click()
        expect(page.locator(".govuk-error-summary")).to_contain_text("needs end_time")
        expect(page.get_by_label("Reason")).to_have_value("night power-down")
        page.get_by_label("Ends at").fill("06:30")
        page.get_by_role("button", name="Add quiet window").click()
        expect(page.locator("tr[data-window]")).to_have_count(2)
        expect(page.locator("tbody")).to_contain_text("Every day, 22:00 to 06:30 (UK time)")
        _no_serious_violations(page)
    finally:
        context.close()


def test_people_without_alerts_see_no_queue(site: Site, browser: Browser) -> None:
    context = _context(browser)
    try:
        page = sign_in(context, site, "facilities")
        response = page.goto(f"{site.base}/alerts")
        assert response is not None
        assert response.status == 403
        support = sign_in(context, site, "support")
        expect(support.get_by_role("link", name="Alerts")).to_be_visible()
        [lei] = [a for a in alerts(site.ctx) if a.prison_code == "LEI"]
        forged = support.request.post(f"{site.base}/alerts/acknowledge", form={"ids": str(lei.id)})
        assert forged.status == 403, "a form without this browser's CSRF token is refused"
        response = support.goto(f"{site.base}/alerts/{lei.id}")
        assert response is not None
        assert response.status == 404
    finally:
        context.close()
