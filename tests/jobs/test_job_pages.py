"""Job pages in a real browser: launch with a preview (no JavaScript), approval, live output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs import execution
from fleet.jobs.events import EventRecorder
from fleet.jobs.inventory import mqtt_inventory
from fleet.jobs.models import Job
from fleet.jobs.schemas import Selector
from fleet.jobs.service import PLAYBOOKS_DIR
from tests.jobs.browsing import PASSWORD, Opener, sign_in_opener
from tests.jobs.support import launch, make_template, seed_devices
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context
from tests.web.axe import serious_violations

USERS = {
    "support": ("it-support", []),
    "mdi.support": ("it-support", ["MDI"]),
    "admin": ("estate-admin", []),
}
SCHEMA = {
    "type": "object",
    "properties": {"report_interval_s": {"type": "integer", "minimum": 10}},
    "required": ["report_interval_s"],
}


@dataclass
class Site:
    base: str
    ctx: Context
    template: int
    lei_job: int


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    # Jobs that start reach for a broker on a closed port and fail at once, touching no device.
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:9")
    try:
        seed_devices(ctx, {"MDI": 3, "LEI": 2})
        with transaction(ctx.sessions) as session:
            for name, (role, prisons) in USERS.items():
                create_user(
                    session=session, username=name, role=role, prisons=prisons, password=PASSWORD
                )
        template = make_template(
            ctx,
            playbook="agent-settings.yml",
            name="Report interval",
            variables={"report_interval_s": 60},
            schema=SCHEMA,
            root=PLAYBOOKS_DIR,
        )
        lei_job = _launch(ctx, template, selector={"prisons": ["LEI"]})
        with running_api(ctx.settings) as base:
            yield Site(base, ctx, template, lei_job)
    finally:
        ctx.close()


@pytest.fixture
def signed_in(browser: Browser, site: Site) -> Iterator[Opener]:
    with sign_in_opener(browser, site.base) as open_page:
        yield open_page


def _launch(ctx: Context, template: int, **body: Any) -> int:
    """A job as launched through the API: the shipped playbooks and the MQTT inventory."""
    return launch(ctx, template, inventory_builder=mqtt_inventory, root=PLAYBOOKS_DIR, **body)


def _jobs(ctx: Context) -> int:
    with transaction(ctx.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_launch_previews_refuses_bad_input_then_waits_for_approval_without_javascript(
    site: Site, signed_in: Opener
) -> None:
    page = signed_in("support", "/jobs", javascript=False)
    nav = page.get_by_role("navigation", name="Primary navigation")
    expect(nav.get_by_role("link", name="Jobs")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="Launch a job from a template").click()
    page.get_by_role("link", name="Report interval").click()
    before = _jobs(site.ctx)

    page.get_by_label("Variables").fill('{"report_interval_s": 5')
    page.get_by_role("button", name="Preview targets").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Variables are not valid JSON")
    expect(page.get_by_label("Variables")).to_have_value('{"report_interval_s": 5')

    page.get_by_label("Variables").fill('{"report_interval_s": 5}')
    page.get_by_role("button", name="Preview targets").click()
    expect(summary).to_contain_text("variables.report_interval_s")
    expect(summary).to_contain_text("minimum of 10")
    summary.get_by_role("link").first.click()
    expect(page.get_by_label("Variables")).to_be_focused()

    page.get_by_label("Prisons").fill("MDI")
    page.get_by_label("Variables").fill('{"report_interval_s": 120}')
    page.get_by_role("button", name="Preview targets").click()
    preview = page.locator("[data-preview]")
    expect(preview).to_contain_text("Preview: 3 devices in 1 prison")
    expect(page.locator("[data-preview-targets] tbody tr")).to_have_count(3)
    assert _jobs(site.ctx) == before, "a preview creates no job"

    page.get_by_label("Prisons").fill("")
    page.get_by_role("button", name="Launch job").click()
    expect(page.locator("h1")).to_contain_text("Report interval")
    expect(page.locator('[data-live="status"]')).to_have_text("awaiting approval")
    expect(page.locator("#decision + p")).to_contain_text("Another person with approval rights")
    assert _jobs(site.ctx) == before + 1


def test_the_second_person_approves_from_the_approvals_page(site: Site, signed_in: Opener) -> None:
    job_id = _launch(
        site.ctx, site.template, actor="support", selector={"kinds": ["in_cell_phone"]}
    )
    page = signed_in("admin", "/jobs/approvals", javascript=False)
    row = page.locator(f'[data-job="{job_id}"]')
    expect(row).to_contain_text("support")
    row.get_by_role("link", name="Review and decide").click()

    page.get_by_role("button", name="Approve and start").click()

    expect(page.locator("dl")).to_contain_text("Approved by")
    expect(page.locator("dl")).to_contain_text("admin")
    with transaction(site.ctx.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.approved_by == "admin"


def test_output_streams_into_the_page_while_the_job_runs(site: Site, signed_in: Opener) -> None:
    job_id = _launch(site.ctx, site.template, selector=Selector(prisons=["MDI"]))
    with transaction(site.ctx.sessions) as session:
        stage = execution.claim_next_stage(
            session=session, job_id=job_id, worker="w:1", now=utcnow()
        )
        assert stage is not None
    page = signed_in("support", f"/jobs/{job_id}")
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    page.reload()
    output = page.locator('[data-live="output"]')
    expect(output).to_have_text("")
    expect(output).to_have_attribute("role", "log")
    expect(output).to_have_attribute("aria-live", "polite")

    recorder = EventRecorder(site.ctx.sessions, job_id=job_id, stage=0)
    recorder.on_event(
        {
            "event": "playbook_on_task_start",
            "counter": 1,
            "stdout": "TASK [Write]",
            "event_data": {"task": "Write"},
        }
    )
    recorder.on_event(
        {
            "event": "runner_on_ok",
            "counter": 2,
            "stdout": "changed: [MDI-1]",
            "event_data": {"host": "MDI-1"},
        }
    )
    recorder.flush()

    expect(output).to_contain_text("TASK [Write]\nchanged: [MDI-1]", timeout=10_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    # The first load's stream may open after the listener is attached, so one or two streams,
    # and never a poll of the API's events.
    assert set(streams) == {f"{site.base}/jobs/{job_id}/events?after=0"}, (
        "Server-Sent Events, no polling"
    )


def test_a_browser_without_event_source_polls_for_output(site: Site, signed_in: Opener) -> None:
    page = signed_in("support", f"/jobs/{site.lei_job}")
    page.add_init_script("delete window.EventSource")
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url.removeprefix(site.base).split("?")[0]))
    page.reload()
    recorder = EventRecorder(site.ctx.sessions, job_id=site.lei_job, stage=0)
    recorder.on_event({"event": "verbose", "counter": 1, "stdout": "polled into the page"})
    recorder.flush()

    expect(page.locator('[data-live="output"]')).to_contain_text(
        "polled into the page", timeout=10_000
    )
    assert f"/api/v1/jobs/{site.lei_job}/events" in seen
    assert f"/jobs/{site.lei_job}/events" not in seen


def test_without_javascript_the_refresh_link_shows_new_output(
    site: Site, signed_in: Opener
) -> None:
    page = signed_in("support", f"/jobs/{site.lei_job}", javascript=False)
    recorder = EventRecorder(site.ctx.sessions, job_id=site.lei_job, stage=0)
    recorder.on_event({"event": "verbose", "counter": 1, "stdout": "hello from the run"})
    recorder.flush()
    expect(page.locator('[data-live="output"]')).not_to_contain_text("hello from the run")

    page.locator("[data-refresh]").click()

    expect(page.locator('[data-live="output"]')).to_contain_text("hello from the run")


def test_a_job_outside_the_caseload_is_not_found(site: Site, signed_in: Opener) -> None:
    page = signed_in("mdi.support", "/jobs")
    expect(page.locator(f'[data-job="{site.lei_job}"]')).to_have_count(0)
    response = page.goto(f"{site.base}/jobs/{site.lei_job}")
    assert response is not None
    assert response.status == 404


@pytest.mark.parametrize("path", ["/jobs", "/jobs/templates", "template", "job", "/jobs/approvals"])
def test_job_pages_pass_axe(site: Site, signed_in: Opener, path: str) -> None:
    target = {"template": f"/jobs/templates/{site.template}", "job": f"/jobs/{site.lei_job}"}
    page = signed_in("support", target.get(path, path), bypass_csp=True)
    if path == "template":
        page.get_by_label("Canary devices").fill("many")
        page.get_by_role("button", name="Preview targets").click()
        expect(page.locator(".govuk-error-summary")).to_be_visible()
        assert serious_violations(page) == []
        page.get_by_label("Canary devices").fill("1")
        page.get_by_role("button", name="Preview targets").click()
        expect(page.locator("[data-preview]")).to_be_visible()
    assert serious_violations(page) == []
