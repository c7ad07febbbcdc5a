"""Sign-in in a real browser, with and without JavaScript."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from fleet.auth.service import create_user
from fleet.db import transaction
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context

PASSWORD = "a long enough password"


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[str]:
    ctx = migrated_context(pg_url, data_dir=tmp_path)
    with transaction(ctx.sessions) as session:
        create_user(
            session=session,
            username="f.staff",
            role="facilities",
            prisons=["MDI"],
            password=PASSWORD,
        )
    with running_api(ctx.settings) as base:
        yield base
    ctx.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_sign_in_and_out(site: str, browser: Browser, javascript: bool) -> None:
    context = browser.new_context(java_script_enabled=javascript)
    page = context.new_page()
    page.goto(f"{site}/")
    expect(page).to_have_url(f"{site}/sign-in")
    expect(page.locator("h1")).to_have_text("Sign in")
    # GOV.UK Frontend styles are served locally (no CDN).
    css = httpx.get(f"{site}/static/govuk/govuk-frontend.min.css")
    assert css.status_code == 200
    assert "govuk-header" in css.text

    page.get_by_label("Username").fill("f.staff")
    page.get_by_label("Password", exact=True).fill("wrong password here")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text(
        "The username or password is not right"
    )
    expect(page).to_have_title("Error: Sign in - Estate - HMPPS")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Facilities staff land on their faults page; the header says who is signed in.
    expect(page).to_have_url(f"{site}/faults")
    expect(page.locator("header")).to_contain_text("f.staff")

    page.goto(f"{site}/sign-out")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(f"{site}/sign-in")
    page.goto(f"{site}/")
    expect(page).to_have_url(f"{site}/sign-in")
    context.close()


def test_sign_in_refuses_a_forged_form_without_the_csrf_token(site: str) -> None:
    resp = httpx.post(
        f"{site}/sign-in", data={"username": "f.staff", "password": PASSWORD}, timeout=10
    )
    assert resp.status_code == 400
    assert "form expired" in resp.text
    assert "estate_session" not in resp.headers.get("set-cookie", "") or "user_id" not in resp.text


def test_next_parameter_cannot_redirect_off_site(site: str) -> None:
    with httpx.Client(base_url=site, timeout=10, follow_redirects=False) as client:
        form = client.get("/sign-in", params={"next": "//evil.example/"})
        assert 'value="/"' in form.text
        assert "evil.example" not in form.text
