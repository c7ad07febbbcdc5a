"""The device page's action panel and command history, and the header search, in a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from fleet.audit.models import AuditEvent
from fleet.auth.service import create_user
from fleet.commands import service
from fleet.commands.models import DeviceCommand
from fleet.db import transaction, utcnow
from fleet.devices.models import Device
from tests.commands.plane import command_plane, wait_for
from tests.estate.factories import add_device
from tests.services.api_server import free_port, running_api
from tests.services.postgres import migrated_context
from tests.web.axe import serious_violations
from tests.web.site import PASSWORD, Site, populate

if TYPE_CHECKING:
    from tests.services.mosquitto import DynsecBroker


@dataclass
class Estate:
    site: Site
    retired: str
    lei: str


@pytest.fixture
def estate(pg_url: str, tmp_path: Path) -> Iterator[Estate]:
    """The page-test site, with a broker address nothing listens on: sends fail, visibly."""
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    try:
        watched = populate(ctx)
        with transaction(ctx.sessions) as session:
            retired = add_device(session, prison="MDI", location="MDI-1-2-001", lifecycle="retired")
            lei = session.scalars(select(Device.id).where(Device.prison_code == "LEI")).one()
            retired_id = retired.id
        with running_api(ctx.settings) as base:
            yield Estate(Site(base, ctx, watched), retired_id, lei)
    finally:
        ctx.close()


@pytest.fixture
def open_as(browser: Browser, estate: Estate) -> Iterator[object]:
    contexts: list[BrowserContext] = []

    def open_page(username: str, *, javascript: bool = True, bypass_csp: bool = False) -> Page:
        context = browser.new_context(java_script_enabled=javascript, bypass_csp=bypass_csp)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{estate.site.base}/sign-in")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("header")).to_contain_text(username)
        return page

    yield open_page
    for context in contexts:
        context.close()


def _commands(estate: Estate, device_id: str) -> list[tuple[str, str, str]]:
    with transaction(estate.site.ctx.sessions) as session:
        rows = session.scalars(
            select(DeviceCommand)
            .where(DeviceCommand.device_id == device_id)
            .order_by(DeviceCommand.created_at)
        )
        return [(c.action, c.status, c.requested_by) for c in rows]


def _csrf(page: Page, base: str) -> str:
    page.goto(f"{base}/sign-out")
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_an_action_is_sent_audited_and_its_failure_shown_without_javascript(
    estate: Estate, open_as: object
) -> None:
    page = open_as("support", javascript=False)  # type: ignore[operator]
    device = estate.site.mdi_device
    page.goto(f"{estate.site.base}/devices/{device}")
    panel = page.locator("section.device-actions")
    expect(panel.get_by_role("button")).to_have_text(
        ["Reboot", "Restart agent", "Lock", "Collect diagnostics", "Refresh configuration"]
    )
    expect(page.locator("#command-history + p")).to_have_text(
        "No commands have been sent to this device."
    )
    panel.get_by_role("button", name="Collect diagnostics").click()
    expect(page).to_have_url(
        re.compile(rf"{re.escape(estate.site.base)}/devices/{device}\?sent=[0-9a-f]{{32}}$")
    )
    banner = page.locator("[data-command-banner=failed]")
    expect(banner).to_contain_text("Collect diagnostics failed: the broker is unreachable")
    row = page.locator("table.device-commands tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("th")).to_have_text("Collect diagnostics")
    expect(row.locator("td").nth(0)).to_have_text("Failed")
    expect(row.locator("td").nth(1)).to_have_text("support")
    expect(row.locator("td").nth(3)).to_contain_text("the broker is unreachable")
    assert _commands(estate, device) == [("collect_diagnostics", "failed", "support")]
    with transaction(estate.site.ctx.sessions) as session:
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "device.command.collect_diagnostics")
        ).one()
    assert (audit.actor, audit.target_id, audit.prison_code) == ("support", device, "MDI")


def test_reboot_and_lock_ask_for_confirmation_without_javascript(
    estate: Estate, open_as: object
) -> None:
    page = open_as("support", javascript=False)  # type: ignore[operator]
    device = estate.site.mdi_device
    page.goto(f"{estate.site.base}/devices/{device}")
    page.get_by_role("button", name="Reboot").click()
    expect(page.locator("h1")).to_have_text("Reboot this device?")
    expect(page.locator(".govuk-warning-text")).to_contain_text("loses anything not saved")
    assert _commands(estate, device) == []
    page.get_by_role("link", name="No, go back").click()
    expect(page).to_have_url(f"{estate.site.base}/devices/{device}#actions")
    assert _commands(estate, device) == []

    page.get_by_role("button", name="Lock").click()
    expect(page.locator("h1")).to_have_text("Lock this device?")
    page.get_by_role("button", name=f"Yes, lock device {device}").click()
    expect(page.locator("table.device-commands tbody th")).to_have_text(["Lock"])
    assert [a for a, _, _ in _commands(estate, device)] == ["lock"]


def test_roles_without_command_permissions_get_no_panel_and_a_403(
    estate: Estate, open_as: object
) -> None:
    device = estate.site.mdi_device
    for username in ("rollout", "facilities", "mdi.only"):
        page = open_as(username)  # type: ignore[operator]
        page.goto(f"{estate.site.base}/devices/{device}")
        expect(page.locator("h1")).to_have_text(f"Device {device}")
        expect(page.locator("section.device-actions")).to_have_count(0)
        expect(page.locator("#command-history")).to_have_count(0)
        token = _csrf(page, estate.site.base)
        answer = page.request.post(
            f"{estate.site.base}/devices/{device}/actions",
            form={"csrf_token": token, "action": "refresh_config"},
        )
        assert answer.status == 403, username
        role = "facilities" if username == "facilities" else "rollout-manager"
        assert f"Your role ({role})" in answer.text()
    assert _commands(estate, device) == []


def test_caseload_retired_devices_forged_posts_and_unknown_actions_are_refused(
    estate: Estate, open_as: object
) -> None:
    page = open_as("support")  # type: ignore[operator]
    base = estate.site.base
    page.goto(f"{base}/devices/{estate.retired}")
    expect(page.locator("[data-actions-refused]")).to_have_text(
        f"Device {estate.retired} is retired; commands are not sent to it. "
        "Actions cannot be sent to it."
    )
    expect(page.locator("section.device-actions button")).to_have_count(0)
    token = _csrf(page, base)
    url = f"{base}/devices/{{}}/actions"
    retired = page.request.post(
        url.format(estate.retired), form={"csrf_token": token, "action": "refresh_config"}
    )
    assert retired.status == 409
    assert "is retired; commands are not sent to it." in retired.text()
    foreign = page.request.post(
        url.format(estate.lei), form={"csrf_token": token, "action": "refresh_config"}
    )
    assert foreign.status == 404
    unknown = page.request.post(
        url.format(estate.site.mdi_device), form={"csrf_token": token, "action": "format_disk"}
    )
    assert unknown.status == 422
    assert "There is no action called format_disk." in unknown.text()
    forged = page.request.post(
        url.format(estate.site.mdi_device), form={"csrf_token": "x", "action": "refresh_config"}
    )
    assert forged.status == 403
    assert "did not come from this service" in forged.text()
    for device in (estate.retired, estate.lei, estate.site.mdi_device):
        assert _commands(estate, device) == []


def test_history_is_newest_first_paged_and_shows_each_status_and_reason(
    estate: Estate, open_as: object
) -> None:
    device = estate.site.mdi_device
    start = utcnow() - timedelta(hours=2)
    replies = {
        0: {"status": "done", "output": "pong"},
        1: {"status": "rejected", "output": "command expired before it arrived"},
        2: {"status": "failed", "output": "system actions are disabled on this agent"},
    }
    with transaction(estate.site.ctx.sessions) as session:
        target = session.get(Device, device)
        assert target is not None
        for index in range(13):
            action = ("ping", "lock", "reboot", "refresh_config")[index % 4]
            command = service.queue_command(
                session=session,
                actor="admin",
                device=target,
                action=action,
                params={},
                now=start + timedelta(minutes=index),
            )
            if index in replies:
                service.apply_reply(
                    session=session,
                    device_id=device,
                    reply={"id": command.id, **replies[index]},
                    now=start + timedelta(minutes=index, seconds=5),
                )
            elif index == 3:
                service.mark_delivered(session=session, command_id=command.id, now=start)
        # Unanswered commands whose five minutes ran out before 00:15:01 have expired.
        service.expire_overdue(session=session, now=start + timedelta(minutes=10, seconds=301))
    page = open_as("admin", javascript=False)  # type: ignore[operator]
    page.goto(f"{estate.site.base}/devices/{device}")
    rows = page.locator("table.device-commands tbody tr")
    expect(rows).to_have_count(10)
    expect(rows.locator("th")).to_have_text(
        [*["Ping", "Refresh configuration", "Reboot", "Lock"] * 2, "Ping", "Refresh configuration"]
    )
    expect(page.locator(".moj-pagination__results")).to_have_text(
        "Showing 1 to 10 of 13 commands (page 1 of 2)"
    )
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(3)
    expect(rows.locator("th")).to_have_text(["Reboot", "Lock", "Ping"])
    expect(rows.locator("td:nth-child(2)")).to_have_text(["Failed", "Rejected", "Done"])
    expect(rows.locator("td:nth-child(5)")).to_have_text(
        [
            "system actions are disabled on this agent",
            "command expired before it arrived",
            "pong",
        ]
    )
    expect(page.locator(".moj-pagination__results")).to_have_text(
        "Showing 11 to 13 of 13 commands (page 2 of 2)"
    )
    page.get_by_role("link", name="Newer").click()
    statuses = rows.locator("td:nth-child(2)")
    # index 12 is the newest and never answered (queued); 3 was delivered, then expired.
    expect(statuses.first).to_have_text("Queued")
    expect(statuses.last).to_have_text("Expired")
    expect(rows.last.locator("td").nth(3)).to_have_text("no reply before the command expired")


def test_the_header_search_finds_devices_by_id_serial_and_place(
    estate: Estate, open_as: object, browser: Browser
) -> None:
    base = estate.site.base
    device = estate.site.mdi_device
    page = open_as("support", javascript=False)  # type: ignore[operator]
    search = page.get_by_label("Device id, serial or location")
    search.fill(device.lower())
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page).to_have_url(f"{base}/devices/{device}")

    page.get_by_label("Device id, serial or location").fill(f"sn-{device}".lower())
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page).to_have_url(f"{base}/devices/{device}")

    page.get_by_label("Device id, serial or location").fill("MDI-1-1")
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page).to_have_url(f"{base}/devices?q=MDI-1-1")
    expect(page.locator("#result-count")).to_have_text("2 devices")

    # Outside the caseload an exact id finds nothing, and says nothing about the device.
    page.get_by_label("Device id, serial or location").fill(estate.lei)
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page).to_have_url(f"{base}/devices?q={estate.lei}")
    expect(page.locator("#result-count")).to_have_text("0 devices")

    for username, path in (("rollout", "/rollout"), ("facilities", "/"), ("admin", "/estate")):
        other = open_as(username, javascript=False)  # type: ignore[operator]
        other.goto(f"{base}{path}")
        expect(other.locator("header form[role=search]")).to_have_count(1)
    anonymous = browser.new_context()
    try:
        login = anonymous.new_page()
        login.goto(f"{base}/sign-in")
        expect(login.locator("header form[role=search]")).to_have_count(0)
    finally:
        anonymous.close()


def test_device_action_pages_pass_axe(estate: Estate, open_as: object) -> None:
    device = estate.site.mdi_device
    page = open_as("support", bypass_csp=True)  # type: ignore[operator]
    found = {}
    page.goto(f"{estate.site.base}/devices/{device}")
    page.get_by_role("button", name="Refresh configuration").click()
    expect(page.locator("[data-command-banner]")).to_be_visible()
    found["device page with banner and history"] = serious_violations(page)
    page.get_by_role("button", name="Reboot").click()
    found["confirmation"] = serious_violations(page)
    page.goto(f"{estate.site.base}/devices/{estate.retired}")
    found["retired device"] = serious_violations(page)
    page.get_by_label("Device id, serial or location").fill("MDI-1")
    page.get_by_role("button", name="Find", exact=True).click()
    found["search results"] = serious_violations(page)
    assert found == {name: [] for name in found}


def _newest_status(page: Page) -> str:
    """The newest command's status, read from a fresh load of the device page."""
    try:
        # goto, not reload: the page's own live refresh may be navigating at the same moment.
        page.goto(page.url.split("?")[0])
    except PlaywrightError:
        return ""  # caught mid-navigation; the caller's wait asks again
    return page.locator("table.device-commands tbody tr").first.locator("td").first.inner_text()


