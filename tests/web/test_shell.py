"""The page shell in a browser: home per role, navigation, the prison switcher and caseloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.web.site import Site, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


HOMES = {
    "rollout": ("/estate", "Estate overview", ["Estate overview", "Rollout"]),
    "support": (
        "/attention",
        "Devices needing attention",
        ["Devices needing attention", "Alerts", "Devices", "Jobs"],
    ),
    "facilities": ("/faults", "Open faults", ["Faults"]),
    "admin": (
        "/estate",
        "Estate overview",
        [
            "Estate overview",
            "Rollout",
            "Devices needing attention",
            "Alerts",
            "Devices",
            "Faults",
            "Jobs",
        ],
    ),
}


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_each_role_lands_on_its_home(site: Site, browser: Browser, javascript: bool) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    refused: list[str] = []
    context.on("console", lambda msg: refused.append(msg.text) if "Refused" in msg.text else None)
    for username, (path, heading, nav) in HOMES.items():
        page = sign_in(context, site, username)
        expect(page).to_have_url(f"{site.base}{path}")
        expect(page.locator("h1")).to_have_text(heading)
        expect(page.locator(".moj-header")).to_contain_text("HMPPS")
        links = page.get_by_role("navigation", name="Primary navigation").get_by_role("link")
        expect(links).to_have_text(nav)
        page.reload()
        assert refused == [], f"the Content-Security-Policy refused something: {refused}"
        page.goto(f"{site.base}/sign-out")
        page.get_by_role("button", name="Sign out", exact=True).click()
        expect(page).to_have_url(f"{site.base}/sign-in")
    context.close()


def test_attention_links_into_the_device_list(site: Site, browser: Browser) -> None:
    page = sign_in(browser.new_context(), site, "support")
    main = page.locator("main")
    expect(main.get_by_role("link", name="1 device offline")).to_have_attribute(
        "href", "/devices?online=false"
    )
    expect(main.get_by_role("link", name="1 device in critical health")).to_have_attribute(
        "href", "/devices?health=critical"
    )
    expect(main.get_by_role("link", name="1 offline in Moorland")).to_have_attribute(
        "href", "/devices?prison=MDI&online=false"
    )
    page.context.close()


def test_a_user_whose_caseload_is_mdi_never_sees_lei(site: Site, browser: Browser) -> None:
    page = sign_in(browser.new_context(), site, "mdi.only")
    expect(page.locator("main table")).to_contain_text("Moorland")
    expect(page.locator("body")).not_to_contain_text("Leeds")
    expect(page.locator("body")).not_to_contain_text("LEI")
    expect(page.locator(".moj-organisation-nav")).to_have_count(0)  # one prison: no switcher
    response = page.goto(f"{site.base}/prisons/LEI")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page.locator("body")).not_to_contain_text("Leeds")
    response = page.goto(f"{site.base}/estate?q=LEI&all=1")
    expect(page.locator("main")).not_to_contain_text("Leeds")
    assert page.goto(f"{site.base}/prison").status == 404  # type: ignore[union-attr]
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_the_prison_switcher_scopes_pages_to_one_prison(
    site: Site, browser: Browser, javascript: bool
) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    page = sign_in(context, site, "rollout")
    switcher = page.locator(".moj-organisation-nav")
    expect(switcher).to_contain_text("All your prisons (2)")
    expect(page.locator("main table")).to_contain_text("Leeds")
    switcher.get_by_role("link", name="Change prison").click()
    options = page.get_by_role("radio")
    expect(options).to_have_count(3)
    labels = page.locator(".govuk-radios__label")
    expect(labels).to_have_text(
        ["All your prisons", "Leeds (HMP) (LEI)", "Moorland (HMP & YOI) (MDI)"]
    )
    page.get_by_label("Moorland (HMP & YOI) (MDI)").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{site.base}/estate")
    expect(switcher).to_contain_text("Moorland (HMP & YOI)")
    expect(page.locator("main table")).not_to_contain_text("Leeds")
    response = page.goto(f"{site.base}/prisons/LEI")
    assert response is not None
    assert response.status == 404
    context.close()


def test_the_switcher_refuses_a_prison_outside_the_caseload(site: Site, browser: Browser) -> None:
    context = browser.new_context()
    page = sign_in(context, site, "rollout")
    page.goto(f"{site.base}/prison")
    token = page.locator("input[name=csrf_token]").get_attribute("value")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    with httpx.Client(base_url=site.base, cookies=cookies, timeout=10) as client:
        refused = client.post("/prison", data={"csrf_token": token, "prison": "BWI"})
        assert refused.status_code == 404
        chosen = client.post("/prison", data={"csrf_token": token, "prison": "LEI"})
        assert chosen.status_code == 303
        overview = client.get("/estate")
        assert "/prisons/LEI" in overview.text
        assert "/prisons/MDI" not in overview.text
    context.close()


def test_browsers_get_error_pages_and_the_api_keeps_json(site: Site) -> None:
    html = {"Accept": "text/html"}
    with httpx.Client(base_url=site.base, timeout=10) as client:
        page = client.get("/no-such-page", headers=html)
        assert page.status_code == 404
        assert "Page not found" in page.text
        assert "govuk-heading-l" in page.text
        api = client.get("/api/v1/no-such-thing", headers=html)
        assert api.status_code == 404
        assert api.headers["content-type"] == "application/json"
        signed_out = client.get("/prisons/MDI", headers=html)
        assert signed_out.status_code == 303
        assert signed_out.headers["location"] == "/sign-in?next=/prisons/MDI"
