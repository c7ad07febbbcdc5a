"""The estate overview and prison pages in a browser, with and without JavaScript."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import update

from fleet.db import transaction
from fleet.devices.models import DeviceState
from fleet.estate.pages import FIGURES_TTL_S, REFRESH_SECONDS, places_in_prison
from tests.estate.factories import sqlite_context
from tests.web.site import Site, populate, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


def _take_offline(site: Site) -> None:
    with transaction(site.ctx.sessions) as session:
        session.execute(
            update(DeviceState)
            .where(DeviceState.device_id == site.mdi_device)
            .values(online=False, state="offline")
        )


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_overview_filters_and_sorts_in_the_query_string(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    page = sign_in(context, site, "admin")
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(2)  # only prisons with locations or devices
    cells = page.locator("tr[data-prison=MDI] td")
    expect(cells.nth(0)).to_have_text("4")  # registered + enrolled
    expect(cells.nth(1)).to_have_text("3")
    expect(cells.nth(2)).to_have_text("2 (67%)")
    expect(cells.nth(3)).to_contain_text("67%")
    expect(page.locator(".estate-heat__strip rect")).to_have_count(2)
    expect(page.locator("[data-total=enrolled]")).to_have_text("4")

    page.get_by_role("link", name="Online").click()  # ascending by % online
    expect(rows.first).to_have_attribute("data-prison", "MDI")
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Online")
    page.get_by_role("link", name="Online").click()
    expect(page).to_have_url(f"{site.base}/estate?sort=online&order=desc")
    expect(rows.first).to_have_attribute("data-prison", "LEI")

    page.get_by_label("Find a prison").fill("moor")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-prison", "MDI")
    expect(page).to_have_url(f"{site.base}/estate?sort=online&order=desc&q=moor")

    page.goto(f"{site.base}/estate?all=1")
    assert rows.count() > 100  # every prison in the register
    page.goto(f"{site.base}/estate?sort=nonsense")
    expect(page.locator("main")).to_contain_text("Cannot sort by 'nonsense'")
    context.close()


def test_overview_shows_a_device_going_offline_within_the_refresh_interval(
    site: Site, browser: Browser
) -> None:
    page = sign_in(browser.new_context(), site, "rollout")
    online = page.locator("tr[data-prison=MDI] td[data-cell=online]")
    expect(online).to_have_text("2 (67%)")
    page.evaluate("window.stillTheSamePage = true")
    _take_offline(site)
    wait_s = REFRESH_SECONDS + FIGURES_TTL_S + 5
    expect(online).to_have_text("1 (33%)", timeout=wait_s * 1000)
    assert page.evaluate("window.stillTheSamePage") is True  # updated without a reload
    page.context.close()


def test_without_javascript_the_refresh_link_shows_new_figures(
    site: Site, browser: Browser
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = sign_in(context, site, "rollout")
    online = page.locator("tr[data-prison=MDI] td[data-cell=online]")
    expect(online).to_have_text("2 (67%)")
    _take_offline(site)
    # The figures are shared between viewers for up to FIGURES_TTL_S; Refresh shows them then.
    deadline = time.monotonic() + FIGURES_TTL_S + 5
    while online.inner_text() != "1 (33%)" and time.monotonic() < deadline:
        time.sleep(0.5)
        page.get_by_role("link", name="Refresh the estate figures").click()
    expect(online).to_have_text("1 (33%)")
    context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_prison_page_counts_wings_and_landings_and_says_where_to_look(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    page = sign_in(context, site, "admin")
    page.get_by_role("link", name="Moorland (HMP & YOI)").click()
    expect(page).to_have_url(f"{site.base}/prisons/MDI")
    expect(page.locator("h1")).to_have_text("Moorland (HMP & YOI)")
    wing1 = page.locator("tr[data-place=MDI-1] td")
    expect(wing1).to_have_text(["2", "2", "0", "100%", "0"])
    landing = page.locator("tr[data-place=MDI-2-1] td")
    expect(landing).to_have_text(["1", "0", "1", "0%", "1"])
    first = page.locator(".govuk-inset-text")
    expect(first).to_contain_text("Look here first")
    expect(first.get_by_role("link")).to_have_text(["Wing 2 (MDI-2)"])
    expect(first.get_by_role("link")).to_have_attribute("href", "/devices?prison=MDI&wing=MDI-2")
    expect(page.get_by_role("link", name="Wing 2, Landing 1")).to_have_attribute(
        "href", "/devices?prison=MDI&wing=MDI-2-1"
    )
    assert page.goto(f"{site.base}/prisons/mdi").status == 200  # type: ignore[union-attr]
    context.close()


def test_prison_figures_are_the_same_on_sqlite(tmp_path: Path) -> None:
    ctx = sqlite_context(tmp_path)
    try:
        populate(ctx)
        with transaction(ctx.sessions) as session:
            wings, total = places_in_prison(session=session, prison_code="MDI")
        assert [w.path for w in wings] == ["MDI-1", "MDI-2"]
        assert (total.expected, total.enrolled, total.online, total.critical) == (4, 3, 2, 1)
        landing = wings[1].landings[0]
        assert (landing.path, landing.figures.enrolled, landing.figures.offline) == (
            "MDI-2-1",
            1,
            1,
        )
    finally:
        ctx.close()
