"""axe-core finds no serious or critical accessibility problems on the shell and estate pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.web.axe import serious_violations
from tests.web.site import Site, running_site, sign_in


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as running:
        yield running


PAGES = {
    "admin": [
        "/estate",
        "/estate?q=moor&sort=online&order=desc",
        "/prisons/MDI",
        "/attention",
        "/faults",
        "/prisons/XYZ",
        "/sign-out",
    ],
    "rollout": ["/prison", "/estate"],
}


def test_every_page_passes_axe(site: Site, browser: Browser) -> None:
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(f"{site.base}/sign-in")
    problems = {"/sign-in": serious_violations(page)}
    checked = 1
    for username, paths in PAGES.items():
        page = sign_in(context, site, username)
        for path in paths:
            page.goto(f"{site.base}{path}")
            problems[f"{username} {path}"] = serious_violations(page)
            checked += 1
        context.clear_cookies()
    assert checked == 10
    assert all(not found for found in problems.values()), problems
    context.close()
