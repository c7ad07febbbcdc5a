"""The jobs API on PostgreSQL: bad input refused with nothing run, caseloads, roles, approval."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fleet.api.pagination import encode_cursor
from fleet.audit.models import AuditEvent
from fleet.context import Context
from fleet.db import transaction
from fleet.jobs.models import Job, JobTemplate
from tests.estate.factories import Api, api_for
from tests.jobs.support import seed_devices
from tests.services.postgres import migrated_context

TEMPLATE = {
    "name": "Report interval",
    "playbook": "agent-settings.yml",
    "selector": {"prisons": ["MDI"]},
    "variables": {"report_interval_s": 60},
    "variables_schema": {
        "type": "object",
        "properties": {"report_interval_s": {"type": "integer", "minimum": 10, "maximum": 3600}},
        "required": ["report_interval_s"],
    },
}


@pytest.fixture
def api(pg_url: str, tmp_path: Path) -> Iterator[Api]:
    # Jobs that start reach for a broker on a closed port: they fail at once, reaching no device.
    ctx = migrated_context(pg_url, data_dir=tmp_path, mqtt_url="mqtt://127.0.0.1:9")
    try:
        seed_devices(ctx, {"MDI": 3, "LEI": 2})
        with api_for(ctx) as client:
            yield client
    finally:
        ctx.close()


def _template(api: Api, **changes: Any) -> int:
    response = api.post("/api/v1/job-templates", json={**TEMPLATE, **changes})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _count(ctx: Context, model: Any) -> int:
    with transaction(ctx.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _audit(ctx: Context, prefix: str) -> list[tuple[str, str]]:
    with transaction(ctx.sessions) as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.actor)
            .where(AuditEvent.action.startswith(prefix))
            .order_by(AuditEvent.id)
        )
        return [(a, b) for a, b in rows]


def _wait_until_ended(api: Api, job_id: int, within_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("successful", "failed", "cancelled", "aborted", "rejected"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {within_s} s")


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"playbook": "no-such-playbook.yml"}, "playbook", "there is no playbook"),
        ({"playbook": "../secrets.yml"}, "playbook", "string should match pattern"),
        ({"variables_schema": {"type": "nonsense"}}, "variables_schema", "not a valid JSON Schema"),
        (
            {"variables": {"ansible_connection": "local"}},
            "variables.ansible_connection",
            "reserved",
        ),
        ({"rollout": {"wave_percent": [50, 40]}}, "rollout", "must rise strictly"),
        ({"forks": 0}, "forks", "greater than or equal to 1"),
    ],
)
def test_a_bad_template_is_refused_with_the_field_and_nothing_stored(
    api: Api, changes: dict[str, Any], field: str, words: str
) -> None:
    response = api.post("/api/v1/job-templates", json={**TEMPLATE, **changes})

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field
    assert words.lower() in error["message"].lower()
    assert _count(api.ctx, JobTemplate) == 0


def test_only_estate_admins_write_templates_and_only_support_roles_read_jobs(api: Api) -> None:
    assert api.post("/api/v1/job-templates", json=TEMPLATE, role="it-support").status_code == 403
    template = _template(api)
    assert api.get("/api/v1/job-templates", role="it-support").status_code == 200
    for role in ("viewer", "facilities", "rollout-manager"):
        assert api.get("/api/v1/jobs", role=role).status_code == 403
        launched = api.post("/api/v1/jobs", json={"template_id": template}, role=role)
        assert launched.status_code == 403
    assert _count(api.ctx, Job) == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"selector": {"prisons": ["MDI"], "kinds": ["kiosk"]}}, "selector", "matches no enrolled"),
        ({"selector": {"prisons": ["XYZ"]}}, "selector.prisons", "there is no prison 'XYZ'"),
        ({"selector": {"wings": ["MDI-9"]}}, "selector.wings", "there is no location 'MDI-9'"),
        ({"selector": {"programmes": [999]}}, "selector.programmes", "no rollout programme 999"),
        ({"variables": {"report_interval_s": 5}}, "variables.report_interval_s", "minimum of 10"),
        ({"variables": {"report_interval_s": "often"}}, "variables.report_interval_s", "integer"),
        ({"variables": {"estate_job_id": 1}}, "variables.estate_job_id", "reserved"),
        ({"rollout": {"canary": -1}}, "rollout.canary", "greater than or equal to 0"),
    ],
)
def test_a_bad_launch_is_refused_with_a_sentence_and_nothing_run(
    api: Api, body: dict[str, Any], field: str, words: str
) -> None:
    template = _template(api)

    response = api.post("/api/v1/jobs", json={"template_id": template, **body})

    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == field
    assert words in error["message"]
    assert _count(api.ctx, Job) == 0
    assert _audit(api.ctx, "job.") == []


def test_a_template_whose_playbook_was_removed_cannot_launch(api: Api) -> None:
    template = _template(api)
    with transaction(api.ctx.sessions) as session:
        row = session.get(JobTemplate, template)
        assert row is not None
        row.playbook = "retired.yml"

    response = api.post("/api/v1/jobs", json={"template_id": template})

    assert response.status_code == 422
    assert "there is no playbook 'retired.yml'" in response.json()["detail"]
    assert _count(api.ctx, Job) == 0


def test_preview_lists_targets_and_stages_and_creates_nothing(api: Api) -> None:
    template = _template(api)

    response = api.post(
        "/api/v1/jobs",
        json={"template_id": template, "preview": True, "rollout": {"canary": 1}},
    )

    assert response.status_code == 202
    preview = response.json()
    assert preview["matched"] == 3
    assert preview["prisons"] == ["MDI"]
    assert not preview["needs_approval"]
    assert [s["devices"] for s in preview["stages"]] == [1, 2]
    assert {t["prison_code"] for t in preview["targets"]} == {"MDI"}
    assert _count(api.ctx, Job) == 0


def test_a_caseload_launches_only_inside_it_and_sees_only_its_jobs(api: Api) -> None:
    template = _template(api, selector={})
    mdi: dict[str, Any] = {"role": "it-support", "prisons": ["MDI"]}
    refused = api.post(
        "/api/v1/jobs", json={"template_id": template, "selector": {"prisons": ["LEI"]}}, **mdi
    )
    assert refused.status_code == 422
    assert "there is no prison 'LEI' for you" in refused.json()["detail"]

    preview = api.post("/api/v1/jobs", json={"template_id": template, "preview": True}, **mdi)
    assert preview.json()["prisons"] == ["MDI"]
    assert (preview.json()["matched"], preview.json()["estate_wide"]) == (3, False)

    lei_job = api.post(
        "/api/v1/jobs", json={"template_id": template, "selector": {"prisons": ["LEI"]}}
    ).json()
    for path in ("", "/hosts", "/events"):
        assert api.get(f"/api/v1/jobs/{lei_job['id']}{path}", **mdi).status_code == 404
    assert api.post(f"/api/v1/jobs/{lei_job['id']}/cancel", **mdi).status_code == 404
    assert api.get("/api/v1/jobs", **mdi).json()["items"] == []
    assert [j["id"] for j in api.get("/api/v1/jobs").json()["items"]] == [lei_job["id"]]
    _wait_until_ended(api, lei_job["id"])


def test_an_estate_wide_job_waits_for_a_second_person(api: Api) -> None:
    template = _template(api, selector={"kinds": ["in_cell_phone"]})
    launched = api.post("/api/v1/jobs", json={"template_id": template})
    assert launched.status_code == 202
    job = launched.json()
    assert (job["status"], job["estate_wide"]) == ("awaiting_approval", True)
    assert job["prison_codes"] == ["LEI", "MDI"]

    own = api.post(f"/api/v1/jobs/{job['id']}/approve")
    assert own.status_code == 403
    assert "another person" in own.json()["detail"]
    caseload = api.post(f"/api/v1/jobs/{job['id']}/approve", role="it-support", prisons=["MDI"])
    assert caseload.status_code == 404, "an approver must see every prison the job touches"
    assert api.post(f"/api/v1/jobs/{job['id']}/approve", role="viewer").status_code == 403
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "awaiting_approval"

    approved = api.post(f"/api/v1/jobs/{job['id']}/approve", role="it-support")
    assert approved.status_code == 200
    assert approved.json()["approved_by"] != job["launched_by"]
    ended = _wait_until_ended(api, job["id"])
    # No broker answers here, so every device is reported, none left running.
    assert ended["hosts"] == {"failed": 5}
    assert [a for a, _ in _audit(api.ctx, "job.")] == ["job.launch", "job.approve"]
    launcher, approver = (actor for _, actor in _audit(api.ctx, "job."))
    assert launcher == job["launched_by"]
    assert approver == approved.json()["approved_by"]
    again = api.post(f"/api/v1/jobs/{job['id']}/approve", role="it-support")
    assert again.status_code == 409


def test_a_rejected_job_never_runs(api: Api) -> None:
    template = _template(api, selector={"kinds": ["in_cell_phone"]})
    job = api.post("/api/v1/jobs", json={"template_id": template}).json()

    rejected = api.post(
        f"/api/v1/jobs/{job['id']}/reject", json={"reason": "wrong interval"}, role="it-support"
    )

    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert "wrong interval" in rejected.json()["explanation"]
    hosts = api.get(f"/api/v1/jobs/{job['id']}/hosts").json()["items"]
    assert {h["status"] for h in hosts} == {"skipped"}
    assert api.get(f"/api/v1/jobs/{job['id']}/events").json()["items"] == []
    garbage = api.post(
        f"/api/v1/jobs/{job['id']}/reject", json={"reason": "x" * 501}, role="it-support"
    )
    assert garbage.status_code == 422


def test_history_refuses_a_bad_status_or_cursor(api: Api) -> None:
    bad_status = api.get("/api/v1/jobs", params={"status": "exploded"})
    assert bad_status.status_code == 422
    assert bad_status.json()["errors"][0]["field"] == "query.status"
    assert api.get("/api/v1/jobs", params={"cursor": "not-a-cursor"}).status_code == 422
    assert api.get("/api/v1/jobs/999").status_code == 404


def test_secret_variables_are_hidden_when_a_job_is_shown(api: Api) -> None:
    template = _template(
        api,
        playbook="wifi-profile.yml",
        variables={},
        variables_schema={"type": "object"},
        selector={"kinds": ["in_cell_phone"]},
    )
    networks = [{"ssid": "cells", "security": "wpa2-psk", "psk": "correct horse battery"}]
    job = api.post(
        "/api/v1/jobs", json={"template_id": template, "variables": {"wifi_networks": networks}}
    ).json()

    assert job["variables"] == {
        "wifi_networks": [{"ssid": "cells", "security": "wpa2-psk", "psk": "********"}]
    }
    assert "correct horse" not in api.get(f"/api/v1/jobs/{job['id']}").text
    with transaction(api.ctx.sessions) as session:
        stored = session.get(Job, job["id"])
        assert stored is not None
        assert stored.variables["wifi_networks"][0]["psk"] == "correct horse battery"


def test_lifecycle_actions_refuse_what_does_not_fit_the_status(api: Api) -> None:
    template = _template(api, selector={"kinds": ["in_cell_phone"]})
    job = api.post("/api/v1/jobs", json={"template_id": template}).json()
    path = f"/api/v1/jobs/{job['id']}"

    assert api.post(f"{path}/resume").status_code == 409
    assert api.post(f"{path}/rerun", json={"hosts": "failed"}).status_code == 409
    bad_rerun = api.post(f"{path}/rerun", json={"hosts": "everything"})
    assert bad_rerun.status_code == 422
    assert bad_rerun.json()["errors"][0]["field"] == "hosts"

    cancelled = api.post(f"{path}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["hosts"] == {"cancelled": 5}
    assert api.post(f"{path}/cancel").status_code == 409
    assert api.post(f"{path}/approve", role="it-support").status_code == 409
    no_failures = api.post(f"{path}/rerun", json={"hosts": "failed"})
    assert no_failures.status_code == 422
    assert "has no failed hosts" in no_failures.json()["detail"]
    assert api.post(f"{path}/retry-when-online").status_code == 422
    assert [a for a, _ in _audit(api.ctx, "job.")] == ["job.launch", "job.cancel"]
    assert api.post(f"{path}/cancel", role="viewer").status_code == 403


def test_a_template_schema_that_cannot_be_applied_refuses_the_launch(api: Api) -> None:
    template = _template(
        api, variables={}, variables_schema={"$ref": "https://schemas.invalid/interval.json"}
    )

    response = api.post("/api/v1/jobs", json={"template_id": template})

    assert response.status_code == 422
    assert "the template's schema cannot be applied" in response.json()["detail"]
    assert _count(api.ctx, Job) == 0
    foreign = api.get("/api/v1/jobs", params={"cursor": encode_cursor(["not a job id"])})
    assert foreign.status_code == 422
    assert api.get("/api/v1/jobs/1/artifacts/a%00b").status_code == 404
