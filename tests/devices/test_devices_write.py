"""Registering, showing, moving and retiring devices; roles, caseloads and bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from fleet.audit.models import AuditEvent
from fleet.db import transaction
from fleet.devices.models import Credential, Device, DeviceEvent
from tests.estate.factories import Api, add_device


def _register(
    api: Api, role: str = "estate-admin", prisons: tuple[str, ...] = (), **body: Any
) -> Any:
    payload = {"serial": "SN-100", "kind": "tablet", "prison_code": "MDI", **body}
    return api.post("/api/v1/devices", json=payload, role=role, prisons=prisons)


def _events(api: Api, device_id: str) -> list[str]:
    with api.ctx.sessions() as session:
        rows = session.scalars(
            select(DeviceEvent).where(DeviceEvent.device_id == device_id).order_by(DeviceEvent.id)
        )
        return [e.kind for e in rows]


def _audit(api: Api, device_id: str) -> list[str]:
    with api.ctx.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.target_id == device_id).order_by(AuditEvent.id)
        )
        return [e.action for e in rows]


def test_register_creates_a_registered_device_with_event_and_audit(api: Api) -> None:
    response = _register(api, location="mdi-1-2-003")

    assert response.status_code == 201, response.text
    device = response.json()
    assert device["id"].startswith("MDI-TAB-")
    assert (device["lifecycle"], device["location"], device["online"]) == (
        "registered",
        "MDI-1-2-003",
        False,
    )
    assert [c["code"] for c in device["breadcrumb"]] == ["MDI", "MDI-1", "MDI-1-2", "MDI-1-2-003"]
    assert _events(api, device["id"]) == ["registered"]
    assert _audit(api, device["id"]) == ["device.registered"]
    assert device["audit"][0]["action"] == "device.registered"
    assert device["audit"][0]["actor"].startswith("user")


def test_duplicate_serial_is_409_naming_the_device(api: Api) -> None:
    first = _register(api).json()

    again = _register(api, kind="laptop")
    assert again.status_code == 409
    assert again.json()["device_id"] == first["id"]
    assert first["id"] in again.json()["detail"]

    from_elsewhere = _register(api, prison_code="LEI", role="it-support", prisons=("LEI",))
    assert from_elsewhere.status_code == 409
    assert "device_id" not in from_elsewhere.json()
    assert "another prison" in from_elsewhere.json()["detail"]


def test_bad_registrations_are_422_with_field_and_sentence(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"prison_code": "XXX"}, "prison_code", "unknown prison 'XXX'"),
        ({"location": "MDI-9-9-009"}, "location", "no location 'MDI-9-9-009'"),
        ({"location": "LEI-1-1-001"}, "location", "no location 'LEI-1-1-001'"),
        ({"kind": "toaster"}, "kind", "'in_cell_phone', 'tablet', 'laptop' or 'kiosk'"),
        ({"serial": "has space"}, "serial", "should match pattern"),
        ({"serial": 12345}, "serial", "valid string"),
        ({"colour": "red"}, "colour", "not a field this endpoint accepts"),
    ]
    for body, field, words in cases:
        response = _register(api, **body)
        assert response.status_code == 422, (body, response.text)
        answer = response.json()
        assert answer["errors"][0]["field"] == field, (body, answer)
        assert words in answer["detail"], (body, answer)
    missing = api.post("/api/v1/devices", json={"kind": "tablet", "prison_code": "MDI"})
    assert missing.json()["detail"] == "serial is required."
    garbage = api.post(
        "/api/v1/devices", content=b"serial=1", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422
    assert "not valid JSON" in garbage.json()["detail"]
    with api.ctx.sessions() as session:
        assert session.scalars(select(Device)).all() == []


def test_registration_respects_role_and_caseload(api: Api) -> None:
    assert _register(api, role="viewer").status_code == 403
    assert _register(api, role="facilities").status_code == 403
    assert (
        _register(api, prison_code="LEI", role="rollout-manager", prisons=("MDI",)).status_code
        == 404
    )
    assert _register(api, role="rollout-manager", prisons=("MDI",)).status_code == 201


def test_detail_shows_state_metrics_breadcrumb_events_and_audit(api: Api) -> None:
    seen = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with transaction(api.ctx.sessions) as session:
        device = add_device(
            session,
            prison="MDI",
            location="MDI-2-1-002",
            online=True,
            health="warning",
            battery=18.5,
            last_seen=seen,
            metrics={"battery": 18.5, "cpu": 91.0},
        )
        session.add(DeviceEvent(device_id=device.id, kind="online", detail={"boot": 3}))
        device_id = device.id
    api.post(f"/api/v1/devices/{device_id}/move", json={"location": "MDI-2-1-003"})

    body = api.get(f"/api/v1/devices/{device_id}", role="viewer", prisons=["MDI"]).json()

    assert body["id"] == device_id
    assert (body["online"], body["health"], body["battery"]) == (True, "warning", 18.5)
    assert datetime.fromisoformat(body["last_seen"]) == seen
    assert body["metrics"] == {"battery": 18.5, "cpu": 91.0}
    assert [(c["kind"], c["code"]) for c in body["breadcrumb"]] == [
        ("prison", "MDI"),
        ("wing", "MDI-2"),
        ("landing", "MDI-2-1"),
        ("cell", "MDI-2-1-003"),
    ]
    assert [e["kind"] for e in body["events"]] == ["moved", "online"]
    assert body["events"][0]["detail"]["from"] == "MDI-2-1-002"
    assert [a["action"] for a in body["audit"]] == ["device.moved"]


def test_other_prisons_devices_are_404_everywhere(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        lei = add_device(session, prison="LEI", location="LEI-1-1-001", online=True).id
    as_mdi: dict[str, Any] = {"role": "estate-admin", "prisons": ["MDI"]}

    assert api.get(f"/api/v1/devices/{lei}", **as_mdi).status_code == 404
    assert api.get(f"/api/v1/devices/{lei}/health", **as_mdi).status_code == 404
    move = api.post(f"/api/v1/devices/{lei}/move", json={"location": "LEI-1-1-002"}, **as_mdi)
    assert move.status_code == 404
    retire = api.post(f"/api/v1/devices/{lei}/retire", json={"reason": "broken"}, **as_mdi)
    assert retire.status_code == 404
    assert api.get("/api/v1/devices/NOPE").status_code == 404
    assert _events(api, lei) == []


def test_moves_within_and_across_prisons(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        device_id = add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id
    url = f"/api/v1/devices/{device_id}/move"

    assert api.post(url, json={"location": "MDI-1-1-002"}, role="viewer").status_code == 403
    moved = api.post(url, json={"location": "mdi-1-1-002"}, role="it-support", prisons=["MDI"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["location"] == "MDI-1-1-002"
    again = api.post(url, json={"location": "MDI-1-1-002"}, role="it-support")
    assert again.status_code == 200

    across = api.post(url, json={"location": "LEI-1-1-001"}, role="it-support")
    assert across.status_code == 403
    assert "estate administrators" in across.json()["detail"]
    outside = api.post(url, json={"location": "LEI-1-1-001"}, prisons=["MDI"])
    assert outside.status_code == 422
    assert outside.json()["errors"][0]["field"] == "location"
    admin = api.post(url, json={"location": "LEI-1-1-001"})
    assert admin.status_code == 200
    assert (admin.json()["prison_code"], admin.json()["location"]) == ("LEI", "LEI-1-1-001")

    for body in ({"location": "MDI-7"}, {"location": 5}, {"where": "MDI-1"}, {}):
        assert api.post(url, json=body).status_code == 422, body
    assert _events(api, device_id) == ["moved", "moved"]
    assert _audit(api, device_id) == ["device.moved", "device.moved"]


def test_retire_disables_the_identity_once(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        device_id = add_device(session, prison="MDI", location="MDI-1-1-001", online=True).id
        session.add(Credential(device_id=device_id, username=device_id))
    url = f"/api/v1/devices/{device_id}/retire"

    assert api.post(url, json={"reason": "cracked screen"}, role="viewer").status_code == 403
    assert api.post(url, json={"reason": "x"}).status_code == 422
    assert api.post(url, json={"reason": "cracked", "force": True}).status_code == 422
    retired = api.post(url, json={"reason": "cracked screen"}, role="it-support")
    assert retired.status_code == 200, retired.text
    body = retired.json()
    assert (body["lifecycle"], body["online"], body["state"]) == ("retired", False, "offline")
    assert body["retired_at"] is not None
    twice = api.post(url, json={"reason": "again"})
    assert twice.status_code == 200
    assert twice.json()["retired_at"] == body["retired_at"]

    assert _events(api, device_id) == ["retired"]
    assert _audit(api, device_id) == ["device.retired"]
    with api.ctx.sessions() as session:
        [credential] = session.scalars(select(Credential).where(Credential.device_id == device_id))
        assert credential.revoked_at is not None
    move = api.post(f"/api/v1/devices/{device_id}/move", json={"location": "MDI-1-1-002"})
    assert move.status_code == 409
    assert "retired" in move.json()["detail"]
