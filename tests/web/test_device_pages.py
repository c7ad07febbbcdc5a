"""The device list, its CSV export and the device page, driven in a real browser."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import update

from fleet.audit.service import record
from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.devices import pages as device_pages
from fleet.devices.models import DEVICE_KINDS, DeviceEvent, DeviceState, HealthSample
from tests.estate.factories import add_device, seed_locations
from tests.services.api_server import running_api
from tests.web.axe import serious_violations

PASSWORD = "a long enough password"
MDI_CELLS = [f"MDI-{w}-{ln}-{c:03d}" for w in (1, 2) for ln in (1, 2) for c in (1, 2, 3)]


@dataclass
class Estate:
    base: str
    ctx: Context
    mdi: list[str]  # MDI device ids, in id order
    lei: list[str]
    by_kind: dict[str, list[str]]  # MDI device ids per kind
    on_wing_2: list[str]
    findable: str  # the MDI device whose serial is FIND-ME-123
    watched: str  # an online MDI tablet with 8 days of health history


def _seed(ctx: Context) -> Estate:
    seed_locations(ctx)
    now = utcnow()
    mdi, lei, on_wing_2 = [], [], []
    by_kind: dict[str, list[str]] = {k: [] for k in DEVICE_KINDS}
    with transaction(ctx.sessions) as session:
        create_user(
            session=session,
            username="mdi.support",
            role="it-support",
            prisons=["MDI"],
            password=PASSWORD,
        )
        for i in range(23):
            kind = DEVICE_KINDS[i % len(DEVICE_KINDS)]
            cell = MDI_CELLS[i % len(MDI_CELLS)]
            device = add_device(
                session,
                prison="MDI",
                kind=kind,
                location=cell,
                serial="FIND-ME-123" if i == 7 else None,
                online=i % 3 != 0,
                health=("ok", "warning", "critical")[i % 3],
                battery=float(20 + i),
                last_seen=now - timedelta(minutes=i),
                metrics={"battery": float(20 + i), "cpu": 5.0},
            )
            mdi.append(device.id)
            by_kind[kind].append(device.id)
            if cell.startswith("MDI-2-"):
                on_wing_2.append(device.id)
        for _ in range(3):
            device = add_device(
                session, prison="LEI", location="LEI-1-1-001", online=True, last_seen=now
            )
            lei.append(device.id)
        findable = mdi[7]
        watched = by_kind["tablet"][0]
        _history(session, watched, now)
        session.add(DeviceEvent(device_id=watched, kind="moved", detail={"to": "MDI-1-1-002"}))
        record(
            session=session,
            actor="mdi.support",
            action="device.moved",
            target_type="device",
            target_id=watched,
            prison_code="MDI",
            detail={"to": "MDI-1-1-002"},
        )
    base = ""
    return Estate(base, ctx, sorted(mdi), lei, by_kind, on_wing_2, findable, watched)


def _history(session: Any, device_id: str, now: Any) -> None:
    """Every 5 minutes for a day, then hourly back to 8 days ago."""
    times = [now - timedelta(minutes=5 * i) for i in range(288)]
    times += [now - timedelta(hours=h) for h in range(25, 8 * 24)]
    for seq, when in enumerate(sorted(times)):
        session.add(
            HealthSample(
                device_id=device_id,
                seq=seq,
                ts=when,
                metrics={
                    "battery": 40.0 + seq % 50,
                    "cpu": 10.0,
                    "storage": 55.0,
                    "wifi_rssi": -60,
                },
            )
        )


@pytest.fixture
def estate(pg_context: Context) -> Iterator[Estate]:
    seeded = _seed(pg_context)
    with running_api(pg_context.settings) as base:
        seeded.base = base
        yield seeded


SignIn = Callable[..., Page]


@pytest.fixture
def signed_in(browser: Browser, estate: Estate) -> Iterator[SignIn]:
    """Open a browser page signed in as the MDI support user, landed on `next`."""
    contexts: list[BrowserContext] = []

    def open_page(
        next_path: str = "/devices", javascript: bool = True, bypass_csp: bool = False
    ) -> Page:
        # bypass_csp lets the axe-core script be injected; the site's own pages never need it.
        context = browser.new_context(java_script_enabled=javascript, bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{estate.base}/sign-in?next={quote(next_path, safe='/')}")
        page.get_by_label("Username").fill("mdi.support")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{estate.base}{next_path}")
        return page

    yield open_page
    for context in contexts:
        context.close()


def _listed_ids(page: Page) -> list[str]:
    return page.locator("main table tbody th a").all_inner_texts()


def _apply(page: Page) -> None:
    page.get_by_role("button", name="Apply filters").click()


def test_filter_and_search_without_javascript_then_open_a_device(
    estate: Estate, signed_in: SignIn
) -> None:
    page = signed_in(javascript=False)
    expect(page.locator("#result-count")).to_have_text("23 devices")
    assert not any(i.startswith("LEI") for i in _listed_ids(page))
    prison_options = page.locator("#filter-prison option").all_inner_texts()
    assert [o.strip() for o in prison_options] == ["All your prisons", "Moorland (HMP & YOI)"]

    page.get_by_label("Kind").select_option(label="Tablet")
    _apply(page)
    assert "kind=tablet" in page.url
    expect(page.locator("#result-count")).to_have_text(f"{len(estate.by_kind['tablet'])} devices")
    assert sorted(_listed_ids(page)) == sorted(estate.by_kind["tablet"])

    page.get_by_role("link", name="Remove this filter Tablet").click()
    page.get_by_label("Wing or landing").fill("mdi-2")
    _apply(page)
    expect(page.locator("#result-count")).to_have_text(f"{len(estate.on_wing_2)} devices")
    assert sorted(_listed_ids(page)) == sorted(estate.on_wing_2)

    page.get_by_label("Wing or landing").fill("LEI-1")
    _apply(page)
    expect(page.locator(".govuk-error-summary")).to_contain_text(
        "There is no wing or landing LEI-1 in your prisons"
    )

    page.goto(f"{estate.base}/devices")
    page.get_by_label("Search").fill("find-me")
    _apply(page)
    expect(page.locator("#result-count")).to_have_text("1 device")
    page.get_by_role("link", name=estate.findable, exact=True).click()
    expect(page).to_have_url(f"{estate.base}/devices/{estate.findable}")
    expect(page.locator("h1")).to_have_text(f"Device {estate.findable}")
    crumbs = page.locator(".govuk-breadcrumbs").inner_text()
    assert "Moorland" in crumbs
    assert "(MDI-2)" in crumbs
    assert "Landing 1 (MDI-2-1)" in crumbs
    assert "Cell 002 (MDI-2-1-002)" in crumbs
    expect(page.locator(".govuk-summary-list")).to_contain_text(["FIND-ME-123"])


def test_pagination_walks_every_device_once_and_back(estate: Estate, signed_in: SignIn) -> None:
    page = signed_in("/devices?limit=10", javascript=False)
    pages = [_listed_ids(page)]
    while page.get_by_role("link", name="Next").count():
        page.get_by_role("link", name="Next").click()
        pages.append(_listed_ids(page))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [i for p in pages for i in p] == estate.mdi
    expect(page.locator(".moj-pagination__results")).to_have_text(
        "Showing 21 to 23 of 23 devices (page 3)"
    )
    page.get_by_role("link", name="Previous").click()
    assert _listed_ids(page) == pages[1]
    page.get_by_role("link", name="Previous").click()
    assert _listed_ids(page) == pages[0]
    assert page.get_by_role("link", name="Previous").count() == 0

    page.get_by_role("link", name="Device (sort descending)").click()
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Device")
    assert _listed_ids(page) == list(reversed(estate.mdi))[:10]


def test_csv_download_has_exactly_the_filtered_rows(estate: Estate, signed_in: SignIn) -> None:
    page = signed_in("/devices?kind=tablet&sort=-last_seen")
    link = page.get_by_role("link", name="Download these")
    assert link.get_attribute("href") == "/devices.csv?kind=tablet&sort=-last_seen"
    response = page.request.get(f"{estate.base}{link.get_attribute('href')}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text())))
    assert sorted(r["id"] for r in rows) == sorted(estate.by_kind["tablet"])
    assert {r["kind"] for r in rows} == {"tablet"}
    assert {r["prison_code"] for r in rows} == {"MDI"}
    seen = [r["last_seen"] for r in rows]
    assert seen == sorted(seen, reverse=True)

    everything = page.request.get(f"{estate.base}/devices.csv")
    ids = [r["id"] for r in csv.DictReader(io.StringIO(everything.text()))]
    assert ids == estate.mdi


def test_csv_download_stops_at_its_cap_and_says_so(
    estate: Estate, signed_in: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_pages, "CSV_CAP", 5)
    page = signed_in()
    expect(page.locator(".govuk-inset-text")).to_contain_text("first 5 devices only")
    lines = page.request.get(f"{estate.base}/devices.csv").text().strip().splitlines()
    assert len(lines) == 1 + 5 + 1
    assert [line.split(",")[0] for line in lines[1:6]] == estate.mdi[:5]
    assert "stopped at 5 devices; more match" in lines[-1]


def test_a_list_past_its_count_cap_says_more_than_and_still_pages(
    estate: Estate, signed_in: SignIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_pages, "LIST_COUNT_CAP", 20)
    page = signed_in("/devices?limit=10", javascript=False)
    expect(page.locator("#result-count")).to_have_text("More than 20 devices")
    expect(page.locator(".moj-pagination__results")).to_have_text(
        "Showing 1 to 10 of more than 20 devices (page 1)"
    )
    pages = [_listed_ids(page)]
    while page.get_by_role("link", name="Next").count():
        page.get_by_role("link", name="Next").click()
        pages.append(_listed_ids(page))
    assert [i for p in pages for i in p] == estate.mdi
    expect(page.locator(".moj-pagination__results")).to_have_text(
        "Showing 21 to 23 of more than 20 devices (page 3)"
    )
    expect(page.locator(".govuk-inset-text")).to_have_count(0)

    # The download is not bounded by the count: it streams every match.
    link = page.get_by_role("link", name="Download all these devices as CSV")
    csv_text = page.request.get(f"{estate.base}{link.get_attribute('href')}").text()
    assert [r["id"] for r in csv.DictReader(io.StringIO(csv_text))] == estate.mdi

    page.goto(f"{estate.base}/devices?kind=tablet")
    expect(page.locator("#result-count")).to_have_text(f"{len(estate.by_kind['tablet'])} devices")


@pytest.mark.parametrize(
    "text", ["MDI\x00", "\x00", "%", "___", "\\", "\\%", "'; --", "M" * 5000, "😀"]
)
def test_odd_search_text_lists_nothing_and_never_fails(
    estate: Estate, signed_in: SignIn, text: str
) -> None:
    page = signed_in(javascript=False)
    for path in ("/devices", "/devices.csv", "/search"):
        response = page.request.get(f"{estate.base}{path}", params={"q": text})
        assert response.status < 500, (path, response.status)
    listed = page.request.get(f"{estate.base}/devices", params={"q": text})
    assert listed.status == 200
    assert "No devices match these filters." in listed.text()
    rows = list(
        csv.reader(
            io.StringIO(page.request.get(f"{estate.base}/devices.csv", params={"q": text}).text())
        )
    )
    assert rows == [list(device_pages.CSV_FIELDS)]


def test_a_device_outside_the_caseload_is_not_found(estate: Estate, signed_in: SignIn) -> None:
    signed_out = httpx.get(f"{estate.base}/devices?kind=tablet", follow_redirects=False)
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/sign-in?next=/devices")
    anonymous = httpx.get(f"{estate.base}/devices/{estate.watched}/live.json")
    assert anonymous.status_code == 401

    page = signed_in()
    foreign = estate.lei[0]
    response = page.goto(f"{estate.base}/devices/{foreign}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    assert foreign not in page.content()
    live = page.request.get(f"{estate.base}/devices/{foreign}/live.json")
    assert live.status == 404
    missing = page.goto(f"{estate.base}/devices/MDI-NOPE-000000")
    assert missing is not None
    assert missing.status == 404
    page.goto(f"{estate.base}/devices?q=LEI")
    expect(page.locator("#result-count")).to_have_text("0 devices")


def test_device_page_charts_have_table_alternatives(estate: Estate, signed_in: SignIn) -> None:
    page = signed_in(f"/devices/{estate.watched}")
    charts = page.locator("figure.device-chart")
    expect(charts).to_have_count(8)
    for index in range(8):
        chart = charts.nth(index)
        assert chart.locator("svg[role=img] polyline").count() >= 1
        assert "latest" in chart.locator("p").inner_text()
    expect(page.locator("figcaption")).to_contain_text(
        ["Battery (%), last 24 hours", "CPU (%), last 24 hours"]
    )
    expect(charts.filter(has_text="Wi-Fi signal (dBm)")).to_have_count(2)

    page.get_by_text("Show last 24 hours as a table").click()
    day_table = page.locator("details table").first
    expect(day_table).to_be_visible()
    assert day_table.locator("tbody tr").count() >= 280
    expect(day_table.locator("thead")).to_contain_text("Battery (%)")
    page.get_by_text("Show last 7 days as a table").click()
    week_rows = page.locator("details table").nth(1).locator("tbody tr").count()
    assert 160 <= week_rows <= 169

    expect(page.locator(".moj-timeline__title")).to_contain_text(["Moved"])
    expect(page.locator("main")).to_contain_text("device.moved")


def test_live_state_follows_a_change_without_reloading(estate: Estate, signed_in: SignIn) -> None:
    page = signed_in(f"/devices/{estate.watched}")
    status = page.locator('[data-live="status"]')
    expect(status).to_have_text("Online")
    expect(page.get_by_role("link", name="Refresh")).to_have_attribute(
        "href", f"/devices/{estate.watched}"
    )
    with transaction(estate.ctx.sessions) as session:
        session.execute(
            update(DeviceState)
            .where(DeviceState.device_id == estate.watched)
            .values(online=False, state="lost", agent_version="2.0.0")
        )
    live = page.request.get(f"{estate.base}/devices/{estate.watched}/live.json").json()
    assert live["online"] is False
    assert live["status"]["text"] == "Offline (lost)"
    assert live["agent_version"] == "2.0.0"
    expect(status).to_have_text("Offline (lost)", timeout=20_000)
    expect(page.locator('[data-live="agent_version"]')).to_have_text("2.0.0")


@pytest.mark.parametrize("path", ["/devices?kind=tablet", "device"])
def test_device_pages_pass_axe(estate: Estate, signed_in: SignIn, path: str) -> None:
    page = signed_in(f"/devices/{estate.watched}" if path == "device" else path, bypass_csp=True)
    if path == "device":
        page.get_by_text("as a table").first.click()
    assert serious_violations(page) == []
