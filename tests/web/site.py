"""A running site for page tests: a user per role, MDI and LEI locations, a few devices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction, utcnow
from tests.estate.factories import add_device, seed_locations
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context

PASSWORD = "a long enough password"
USERS = {
    # username: (role, caseload)
    "rollout": ("rollout-manager", ["MDI", "LEI"]),
    "support": ("it-support", ["MDI"]),
    "facilities": ("facilities", ["MDI"]),
    "admin": ("estate-admin", []),
    "mdi.only": ("rollout-manager", ["MDI"]),
}


@dataclass
class Site:
    base: str
    ctx: Context
    mdi_device: str  # online and healthy, on MDI wing 1 landing 1


def populate(ctx: Context) -> str:
    """Users, locations and devices; returns the id of one online MDI device."""
    seed_locations(ctx)
    now = utcnow()
    with transaction(ctx.sessions) as session:
        for username, (role, prisons) in USERS.items():
            create_user(
                session=session, username=username, role=role, prisons=prisons, password=PASSWORD
            )
        watched = add_device(session, prison="MDI", location="MDI-1-1-001", online=True)
        add_device(session, prison="MDI", location="MDI-1-1-002", online=True, last_seen=now)
        add_device(session, prison="MDI", location="MDI-2-1-001", online=False, health="critical")
        add_device(session, prison="MDI", location="MDI-2-2-001", lifecycle="registered")
        add_device(session, prison="LEI", location="LEI-1-1-001", online=True, last_seen=now)
        return watched.id


@contextmanager
def running_site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    ctx = migrated_context(pg_url, data_dir=tmp_path)
    try:
        device = populate(ctx)
        with running_api(ctx.settings) as base:
            yield Site(base, ctx, device)
    finally:
        ctx.close()


def sign_in(context: BrowserContext, site: Site, username: str) -> Page:
    """A page signed in as `username`, left on wherever sign-in lands."""
    page = context.new_page()
    page.goto(f"{site.base}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header")).to_contain_text(username)
    return page