def test_actions_from_the_page_reach_a_real_agent_and_its_replies_show(
    pg_url: str, dynsec_broker: DynsecBroker, tmp_path: Path, browser: Browser
) -> None:
    with command_plane(pg_url, dynsec_broker, tmp_path) as cp:
        with transaction(cp.ctx.sessions) as session:
            create_user(
                session=session,
                username="mdi.support",
                role="it-support",
                prisons=["MDI"],
                password=PASSWORD,
            )
        agent = cp.start_agent_with("page", cp.enrolment_token())
        context = browser.new_context(java_script_enabled=False)
        try:
            device_id = agent.identity()["device_id"]
            wait_for(lambda: cp.device(device_id)["online"], 20, "device online")
            page = context.new_page()
            page.goto(f"{cp.base_url}/sign-in?next=/devices/{device_id}")
            page.get_by_label("Username").fill("mdi.support")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("h1")).to_have_text(f"Device {device_id}")

            page.get_by_role("button", name="Collect diagnostics").click()
            expect(page.locator("[data-command-banner=ok]")).to_contain_text(
                "Collect diagnostics was"
            )
            wait_for(lambda: _newest_status(page) == "Done", 20, "diagnostics done")
            reply = page.locator("table.device-commands tbody tr").first.locator("td").nth(3)
            expect(reply).to_contain_text('"boot"')

            page.get_by_role("button", name="Reboot").click()
            page.get_by_role("button", name=f"Yes, reboot device {device_id}").click()
            wait_for(lambda: _newest_status(page) == "Failed", 20, "the reboot's reply")
            newest = page.locator("table.device-commands tbody tr").first
            expect(newest.locator("th")).to_have_text("Reboot")
            expect(newest.locator("td").nth(1)).to_have_text("mdi.support")
            expect(newest.locator("td").nth(3)).to_have_text(
                "system actions are disabled on this agent"
            )
        finally:
            context.close()
            agent.stop()
