"""The programme overview and prison rollout pages in a browser, and the CSV they link to."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from fleet.auth.service import get_user, issue_token
from fleet.db import transaction, utcnow
from fleet.rollout.models import Milestone, Programme
from fleet.rollout.schemas import MilestoneUpdate
from fleet.rollout.service import get_plan, update_milestone
from tests.estate.factories import add_device
from tests.facilities.builders import fault_body
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
    # Too long an owner is refused with what was typed kept, and the summary links to it.
    survey.get_by_label("Site survey note").fill("booked for Tuesday")
    survey.get_by_label("Site survey owner").fill("x" * 201)
    survey.get_by_role("button", name="Save Site survey").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("The owner must be 200 characters or fewer")
    expect(page.get_by_label("Site survey note")).to_have_value("booked for Tuesday")
    expect(page.get_by_label("Site survey owner")).to_have_value("x" * 201)
    summary.get_by_role("link").click()
    expect(page.get_by_label("Site survey owner")).to_be_focused()
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

    # A rollout manager for MDI alone can edit MDI's milestones, and cannot reach LEI's.
    with transaction(site.ctx.sessions) as session:
        lei = get_plan(session=session, programme_id=pid, prison_code="LEI")
        assert lei is not None
        lei_survey = session.scalars(
            select(Milestone).where(Milestone.plan_id == lei.id, Milestone.key == "site_survey")
        ).one()
        lei_id, lei_version = lei_survey.id, lei_survey.version
    context = browser.new_context()
    page = sign_in(context, site, "mdi.only")
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    token = page.locator("main input[name=csrf_token]").first.get_attribute("value")
    assert token
    forged = page.request.post(
        f"{site.base}/rollout/{pid}/prisons/LEI/milestones/{lei_id}",
        form={"csrf_token": token, "version": str(lei_version), "note": "not mine"},
    )
    assert forged.status == 404
    with transaction(site.ctx.sessions) as session:
        unchanged = session.get(Milestone, lei_id)
        assert unchanged is not None
        assert (unchanged.note, unchanged.version) == ("", lei_version)
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


def test_a_blocking_fault_shows_on_the_prison_page_until_it_is_cleared(
    site: Site, browser: Browser
) -> None:
    pid = _programme_id(site)
    with transaction(site.ctx.sessions) as session:
        reporter = get_user(session=session, username="facilities")
        assert reporter is not None
        token = issue_token(session=session, user=reporter)
    faults = httpx.Client(
        base_url=site.base, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    body = fault_body(
        category="network_point", description="No network point on landing 1-1", blocks_rollout=True
    )
    fault = faults.post("/api/v1/faults", json=body).json()
    context = browser.new_context()
    page = sign_in(context, site, "admin")
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    title = f"fault {fault['reference']}: No network point on landing 1-1"
    expect(page.locator("[data-blockers] li")).to_have_text([title])
    expect(page.locator("[data-reasons]")).to_contain_text(f"blocker: {title}")
    for step, extra in (
        ("triaged", {}),
        ("assigned", {}),
        ("in_progress", {}),
        ("cleared", {"resolution": "Network point fitted and tested"}),
    ):
        moved = faults.post(f"/api/v1/faults/{fault['id']}/transitions", json={"to": step, **extra})
        assert moved.status_code == 200, moved.text
    faults.close()
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    expect(page.locator("[data-blockers]")).to_have_count(0)
    expect(page.locator("main")).to_contain_text("Nothing is blocking this prison.")
    context.close()


def test_a_dark_landing_turns_the_prison_amber_and_is_named_on_its_page(
    site: Site, browser: Browser
) -> None:
    pid = _programme_id(site)
    with transaction(site.ctx.sessions) as session:
        for cell in ("MDI-2-2-002", "MDI-2-2-003"):
            add_device(session, prison="MDI", location=cell, online=False)
    context = browser.new_context()
    page = sign_in(context, site, "admin")
    page.goto(f"{site.base}/rollout/{pid}/prisons/MDI")
    expect(page.locator("[data-rag]")).to_have_text("amber")
    expect(page.locator("[data-reasons] li")).to_contain_text(
        ["landing MDI-2-2 has gone dark: none of its 2 device(s) online"]
    )
    context.close()
