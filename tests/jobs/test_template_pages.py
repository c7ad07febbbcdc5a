"""Creating and editing job templates from the web pages, without JavaScript, in a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select

from fleet.audit.models import AuditEvent
from fleet.auth.service import create_user
from fleet.context import Context
from fleet.db import transaction, utcnow
from fleet.jobs.models import JobTemplate
from fleet.jobs.service import PLAYBOOKS_DIR
from tests.jobs.browsing import PASSWORD, Opener, sign_in_opener
from tests.jobs.support import make_template
from tests.services.api_server import running_api
from tests.services.postgres import migrated_context
from tests.web.axe import serious_violations

USERS = {"admin": "estate-admin", "support": "it-support"}
SCHEMA = {
    "type": "object",
    "properties": {"reboot_delay_s": {"type": "integer", "minimum": 1, "maximum": 600}},
}


@dataclass
class Site:
    base: str
    ctx: Context
    template: int


@pytest.fixture
def site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:9")
    try:
        with transaction(ctx.sessions) as session:
            for name, role in USERS.items():
                create_user(session=session, username=name, role=role, password=PASSWORD)
        template = make_template(
            ctx,
            playbook="reboot.yml",
            name="Reboot",
            variables={"reboot_delay_s": 5},
            schema=SCHEMA,
            root=PLAYBOOKS_DIR,
        )
        with running_api(ctx.settings) as base:
            yield Site(base, ctx, template)
    finally:
        ctx.close()


@pytest.fixture
def signed_in(browser: Browser, site: Site) -> Iterator[Opener]:
    """Pages without JavaScript, unless the Content-Security-Policy is bypassed for axe."""
    with sign_in_opener(browser, site.base) as open_page:
        yield lambda username, path, bypass_csp=False: open_page(
            username, path, javascript=bypass_csp, bypass_csp=bypass_csp
        )


def _templates(ctx: Context) -> dict[str, JobTemplate]:
    with transaction(ctx.sessions) as session:
        found = {t.name: t for t in session.scalars(select(JobTemplate))}
        session.expunge_all()
        return found


def _audit(ctx: Context) -> list[tuple[str, str, str]]:
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.actor, AuditEvent.target_id)
            .where(AuditEvent.action.startswith("job_template."))
            .order_by(AuditEvent.id)
        )
        return [(a, b, c) for a, b, c in rows]


def test_an_administrator_creates_a_template_and_a_mistake_keeps_what_was_typed(
    site: Site, signed_in: Opener
) -> None:
    page = signed_in("admin", "/jobs/templates")
    page.get_by_role("button", name="Create a job template").click()
    page.get_by_label("Name").fill("Nightly reboot")
    page.get_by_label("Playbook").select_option("reboot.yml")
    page.get_by_label("Prisons").fill("MDI, LEI")
    page.get_by_label("in cell phone").check()
    page.get_by_label("Default variables").fill("reboot_delay_s: 30\nreboot_command: [oops")
    page.get_by_label("Variables schema").fill('{"type": "object"}')
    page.get_by_label("Devices worked on at once").fill("25")
    page.get_by_label("Canary devices").fill("2")
    page.get_by_role("button", name="Create template").click()

    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Variables are not valid JSON or YAML")
    expect(page).to_have_title(re.compile("^Error: "))
    expect(page.get_by_label("Name")).to_have_value("Nightly reboot")
    expect(page.get_by_label("Playbook")).to_have_value("reboot.yml")
    expect(page.get_by_label("Prisons")).to_have_value("MDI, LEI")
    expect(page.get_by_label("in cell phone")).to_be_checked()
    expect(page.get_by_label("Devices worked on at once")).to_have_value("25")
    expect(page.get_by_label("Canary devices")).to_have_value("2")
    expect(page.get_by_label("Default variables")).to_have_value(
        "reboot_delay_s: 30\nreboot_command: [oops"
    )
    assert "Nightly reboot" not in _templates(site.ctx)

    page.get_by_label("Default variables").fill("reboot_delay_s: 30\nreboot_command: reboot")
    page.get_by_role("button", name="Create template").click()

    expect(page.locator(".govuk-notification-banner")).to_contain_text(
        "Job template Nightly reboot saved"
    )
    expect(page.locator("table")).to_contain_text("Nightly reboot")
    made = _templates(site.ctx)["Nightly reboot"]
    assert made.playbook == "reboot.yml"
    assert made.selector["prisons"] == ["MDI", "LEI"]
    assert made.selector["kinds"] == ["in_cell_phone"]
    assert made.variables == {"reboot_delay_s": 30, "reboot_command": "reboot"}
    assert made.forks == 25
    assert made.rollout["canary"] == 2
    assert ("job_template.create", "admin", str(made.id)) in _audit(site.ctx)


def test_editing_checks_the_schema_and_refuses_a_stale_form(site: Site, signed_in: Opener) -> None:
    page = signed_in("admin", f"/jobs/templates/{site.template}")
    page.get_by_role("link", name="Edit this template").click()
    expect(page.get_by_label("Name")).to_have_value("Reboot")
    page.get_by_label("Default variables").fill('{"reboot_delay_s": 9000}')
    page.get_by_label("Time limit in seconds").fill("600")
    page.get_by_role("button", name="Save changes").click()

    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("variables.reboot_delay_s")
    expect(summary).to_contain_text("9000 is greater than the maximum of 600")
    expect(page.get_by_label("Time limit in seconds")).to_have_value("600")
    assert _templates(site.ctx)["Reboot"].variables == {"reboot_delay_s": 5}

    # Someone else saves first: this form would overwrite their change unseen.
    with transaction(site.ctx.sessions) as session:
        template = session.get(JobTemplate, site.template)
        assert template is not None
        template.description = "changed elsewhere"
        template.updated_at = utcnow()
    page.get_by_label("Default variables").fill('{"reboot_delay_s": 60}')
    page.get_by_role("button", name="Save changes").click()
    expect(summary).to_contain_text("Someone else changed this template")
    expect(page.get_by_label("Default variables")).to_have_value('{"reboot_delay_s": 60}')
    assert _templates(site.ctx)["Reboot"].variables == {"reboot_delay_s": 5}

    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Job template Reboot saved")
    saved = _templates(site.ctx)["Reboot"]
    assert (saved.variables, saved.timeout_s) == ({"reboot_delay_s": 60}, 600)
    assert ("job_template.update", "admin", str(site.template)) in _audit(site.ctx)


def test_people_who_cannot_manage_templates_do_not_see_the_pages(
    site: Site, signed_in: Opener
) -> None:
    page = signed_in("support", "/jobs/templates")
    expect(page.get_by_text("Create a job template")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("^Edit"))).to_have_count(0)
    for path in ("/jobs/templates/new", f"/jobs/templates/{site.template}/edit"):
        response = page.goto(f"{site.base}{path}")
        assert response is not None
        assert response.status == 403


def _post(site: Site, page: Page, path: str, fields: dict[str, Any]) -> httpx.Response:
    """A form post with the browser's own session and CSRF token, as a hand-made request."""
    page.goto(f"{site.base}{path}")
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return httpx.post(
        f"{site.base}{path}",
        data={"csrf_token": token, **fields},
        cookies=cookies,
        follow_redirects=False,
    )


