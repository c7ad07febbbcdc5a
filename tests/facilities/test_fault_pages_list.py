"""The open-faults list: filters, search, order, paging, CSV, the chosen prison, no JavaScript."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import update

from facilities.faults.models import Fault
from fleet.db import transaction, utcnow
from tests.facilities.fault_site import browser_page, fault_site, seed_fault, web_client
from tests.web.site import Site

REF_RE = re.compile(r'href="/faults/([A-Z]+-F-\d+)"')


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with fault_site(pg_url, tmp_path) as running:
        yield running


def _listed(html: str) -> list[str]:
    return list(dict.fromkeys(REF_RE.findall(html)))


def test_filters_search_and_order(site: Site) -> None:
    bell = seed_fault(site.ctx, "MDI-1-1-001", description="Cell bell silent")
    tap = seed_fault(site.ctx, "MDI-2-1-002", category="plumbing", priority="P3",
                     description="Tap drips")  # fmt: skip
    heat = seed_fault(site.ctx, "MDI-2-2-003", category="heating", priority="P2",
                      description="=HYPERLINK(\"http://x\")")  # fmt: skip
    done = seed_fault(site.ctx, "MDI-1-2-001", category="plumbing", priority="P4")
    seed_fault(site.ctx, "LEI-1-1-001", actor="admin", description="Not in my prison")
    with transaction(site.ctx.sessions) as session:
        session.execute(update(Fault).where(Fault.reference == done).values(status="closed"))
        session.execute(update(Fault).where(Fault.reference == tap).values(breached_at=utcnow()))
    with web_client(site, "facilities") as client:

        def refs(query: str = "") -> list[str]:
            answer = client.http.get(f"/faults?{query}")
            assert answer.status_code == 200, answer.text
            return _listed(answer.text)

        assert refs() == [heat, tap, bell]  # open ones, newest first, MDI only
        assert refs("status=all") == [done, heat, tap, bell]
        assert refs("status=closed") == [done]
        assert refs("category=plumbing") == [tap]
        assert refs("priority=P2") == [heat]
        assert refs("wing=MDI-2") == [heat, tap]
        assert refs("wing=MDI-2-1") == [tap]
        assert refs("breached=yes") == [tap]
        assert refs("q=drips") == [tap]
        assert refs(f"q={bell.lower()}") == [bell]
        assert refs("q=MDI-2-2") == [heat]
        assert refs("sort=priority") == [bell, heat, tap]
        assert refs("sort=reported_at") == [bell, tap, heat]
        assert "Breached" in client.http.get("/faults?breached=yes").text

        export = client.http.get("/faults.csv?status=all&sort=reference")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert [r["reference"] for r in rows] == sorted([bell, tap, heat, done])
        formula = next(r for r in rows if r["reference"] == heat)
        assert formula["description"].startswith("'=")  # not run when opened in a spreadsheet
        assert {r["location"] for r in rows} == {"MDI-1-1-001", "MDI-2-1-002", "MDI-2-2-003",
                                                 "MDI-1-2-001"}  # fmt: skip
        assert next(r for r in rows if r["reference"] == tap)["sla"] == "Breached"


def test_paging_forward_and_back(site: Site) -> None:
    made = [seed_fault(site.ctx, "MDI-1-1-002", description=f"Fault {i}") for i in range(30)]
    with web_client(site, "facilities") as client:
        first = client.http.get("/faults").text
        assert _listed(first) == made[::-1][:25]
        assert "Showing 1 to 25 of 30 faults (page 1)" in first
        next_url = re.search(r'href="(/faults\?cursor=[^"]+)"', first)
        assert next_url is not None
        second = client.http.get(next_url.group(1).replace("&amp;", "&")).text
        assert _listed(second) == made[::-1][25:]
        assert "Showing 26 to 30 of 30 faults (page 2)" in second
        back = re.search(r'href="(/faults[^"]*)"[^>]*rel="prev"', second)
        assert back is not None
        assert _listed(client.http.get(back.group(1).replace("&amp;", "&")).text) == _listed(first)


def test_someone_with_two_prisons_sees_the_one_they_choose(site: Site) -> None:
    mdi = seed_fault(site.ctx, "MDI-1-1-001")
    lei = seed_fault(site.ctx, "LEI-1-1-001", actor="admin")
    with web_client(site, "rollout") as client:
        assert set(_listed(client.http.get("/faults").text)) == {mdi, lei}
        token, _ = client.form_tokens("/prison")
        client.http.post("/prison", data={"csrf_token": token, "prison": "LEI"})
        assert _listed(client.http.get("/faults").text) == [lei]
        assert client.http.get(f"/faults/{mdi}").status_code == 404
        assert mdi not in client.http.get("/faults.csv").text


def test_filtering_works_without_javascript(site: Site, browser: Browser) -> None:
    seed_fault(site.ctx, "MDI-1-1-001", description="Cell bell silent")
    tap = seed_fault(site.ctx, "MDI-2-1-002", category="plumbing", priority="P3",
                     description="Tap drips")  # fmt: skip
    context, page = browser_page(browser, site, "facilities", "/faults", javascript=False)
    page.get_by_label("Kind of fault").select_option("plumbing")
    page.get_by_label("Wing").select_option("MDI-2")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#result-count")).to_have_text("1 fault")
    expect(page.locator(".faults-table")).to_contain_text(tap)
    page.get_by_role("link", name=tap).click()
    expect(page.locator("h1")).to_have_text(f"Fault {tap}")
    context.close()
