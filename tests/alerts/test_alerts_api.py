"""The alert API on PostgreSQL: impossible rules refused, roles and caseloads, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fleet.alerts.models import AlertRule, QuietWindow
from fleet.audit.models import AuditEvent
from fleet.context import Context
from fleet.db import transaction, utcnow
from tests.alerts.support import add_rule, open_alerts, run_pass
from tests.estate.factories import Api, add_device, api_for, seed_locations
from tests.services.api_server import free_port
from tests.services.postgres import migrated_context

RULE = {"name": "Phones offline", "kind": "offline", "threshold": 30, "severity": "critical"}


@pytest.fixture
def ctx(pg_url: str, tmp_path: Path) -> Iterator[Context]:
    """Migrated PostgreSQL; the command relay's broker URL points at a port nothing uses."""
    context = migrated_context(
        pg_url, data_dir=tmp_path, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"
    )
    seed_locations(context)
    yield context
    context.close()


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    with api_for(ctx) as client:
        yield client


def _count(ctx: Context, model: Any) -> int:
    with transaction(ctx.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


BAD_RULES: list[tuple[dict[str, Any], str, str]] = [
    ({**RULE, "kind": "battery_low", "threshold": 150}, "threshold", "150% is not a possible"),
    ({**RULE, "threshold": -5}, "threshold", "use 1 to 10080 minutes"),
    ({**RULE, "threshold": 2.5}, "threshold", "whole number"),
    ({**RULE, "kind": "sunspots"}, "kind", "offline"),
    ({**RULE, "prisons": ["MDI", "XXX"]}, "prisons.1", "'XXX' is not a prison code"),
    ({**RULE, "kind": "agent_outdated", "threshold": None}, "min_version", "needs min_version"),
    (
        {**RULE, "kind": "agent_outdated", "threshold": None, "min_version": "one"},
        "min_version",
        "not a version like 1.4.0",
    ),
    ({**RULE, "group_min": 1}, "group_min", "greater than or equal to 2"),
    ({**RULE, "device_kinds": ["toaster"]}, "device_kinds.0", "in_cell_phone"),
    ({**RULE, "colour": "red"}, "colour", "not a field this endpoint accepts"),
    ({"kind": "offline"}, "name", "name is required"),
]


def test_impossible_rules_are_refused_with_the_field_and_a_sentence(api: Api, ctx: Context) -> None:
    for body, field, words in BAD_RULES:
        resp = api.post("/api/v1/alert-rules", json=body)
        assert resp.status_code == 422, (body, resp.text)
        [error] = resp.json()["errors"]
        assert (error["field"], words in error["message"]) == (field, True), error
    assert _count(ctx, AlertRule) == 0


def test_rules_round_trip_and_every_change_is_audited(api: Api, ctx: Context) -> None:
    created = api.post("/api/v1/alert-rules", json={**RULE, "prisons": ["MDI"]})
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["description"] == "offline for longer than 30 minutes"
    changed = api.client.put(
        f"/api/v1/alert-rules/{rule['id']}",
        json={**RULE, "threshold": 45, "prisons": ["MDI"]},
        headers=api.auth(),
    )
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    assert [r["threshold"] for r in api.get("/api/v1/alert-rules").json()["items"]] == [45]
    removed = api.client.delete(f"/api/v1/alert-rules/{rule['id']}", headers=api.auth())
    assert removed.status_code == 204
    assert api.get(f"/api/v1/alert-rules/{rule['id']}").status_code == 404
    with transaction(ctx.sessions) as session:
        actions = list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_type == "alert_rule")
                .order_by(AuditEvent.id)
            )
        )
    assert actions == ["alert_rule.created", "alert_rule.changed", "alert_rule.removed"]


