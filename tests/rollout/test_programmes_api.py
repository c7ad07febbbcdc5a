"""Programmes and prison plans over HTTP: CRUD, validation, milestones, roles and caseload."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fleet.audit.models import AuditEvent
from fleet.db import transaction
from tests.estate.factories import Api
from tests.rollout.builders import programme_body, send


def _programme(api: Api, **overrides: Any) -> dict[str, Any]:
    response = api.post("/api/v1/programmes", json=programme_body(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _plan(api: Api, programme_id: int, prison: str = "MDI", **fields: Any) -> dict[str, Any]:
    body = {"prison_code": prison, "wave": 1, "planned_go_live": "2026-07-31", **fields}
    response = api.post(f"/api/v1/programmes/{programme_id}/prisons", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_programme_crud_keeps_its_fields_and_is_audited(api: Api) -> None:
    created = _programme(api, device_kinds=["tablet", "in_cell_phone", "tablet"])
    assert created["device_kinds"] == ["in_cell_phone", "tablet"]
    assert [m["key"] for m in created["milestone_template"]] == [
        "site_survey",
        "network_ready",
        "devices_delivered",
        "devices_enrolled",
        "staff_trained",
        "go_live",
        "hypercare_exit",
    ]
    pid = created["id"]
    listed = api.get("/api/v1/programmes", role="viewer").json()
    assert [p["name"] for p in listed["items"]] == ["In-cell phones 2026"]
    changed = send(api, "PATCH", f"/api/v1/programmes/{pid}", json={"gate_days": 3, "owner": "Ann"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["gate_days"] == 3
    assert changed.json()["owner"] == "Ann"
    assert api.get(f"/api/v1/programmes/{pid}").json()["gate_days"] == 3
    assert send(api, "DELETE", f"/api/v1/programmes/{pid}").status_code == 204
    assert api.get(f"/api/v1/programmes/{pid}").status_code == 404
    with transaction(api.ctx.sessions) as session:
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("rollout.%")))
        )
    assert actions == [
        "rollout.programme.create",
        "rollout.programme.update",
        "rollout.programme.delete",
    ]


def test_programme_validation_names_the_field(api: Api) -> None:
    dates = _fields(api.post("/api/v1/programmes", json=programme_body(target_date="2025-12-01")))
    assert dates == {
        "target_date": "target_date: the target date 2025-12-01 is before the start date "
        "2026-01-05; move the target on or after the start."
    }
    kinds = _fields(api.post("/api/v1/programmes", json=programme_body(device_kinds=["toaster"])))
    assert list(kinds) == ["device_kinds.0"]
    assert "in_cell_phone" in kinds["device_kinds.0"]
    pct = _fields(
        api.post(
            "/api/v1/programmes",
            json=programme_body(gate_online_pct=101, enrolment_threshold_pct=-1),
        )
    )
    assert set(pct) == {"gate_online_pct", "enrolment_threshold_pct"}
    _programme(api)
    twice = _fields(api.post("/api/v1/programmes", json=programme_body(name="in-cell PHONES 2026")))
    assert list(twice) == ["name"]
    stored = api.get("/api/v1/programmes").json()["items"]
    assert [p["name"] for p in stored] == ["In-cell phones 2026"]
    pid = stored[0]["id"]
    backwards = _fields(
        send(api, "PATCH", f"/api/v1/programmes/{pid}", json={"start_date": "2027-01-01"})
    )
    assert list(backwards) == ["target_date"]
    assert api.get(f"/api/v1/programmes/{pid}").json()["start_date"] == "2026-01-05"


def test_plans_validate_prisons_and_derive_expected_devices_from_cells(api: Api) -> None:
    pid = _programme(api, devices_per_cell=2)["id"]
    unknown = _fields(
        api.post(
            f"/api/v1/programmes/{pid}/prisons",
            json={"prison_code": "ZZZ", "planned_go_live": "2026-07-31"},
        )
    )
    assert unknown == {
        "prison_code": "prison_code: there is no prison with code 'ZZZ'; see /api/v1/prisons."
    }
    early = _fields(
        api.post(
            f"/api/v1/programmes/{pid}/prisons",
            json={"prison_code": "MDI", "planned_go_live": "2025-12-31"},
        )
    )
    assert early == {
        "planned_go_live": "planned_go_live: the planned go-live 2025-12-31 is before the "
        "programme starts on 2026-01-05; choose a later day."
    }
    plan = _plan(api, pid, "mdi")
    # MDI: 2 wings x 2 landings x 3 cells, two devices in each.
    assert plan["progress"]["expected"] == 24
    assert plan["progress"]["expected_source"] == "cells"
    again = _fields(
        api.post(
            f"/api/v1/programmes/{pid}/prisons",
            json={"prison_code": "MDI", "planned_go_live": "2026-07-31"},
        )
    )
    assert again == {
        "prison_code": "prison_code: this programme already has a plan for MDI; "
        "update that plan instead."
    }
    entered = _plan(api, pid, "LEI", expected_devices=7, wave=2)
    assert entered["progress"]["expected"] == 7
    assert entered["progress"]["expected_source"] == "entered"
    url = f"/api/v1/programmes/{pid}/prisons/LEI"
    derived = send(api, "PATCH", url, json={"expected_devices": None, "wave": 3})
    assert derived.status_code == 200, derived.text
    assert derived.json()["progress"]["expected"] == 4
    assert derived.json()["wave"] == 3
    bad = _fields(send(api, "PATCH", url, json={"wave": 0}))
    assert list(bad) == ["wave"]
    before_start = _fields(send(api, "PATCH", url, json={"planned_go_live": "2025-01-01"}))
    assert list(before_start) == ["planned_go_live"]
    listed = api.get(f"/api/v1/programmes/{pid}/prisons").json()
    assert [p["prison_code"] for p in listed["items"]] == ["MDI", "LEI"]
    assert send(api, "DELETE", url).status_code == 204
    assert api.get(url).status_code == 404


def test_milestones_come_from_the_template_and_edits_are_optimistically_locked(api: Api) -> None:
    template = [
        {"key": "site_survey", "name": "Site survey", "offset_days": -30},
        {"key": "devices_enrolled", "name": "Devices enrolled", "offset_days": -7},
        {"key": "go_live", "name": "Go-live", "offset_days": 0},
    ]
    pid = _programme(api, milestone_template=template)["id"]
    plan = _plan(api, pid, planned_go_live="2026-07-31")
    assert [(m["name"], m["due_date"]) for m in plan["milestones"]] == [
        ("Site survey", "2026-07-01"),
        ("Devices enrolled", "2026-07-24"),
        ("Go-live", "2026-07-31"),
    ]
    survey = plan["milestones"][0]
    url = f"/api/v1/programmes/{pid}/prisons/MDI/milestones/{survey['id']}"
    done = send(
        api,
        "PATCH",
        url,
        role="rollout-manager",
        json={"version": 1, "done_date": "2026-06-28", "owner": "Sam", "note": "walked it"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["version"] == 2
    assert done.json()["done_by"].startswith("user")
    stale = send(api, "PATCH", url, json={"version": 1, "note": "overwrite?"})
    assert stale.status_code == 409
    assert stale.json()["detail"]["current_version"] == 2
    garbage = _fields(
        send(
            api,
            "PATCH",
            url,
            json={"version": "two", "due_date": "31/07/2026", "owner": "x" * 201, "colour": 1},
        )
    )
    assert set(garbage) == {"version", "due_date", "owner", "colour"}
    current = api.get(f"/api/v1/programmes/{pid}/prisons/MDI").json()
    assert current["milestones"][0]["note"] == "walked it"
    assert (current["milestones"][0]["owner"], current["milestones"][0]["version"]) == ("Sam", 2)
    assert current["next_milestone"]["name"] == "Devices enrolled"
    send(
        api,
        "PATCH",
        f"/api/v1/programmes/{pid}",
        json={"milestone_template": [{"key": "go_live", "name": "Go-live", "offset_days": 0}]},
    )
    moved = send(
        api,
        "PATCH",
        f"/api/v1/programmes/{pid}/prisons/MDI",
        json={"planned_go_live": "2026-08-10"},
    )
    assert moved.status_code == 200, moved.text
    # Open milestones move with go-live; the finished survey keeps its dates.
    assert [(m["name"], m["due_date"]) for m in moved.json()["milestones"]] == [
        ("Site survey", "2026-07-01"),
        ("Devices enrolled", "2026-08-03"),
        ("Go-live", "2026-08-10"),
    ]
    later = _plan(api, pid, "LEI")
    assert [m["name"] for m in later["milestones"]] == ["Go-live"]
    duplicate = _fields(
        send(
            api,
            "PATCH",
            f"/api/v1/programmes/{pid}",
            json={"milestone_template": [template[0], template[0]]},
        )
    )
    assert list(duplicate) == ["milestone_template"]


def test_roles_rollout_managers_write_and_others_read(api: Api) -> None:
    body = programme_body()
    for role in ("viewer", "it-support", "facilities"):
        assert api.post("/api/v1/programmes", role=role, json=body).status_code == 403
    created = api.post("/api/v1/programmes", role="rollout-manager", json=body)
    assert created.status_code == 201
    pid = created.json()["id"]
    _plan(api, pid)
    for role in ("viewer", "it-support", "facilities"):
        assert api.get(f"/api/v1/programmes/{pid}/prisons/MDI", role=role).status_code == 200
        assert (
            send(
                api, "PATCH", f"/api/v1/programmes/{pid}/prisons/MDI", role=role, json={"wave": 2}
            ).status_code
            == 403
        )
    assert api.client.get("/api/v1/programmes").status_code == 401


def test_caseload_sees_and_changes_only_its_prisons(api: Api) -> None:
    pid = _programme(api)["id"]
    _plan(api, pid, "MDI")
    lei_only: dict[str, Any] = {"role": "rollout-manager", "prisons": ["LEI"]}
    assert (
        api.post(
            f"/api/v1/programmes/{pid}/prisons",
            json={"prison_code": "MDI", "planned_go_live": "2026-07-31"},
            **lei_only,
        ).status_code
        == 404
    )
    added = api.post(
        f"/api/v1/programmes/{pid}/prisons",
        json={"prison_code": "LEI", "planned_go_live": "2026-08-31"},
        **lei_only,
    )
    assert added.status_code == 201
    assert [
        p["prison_code"]
        for p in api.get(f"/api/v1/programmes/{pid}/prisons", **lei_only).json()["items"]
    ] == ["LEI"]
    assert api.get(f"/api/v1/programmes/{pid}", **lei_only).json()["prisons"] == 1
    assert api.get(f"/api/v1/programmes/{pid}").json()["prisons"] == 2
    mdi = f"/api/v1/programmes/{pid}/prisons/MDI"
    assert api.get(mdi, **lei_only).status_code == 404
    assert send(api, "PATCH", mdi, json={"wave": 2}, **lei_only).status_code == 404
    assert send(api, "DELETE", mdi, **lei_only).status_code == 404
    milestone = api.get(mdi).json()["milestones"][0]["id"]
    assert (
        send(
            api,
            "PATCH",
            f"{mdi}/milestones/{milestone}",
            json={"version": 1, "note": "x"},
            **lei_only,
        ).status_code
        == 404
    )
    csv_text = api.get(f"/api/v1/programmes/{pid}/prisons.csv", **lei_only).text
    assert "MDI" not in csv_text
    assert [row.split(",")[0] for row in csv_text.splitlines()[1:]] == ["LEI"]
    assert send(api, "DELETE", f"/api/v1/programmes/{pid}", **lei_only).status_code == 403
    # Programme-wide settings would change MDI's gate too.
    retune = send(api, "PATCH", f"/api/v1/programmes/{pid}", json={"gate_days": 2}, **lei_only)
    assert retune.status_code == 403
    assert "outside your caseload" in retune.json()["detail"]
    assert api.get(f"/api/v1/programmes/{pid}").json()["gate_days"] == 5
    changes = api.get(f"/api/v1/programmes/{pid}/changes", **lei_only).json()["items"]
    assert [c["prison_code"] for c in changes] == ["LEI"]
    lei_programme = api.post(
        "/api/v1/programmes", json=programme_body(name="LEI laptops"), **lei_only
    ).json()["id"]
    own = send(
        api, "PATCH", f"/api/v1/programmes/{lei_programme}", json={"gate_days": 2}, **lei_only
    )
    assert own.status_code == 200, own.text
    with transaction(api.ctx.sessions) as session:
        plans = list(
            session.scalars(
                select(AuditEvent.prison_code)
                .where(AuditEvent.action == "rollout.plan.add")
                .order_by(AuditEvent.id)
            )
        )
    assert plans == ["MDI", "LEI"]