GOOD = {
    "name": "Garbage check",
    "playbook": "reboot.yml",
    "variables": "{}",
    "variables_schema": json.dumps(SCHEMA),
    "forks": "10",
    "timeout_s": "1800",
    "canary": "0",
    "bake_s": "0",
    "waves": "percent",
    "wave_percent": "100",
    "failure_threshold_pct": "100",
}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": ""}, "Enter a name for the template"),
        ({"name": "   "}, "Enter a name for the template"),
        ({"name": "Reboot"}, "A template called &#39;Reboot&#39; already exists"),
        ({"playbook": "missing.yml"}, "There is no playbook &#39;missing.yml&#39;"),
        ({"playbook": "../../etc/passwd"}, "playbook: String should match pattern"),
        ({"playbook": ""}, "Choose the playbook the template runs"),
        ({"variables": '{"a": '}, "Variables are not valid JSON or YAML"),
        ({"variables": "[1, 2]"}, "Variables must be a mapping of names to values"),
        ({"variables": '{"ansible_host": "x"}'}, "&#39;ansible_host&#39; is reserved"),
        ({"variables": '{"reboot_delay_s": "soon"}'}, "&#39;soon&#39; is not of type"),
        ({"variables_schema": '{"type": 12}'}, "is not a valid JSON Schema"),
        ({"forks": "lots"}, "forks: Input should be a valid integer"),
        ({"forks": "0"}, "forks: Input should be greater than or equal to 1"),
        ({"wave_percent": "50, 20"}, "wave_percent must rise strictly"),
        ({"kinds": "toaster"}, "kinds.0: Input should be"),
        ({"prisons": "M\u0000DI"}, "Prisons has a NUL character"),
        ({"variables": '{"a": "\\u0000"}'}, "Variables hold a NUL character"),
    ],
)
def test_garbage_is_refused_with_a_clear_error_and_nothing_stored(
    site: Site, signed_in: Opener, changes: dict[str, str], words: str
) -> None:
    page = signed_in("admin", "/jobs/templates")
    before = (_templates(site.ctx), _audit(site.ctx))
    response = _post(site, page, "/jobs/templates/new", {**GOOD, **changes})
    assert response.status_code == 422, response.text[:300]
    assert "govuk-error-summary" in response.text
    assert words in response.text
    after = (_templates(site.ctx), _audit(site.ctx))
    assert sorted(after[0]) == sorted(before[0])
    assert after[1] == before[1]