def test_roles_and_caseload_decide_who_may_read_write_and_acknowledge(
    api: Api, ctx: Context
) -> None:
    now = utcnow()
    with transaction(ctx.sessions) as session:
        for prison, place in (("MDI", "MDI-1-1-001"), ("LEI", "LEI-1-1-001")):
            add_device(
                session,
                prison=prison,
                location=place,
                online=False,
                last_seen=now - timedelta(hours=1),
            )
    add_rule(ctx, kind="offline", threshold=30)
    run_pass(ctx, now)
    by_prison = {a.prison_code: a.id for a in open_alerts(ctx)}

    for role in ("facilities", "rollout-manager"):
        assert api.get("/api/v1/alerts", role=role).status_code == 403
        assert api.post("/api/v1/alert-rules", role=role, json=RULE).status_code == 403
    viewer = api.get("/api/v1/alerts", role="viewer")
    assert viewer.status_code == 200
    assert len(viewer.json()["items"]) == 2
    ack = api.post("/api/v1/alerts/acknowledge", role="viewer", json={"ids": [by_prison["MDI"]]})
    assert ack.status_code == 403
    assert api.post("/api/v1/quiet-windows", role="viewer", json={}).status_code == 403
    assert api.post("/api/v1/alert-routes", role="it-support", json={}).status_code == 403

    mdi = ("it-support", ["MDI"])
    seen = api.get("/api/v1/alerts", *mdi).json()["items"]
    assert [a["prison_code"] for a in seen] == ["MDI"]
    assert api.get(f"/api/v1/alerts/{by_prison['LEI']}", *mdi).status_code == 404
    both = api.post("/api/v1/alerts/acknowledge", *mdi, json={"ids": list(by_prison.values())})
    assert both.json() == {"changed": [by_prison["MDI"]], "unchanged": [by_prison["LEI"]]}
    resolve = api.post(f"/api/v1/alerts/{by_prison['LEI']}/resolve", *mdi, json={})
    assert resolve.status_code == 404
    # Estate-wide rules belong to estate-wide staff; a caseload names its own prisons.
    wide = api.post("/api/v1/alert-rules", *mdi, json=RULE)
    assert wide.status_code == 422
    assert wide.json()["errors"][0]["field"] == "prisons"
    other = api.post("/api/v1/alert-rules", *mdi, json={**RULE, "prisons": ["LEI"]})
    assert other.status_code == 422
    assert "not in your caseload" in other.text
    own = api.post("/api/v1/alert-rules", *mdi, json={**RULE, "prisons": ["MDI"]})
    assert own.status_code == 201

    done = api.post(f"/api/v1/alerts/{by_prison['MDI']}/resolve", *mdi, json={"note": "fixed"})
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["resolution"]) == ("resolved", "fixed")
    assert done.json()["acknowledged_by"]
    assert done.json()["resolved_by"]
    again = api.post(f"/api/v1/alerts/{by_prison['MDI']}/resolve", *mdi, json={})
    assert again.status_code == 409
    with transaction(ctx.sessions) as session:
        audited = set(session.scalars(select(AuditEvent.action)))
    assert {"alert.acknowledged", "alert.resolved", "alerts.evaluated"} <= audited


BAD_WINDOWS: list[tuple[dict[str, Any], str, str]] = [
    ({"kind": "scheduled", "start_time": "22:00"}, "end_time", "needs end_time"),
    (
        {"kind": "scheduled", "start_time": "25:00", "end_time": "06:30"},
        "start_time",
        "pattern",
    ),
    ({"kind": "scheduled", "start_time": "22:00", "end_time": "22:00"}, "end_time", "differ"),
    (
        {"kind": "scheduled", "start_time": "22:00", "end_time": "06:30", "days": [7]},
        "days",
        "7 is not a weekday",
    ),
    ({"kind": "ad_hoc", "ends_at": "2020-01-01T00:00:00Z"}, "ends_at", "already past"),
    ({"kind": "ad_hoc", "ends_at": "2099-01-01T00:00:00"}, "ends_at", "time zone"),
    ({"kind": "ad_hoc", "prison_code": "ZZZ"}, "prison_code", "not a prison code"),
    ({"kind": "ad_hoc", "rule_kinds": ["weather"]}, "rule_kinds.0", "offline"),
]


def test_quiet_windows_that_cannot_work_are_refused(api: Api, ctx: Context) -> None:
    for body, field, words in BAD_WINDOWS:
        full = {"prison_code": "MDI", "reason": "night power-down", **body}
        resp = api.post("/api/v1/quiet-windows", json=full)
        assert resp.status_code == 422, (body, resp.text)
        [error] = resp.json()["errors"]
        assert (error["field"], words in error["message"]) == (field, True), error
    assert _count(ctx, QuietWindow) == 0


def test_a_lockdown_shows_on_the_queue_and_ends_when_told(api: Api, ctx: Context) -> None:
    lockdown = api.post(
        "/api/v1/quiet-windows",
        json={"prison_code": "MDI", "kind": "ad_hoc", "reason": "lockdown"},
    )
    assert lockdown.status_code == 201, lockdown.text
    assert lockdown.json()["active"]
    assert lockdown.json()["label"] == "Quiet: lockdown until ended"
    queue = api.get("/api/v1/alerts", role="it-support", prisons=["MDI"]).json()
    assert [q["label"] for q in queue["quiet"]] == ["Quiet: lockdown until ended"]
    assert api.get("/api/v1/alerts", role="it-support", prisons=["LEI"]).json()["quiet"] == []
    other = api.client.delete(
        f"/api/v1/quiet-windows/{lockdown.json()['id']}", headers=api.auth("it-support", ["LEI"])
    )
    assert other.status_code == 404
    ended = api.client.delete(f"/api/v1/quiet-windows/{lockdown.json()['id']}", headers=api.auth())
    assert ended.status_code == 204
    assert api.get("/api/v1/alerts").json()["quiet"] == []


def test_notification_routes_need_somewhere_to_send(api: Api, ctx: Context) -> None:
    empty = api.post("/api/v1/alert-routes", json={"prison_code": "MDI"})
    assert empty.status_code == 422
    assert "needs somewhere to send" in empty.text
    bad = api.post("/api/v1/alert-routes", json={"prison_code": "MDI", "email_to": "nobody"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "email_to"
    made = api.post(
        "/api/v1/alert-routes",
        json={"prison_code": "MDI", "email_to": "ops@mdi.example", "min_severity": "critical"},
    )
    assert made.status_code == 201
    assert [r["email_to"] for r in api.get("/api/v1/alert-routes").json()["items"]] == [
        "ops@mdi.example"
    ]
