"""Locations: filtered pages, detail with breadcrumb, and adding one node under a parent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fleet.audit.models import AuditEvent
from fleet.db import transaction
from tests.estate.factories import Api, add_device


def _walk(api: Api, query: str, **kw: Any) -> list[str]:
    paths: list[str] = []
    cursor = None
    while True:
        url = f"/api/v1/locations?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(url, **kw).json()
        paths += [item["path"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return paths


def test_pages_walk_every_location_once_in_path_order(api: Api) -> None:
    paths = _walk(api, "limit=4")

    assert len(paths) == len(set(paths)) == 18 + 4
    assert paths == sorted(paths)
    first = api.get("/api/v1/locations?limit=4").json()
    assert first["count"] == 22
    assert first["items"][0] == {
        "path": "LEI-1",
        "prison_code": "LEI",
        "kind": "wing",
        "name": "Wing 1",
        "parent": None,
        "capacity": 0,
    }


def test_filters_by_prison_kind_parent_and_text(api: Api) -> None:
    cells = api.get("/api/v1/locations?prison=mdi&kind=cell").json()
    assert cells["count"] == 12
    assert {c["kind"] for c in cells["items"]} == {"cell"}

    landing = api.get("/api/v1/locations?parent=MDI-2-1").json()
    assert [c["path"] for c in landing["items"]] == ["MDI-2-1-001", "MDI-2-1-002", "MDI-2-1-003"]
    assert {c["parent"] for c in landing["items"]} == {"MDI-2-1"}

    by_path = api.get("/api/v1/locations?q=mdi-2-2").json()
    assert [c["path"] for c in by_path["items"]] == [
        "MDI-2-2",
        "MDI-2-2-001",
        "MDI-2-2-002",
        "MDI-2-2-003",
    ]
    by_name = api.get("/api/v1/locations?q=LANDING 2&prison=LEI").json()
    assert by_name["count"] == 0
    by_name = api.get("/api/v1/locations?q=landing 2&prison=MDI").json()
    assert [c["path"] for c in by_name["items"]] == ["MDI-1-2", "MDI-2-2"]


def test_caseload_lists_only_its_locations_and_hides_the_rest(api: Api) -> None:
    paths = _walk(api, "limit=5", role="viewer", prisons=["MDI"])
    assert len(paths) == 18
    assert all(p.startswith("MDI-") for p in paths)
    asked_for_other = api.get("/api/v1/locations?prison=LEI", role="viewer", prisons=["MDI"])
    assert asked_for_other.json()["count"] == 0

    assert api.get("/api/v1/locations/LEI-1", role="viewer", prisons=["MDI"]).status_code == 404
    other_parent = api.get("/api/v1/locations?parent=LEI-1", role="viewer", prisons=["MDI"])
    assert other_parent.status_code == 422
    assert other_parent.json()["errors"][0]["field"] == "query.parent"


def test_detail_has_breadcrumb_children_and_device_count(api: Api) -> None:
    with transaction(api.ctx.sessions) as session:
        add_device(session, prison="MDI", location="MDI-1-2-001", online=True)
        add_device(session, prison="MDI", location="MDI-1-2-003", online=True)
        add_device(session, prison="MDI", location="MDI-1-1-003", online=True)

    landing = api.get("/api/v1/locations/mdi-1-2").json()
    assert landing["kind"] == "landing"
    assert landing["parent"] == "MDI-1"
    assert [c["code"] for c in landing["breadcrumb"]] == ["MDI", "MDI-1", "MDI-1-2"]
    assert landing["breadcrumb"][0]["kind"] == "prison"
    assert [c["path"] for c in landing["children"]] == ["MDI-1-2-001", "MDI-1-2-002", "MDI-1-2-003"]
    assert landing["devices"] == 2
    assert api.get("/api/v1/locations/MDI-1").json()["devices"] == 3

    cell = api.get("/api/v1/locations/MDI-1-2-003").json()
    assert [c["kind"] for c in cell["breadcrumb"]] == ["prison", "wing", "landing", "cell"]
    assert cell["children"] == []
    assert cell["capacity"] == 1
    assert api.get("/api/v1/locations/MDI-9").status_code == 404


def test_admin_adds_locations_under_the_right_parents(api: Api) -> None:
    cell = api.post(
        "/api/v1/locations",
        json={"prison_code": "MDI", "path": "MDI-1-1-004", "kind": "cell", "name": "Cell 004"},
    )
    assert cell.status_code == 201, cell.text
    assert cell.json()["parent"] == "MDI-1-1"
    assert cell.json()["capacity"] == 1
    wing = api.post(
        "/api/v1/locations",
        json={"prison_code": "MDI", "path": "MDI-H", "kind": "wing", "name": "Healthcare"},
    )
    assert wing.status_code == 201
    room = api.post(
        "/api/v1/locations",
        json={
            "prison_code": "MDI",
            "path": "MDI-1-GYM-2",
            "kind": "room",
            "name": "Gym 2",
            "parent": "MDI-1",
        },
    )
    assert room.status_code == 201, room.text
    assert [c["code"] for c in room.json()["breadcrumb"]] == ["MDI", "MDI-1", "MDI-1-GYM-2"]
    chapel = api.post(
        "/api/v1/locations",
        json={"prison_code": "MDI", "path": "MDI-CHAPEL", "kind": "room", "name": "Chapel"},
    )
    assert chapel.json()["parent"] is None

    with api.ctx.sessions() as session:
        audited = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "location.created")
        ).all()
    assert {a.target_id for a in audited} == {"MDI-1-1-004", "MDI-H", "MDI-1-GYM-2", "MDI-CHAPEL"}
    assert all(a.actor.startswith("user") for a in audited)


def _create_error(api: Api, body: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    response = api.post("/api/v1/locations", json=body, **kw)
    return response.status_code, response.json()


def test_bad_locations_are_refused_with_field_and_reason(api: Api) -> None:
    base = {"prison_code": "MDI", "kind": "cell", "name": "Cell"}
    cases = [
        ({**base, "path": "MDI-1-009"}, "kind", "a cell must be under a landing"),
        ({**base, "path": "MDI-1-7-001"}, "parent", "parent MDI-1-7 does not exist"),
        ({**base, "path": "LEI-1-1-009"}, "path", "must start with its prison code"),
        ({**base, "path": "MDI 1 1"}, "path", "letters and digits"),
        ({**base, "prison_code": "XXX", "path": "XXX-1"}, "prison_code", "unknown prison"),
        ({**base, "path": "MDI-1-1-005", "parent": "MDI-1"}, "kind", "its parent is MDI-1"),
        ({**base, "path": "MDI-1-1-005", "colour": "red"}, "colour", "not a field"),
        ({**base, "path": "MDI-1-1-005", "capacity": "lots"}, "capacity", "integer"),
        ({**base, "path": "MDI-1-1-005", "kind": "tower"}, "kind", "wing"),
        ({"prison_code": "MDI", "path": "MDI-1-1-005", "kind": "cell"}, "name", "required"),
    ]
    for body, field, words in cases:
        status, answer = _create_error(api, body)
        assert status == 422, (body, answer)
        assert answer["errors"][0]["field"] == field, (body, answer)
        assert words in answer["detail"], (body, answer)

    garbage = api.post(
        "/api/v1/locations",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert garbage.status_code == 422
    assert "not valid JSON" in garbage.json()["detail"]

    status, answer = _create_error(api, {**base, "path": "MDI-1-1-001"})
    assert status == 409
    assert "already exists" in answer["detail"]


def test_only_admins_in_the_prison_add_locations(api: Api) -> None:
    body = {"prison_code": "LEI", "path": "LEI-1-1-003", "kind": "cell", "name": "Cell 003"}
    assert _create_error(api, body, role="it-support")[0] == 403
    assert _create_error(api, body, role="estate-admin", prisons=["MDI"])[0] == 404
    status, _ = _create_error(api, body, role="estate-admin", prisons=["LEI"])
    assert status == 201
