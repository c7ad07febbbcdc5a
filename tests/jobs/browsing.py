"""Signing in to the job pages in a real browser, one browser context per person."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

from playwright.sync_api import Browser, BrowserContext, Page, expect

PASSWORD = "a long enough password"
Opener = Callable[..., Page]


@contextmanager
def sign_in_opener(browser: Browser, base: str) -> Iterator[Opener]:
    """open(username, path, javascript=True, bypass_csp=False): a signed-in page at `path`."""
    contexts: list[BrowserContext] = []

    def open_page(
        username: str, path: str, javascript: bool = True, bypass_csp: bool = False
    ) -> Page:
        context = browser.new_context(java_script_enabled=javascript, bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{base}/sign-in?next={quote(path, safe='/')}")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{base}{path}")
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
