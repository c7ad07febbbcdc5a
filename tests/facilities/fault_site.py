"""A running site for the fault pages: people in MDI and LEI, a signed-in HTTP client, counts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import func, select

from facilities.faults import service
from facilities.faults.models import Fault, FaultAttachment, FaultEvent
from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction
from tests.web.site import PASSWORD, Site, running_site

EXTRA_USERS = {
    # username: (role, caseload); the shared site already has facilities (MDI), admin, support.
    "lei.facilities": ("facilities", ["LEI"]),
    "mdi.viewer": ("viewer", ["MDI"]),
    "mdi.works": ("facilities", ["MDI"]),
}
# The smallest PNG there is: one transparent pixel.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
TOKEN_RE = re.compile(r'name="csrf[_-]token" (?:value|content)="([^"]+)"')
KEY_RE = re.compile(r'name="idempotency_key" value="([^"]+)"')


@contextmanager
def fault_site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    with running_site(pg_url, tmp_path) as site:
        with transaction(site.ctx.sessions) as session:
            for username, (role, prisons) in EXTRA_USERS.items():
                create_user(
                    session=session,
                    username=username,
                    role=role,
                    prisons=prisons,
                    password=PASSWORD,
                )
        yield site


def browser_page(
    browser: Browser,
    site: Site,
    username: str,
    next_path: str,
    *,
    javascript: bool = True,
    bypass_csp: bool = False,
) -> tuple[BrowserContext, Page]:
    """A fresh browser context signed in as `username`, landed on `next_path`."""
    context = browser.new_context(java_script_enabled=javascript, bypass_csp=bypass_csp)
    page = context.new_page()
    page.goto(f"{site.base}/sign-in?next={quote(next_path, safe='/')}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header")).to_contain_text(username)
    return context, page


@dataclass
class WebClient:
    """An HTTP client signed in through the sign-in form, as a browser without JavaScript."""

    http: httpx.Client

    def form_tokens(self, path: str = "/faults/new") -> tuple[str, str]:
        """(csrf token, idempotency key) from a freshly loaded form."""
        page = self.http.get(path)
        assert page.status_code == 200, page.text
        key = KEY_RE.search(page.text)
        return TOKEN_RE.findall(page.text)[0], key.group(1) if key else ""

    def report(
        self, fields: dict[str, str], files: dict[str, tuple[str, bytes, str]] | None = None
    ) -> httpx.Response:
        token, key = self.form_tokens()
        data = {
            "csrf_token": token,
            "idempotency_key": key,
            "action": "report",
            "location": "MDI-1-1-001",
            "category": "plumbing",
            "priority": "P3",
            "description": "Tap drips",
        }
        data.update(fields)
        return self.http.post("/faults/new", data=data, files=files or {})


@contextmanager
def web_client(site: Site, username: str) -> Iterator[WebClient]:
    with httpx.Client(base_url=site.base, timeout=30) as http:
        page = http.get("/sign-in")
        token = TOKEN_RE.findall(page.text)[0]
        signed = http.post(
            "/sign-in",
            data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/"},
        )
        assert signed.status_code == 303, signed.text
        yield WebClient(http)


@dataclass(frozen=True)
class Stored:
    faults: int
    events: int
    attachments: int
    versions: tuple[int, ...]


def stored(ctx: Context) -> Stored:
    """What the database holds about faults, to show a refused request changed nothing."""
    with transaction(ctx.sessions) as session:
        return Stored(
            session.scalar(select(func.count()).select_from(Fault)) or 0,
            session.scalar(select(func.count()).select_from(FaultEvent)) or 0,
            session.scalar(select(func.count()).select_from(FaultAttachment)) or 0,
            tuple(session.scalars(select(Fault.version).order_by(Fault.id))),
        )


def seed_fault(
    ctx: Context, location: str = "MDI-1-1-001", actor: str = "facilities", **fields: str
) -> str:
    """Report a fault directly through the service; returns its reference."""
    with transaction(ctx.sessions) as session:
        fault = service.report_fault(
            session=session,
            actor=actor,
            location_path=location,
            category=fields.get("category", "door_lock_cell_bell"),
            priority=fields.get("priority", "P1"),
            description=fields.get("description", "Cell bell silent"),
        )
        return fault.reference
