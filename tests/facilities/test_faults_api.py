"""Reporting, listing, filtering and reading faults through the API, within caseloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet.context import Context
from fleet.db import transaction
from tests.estate.factories import Api, add_device
from tests.facilities.builders import fault_body, report


def test_report_sets_reference_due_times_and_timeline(api: Api) -> None:
    response = report(api, team="Works team A")
    assert response.status_code == 201, response.text
    fault = response.json()
    assert fault["reference"] == "MDI-F-000001"
    assert fault["status"] == "reported"
    assert fault["location"] == "MDI-1-1-001"
    assert fault["team"] == "Works team A"
    assert fault["reporter"].startswith("user")
    assert fault["next"] == ["triaged", "cancelled"]
    reported = api.get(f"/api/v1/faults/{fault['id']}").json()["reported_at"]
    assert fault["due_respond_at"] > reported
    assert [e["action"] for e in fault["timeline"]] == ["reported"]
    second = report(api, location="MDI-2", category="heating", priority="P4").json()
    assert second["reference"] == "MDI-F-000002"
    assert report(api, location="LEI-1-1-001").json()["reference"] == "LEI-F-000001"


def test_due_times_follow_the_category_and_priority(api: Api) -> None:
    urgent = report(api).json()
    slow = report(api, category="other", priority="P4").json()

    def hours(fault: dict[str, str], field: str) -> float:
        start = datetime.fromisoformat(fault["reported_at"])
        return (datetime.fromisoformat(fault[field]) - start) / timedelta(hours=1)

    assert (hours(urgent, "due_respond_at"), hours(urgent, "due_clear_at")) == (1, 4)
    assert (hours(slow, "due_respond_at"), hours(slow, "due_clear_at")) == (120, 480)


def test_detail_by_reference_and_device_in_same_prison(api: Api, fault_context: Context) -> None:
    with transaction(fault_context.sessions) as session:
        phone = add_device(session, prison="MDI", location="MDI-1-1-002").id
        elsewhere = add_device(session, prison="LEI", location="LEI-1-1-001").id
    made = report(api, location="MDI-1-1-002", category="in_cell_telephony", device=phone)
    assert made.status_code == 201, made.text
    detail = api.get("/api/v1/faults/mdi-f-000001")
    assert detail.status_code == 200
    assert detail.json()["device"] == phone
    wrong = report(api, device=elsewhere)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "device"
    assert wrong.json()["detail"] == f"device: no device {elsewhere!r} in MDI."


def test_list_filters_sort_and_cursor(api: Api) -> None:
    report(api, location="MDI-1-1-001", priority="P1")
    report(api, location="MDI-1-2-001", category="plumbing", priority="P3")
    report(api, location="MDI-2-1-001", category="heating", priority="P2")
    report(api, location="LEI-1-1-001", category="heating", priority="P4")

    def refs(**params: object) -> list[str]:
        response = api.get("/api/v1/faults", params=params)
        assert response.status_code == 200, response.text
        return [f["reference"] for f in response.json()["items"]]

    assert refs(prison="LEI") == ["LEI-F-000001"]
    assert refs(category="heating", sort="reference") == ["LEI-F-000001", "MDI-F-000003"]
    assert refs(priority=["P1", "P3"], sort="priority") == ["MDI-F-000001", "MDI-F-000002"]
    assert refs(location="MDI-1", sort="reference") == ["MDI-F-000001", "MDI-F-000002"]
    assert refs(status="triaged") == []
    assert refs(breached="true") == []
    assert len(refs(at_risk="false")) == 4
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"sort": "-reported_at", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/faults", params=params).json()
        assert page["count"] == 4
        seen += [f["reference"] for f in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(refs())
    assert len(seen) == 4
    bad = api.get("/api/v1/faults", params={"location": "MDI-9"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.location"


def test_caseload_and_roles(api: Api) -> None:
    lei = report(api, location="LEI-1-1-001").json()
    mdi = report(api, prisons=("MDI",)).json()
    listed = api.get("/api/v1/faults", role="facilities", prisons=("MDI",)).json()
    assert [f["reference"] for f in listed["items"]] == [mdi["reference"]]
    assert (
        api.get(f"/api/v1/faults/{lei['id']}", role="facilities", prisons=("MDI",)).status_code
        == 404
    )
    moved = api.post(
        f"/api/v1/faults/{lei['id']}/transitions",
        role="facilities",
        prisons=("MDI",),
        json={"to": "triaged"},
    )
    assert moved.status_code == 404
    outside = report(api, prisons=("MDI",), location="LEI-1-1-002")
    assert outside.status_code == 422
    assert outside.json()["errors"][0]["field"] == "location"
    assert report(api, role="it-support").status_code == 201
    assert report(api, role="viewer").status_code == 403
    assert api.get(f"/api/v1/faults/{mdi['id']}", role="viewer").status_code == 200
    triage = api.post(
        f"/api/v1/faults/{mdi['id']}/transitions", role="it-support", json={"to": "triaged"}
    )
    assert triage.status_code == 403


def test_garbage_bodies_name_the_field(api: Api) -> None:
    cases = [
        ({"priority": "P5"}, "priority"),
        ({"category": "decoration"}, "category"),
        ({"location": "../../etc"}, "location"),
        ({"description": ""}, "description"),
        ({"location": "MDI-9-9-999"}, "location"),
        ({"colour": "red"}, "colour"),
    ]
    for change, field in cases:
        response = api.post("/api/v1/faults", role="facilities", json=fault_body(**change))
        assert response.status_code == 422, (change, response.text)
        assert response.json()["errors"][0]["field"] == field, response.json()
    not_json = api.post(
        "/api/v1/faults", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert api.get("/api/v1/faults").json()["count"] == 0


def test_targets_are_listed_and_editable_by_admins(api: Api) -> None:
    targets = api.get("/api/v1/fault-targets", role="viewer").json()
    assert len(targets) == 9 * 4
    bell = next(
        t for t in targets if (t["category"], t["priority"]) == ("door_lock_cell_bell", "P1")
    )
    assert (bell["respond_minutes"], bell["clear_minutes"]) == (60, 240)
    body = {"category": "heating", "priority": "P2", "respond_minutes": 30, "clear_minutes": 90}
    put = api.client.put("/api/v1/fault-targets", json=body, headers=api.auth())
    assert put.status_code == 200, put.text
    assert put.json()["customised"]
    denied = api.client.put("/api/v1/fault-targets", json=body, headers=api.auth("facilities"))
    assert denied.status_code == 403
    backwards = {**body, "respond_minutes": 100, "clear_minutes": 50}
    refused = api.client.put("/api/v1/fault-targets", json=backwards, headers=api.auth())
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "clear_minutes"
    zero = api.client.put(
        "/api/v1/fault-targets", json={**body, "respond_minutes": 0}, headers=api.auth()
    )
    assert zero.json()["errors"][0]["field"] == "respond_minutes"
    fault = report(api, category="heating", priority="P2").json()
    start = datetime.fromisoformat(fault["reported_at"])
    assert datetime.fromisoformat(fault["due_clear_at"]) - start == timedelta(minutes=90)


def test_recurring_faults_are_flagged_and_listed(api: Api) -> None:
    first = report(api, category="plumbing", priority="P3").json()
    report(api, category="plumbing", priority="P3")
    report(api, category="heating", priority="P3")
    assert api.get("/api/v1/faults/recurring").json() == []
    assert not api.get(f"/api/v1/faults/{first['id']}").json()["recurring"]
    third = report(api, category="plumbing", priority="P2").json()
    assert third["recurring"]
    assert api.get(f"/api/v1/faults/{first['id']}").json()["recurring"]
    groups = api.get("/api/v1/faults/recurring").json()
    assert groups == [
        {
            "location": "MDI-1-1-001",
            "prison_code": "MDI",
            "category": "plumbing",
            "count": 3,
            "references": ["MDI-F-000001", "MDI-F-000002", "MDI-F-000004"],
        }
    ]
    assert api.get("/api/v1/faults/recurring", role="viewer", prisons=("LEI",)).json() == []
    flagged = api.get("/api/v1/faults", params={"recurring": "true"}).json()
    assert flagged["count"] == 3


def test_faults_older_than_the_window_do_not_make_a_place_recurring(
    fault_context: Context,
) -> None:
    from facilities.faults import recurring, service

    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ages = (timedelta(days=40), timedelta(days=20), timedelta(days=1))
    with transaction(fault_context.sessions) as session:
        faults = [
            service.report_fault(
                session=session,
                actor="tester",
                location_path="MDI-2-1-003",
                category="plumbing",
                priority="P3",
                description="Leak",
                now=now - age,
            )
            for age in ages
        ]
        assert not any(f.recurring for f in faults)
        assert recurring.recurring_groups(session=session, scope=None, now=now) == []
        fourth = service.report_fault(
            session=session,
            actor="tester",
            location_path="MDI-2-1-003",
            category="plumbing",
            priority="P3",
            description="Leak again",
            now=now,
        )
        assert fourth.recurring
        assert [f.recurring for f in faults] == [False, True, True]
        groups = recurring.recurring_groups(session=session, scope=("MDI",), now=now)
        assert [(g.location, g.count) for g in groups] == [("MDI-2-1-003", 3)]
        assert recurring.recurring_groups(session=session, scope=("LEI",), now=now) == []