def test_garbage_in_an_edit_changes_nothing(site: Site, signed_in: Opener) -> None:
    page = signed_in("admin", "/jobs/templates")
    path = f"/jobs/templates/{site.template}/edit"
    page.goto(f"{site.base}{path}")
    version = page.locator('input[name="version"]').get_attribute("value") or ""
    for bad in ({"playbook": "nope.yml"}, {"name": ""}, {"variables": "{oops"}):
        response = _post(site, page, path, {**GOOD, "version": version, **bad})
        assert response.status_code == 422
        assert "govuk-error-summary" in response.text
    unchanged = _templates(site.ctx)["Reboot"]
    assert (unchanged.playbook, unchanged.variables) == ("reboot.yml", {"reboot_delay_s": 5})
    assert [a for a in _audit(site.ctx) if a[0] == "job_template.update"] == []


def test_counts_stay_the_same_for_a_refused_create(site: Site, signed_in: Opener) -> None:
    page = signed_in("admin", "/jobs/templates")
    with transaction(site.ctx.sessions) as session:
        before = session.scalar(select(func.count()).select_from(JobTemplate))
    response = _post(site, page, "/jobs/templates/new", {**GOOD, "variables": "\x00\x01"})
    assert response.status_code == 422
    with transaction(site.ctx.sessions) as session:
        assert session.scalar(select(func.count()).select_from(JobTemplate)) == before


@pytest.mark.parametrize("path", ["new", "edit"])
def test_template_form_passes_axe_with_and_without_errors(
    site: Site, signed_in: Opener, path: str
) -> None:
    target = "/jobs/templates/new" if path == "new" else f"/jobs/templates/{site.template}/edit"
    page = signed_in("admin", target, bypass_csp=True)
    assert serious_violations(page) == []
    page.get_by_label("Name").fill("")
    page.get_by_label("Default variables").fill("{")
    page.get_by_role("button", name=re.compile("Create template|Save changes")).click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    assert serious_violations(page) == []
