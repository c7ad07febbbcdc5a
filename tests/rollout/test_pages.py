"""The programme overview and prison rollout pages in a browser, and the CSV they link to."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from fleet.db import transaction, utcnow
from fleet.rollout.models import Milestone, Programme
from fleet.rollout.schemas import MilestoneUpdate
from fleet.rollout.service import get_plan, update_milestone
from tests.rollout.builders import make_plan, snapshot
from tests.web.axe import serious_violations
from tests.web.site import Site, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        today = utcnow().date()
        # MDI has 3 enrolled phones (2 online) and LEI 1 (see tests.web.site.populate).
        make_plan(running.ctx, prison="MDI", planned=today + timedelta(days=90), expected=3)
        make_plan(running.ctx, prison="LEI", planned=today + timedelta(days=5), expected=10)
        for back in (2, 1, 0):
            snapshot(running.ctx, today - timedelta(days=back))
        yield running


def _programme_id(site: Site) -> int:
    with transaction(site.ctx.sessions) as session:
        return int(session.scalars(select(Programme.id)).one())


def test_overview_sorts_filters_and_exports_csv(site: Site, browser: Browser) -> None:
    context = browser.new_context(accept_downloads=True)
    page = sign_in(context, site, "admin")
    page.goto(f"{site.base}/rollout")
    page.get_by_role("link", name="In-cell phones 2026").click()
    rows = page.locator("main tbody tr[data-prison]")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-prison=LEI] .govuk-tag").first).to_have_text("red")
    expect(page.locator("tr[data-prison=MDI] td").nth(2)).to_contain_text("3 of 3 (100.0%)")
    page.get_by_role("link", name="Prison").click()
    expect(rows.first).to_have_attribute("data-prison", "LEI")
    page.get_by_role("link", name="Prison").click()
    expect(rows.first).to_have_attribute("data-prison", "MDI")
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Prison")
    page.get_by_label("Status").select_option("red")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(page.locator("caption")).to_have_text("1 of 2 prisons")
    expect(page.locator("svg.rollout-burnup polyline")).to_have_count(2)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    text = Path(download.value.path()).read_text()
    rows_out = list(csv.DictReader(io.StringIO(text)))
    assert [(r["prison_code"], r["enrolled"], r["rag"]) for r in rows_out] == [
        ("LEI", "1", "red"),
        ("MDI", "3", "amber"),
    ]
    context.close()


def test_prison_page_edits_milestones_and_refuses_stale_versions(
    site: Site, browser: Browser
) -> None:
    pid = _programme_id(site)
    context = browser.new_context()
    page = sign_in(context, site, "rollout")
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    expect(page.locator("h1")).to_have_text("Moorland (HMP & YOI) rollout")
    expect(page.locator("tr[data-wing=MDI-1] td").first).to_have_text("2")
    expect(page.locator("[data-history] tbody tr")).to_have_count(14)
    survey = page.locator("tr[data-milestone=site_survey]")
    survey.get_by_label("Site survey owner").fill("Sam Patel")
    survey.get_by_role("button", name="Save Site survey").click()
    expect(page.get_by_label("Site survey owner")).to_have_value("Sam Patel")

    # Someone else saves the same milestone while this page is open.
    with transaction(site.ctx.sessions) as session:
        plan = get_plan(session=session, programme_id=pid, prison_code="MDI")
        assert plan is not None
        milestone = session.scalars(
            select(Milestone).where(Milestone.plan_id == plan.id, Milestone.key == "site_survey")
        ).one()
        update_milestone(
            session=session,
            actor="other",
            plan=plan,
            milestone_id=milestone.id,
            data=MilestoneUpdate(version=milestone.version, note="done by phone"),
        )
    page.get_by_label("Site survey owner").fill("Overwrite")
    page.get_by_role("button", name="Save Site survey").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("changed by someone else")
    expect(page.get_by_label("Site survey note")).to_have_value("done by phone")
    expect(page.get_by_label("Site survey owner")).to_have_value("Sam Patel")
    context.close()


def test_readers_see_no_forms_and_caseload_hides_other_prisons(
    site: Site, browser: Browser
) -> None:
    pid = _programme_id(site)
    context = browser.new_context()
    page = sign_in(context, site, "support")
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    expect(page.locator("tr[data-milestone=site_survey]")).to_be_visible()
    expect(page.locator("main form[method=post]")).to_have_count(0)
    page.goto(f"{site.base}/rollout/{pid}")
    expect(page.locator("main tbody tr[data-prison]")).to_have_count(1)
    response = page.goto(f"{site.base}/rollout/{pid}/prisons/LEI")
    assert response is not None
    assert response.status == 404
    context.close()


def test_rollout_pages_pass_axe(site: Site, browser: Browser) -> None:
    pid = _programme_id(site)
    context = browser.new_context(bypass_csp=True)
    page = sign_in(context, site, "admin")
    found = {}
    for path in ("/rollout", f"/rollout/{pid}", f"/rollout/{pid}/prisons/MDI"):
        page.goto(f"{site.base}{path}")
        found[path] = serious_violations(page)
    context.close()
    assert found == {path: [] for path in found}
